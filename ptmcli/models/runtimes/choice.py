"""`--runtime auto`: the runtime this machine measured fastest for this run.

Which runtime is fastest depends on the CPU (AVX2, AVX-512, VNNI, AMX) as much as on the model,
and no fixed table is right for every CPU ptm lands on. So the first run of a model at a precision
on a machine exports it for every installed runtime that offers that precision and measures each:
how long it takes to load (torch's import included) and how many images per second it computes
on a batch of 16 (model only, best of two after a warm-up). The numbers are recorded next to the
exported files; every later run reads them and picks the runtime with the least predicted time
for its inputs, `load + inputs / (images per second)`: a one-photo run takes the quickest to
start, a long run the fastest per image. The count is that of the whole input list (before
--shard and --resume), so every part of one job uses the same runtime and computes the same
numbers. A record made on another CPU (a shared home folder) or with other runtime versions is
measured again.

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
    img_s: float  # 0 when the runtime cannot run the model
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
              "timings": {k: {"img_s": round(v.img_s, 2), "load_s": round(v.load_s, 3),
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


def check_cpu_precision(runtime: str, precision: str) -> None:
    """Refuse what this CPU cannot do natively (it would be slower than fp32, or crash)."""
    cpu = cpu_features()
    if precision == "fp16":
        raise UsageProblem("--precision fp16 runs on GPUs only; on a CPU, half precision is bf16",
                           ["use --precision bf16 (if the CPU supports it) or fp32"])
    if precision not in CPU_PRECISIONS.get(runtime, ()):
        offered = ", ".join(CPU_PRECISIONS[runtime])
        raise UsageProblem(f"--runtime {runtime} offers {offered} on a CPU, not {precision}",
                           [f"use --precision {CPU_PRECISIONS[runtime][0]}, or --runtime auto"])
    if precision == "bf16" and runtime != "torch" and not cpu.bf16:
        raise UsageProblem(
            "--precision bf16: this CPU has no bfloat16 instructions (AVX512-BF16 or AMX); it would run "
            "slower than fp32", ["use --precision fp32 on this machine"])
    if precision == "int8" and not cpu.has("avx2"):
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
    if precision == "fp16":
        check_cpu_precision("torch", precision)
    found = [Candidate(r, precision) for r in _ORDER if installed(r) and precision in CPU_PRECISIONS[r]]
    if precision == "bf16":
        # torch checks its own bf16 support when it loads; the exported runtimes need the CPU's.
        found = [c for c in found if c.runtime == "torch" or cpu_features().bf16]
    if precision == "int8":
        if not found:
            raise UsageProblem("--precision int8 runs in OpenVINO, which is not installed",
                               [INSTALL_HINTS["openvino"] + ", or use --precision fp32"])
        check_cpu_precision(found[0].runtime, precision)
    if not found:
        raise UsageProblem(f"--precision {precision}: no installed runtime offers it on this CPU",
                           ["pip install 'ptmcli[openvino]', or use --precision fp32"])
    return found


def pick(timings: dict[str, Timing], options: list[Candidate], inputs: int) -> Candidate:
    """The candidate with the least predicted time for `inputs` images (ties: the first listed)."""
    return min(options, key=lambda c: timings[c.name].predicted(inputs))


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
    inputs: int,
    measure_candidate: Callable[[Candidate], Timing],
    note: Callable[[str], None],
) -> Candidate:
    """The runtime to run with; measures (and so builds) what this machine has not timed yet."""
    options = candidates(runtime, precision, compile)
    needs_gate = precision == "int8"
    if len(options) == 1 and not needs_gate:
        return options[0]
    fp32 = candidates("auto", "fp32", False) if needs_gate else []
    timings = read_timings(spec.name, weights_sha256)
    missing = [c for c in dict.fromkeys([*options, *fp32]) if c.name not in timings]
    if missing:
        note(f"first run of {spec.name} {precision} on this machine: exporting and timing "
             f"{', '.join(dict.fromkeys(c.runtime for c in missing))} to pick the fastest (once; this takes a while)")
        for candidate in missing:
            try:
                timing = measure_candidate(candidate)
            except ExportFailed as exc:
                if runtime != "auto" and not needs_gate:
                    raise
                if candidate not in options or not needs_gate:  # else the refusal below says it
                    note(f"{candidate.runtime} {candidate.precision} cannot run {spec.name}: {exc.message}")
                timing = Timing(0.0, 0.0, exc.message)
            if candidate.runtime == "torch":
                timing = Timing(timing.img_s, timing.load_s + torch_import_seconds())
            timings[candidate.name] = timing
        write_timings(spec.name, weights_sha256, timings)
        note("measured on this CPU: " + "; ".join(
            f"{name}: {t.img_s:.1f} img/s, {t.load_s:.1f} s to load" for name, t in timings.items() if not t.refused))
    chosen = pick(timings, options, inputs)
    if needs_gate and timings[chosen.name].refused:
        raise UsageProblem(f"--precision int8 is not offered for {spec.name} on this machine: "
                           f"{timings[chosen.name].refused}", ["use --precision fp32 (the default) or bf16"])
    if needs_gate:
        best_fp32 = max(fp32, key=lambda c: timings[c.name].img_s)
        if timings[chosen.name].img_s <= timings[best_fp32.name].img_s:
            raise UsageProblem(
                f"--precision int8 would not be faster on this CPU: {chosen.name} runs "
                f"{timings[chosen.name].img_s:.1f} img/s, {best_fp32.name} {timings[best_fp32.name].img_s:.1f} img/s "
                f"({cpu_features().summary()})",
                ["use --precision fp32 (the default) on this machine"])
    return chosen
