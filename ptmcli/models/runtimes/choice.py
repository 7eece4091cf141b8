"""`--runtime auto`: the runtime this machine measured fastest for this job.

Which runtime is fastest depends on the CPU (AVX2, AVX-512, VNNI, AMX) as much as on the model,
and no fixed table is right for every CPU ptm lands on. So ptm exports a model for every installed
runtime that offers the precision and measures each: how long it takes to load (torch's import
included) and how fast it computes (classifiers: images per second on a batch of 16; generators:
megapixels per second on a 256 x 256 picture; model only, best of two after a warm-up). The
numbers are recorded next to the exported files; every later run reads them and picks the runtime
with the least predicted time for its work, `load + work / rate`: a one-photo run takes the
quickest to start, a long run the fastest per image (a generator's work counts the pixels, so a
few large photos weigh like many small ones). The work is that of the whole input list (before
--shard and --resume), so every part of one job uses the same runtime and computes the same
numbers. A record made on another CPU (a shared home folder) or with other runtime versions is
measured again.

First contact pays only for what it uses: measuring happens only for a job of at least
`MEASURE_FROM` work, for int8, or when asked (`ptm runtimes --measure`); a smaller job with
nothing measured runs on torch at once, exporting nothing.

`int8` is offered only where it pays: it must beat the fastest fp32 runtime measured on the same
machine (and the CPU needs AVX2 at least), otherwise the run is refused (exit 2) with the numbers.
On a GPU, `auto` is torch.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ptmcli.atomic import replacing
from ptmcli.errors import UsageProblem
from ptmcli.models.runtimes import CPU_PRECISIONS, INSTALL_HINTS, RUNTIMES, installed, version
from ptmcli.models.runtimes.cpu import cpu_features
from ptmcli.models.runtimes.exports import ExportFailed, cache_root

if TYPE_CHECKING:
    from ptmcli.models.spec import ModelSpec

MEASURE_BATCH = 16
# The order candidates are tried and listed in: torch-free runtimes first.
_ORDER = ("onnxruntime", "openvino", "torch")


@dataclass(frozen=True)
class Candidate:
    runtime: str
    precision: str

    @property
    def name(self) -> str:
        return f"{self.runtime} {version(self.runtime) or '?'} {self.precision}"


def machine_signature() -> str:
    """What the timings depend on besides the runtimes: the CPU, its features and the cores used."""
    cpu = cpu_features()
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    threads = os.environ.get("OMP_NUM_THREADS", "")
    return f"{cpu.summary()}; {cores} cores{'; OMP_NUM_THREADS=' + threads if threads else ''}"


def _record_path(model: str, weights_sha256: str) -> Path:
    return cache_root() / model / weights_sha256[:16] / "measured.json"


@dataclass(frozen=True)
class Timing:
    img_s: float  # work per second (images, or megapixels for generators); 0 when it cannot run the model
    load_s: float
    refused: str = ""  # why it cannot (kept, so a later run need not build it again to find out)

    def predicted(self, inputs: int) -> float:
        return float("inf") if self.img_s <= 0 else self.load_s + inputs / self.img_s


def read_timings(model: str, weights_sha256: str) -> dict[str, Timing]:
    """What was measured, by candidate name, on this machine; {} when nothing (or another machine)."""
    try:
        record = json.loads(_record_path(model, weights_sha256).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict) or record.get("machine") != machine_signature():
        return {}
    timings = record.get("timings")
    if not isinstance(timings, dict):
        return {}
    try:
        return {str(k): Timing(float(v["img_s"]), float(v["load_s"]), str(v.get("refused", "")))
                for k, v in timings.items()}
    except (KeyError, TypeError, ValueError):
        return {}


def write_timings(model: str, weights_sha256: str, timings: dict[str, Timing]) -> None:
    path = _record_path(model, weights_sha256)
    record = {"machine": machine_signature(), "batch": MEASURE_BATCH,
              "timings": {k: {"img_s": float(f"{v.img_s:.4g}"), "load_s": round(v.load_s, 3),
                              **({"refused": v.refused} if v.refused else {})} for k, v in timings.items()},
              "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp:
            tmp.write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")
    except OSError:
        pass  # a read-only cache: the next run measures again


def measure(backend, crop: int) -> float:
    """img/s of `backend.forward` on a batch of MEASURE_BATCH, best of two after a warm-up."""
    import numpy as np

    arrays = [np.full((crop, crop, 3), 128, dtype=np.uint8)] * MEASURE_BATCH
    backend.forward(arrays, 5, pad_to=MEASURE_BATCH)
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        backend.forward(arrays, 5, pad_to=MEASURE_BATCH)
        best = min(best, time.perf_counter() - start)
    return MEASURE_BATCH / best


# A generator is timed on one picture of this side (the book's 256-pixel short side).
GENERATOR_MEASURE_SIDE = 256


def measure_generator(backend) -> float:
    """Megapixels per second of `backend.translate` on one 256 x 256 picture, best of two after a
    warm-up: a generator's time grows with the pixels, not the number of pictures."""
    import numpy as np

    side = GENERATOR_MEASURE_SIDE
    arrays = [np.full((side, side, 3), 128, dtype=np.uint8)]
    backend.translate(arrays)
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        backend.translate(arrays)
        best = min(best, time.perf_counter() - start)
    return side * side / 1e6 / best


