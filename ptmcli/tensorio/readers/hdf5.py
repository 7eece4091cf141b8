"""HDF5: groups and datasets through h5py, read only as far as asked.

Lookups go to the file (a large file is never walked to answer one key); datasets are sliced,
never read whole, and views of them gather only the bounding box of their elements. External
links are listed with their target and never followed. The `torch_dtype` attribute that
export-hdf5 writes is believed only for the documented carriers (bfloat16 stored as float32...).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

from ptmcli.errors import InputError, UsageProblem
from ptmcli.sinks.hdf5_child import out_of_memory, read_in_child
from ptmcli.sinks.hdf5_text import check_attribute_types, check_datatype, check_text_heaps
from ptmcli.sinks.resultrows import Damaged
from ptmcli.tensorio.boundary import reason
from ptmcli.tensorio.dtypes import CARRIER_DTYPES, h5_dtype_name, numpy_torch_dtype, torch_dtype_name
from ptmcli.tensorio.items import MAX_NESTING, Container, Item, LinkItem, TensorFile, close_names
from ptmcli.tensorio.values import plain

# HDF5 dimension-scale bookkeeping: shown as dimension names, not as attributes.
SCALE_ATTRS = {"DIMENSION_LIST", "REFERENCE_LIST", "DIMENSION_LABELS", "CLASS", "NAME"}
_MAX_ATTRS = 64
_MAX_HINT_NAMES = 2000


class HDF5File(TensorFile):
    """An open HDF5 file: `select` looks entries up in the file instead of a list made on opening."""

    def __init__(self, path: str, fmt: str, handle):
        # The root's attributes are read by select (TensorFile.attrs is for files listed on opening).
        super().__init__(path, fmt, sep="/", closers=[handle.close])
        self.h5file = handle

    def select(self, key: str | None) -> Item | LinkItem | Container:
        """`key`'s entry (the root's: the whole file), after a child did the same reads first:
        HDF5 crashes or takes gigabytes on some crafted bytes (sinks/hdf5_child.py). Values are
        read later, in this process only: a dataset's type and shape are checked by then."""
        import torch  # noqa: F401 - a dataset's dtype needs it: imported once, before the fork

        _in_child(self.path, lambda where: _selected(where, self.format, key))
        return self._select(key)

    def _select(self, key: str | None) -> Item | LinkItem | Container:
        import h5py

        root = self.h5file
        path = "/" if key is None or key.strip("/") == "" else "/" + key.strip("/")
        if path == "/":
            obj = root
        else:
            try:
                link = root.get(path, getlink=True)
            except (KeyError, ValueError, OSError, RuntimeError):
                link = None
            if link is None:
                names = _names(root, limit=_MAX_HINT_NAMES)
                raise UsageProblem(f"{self.path}: no dataset or group {path!r}", close_names(path.strip("/"), names))
            if isinstance(link, h5py.ExternalLink):
                raise UsageProblem(f"{self.path}: {path!r} is an external link to {link.filename}:{link.path}; "
                                   "ptm does not follow links to other files", ["inspect that file directly"])
            obj = root.get(path)
            if obj is None:
                raise UsageProblem(f"{self.path}: {path!r} is a dangling link")
        if isinstance(obj, h5py.Dataset):
            return dataset_item(path.strip("/"), obj)
        if not isinstance(obj, h5py.Group):
            raise UsageProblem(f"{self.path}: {path!r} is a {type(obj).__name__}, not a dataset or group")
        items: list = []
        _walk(obj, "", items, depth=0, on_path=set())
        return Container(path.strip("/") or None, items, attrs_of(obj.attrs))


_HEAP_SCAN_BYTES = 1 << 30


def open_hdf5(path: str, fmt: str) -> HDF5File:
    import h5py

    try:
        # HDF5 loops forever, silently, on some damaged text heaps when an attribute is read:
        # refuse those before h5py sees the file (the check results files pass). It reads the
        # whole file, so files past _HEAP_SCAN_BYTES are left to HDF5: inspect-tensor reads only
        # what it shows, and a scan of a large dataset file would cost more than the rest.
        if Path(path).stat().st_size <= _HEAP_SCAN_BYTES:
            check_text_heaps(Path(path))
    except Damaged as exc:
        raise InputError(f"{path}: cannot read this HDF5 file: it is damaged ({exc})") from None
    _in_child(path, _opened)  # opening decodes the superblock and the root's header
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: an HDF5 signature, but the file cannot be opened ({reason(exc)})") from None
    return HDF5File(path, fmt, handle)


