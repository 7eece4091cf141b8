"""Setting a run up: find (or download) the weights, choose the runtime, load the model.

Every command and engine goes through these steps, so the search order, the download bar, the
runtime choice and the device and precision checks are the same everywhere (Ray actors included:
the driver chooses, the actors load what it chose).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ptmcli.models.registry import WeightFile
    from ptmcli.pipeline.classification import ClassifierBackend


def locate_weights(weight: "WeightFile", explicit: str | Path | None, offline: bool) -> Path:
    """A verified local copy of `weight` (or `explicit`), downloading it only when allowed."""
    from ptmcli.models import weights as weight_files
    from ptmcli.sinks.progress import transfer_progress

    with transfer_progress(f"downloading {weight.filename}") as on_bytes:
        return weight_files.resolve(
            weight, explicit, offline=weight_files.offline_requested(offline), progress=on_bytes
        )


@dataclass(frozen=True, kw_only=True)
class ClassifierChoice:
    """Everything that decides which numbers a classifier computes; plain values, so a Ray actor
    can be given it and build the same model. `runtime` is resolved (never "auto")."""

    model: str
    weights_path: Path
    weights_sha256: str = ""
    device: str = "auto"
    precision: str = "fp32"
    runtime: str = "torch"
    compile: bool = False
    exact_decode: bool = False


def nvidia_gpu_present() -> bool:
    """Whether the NVIDIA driver shows a GPU, asked without importing torch (which takes seconds)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    try:
        return (gpus.is_dir() and any(gpus.iterdir())) or Path("/dev/nvidia0").exists()
    except OSError:
        return False


def runs_on_cpu(device: str) -> bool:
    name = device.strip().lower()
    if name == "cpu":
        return True
    if name != "auto":
        return False
    if not nvidia_gpu_present():
        return True
    import torch

    return not torch.cuda.is_available()


def choose_classifier(choice: ClassifierChoice, runtime: str,
                      inputs: int) -> tuple[ClassifierChoice, "ClassifierBackend | None"]:
    """`choice` with its runtime resolved from `--runtime` for a run over `inputs` images, and the
    backend if choosing loaded it."""
    import time
    from dataclasses import replace

    from ptmcli.errors import UsageProblem
    from ptmcli.models.registry import get_classifier
    from ptmcli.models.runtimes import EXPORTED
    from ptmcli.models.runtimes.choice import Timing, decide, measure
    from ptmcli.sinks.progress import note_line

    if not runs_on_cpu(choice.device):
        if runtime in EXPORTED:
            raise UsageProblem(f"--runtime {runtime} runs on the CPU; --device {choice.device} needs torch",
                               ["use --device cpu, or --runtime torch (or auto)"])
        if choice.precision == "int8":
            raise UsageProblem("--precision int8 runs on the CPU", ["use --device cpu, or --precision fp16/bf16"])
        return replace(choice, runtime="torch"), None
    spec = get_classifier(choice.model)
    # Only the best backend measured so far stays loaded: three copies of a large model at once
    # would cost their memory for nothing.
    kept: dict = {}

    def measure_candidate(candidate) -> Timing:
        wanted = replace(choice, runtime=candidate.runtime, precision=candidate.precision)
        if candidate.runtime != "torch":
            prepare_export(wanted)  # building is not loading: time only the load
        start = time.perf_counter()
        backend = load_classifier(wanted)
        timing = Timing(0.0, time.perf_counter() - start)
        timing = Timing(measure(backend, spec.preprocess.crop), timing.load_s)
        if not kept or timing.predicted(inputs) < kept["timing"].predicted(inputs):
            kept.clear()
            kept.update(candidate=candidate, backend=backend, timing=timing)
        del backend
        return timing

    chosen = decide(spec, choice.weights_sha256, runtime, choice.precision, choice.compile, inputs,
                    measure_candidate, note_line)
    backend = kept.get("backend") if kept.get("candidate") == chosen else None
    kept.clear()
    return replace(choice, runtime=chosen.runtime, precision=chosen.precision), backend


def load_classifier(choice: ClassifierChoice) -> "ClassifierBackend":
    """The backend `choice` names, building its exported files first if they are missing or damaged."""
    from ptmcli.models.registry import get_classifier

    spec = get_classifier(choice.model)
    if choice.runtime == "torch":
        from ptmcli.models.classifier import Classifier
        from ptmcli.pipeline.device import resolve_device_and_precision

        device, dtype = resolve_device_and_precision(choice.device, choice.precision)
        return Classifier(spec, choice.weights_path, device, dtype, compile=choice.compile,
                          fast_decode=not choice.exact_decode)
    from ptmcli.models.runtimes.exported import BACKENDS

    return BACKENDS[choice.runtime](spec, prepare_export(choice), exact_decode=choice.exact_decode)


def prepare_export(choice: ClassifierChoice):
    """The checked exported files for `choice`, built now (with torch) if missing or damaged."""
    from ptmcli.models.registry import get_classifier
    from ptmcli.models.runtimes.build import key_for
    from ptmcli.models.runtimes.exports import find

    spec = get_classifier(choice.model)
    key = key_for(spec, choice.weights_sha256, choice.runtime, choice.precision)
    export = find(key)
    if export is None:
        from ptmcli.models.runtimes.build import build_export

        export = build_export(key, spec, choice.weights_path)
    return export