def check_cpu_precision(runtime: str, precision: str) -> None:
    """Refuse what this CPU cannot do natively (it would be slower than fp32, or crash)."""
    from ptmcli.models.device import check_precision

    if precision in ("fp16", "bf16"):
        check_precision(precision, "cpu")
    if precision not in CPU_PRECISIONS.get(runtime, ()):
        offered = ", ".join(CPU_PRECISIONS[runtime])
        raise UsageProblem(f"--runtime {runtime} offers {offered} on a CPU, not {precision}",
                           [f"use --precision {CPU_PRECISIONS[runtime][0]}, or --runtime auto"])
    if precision == "int8" and not cpu_features().has("avx2"):
        raise UsageProblem("--precision int8: this CPU has no AVX2, so 8-bit kernels would be slower than fp32",
                           ["use --precision fp32 on this machine"])


def candidates(runtime: str, precision: str, compile: bool) -> list[Candidate]:
    """What `--runtime` allows on the CPU for this precision, installed ones only."""
    if runtime not in RUNTIMES:
        raise UsageProblem(f"--runtime {runtime!r} is not a runtime", [f"use one of: {', '.join(RUNTIMES)}"])
    if compile:
        if runtime not in ("auto", "torch"):
            raise UsageProblem(f"--compile is torch's compiler; it does not apply to --runtime {runtime}",
                               ["drop --compile, or use --runtime torch"])
        runtime = "torch"
    if runtime != "auto":
        if not installed(runtime):
            raise UsageProblem(f"--runtime {runtime}: {runtime} is not installed", [INSTALL_HINTS[runtime]])
        check_cpu_precision(runtime, precision)
        return [Candidate(runtime, precision)]
    if precision in ("fp16", "bf16"):
        check_cpu_precision("torch", precision)
    found = [Candidate(r, precision) for r in _ORDER if installed(r) and precision in CPU_PRECISIONS[r]]
    if precision == "int8":
        if not found:
            raise UsageProblem("--precision int8 runs in OpenVINO, which is not installed",
                               [INSTALL_HINTS["openvino"] + ", or use --precision fp32"])
        check_cpu_precision(found[0].runtime, precision)
    if not found:
        raise UsageProblem(f"--precision {precision}: no installed runtime offers it on this CPU",
                           ["pip install 'ptmcli[openvino]', or use --precision fp32"])
    return found


def pick(timings: dict[str, Timing], options: list[Candidate], inputs: float) -> Candidate:
    """The candidate with the least predicted time for `inputs` units of work (ties: the first listed)."""
    return min(options, key=lambda c: timings[c.name].predicted(inputs))


# First contact: exporting and timing the other runtimes costs about half a minute for a large
# model on two cores (ResNet101: 25 s, the generator: 15 s), and they then run a job a quarter to
# a third faster than torch (benchmarks/README.md), so a job repays it from a few hundred images.
# A smaller job, with nothing measured yet, runs at once on torch (or on what was measured before);
# a job of at least this much work, `ptm runtimes --measure`, or int8 (whose gate needs the numbers)
# exports and times them. Work: images for classifiers, megapixels after resizing for generators.
MEASURE_FROM = {"classify": 256.0, "translate": 16.0}
UNITS = {"classify": "img/s", "translate": "Mpx/s"}


