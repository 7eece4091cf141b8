"""Opening a backend: the one place device, precision and runtime are settled, for classifiers
and generators alike.

`open_backend` settles `--device` (models/device.py), refuses a precision the hardware lacks,
resolves `--runtime auto` for the job's size (runtimes/choice.py) and returns the choice it made
with the backend it loaded. The choice is plain values plus the spec object, so an engine or a
Ray actor given it opens the same backend with `load_backend`, without choosing again and without
looking the model up by name.

Every backend has `prepare(path)` (decode, in the decode thread), `device`, `runtime`,
`precision` and `decode_workers`; a classifier then `forward(arrays, top, pad_to, features)`,
a generator `translate_each(prepared, paths)`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ptmcli.errors import UsageProblem
from ptmcli.models.spec import CLASSIFY, ModelSpec

if TYPE_CHECKING:
    from ptmcli.models.runtimes.choice import Candidate, Timing
    from ptmcli.models.runtimes.exports import Export


@dataclass(frozen=True, kw_only=True)
class BackendChoice:
    """Everything that decides which numbers a backend computes. `device` is settled ("cpu",
    "cuda:0"), `runtime` resolved (never "auto")."""

    spec: ModelSpec
    weights_path: Path
    weights_sha256: str = ""
    device: str = "cpu"
    # --device as given: an engine whose workers run elsewhere (Ray) settles "auto" where they run.
    asked_device: str = "auto"
    precision: str = "fp32"
    runtime: str = "torch"
    compile: bool = False
    exact_decode: bool = False  # classifiers: no JPEG draft decoding
    short_side: int = 256  # generators: the short side inputs are resized to (0 keeps the size)

    @property
    def model(self) -> str:
        return self.spec.name


def open_backend(spec: ModelSpec, weights_path: Path, *, device: str = "auto", precision: str = "fp32",
                 runtime: str = "auto", work: float = 1, weights_sha256: str | None = None,
                 compile: bool = False, exact_decode: bool = False, short_side: int = 256,
                 note: Callable[[str], None] | None = None, load: bool = True,
                 measure: bool = False, gpus: int | None = None) -> tuple[BackendChoice, object]:
    """(the choice, the loaded backend) for `spec` with `weights_path`, `runtime` resolved for a
    job of `work`: the number of inputs for a classifier, their megapixels (after resizing) for a
    generator (`pixels.translate.megapixels`). `note` receives one-line notes for the user. With
    `load=False` the backend is None unless measuring loaded it (for engines that load elsewhere);
    `measure` exports and times every candidate again (`ptm runtimes --measure`). `gpus`: the
    work runs elsewhere (Ray actors) on hardware with this many GPUs, not on this machine.

    `--device auto` is the GPU for what torch computes there, and the CPU for what runs only
    there (`--runtime onnxruntime`/`openvino`, `--precision int8`); an explicit GPU device
    refuses those. README's "On a GPU machine" table is every answer (a test checks it).
    """
    from ptmcli.models.device import check_precision, settle_device
    from ptmcli.models.digests import file_sha256
    from ptmcli.models.runtimes import EXPORTED, RUNTIMES

    precision, runtime = precision.strip().lower(), runtime.strip().lower()
    if runtime not in RUNTIMES:
        raise UsageProblem(f"--runtime {runtime!r} is not a runtime", [f"use one of: {', '.join(RUNTIMES)}"])
    if device.strip().lower() not in ("cpu", "auto"):
        _cpu_only(runtime, device)  # contradicting flags, whatever the hardware
    settled = settle_device(device, cpu_work=runtime in EXPORTED or precision == "int8", gpus=gpus)
    check_precision(precision, settled)
    choice = BackendChoice(spec=spec, weights_path=Path(weights_path),
                           weights_sha256=weights_sha256 or file_sha256(Path(weights_path)),
                           device=settled, asked_device=device, precision=precision, compile=compile,
                           exact_decode=exact_decode, short_side=short_side)
    if settled != "cpu":
        choice = replace(choice, runtime="torch")
        return choice, load_backend(choice) if load else None
    choice, backend = _choose(choice, runtime, work, note or (lambda message: None), measure)
    if backend is None and load:
        backend = load_backend(choice)
    return choice, backend


def _cpu_only(runtime: str, device: str) -> None:
    from ptmcli.models.runtimes import EXPORTED

    if runtime in EXPORTED:
        raise UsageProblem(f"--runtime {runtime} runs on the CPU; --device {device} needs torch",
                           ["use --device cpu (or auto), or --runtime torch (or auto)"])


def load_backend(choice: BackendChoice):
    """The backend `choice` names, building its exported files first if they are missing or damaged."""
    if choice.runtime == "torch":
        return _torch_backend(choice)
    export = prepare_export(choice)
    if choice.spec.task == CLASSIFY:
        from ptmcli.models.runtimes.exported import BACKENDS

        return BACKENDS[choice.runtime](choice.spec, export, exact_decode=choice.exact_decode)
    from ptmcli.models.runtimes.exported_generator import GENERATORS

    return GENERATORS[choice.runtime](choice.spec, export, short_side=choice.short_side)


def _torch_backend(choice: BackendChoice):
    import torch

    from ptmcli.models.device import check_precision, fp32_stays_fp32, settle_device, torch_dtype

    device = torch.device(settle_device(choice.device))
    check_precision(choice.precision, str(device))
    if choice.precision == "fp32":
        fp32_stays_fp32(device)  # before the model is built: its kernels are picked then
    dtype = torch_dtype(choice.precision)
    if choice.spec.task == CLASSIFY:
        from ptmcli.models.classifier import Classifier

        return Classifier(choice.spec, choice.weights_path, device, dtype, compile=choice.compile,
                          fast_decode=not choice.exact_decode)
    from ptmcli.models.generator import Zebrafier

    return Zebrafier(choice.weights_path, device, short_side=choice.short_side,
                     label=f"the {choice.spec.name} generator", dtype=dtype, compile=choice.compile,
                     recipe=choice.spec.preprocess)


def prepare_export(choice: BackendChoice) -> "Export":
    """The checked exported files for `choice`, built now (with torch) if missing or damaged."""
    from ptmcli.models.runtimes.build import key_for
    from ptmcli.models.runtimes.exports import find

    key = key_for(choice.spec, choice.weights_sha256, choice.runtime, choice.precision)
    export = find(key)
    if export is None:
        from ptmcli.models.runtimes.build import build_export

        export = build_export(key, choice.spec, choice.weights_path)
    return export


def _choose(choice: BackendChoice, runtime: str, work: float, note: Callable[[str], None],
            fresh: bool = False) -> tuple[BackendChoice, object]:
    """`choice` with its runtime resolved from `--runtime` for a job of `work`, and its backend.

    Only the best backend measured so far stays loaded: three copies of a large model at once
    would cost their memory for nothing.
    """
    from ptmcli.models.runtimes.choice import decide

    kept: dict = {}

    def measure_candidate(candidate: "Candidate") -> "Timing":
        timing, backend = _measure(replace(choice, runtime=candidate.runtime, precision=candidate.precision))
        if not kept or timing.predicted(work) < kept["timing"].predicted(work):
            kept.clear()
            kept.update(candidate=candidate, backend=backend, timing=timing)
        return timing

    chosen = decide(choice.spec, choice.weights_sha256, runtime, choice.precision, choice.compile, work,
                    measure_candidate, note, fresh=fresh)
    backend = kept.get("backend") if kept.get("candidate") == chosen else None
    kept.clear()
    return replace(choice, runtime=chosen.runtime, precision=chosen.precision), backend


def _measure(choice: BackendChoice) -> tuple["Timing", object]:
    """How long `choice` takes to load (building is not loading: its files are built first) and
    how fast it runs; and the loaded backend."""
    from ptmcli.models.runtimes.choice import Timing, measure, measure_generator

    if choice.runtime != "torch":
        prepare_export(choice)
    start = time.perf_counter()
    backend = load_backend(choice)
    load_s = time.perf_counter() - start
    if choice.spec.task == CLASSIFY:
        return Timing(measure(backend, choice.spec.preprocess.crop), load_s), backend
    return Timing(measure_generator(backend), load_s), backend
