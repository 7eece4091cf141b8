"""One reader per tensor format behind one registry: format name -> opener.

`open_tensor_file` recognises the format (sniff.py) and calls its opener, which returns a
TensorFile of items (items.py). A new format is a module here, a line in READERS and its
signature in sniff.py. Whatever a hostile file does while it is sniffed and opened here, or read
while it is open (TensorFile.__exit__), becomes one InputError line (boundary.py).
"""

from __future__ import annotations

from typing import Callable

from ptmcli.tensorio.boundary import as_ptm_error
from ptmcli.tensorio.items import TensorFile
from ptmcli.tensorio.readers import hdf5 as hdf5_files
from ptmcli.tensorio.readers import numpy as numpy_files
from ptmcli.tensorio.readers import safetensors as safetensors_files
from ptmcli.tensorio.readers import torch as torch_files
from ptmcli.tensorio.sniff import detect_format

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
    """Open any tensor file ptm reads; use it as a context manager: it may hold the file open, and
    it turns whatever damage surfaces while it is open into ptm's error."""
    fmt = None
    try:
        fmt = detect_format(path)
        return READERS[fmt](path, fmt)
    except Exception as exc:
        raise as_ptm_error(path, fmt, exc) from exc
