"""One reader per tensor format behind one registry: format name -> opener.

`open_tensor_file` recognises the format (sniff.py) and calls its opener, which returns a
TensorFile of items (items.py). A new format is a module here, a line in READERS and its
signature in sniff.py. Whatever a hostile file does inside an opener becomes one InputError line.
"""

from __future__ import annotations

from typing import Callable

from ptmcli.errors import InputError, UsageProblem
from ptmcli.tensorio.items import TensorFile, reason
from ptmcli.tensorio.readers import hdf5 as hdf5_files
from ptmcli.tensorio.readers import numpy as numpy_files
from ptmcli.tensorio.readers import safetensors as safetensors_files
from ptmcli.tensorio.readers import torch as torch_files
from ptmcli.tensorio.sniff import FORMAT_LABELS, detect_format

# (path, format name) -> the opened file. Every name sniff.py can return has one.
READERS: dict[str, Callable[[str, str], TensorFile]] = {
    "torch": torch_files.open_torch,
    "torch-legacy": torch_files.open_torch,
    "npy": numpy_files.open_npy,
    "npz": numpy_files.open_npz,
    "safetensors": safetensors_files.open_safetensors,
    "hdf5": hdf5_files.open_hdf5,
}


def open_tensor_file(path: str) -> TensorFile:
    """Open any tensor file ptm reads; use it as a context manager (it may hold the file open)."""
    fmt = detect_format(path)
    try:
        return READERS[fmt](path, fmt)
    except (InputError, UsageProblem):
        raise
    except MemoryError:
        raise InputError(f"{path}: not enough memory to read this file") from None
    except Exception as exc:  # noqa: BLE001 - any damage in a hostile file is one line, not a traceback
        raise InputError(f"{path}: cannot read this {FORMAT_LABELS[fmt]} file ({reason(exc)})") from None
