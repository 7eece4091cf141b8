"""NumPy .npy and .npz: headers read by hand, data with allow_pickle=False.

A .npy is memory-mapped once its header's promise is checked against the file size. An .npz is a
zip of .npy members: each member's header is read on opening, so one refused or damaged member
is one unreadable entry and the others still list and read.
"""

from __future__ import annotations

import math
import os
import warnings
import zipfile

from ptmcli.errors import InputError
from ptmcli.tensorio.boundary import reason
from ptmcli.tensorio.dtypes import numpy_torch_dtype, torch_dtype_name
from ptmcli.tensorio.items import Item, TensorFile
from ptmcli.tensorio.views import contiguous_strides


def open_npy(path: str, fmt: str) -> TensorFile:
    import numpy as np

    with open(path, "rb") as fh:
        try:
            shape, fortran, dtype = read_npy_header(fh)
        except InputError as exc:
            raise InputError(f"{path}: {exc.message}") from None
        data_start = fh.tell()
    expected = math.prod(shape) * dtype.itemsize
    actual = os.path.getsize(path) - data_start
    if actual < expected:
        raise InputError(f"{path}: truncated .npy: the header promises {expected:,} bytes of data, "
                         f"the file has {actual:,}")

    def load():
        if expected == 0:
            return array_to_data(np.load(path, allow_pickle=False))
        return array_to_data(np.load(path, mmap_mode="r", allow_pickle=False))

    item = numpy_item("", shape=shape, dtype=dtype, fortran=fortran, loader=load)
    return TensorFile(path, fmt, {"": item})


def open_npz(path: str, fmt: str) -> TensorFile:
    import numpy as np

    archive = zipfile.ZipFile(path)
    npz = np.load(path, allow_pickle=False)
    items: dict[str, Item] = {}
    for member in archive.infolist():
        name = member.filename[:-4] if member.filename.endswith(".npy") else member.filename
        try:
            with archive.open(member) as fh:
                shape, fortran, dtype = read_npy_header(fh)
        except InputError as exc:
            items[name] = Item(name, shape=(), dtype="object", element_size=0, unreadable=exc.message)
            continue
        except Exception as exc:  # noqa: BLE001 - one damaged member is one unreadable row
            items[name] = Item(name, shape=(), dtype="?", element_size=0, unreadable=f"damaged ({reason(exc)})")
            continue

        def load(key=name):
            return array_to_data(npz[key])

        layout = {"compressed": member.compress_type != zipfile.ZIP_STORED}
        items[name] = numpy_item(name, shape=shape, dtype=dtype, fortran=fortran, loader=load, layout=layout)
    return TensorFile(path, fmt, items, sep="/", closers=[npz.close, archive.close])


def read_npy_header(fh):
    """(shape, Fortran order, dtype) from an open .npy; InputError (no file name) if refused."""
    import numpy as np

    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise InputError(f"unknown .npy version {version}")
    if dtype.hasobject:
        raise InputError("refused: an array of Python objects; reading it would unpickle them, "
                         "which can run code (ptm uses allow_pickle=False)")
    return tuple(shape), bool(fortran), dtype


def array_to_data(array):
    """A NumPy array -> torch tensor sharing its memory when torch has the dtype; else the array."""
    import numpy as np
    import torch

    if numpy_torch_dtype(array.dtype) is None:
        return array
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    with warnings.catch_warnings():
        # Memory-mapped arrays are read-only; nothing here writes to them.
        warnings.simplefilter("ignore")
        return torch.from_numpy(array) if array.size else torch.from_numpy(np.array(array))


def numpy_item(name: str, *, shape, dtype, fortran: bool, loader, layout=None) -> Item:
    torch_dtype = numpy_torch_dtype(dtype)
    shape = tuple(shape)
    stride = contiguous_strides(shape[::-1])[::-1] if fortran else contiguous_strides(shape)
    layout = dict(layout or {})
    if fortran and len(shape) > 1:
        layout["order"] = "Fortran (column-major)"
    if dtype.byteorder == ">":
        layout["byte order"] = "big-endian on disk"
    return Item(
        name,
        shape=shape,
        dtype=torch_dtype_name(torch_dtype) if torch_dtype is not None else str(dtype),
        element_size=dtype.itemsize,
        stride=stride,
        torch_dtype=torch_dtype,
        device=None,
        layout=layout,
        loader=loader,
        storage_id=None,
    )
