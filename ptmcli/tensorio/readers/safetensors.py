"""safetensors: a length, a JSON header, raw bytes. The header is checked before any data is read.

A header is hostile like the rest of the file: its length is bounded and checked against the file
size, and every tensor's byte range must lie inside the data section and match its shape and
dtype. Tensors are memory-mapped slices of the file. The safetensors package is not needed.
"""

from __future__ import annotations

import math
import os
import warnings

from ptmcli.errors import InputError
from ptmcli.tensorio.items import Item, TensorFile

SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024

_DTYPES = {
    "F64": ("float64", 8), "F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("bfloat16", 2),
    "I64": ("int64", 8), "I32": ("int32", 4), "I16": ("int16", 2), "I8": ("int8", 1),
    "U64": ("uint64", 8), "U32": ("uint32", 4), "U16": ("uint16", 2), "U8": ("uint8", 1),
    "BOOL": ("bool", 1), "F8_E4M3": ("float8_e4m3fn", 1), "F8_E5M2": ("float8_e5m2", 1),
    "C64": ("complex64", 8),
}


def read_safetensors_header(path: str) -> tuple[dict, int]:
    """Parse and check the JSON header: (entries, where the data starts). Lies are errors."""
    import json
    import struct

    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise InputError(f"{path}: truncated safetensors file")
        (length,) = struct.unpack("<Q", prefix)
        if length > size - 8:
            raise InputError(f"{path}: damaged safetensors file: the header claims {length:,} bytes, "
                             f"the file has {size - 8:,} after the length")
        if length > SAFETENSORS_MAX_HEADER:
            raise InputError(f"{path}: refused: a safetensors header of {length:,} bytes (limit "
                             f"{SAFETENSORS_MAX_HEADER:,})")
        raw = fh.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: damaged safetensors header (not JSON: {exc})") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: damaged safetensors header (not a JSON object)")
    data_start = 8 + length
    data_size = size - data_start
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype_name, itemsize = _DTYPES[entry["dtype"]]
            shape = [int(s) for s in entry["shape"]]
            begin, end = (int(v) for v in entry["data_offsets"])
        except KeyError as exc:
            raise InputError(f"{path}: damaged safetensors header: {name!r} lacks {exc} or has an unknown "
                             "dtype") from None
        except (TypeError, ValueError):
            raise InputError(f"{path}: damaged safetensors header: {name!r} has malformed fields") from None
        if any(s < 0 for s in shape):
            raise InputError(f"{path}: damaged safetensors header: {name!r} has a negative size")
        if not 0 <= begin <= end <= data_size:
            raise InputError(f"{path}: damaged safetensors file: {name!r} claims bytes {begin}..{end}, "
                             f"the data section has {data_size:,}")
        if end - begin != math.prod(shape) * itemsize:
            raise InputError(f"{path}: damaged safetensors header: {name!r} is {shape} {entry['dtype']} "
                             f"but spans {end - begin} bytes")
    return header, data_start


def open_safetensors(path: str, fmt: str) -> TensorFile:
    import numpy as np
    import torch

    header, data_start = read_safetensors_header(path)
    metadata = header.pop("__metadata__", None) or {}
    items: dict[str, Item] = {}
    for name, entry in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        dtype_name, itemsize = _DTYPES[entry["dtype"]]
        shape = tuple(int(s) for s in entry["shape"])
        begin, end = (int(v) for v in entry["data_offsets"])
        torch_dtype = getattr(torch, dtype_name)

        def load(begin=begin, end=end, shape=shape, torch_dtype=torch_dtype):
            if end == begin:
                return torch.empty(shape, dtype=torch_dtype)
            raw = np.memmap(path, dtype=np.uint8, mode="r", offset=data_start + begin, shape=(end - begin,))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a read-only map: nothing here writes to it
                return torch.from_numpy(raw).view(torch_dtype).reshape(shape)

        # One storage for the whole file, so overlapping byte ranges show up as shared storage.
        items[name] = Item(name, shape=shape, dtype=dtype_name, element_size=itemsize, torch_dtype=torch_dtype,
                           storage_id=("safetensors", 0) if end > begin else None, storage_span=(begin, end),
                           loader=load)
    attrs = {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}
    return TensorFile(path, fmt, dict(sorted(items.items())), sep=".", attrs=attrs)