def _in_child(path: str, reads) -> None:
    try:
        read_in_child(Path(path), reads)
    except Damaged as exc:
        raise InputError(f"{path}: cannot read this HDF5 file: it is damaged ({exc})") from None


def _opened(path: Path) -> None:
    import h5py

    h5py.File(path, "r").close()


def _selected(path: Path, fmt: str, key: str | None) -> None:
    import h5py

    with h5py.File(path, "r") as handle:
        HDF5File(str(path), fmt, handle)._select(key)


def _names(root, limit: int) -> list[str]:
    names: list[str] = []

    def visit(name):
        names.append(name)
        return True if len(names) >= limit else None

    try:
        root.visit(visit)
    except Exception:  # noqa: BLE001 - hints only
        pass
    return names


def _walk(group, prefix: str, out: list, depth: int, on_path: set) -> None:
    """Every dataset under `group`, hard links included (h5py's visit shows each object once)."""
    import h5py

    if depth > MAX_NESTING:
        return
    address = h5py.h5o.get_info(group.id).addr
    if address in on_path:
        return  # a link back up the tree
    on_path = on_path | {address}
    for name in group:
        full = f"{prefix}/{name}" if prefix else name
        try:
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                out.append(LinkItem(full, f"{link.filename}:{link.path}"))
                continue
            obj = group.get(name)
        except (KeyError, OSError, RuntimeError, ValueError) as exc:
            if out_of_memory(exc):
                raise
            out.append(Item(full, shape=(), dtype="?", element_size=0, unreadable=f"cannot open ({reason(exc)})"))
            continue
        if obj is None:
            target = getattr(link, "path", "?")
            out.append(LinkItem(full, f"dangling link to {target}"))
        elif isinstance(obj, h5py.Dataset):
            out.append(dataset_item(full, obj))
        elif isinstance(obj, h5py.Group):
            _walk(obj, full, out, depth + 1, on_path)


def attrs_of(attrs) -> dict:
    """An object's attributes as plain values (at most 64, each shortened)."""
    out = {}
    try:
        keys = list(attrs.keys())[:_MAX_ATTRS]
    except Exception as exc:  # a damaged attribute table: no attributes to show
        if out_of_memory(exc):
            raise
        return out
    for key in keys:
        if key in SCALE_ATTRS:
            continue
        try:
            check_datatype(attrs.get_id(key).get_type(), "it")
            out[key] = plain(attrs[key])
        except Damaged as exc:
            out[key] = f"<unreadable: {exc}>"
        except Exception as exc:  # an attribute of an odd type
            if out_of_memory(exc):
                raise  # a length the file claims, not an odd type (sinks/hdf5_child.py)
            out[key] = f"<unreadable: {type(exc).__name__}>"
    return out


def dataset_item(name: str, dset) -> Item:
    import h5py

    stored = dset.dtype
    torch_dtype = None
    try:
        torch_dtype = numpy_torch_dtype(stored)
    except TypeError:
        torch_dtype = None
    attrs = attrs_of(dset.attrs)
    declared = attrs.get("torch_dtype")
    layout: dict = {}
    if torch_dtype is not None and CARRIER_DTYPES.get(declared) == torch_dtype_name(torch_dtype):
        # Only the documented carriers are cast back; any other claim is ignored, never trusted.
        import torch

        layout["stored as"] = torch_dtype_name(torch_dtype)
        torch_dtype = getattr(torch, declared)
        attrs.pop("torch_dtype")
    elif torch_dtype is not None and declared == torch_dtype_name(torch_dtype):
        attrs.pop("torch_dtype")  # says what the dtype line already says
    element_size = stored.itemsize
    if torch_dtype is not None:
        element_size = torch_dtype.itemsize
        dtype_name = torch_dtype_name(torch_dtype)
    else:
        dtype_name = h5_dtype_name(stored)
    layout["layout"] = _layout(dset)
    if dset.chunks:
        layout["chunks"] = tuple(dset.chunks)
    if dset.compression:
        layout["compression"] = dset.compression
        if dset.compression_opts is not None:
            layout["compression level"] = dset.compression_opts
    if dset.shuffle:
        layout["shuffle"] = True
    if dset.maxshape and dset.maxshape != dset.shape:
        layout["maxshape"] = tuple(dset.maxshape)
    if stored.byteorder == ">":
        layout["byte order"] = "big-endian on disk"
    shape = dset.shape if dset.shape is not None else ()
    names = _dimension_names(dset, shape)
    try:
        address = h5py.h5o.get_info(dset.id).addr
    except Exception:  # noqa: BLE001 - no address: the dataset just shares storage with nothing
        address = id(dset)
    item = Item(name, shape=shape, dtype=dtype_name, element_size=element_size, torch_dtype=torch_dtype,
                names=names, layout=layout, attrs=attrs,
                storage_id=("hdf5", address), storage_span=(0, math.prod(shape) * element_size), data=dset,
                read_block=read_block, gather=gather)
    try:
        check_datatype(dset.id.get_type(), "it")
    except Damaged as exc:
        item.unreadable = str(exc)
    if dset.shape is None:
        item.unreadable = "an empty (null) dataspace"
        item.null_dataspace = True
    return item


