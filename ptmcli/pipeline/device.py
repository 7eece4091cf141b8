"""--device and --precision -> a torch device and dtype, refusing what this machine lacks."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ptmcli.errors import DeviceUnavailable, UsageProblem

if TYPE_CHECKING:
    import torch

DEVICE_HELP = "auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps"


def resolve_device(name: str) -> "torch.device":
    import torch

    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if re.fullmatch(r"cuda(:\d+)?", name):
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
        return torch.device("cuda", index)
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DeviceUnavailable("--device mps: Apple's MPS backend is not available here", ["use --device cpu"])
        return torch.device("mps")
    raise UsageProblem(f"--device {name!r} is not a device", [f"use {DEVICE_HELP}"])


PRECISION_HELP = ("fp32 (exact, default), bf16 (CPUs with AVX512-BF16/AMX, recent GPUs), fp16 (GPUs), "
                  "int8 (CPUs, where it is faster than fp32: post-training quantisation, calibrated on photos "
                  "that ship with ptm)")


def resolve_precision(name: str, device: "torch.device") -> "torch.dtype":
    """--precision -> dtype, refusing combinations that would crash or crawl on this hardware."""
    import torch

    name = name.strip().lower()
    if name == "fp32":
        if device.type == "cuda":
            # PyTorch lets cuDNN convolutions use TF32 (10-bit mantissa) by default; fp32 here
            # means fp32, so results match the CPU's. bf16/fp16 are the fast choices.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        return torch.float32
    if name == "bf16":
        if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            raise UsageProblem(
                "--precision bf16: this CPU has no bfloat16 instructions (AVX512-BF16 or AMX); "
                "it would run slower than fp32",
                ["use --precision fp32 on this machine"],
            )
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise UsageProblem("--precision bf16: this GPU has no bfloat16 support", ["use --precision fp16"])
        return torch.bfloat16
    if name == "fp16":
        if device.type == "cpu":
            raise UsageProblem(
                "--precision fp16 runs on GPUs only; on a CPU, half precision is bf16",
                ["use --precision bf16 (if the CPU supports it) or fp32"],
            )
        return torch.float16
    raise UsageProblem(f"--precision {name!r} is not a precision", [f"use {PRECISION_HELP}"])


def resolve_device_and_precision(device: str, precision: str) -> tuple["torch.device", "torch.dtype"]:
    """--device and --precision together: the one place every command and Ray actor asks."""
    torch_device = resolve_device(device)
    return torch_device, resolve_precision(precision, torch_device)
