"""--device and --precision: the one place "auto" becomes a device and a precision is refused
where this hardware lacks it. Every runtime, command and Ray actor asks here.

A device is settled to a plain string ("cpu", "cuda:0", "mps") so it can travel in a backend
choice; torch is imported only when a GPU may be there (asking /proc first costs nothing).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from ptmcli.errors import DeviceUnavailable, UsageProblem

if TYPE_CHECKING:
    import torch

DEVICE_HELP = "auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps"
PRECISION_HELP = ("fp32 (exact, default), bf16 (CPUs with AVX512-BF16/AMX, recent GPUs), fp16 (GPUs), "
                  "int8 (CPUs, where it is faster than fp32: post-training quantisation, calibrated on photos "
                  "that ship with ptm)")
PRECISIONS = ("fp32", "bf16", "fp16", "int8")


# Where a GPU shows itself without torch: the NVIDIA driver (its /proc entry, a /dev/nvidiaN node:
# a container may be given /dev/nvidia3 alone), WSL2's paravirtual GPU (/dev/dxg, no /proc entry)
# and ROCm's kernel driver (/dev/kfd; ROCm builds of torch answer as torch.cuda). Tests point
# ROOT at a folder that simulates a machine.
ROOT = Path("/")


def gpu_present() -> bool:
    """Whether this machine may have a GPU torch can use, asked without importing torch (seconds)."""
    try:
        gpus = ROOT / "proc/driver/nvidia/gpus"
        if gpus.is_dir() and any(gpus.iterdir()):
            return True
        if (ROOT / "dev/dxg").exists() or (ROOT / "dev/kfd").exists():
            return True
        return any(re.fullmatch(r"nvidia\d+", entry.name) for entry in (ROOT / "dev").glob("nvidia*"))
    except OSError:
        return False


# Devices for forward passes when the work runs elsewhere (Ray): the cluster's GPUs are counted
# there, and each actor is given one as "cuda" (its capability is checked where it runs).
ELSEWHERE_GPU = "cuda"


def settle_device(name: str, *, cpu_work: bool = False, gpus: int | None = None) -> str:
    """--device -> "cpu", "cuda:N" or "mps"; refuses a device this machine does not have.

    `cpu_work`: the runtime or precision asked for runs on the CPU only (the exported runtimes,
    int8), so "auto" means the CPU even where a GPU is. `gpus`: the work runs elsewhere (Ray)
    on hardware with this many GPUs; the result is then "cpu" or "cuda", and torch is not asked.
    """
    name = name.strip().lower()
    if name not in ("auto", "cpu", "mps") and not re.fullmatch(r"cuda(:\d+)?", name):
        raise UsageProblem(f"--device {name!r} is not a device", [f"use {DEVICE_HELP}"])
    if name == "cpu" or (name == "auto" and cpu_work):
        return "cpu"
    if gpus is not None:
        return _settle_elsewhere(name, gpus)
    if name == "auto" and not gpu_present():
        return "cpu"
    import torch

    if name == "auto":
        return f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DeviceUnavailable("--device mps: Apple's MPS backend is not available here", ["use --device cpu"])
        return "mps"
    if not torch.cuda.is_available():
        raise DeviceUnavailable(
            f"--device {name}: CUDA is not available on this machine",
            ["use --device cpu (or auto), or install a CUDA build of PyTorch on a machine with an NVIDIA GPU"],
        )
    index = int(name.split(":")[1]) if ":" in name else 0
    if index >= torch.cuda.device_count():
        raise DeviceUnavailable(
            f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)",
            [f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}"],
        )
    return f"cuda:{index}"


def _settle_elsewhere(name: str, gpus: int) -> str:
    """--device for work on Ray: the actors' hardware, not this machine's."""
    if name == "auto":
        return ELSEWHERE_GPU if gpus else "cpu"
    if name == "mps":
        raise UsageProblem("--device mps: Ray actors run on CUDA or CPU nodes", ["use --device cpu, cuda or auto"])
    if not gpus:
        raise DeviceUnavailable(f"--device {name}: the Ray cluster has no GPUs",
                                ["use --device cpu, or add GPU nodes to the cluster"])
    # Ray gives each actor its own GPU, which it sees as cuda:0 (CUDA_VISIBLE_DEVICES).
    return ELSEWHERE_GPU


def decode_workers(device: str) -> int:
    """Decode threads for a backend computing on `device`: on a CPU the model needs every core
    (one thread decodes ahead); a GPU waits for pictures, so it gets up to 8 threads (Pillow
    releases the GIL while decoding and resizing)."""
    import os

    if device.split(":")[0] == "cpu":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 2
    return max(1, min(8, cores - 1))


def check_precision(precision: str, device: str) -> None:
    """Refuse a precision the settled `device` cannot run natively (it would crash or crawl)."""
    kind = device.split(":")[0]
    if precision not in PRECISIONS:
        raise UsageProblem(f"--precision {precision!r} is not a precision", [f"use {PRECISION_HELP}"])
    if precision == "fp16" and kind == "cpu":
        raise UsageProblem("--precision fp16 runs on GPUs only; on a CPU, half precision is bf16",
                           ["use --precision bf16 (if the CPU supports it) or fp32"])
    if precision == "int8" and kind != "cpu":
        raise UsageProblem("--precision int8 runs on the CPU", ["use --device cpu, or --precision fp16/bf16"])
    if precision == "bf16" and kind == "cpu" and not _cpu_has_bf16():
        raise UsageProblem("--precision bf16: this CPU has no bfloat16 instructions (AVX512-BF16 or AMX); "
                           "it would run slower than fp32", ["use --precision fp32 on this machine"])
    if precision == "bf16" and kind == "cuda" and ":" in device:
        # ("cuda" without an index runs elsewhere, on a Ray actor's GPU: checked there.)
        import torch

        # Emulated bf16 (before compute capability 8.0) is slower than fp32: refuse it for this GPU.
        if torch.cuda.get_device_capability(device) < (8, 0):
            raise UsageProblem(f"--precision bf16: {device} has no native bfloat16 (compute capability < 8.0)",
                               ["use --precision fp16"])


def _cpu_has_bf16() -> bool:
    from ptmcli.models.runtimes.cpu import cpu_features

    cpu = cpu_features()
    if cpu.flags:
        return cpu.bf16
    import torch  # no /proc/cpuinfo (not Linux): ask oneDNN

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def torch_dtype(precision: str) -> "torch.dtype":
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def fp32_stays_fp32(device: "torch.device") -> None:
    """Called where a model is built: PyTorch lets cuDNN convolutions and matmuls use TF32 (10-bit
    mantissa) by default; fp32 here means fp32, so results match the CPU's."""
    if device.type == "cuda":
        import torch

        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def resolve_device(name: str) -> "torch.device":
    import torch

    return torch.device(settle_device(name))


def resolve_precision(name: str, device: "torch.device") -> "torch.dtype":
    """--precision -> dtype for torch on `device`, refusing what this hardware lacks."""
    name = name.strip().lower()
    check_precision(name, str(device))
    if name == "int8":
        raise UsageProblem("--runtime torch offers fp32, bf16 on a CPU, not int8",
                           ["use --precision fp32, or --runtime auto"])
    if name == "fp32":
        fp32_stays_fp32(device)
    return torch_dtype(name)


def resolve_device_and_precision(device: str, precision: str) -> tuple["torch.device", "torch.dtype"]:
    torch_device = resolve_device(device)
    return torch_device, resolve_precision(precision, torch_device)
