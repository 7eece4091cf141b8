"""Setting a run up: find (or download) the weights, then open the backend (models/backends.py),
with the download bar and the notes on stderr. Every command that runs a model comes through
`open_model`; engines and Ray actors open what it chose with `models.backends.load_backend`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ptmcli.models.backends import BackendChoice
    from ptmcli.models.spec import ModelSpec, WeightFile


def locate_weights(weight: "WeightFile", explicit: str | Path | None, offline: bool) -> Path:
    """A verified local copy of `weight` (or `explicit`), downloading it only when allowed."""
    from ptmcli.models import weights as weight_files
    from ptmcli.sinks.progress import transfer_progress

    with transfer_progress(f"downloading {weight.filename}") as on_bytes:
        return weight_files.resolve(
            weight, explicit, offline=weight_files.offline_requested(offline), progress=on_bytes
        )


def open_model(spec: "ModelSpec", weights: str | Path | None, offline: bool, *, device: str = "auto",
               precision: str = "fp32", runtime: str = "auto", work: float = 1, compile: bool = False,
               exact_decode: bool = False, short_side: int = 256,
               load: bool = True) -> tuple["BackendChoice", object]:
    """(the choice, the backend) for a run of `spec`: weights located (`--weights`, the search
    order, a download), device, precision and runtime settled for a job of `work` (inputs for a
    classifier, megapixels for a generator). With `load=False` the work runs on Ray's actors: the
    choice is made for the cluster's hardware (its GPUs), not this machine's, and the backend is
    None unless choosing loaded it."""
    from ptmcli.models.backends import open_backend
    from ptmcli.sinks.progress import note_line

    weights_path = locate_weights(spec.weights, weights, offline)
    gpus = None
    if not load:
        from ptmcli.pipeline.engines.ray_engine import cluster_gpus

        gpus = cluster_gpus()
    return open_backend(spec, weights_path, device=device, precision=precision, runtime=runtime, work=work,
                        compile=compile, exact_decode=exact_decode, short_side=short_side, note=note_line,
                        load=load, gpus=gpus)


def measure_runtimes(model: str, weights: str | Path | None, offline: bool, precision: str = "fp32") -> None:
    """`ptm runtimes --measure`: export `model` for every installed runtime and time each, now."""
    from ptmcli.models.backends import open_backend
    from ptmcli.models.registry import get_model
    from ptmcli.sinks.progress import note_line

    spec = get_model(model)
    weights_path = locate_weights(spec.weights, weights, offline)
    open_backend(spec, weights_path, device="cpu", precision=precision, runtime="auto", work=float("inf"),
                 note=note_line, load=False, measure=True)
