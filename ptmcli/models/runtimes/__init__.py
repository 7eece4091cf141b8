"""What computes a forward pass: PyTorch itself, or a runtime that runs an exported copy.

`torch` is the reference: it builds the network from the weights and is exact. `onnxruntime` and
`openvino` run the model exported once from it (models/runtimes/exports.py keeps those files),
with decoding and preprocessing in Pillow and NumPy, so a run that uses them never imports torch.
Which one `--runtime auto` picks is decided in choice.py.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

RUNTIMES = ("auto", "torch", "onnxruntime", "openvino")
EXPORTED = ("onnxruntime", "openvino")
# The backslash keeps Rich (Typer's help) from reading [openvino] as markup.
RUNTIME_HELP = ("auto (the fastest this machine measured, see README), torch (the reference), "
                "onnxruntime, openvino (pip install 'ptmcli\\[openvino]')")

# Which precisions each runtime offers on a CPU. torch's bf16 needs the CPU's bfloat16 units,
# fp16 a GPU; int8 is post-training static quantisation of the exported model.
CPU_PRECISIONS = {
    "torch": ("fp32", "bf16"),
    "onnxruntime": ("fp32",),
    "openvino": ("fp32", "bf16", "int8"),
}

# OpenVINO's precision hint for each ptm precision: fp32 MUST be asked for, since OpenVINO runs
# bf16 by default on CPUs with native bf16 (AVX512-BF16, AMX). int8 models carry their own int8
# layers; the rest of the graph stays fp32 (on AMX, a bf16 hint is no faster for them).
OPENVINO_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}

# The import name, then the distributions that provide it (onnxruntime-gpu provides onnxruntime).
_PACKAGES = {
    "torch": ("torch", ("torch",)),
    "onnxruntime": ("onnxruntime", ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino")),
    "openvino": ("openvino", ("openvino",)),
}
INSTALL_HINTS = {
    "onnxruntime": "pip install onnxruntime (it installs with ptm)",
    "openvino": "pip install 'ptmcli[openvino]'",
    "torch": "pip install torch",
}


def installed(runtime: str) -> bool:
    module, _ = _PACKAGES[runtime]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def version(runtime: str) -> str | None:
    """The installed version, read from package metadata (importing the runtime costs time)."""
    _, distributions = _PACKAGES[runtime]
    for distribution in distributions:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def label(runtime: str) -> str:
    """"openvino 2026.4.1": what result files and reports record."""
    return f"{runtime} {version(runtime) or '?'}"