def without_measuring(timings: dict[str, Timing], options: list[Candidate], work: float) -> Candidate:
    """For a small job: the best of what was measured, else torch (nothing to export or time)."""
    usable = [c for c in options if c.name in timings and not timings[c.name].refused]
    if usable:
        return pick(timings, usable, work)
    return next((c for c in options if c.runtime == "torch"), options[0])


def torch_import_seconds() -> float:
    """How long a fresh interpreter takes to import torch and torchvision (part of torch's load)."""
    import subprocess
    import sys

    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, torchvision"], check=False, capture_output=True)
    return time.perf_counter() - start


def decide(
    spec: "ModelSpec",
    weights_sha256: str,
    runtime: str,
    precision: str,
    compile: bool,
    inputs: float,
    measure_candidate: Callable[[Candidate], Timing],
    note: Callable[[str], None],
    fresh: bool = False,
) -> Candidate:
    """The runtime to run with; measures (and so builds) what this machine has not timed yet, or
    everything when `fresh`."""
    options = candidates(runtime, precision, compile)
    needs_gate = precision == "int8"
    if len(options) == 1 and not needs_gate and not fresh:
        return options[0]
    fp32 = candidates("auto", "fp32", False) if needs_gate else []
    timings = read_timings(spec.name, weights_sha256)
    for candidate in options if fresh else ():
        timings.pop(candidate.name, None)
    missing = [c for c in dict.fromkeys([*options, *fp32]) if c.name not in timings]
    if missing and not needs_gate and inputs < MEASURE_FROM.get(spec.task, 0.0):
        return without_measuring(timings, options, inputs)
    if missing:
        _measure(spec, precision, missing, timings, measure_candidate, note,
                 strict=runtime != "auto" and not needs_gate, quiet=set(options) if needs_gate else set())
        write_timings(spec.name, weights_sha256, timings)
    chosen = pick(timings, options, inputs)
    if needs_gate:
        _int8_gate(spec, chosen, fp32, timings)
    return chosen


def _measure(spec: "ModelSpec", precision: str, missing: list[Candidate], timings: dict[str, Timing],
             measure_candidate: Callable[[Candidate], Timing], note: Callable[[str], None],
             strict: bool, quiet: set[Candidate]) -> None:
    """Time every `missing` candidate into `timings`; one that cannot export is recorded as refused
    (raised when `strict`; said in a note unless it is in `quiet`)."""
    note(f"first run of {spec.name} {precision} on this machine: exporting and timing "
         f"{', '.join(dict.fromkeys(c.runtime for c in missing))} to pick the fastest (once; this takes a while)")
    for candidate in missing:
        try:
            timing = measure_candidate(candidate)
        except ExportFailed as exc:
            if strict:
                raise
            if candidate not in quiet:  # else the int8 refusal says it
                note(f"{candidate.runtime} {candidate.precision} cannot run {spec.name}: {exc.message}")
            timing = Timing(0.0, 0.0, exc.message)
        if candidate.runtime == "torch":
            timing = Timing(timing.img_s, timing.load_s + torch_import_seconds())
        timings[candidate.name] = timing
    unit = UNITS.get(spec.task, "img/s")
    note("measured on this CPU: " + "; ".join(
        f"{name}: {t.img_s:.2f} {unit}, {t.load_s:.1f} s to load" for name, t in timings.items() if not t.refused))


def _int8_gate(spec: "ModelSpec", chosen: Candidate, fp32: list[Candidate], timings: dict[str, Timing]) -> None:
    """int8 only where it exported (and kept the picture or the classes) and is faster than fp32."""
    if timings[chosen.name].refused:
        raise UsageProblem(f"--precision int8 is not offered for {spec.name} on this machine: "
                           f"{timings[chosen.name].refused}", ["use --precision fp32 (the default) or bf16"])
    unit = UNITS.get(spec.task, "img/s")
    best_fp32 = max(fp32, key=lambda c: timings[c.name].img_s)
    if timings[chosen.name].img_s <= timings[best_fp32.name].img_s:
        raise UsageProblem(
            f"--precision int8 would not be faster on this CPU: {chosen.name} runs "
            f"{timings[chosen.name].img_s:.1f} {unit}, {best_fp32.name} {timings[best_fp32.name].img_s:.1f} {unit} "
            f"({cpu_features().summary()})",
            ["use --precision fp32 (the default) on this machine"])
