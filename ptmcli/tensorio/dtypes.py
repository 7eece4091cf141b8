"""Dtype names across PyTorch, NumPy and HDF5, and the carriers HDF5 needs for PyTorch's own types."""

from __future__ import annotations

# HDF5 has no type for these PyTorch dtypes: export-hdf5 stores them in a wider type that holds
# every value exactly, with attribute torch_dtype, and reading casts back. Nothing else is cast.
CARRIER_DTYPES = {
    "bfloat16": "float32",
    "float8_e4m3fn": "float32",
    "float8_e5m2": "float32",
    "float8_e4m3fnuz": "float32",
    "float8_e5m2fnuz": "float32",
    "complex32": "complex64",
}


def torch_dtype_name(dtype) -> str:
    """torch.float32 -> "float32": the name summaries, JSON and HDF5 attributes use."""
    return str(dtype).removeprefix("torch.")


def numpy_torch_dtype(np_dtype):
    """The torch dtype for a NumPy dtype in native byte order, or None (strings, objects...)."""
    import numpy as np
    import torch

    table = {
        np.dtype(np.bool_): torch.bool, np.dtype(np.uint8): torch.uint8, np.dtype(np.int8): torch.int8,
        np.dtype(np.int16): torch.int16, np.dtype(np.int32): torch.int32, np.dtype(np.int64): torch.int64,
        np.dtype(np.uint16): torch.uint16, np.dtype(np.uint32): torch.uint32, np.dtype(np.uint64): torch.uint64,
        np.dtype(np.float16): torch.float16, np.dtype(np.float32): torch.float32,
        np.dtype(np.float64): torch.float64, np.dtype(np.complex64): torch.complex64,
        np.dtype(np.complex128): torch.complex128,
    }
    return table.get(np.dtype(np_dtype).newbyteorder("="))


def h5_dtype_name(dtype) -> str:
    """An HDF5 dataset's NumPy dtype for people: strings, variable-length and compound types named."""
    import h5py

    info = h5py.check_string_dtype(dtype)
    if info is not None:
        return "string" if info.length is None else f"string[{info.length}]"
    if h5py.check_vlen_dtype(dtype) is not None:
        return f"vlen {h5py.check_vlen_dtype(dtype)}"
    if dtype.names:
        return "compound {" + ", ".join(f"{n}: {h5_dtype_name(dtype.fields[n][0])}" for n in dtype.names) + "}"
    return str(dtype)