def _dimension_names(dset, shape: tuple) -> tuple | None:
    try:
        check_attribute_types(dset)  # the labels are an attribute, read inside HDF5's own library
        labels = [dim.label for dim in dset.dims] if len(shape) else []
    except Exception as exc:  # odd dimension scales are not worth failing over
        if out_of_memory(exc):
            raise
        return None
    return tuple(label or None for label in labels) if any(labels) else None


def _layout(dset) -> str:
    import h5py

    try:
        code = dset.id.get_create_plist().get_layout()
    except Exception:  # noqa: BLE001 - guess from what h5py says instead
        return "chunked" if dset.chunks else "contiguous"
    return {h5py.h5d.COMPACT: "compact", h5py.h5d.CONTIGUOUS: "contiguous", h5py.h5d.CHUNKED: "chunked",
            getattr(h5py.h5d, "VIRTUAL", -1): "virtual"}.get(code, str(code))


def _to_torch(array, torch_dtype):
    """An array read from HDF5 -> tensor in the dtype the file declares (bfloat16 from float32...)."""
    import numpy as np
    import torch

    if torch_dtype is None:
        return array  # strings, compounds: NumPy keeps them
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    # np.require keeps 0-d arrays 0-d (ascontiguousarray would make them 1-d).
    tensor = torch.from_numpy(np.require(array, requirements="C"))
    if tensor.dtype == torch_dtype:
        return tensor
    if torch_dtype == torch.bfloat16 and tensor.dtype == torch.float32:
        bits = tensor.view(torch.int32)
        if not bool((bits & 0xFFFF).any()):
            # The float32 holds a bfloat16 exactly: take its upper half, bit for bit (a cast
            # would make every NaN the same positive NaN).
            return (bits >> 16).to(torch.int16).view(torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # complex32 is "experimental" and says so on every use
        return tensor.to(torch_dtype)


def read_block(dset, index: tuple, torch_dtype):
    """dset[index] as a tensor of the declared dtype; empty slices never touch the file."""
    import numpy as np

    if dset.shape == () or not index:
        array = np.asarray(dset[()])
    elif any(isinstance(i, slice) and i.start == i.stop for i in index) or 0 in dset.shape:
        array = np.empty(_index_shape(dset.shape, index), dtype=dset.dtype)
    else:
        array = np.asarray(dset[index])
    return _to_torch(array, torch_dtype)


def _index_shape(shape, index) -> tuple[int, ...]:
    out = []
    for size, i in zip(shape, index):
        if isinstance(i, slice):
            out.append(len(range(*i.indices(size))))
    out.extend(shape[len(index):])
    return tuple(out)


def gather(dset, flat, torch_dtype):
    """Elements at row-major positions `flat` (any shape), reading only their bounding box."""
    import numpy as np

    shape = dset.shape
    if flat.size == 0:
        return _to_torch(np.empty(flat.shape, dtype=dset.dtype), torch_dtype)
    if not shape:
        return _to_torch(np.full(flat.shape, dset[()], dtype=dset.dtype), torch_dtype)
    coords = np.unravel_index(flat.reshape(-1), shape)
    box = tuple(slice(int(c.min()), int(c.max()) + 1) for c in coords)
    block = np.asarray(dset[box])
    values = block[tuple(c - b.start for c, b in zip(coords, box))]
    return _to_torch(values.reshape(flat.shape), torch_dtype)
