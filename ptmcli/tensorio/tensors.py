"""Tensor files -> summaries: what a tensor is underneath (chapter 3), for files on disk.

Reads PyTorch files (zip and legacy), NumPy .npy/.npz, safetensors and HDF5, recognised by their
first bytes. Every file is hostile until proven otherwise: torch files load with
`weights_only=True`, NumPy with `allow_pickle=False`, safetensors headers are checked against the
file size, and a pickle is never unpickled by anything that could run code.

Data is read only as far as asked: zip torch files and .npy are memory-mapped, HDF5 datasets are
sliced, and statistics walk a tensor in blocks of about a million elements.

Results are dataclasses of plain values (`TensorSummary`, `ContainerSummary`); rendering lives in
`render_tensors.py`. No torch, NumPy or h5py at import time.
"""

from __future__ import annotations

import math
import os
import re
import warnings
import zipfile
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Sequence

from ptmcli.errors import InputError, UsageProblem
from ptmcli.pipeline.inputs import unreadable
from ptmcli.tensorio.views import (
    Step,
    ViewMeta,
    ViewOp,
    apply_ops,
    contiguous_strides,
    is_contiguous,
)

# A block for statistics and copies: big enough to be fast, small enough to stay flat in memory.
BLOCK_ELEMENTS = 1 << 20
# Views of data that is not in memory (HDF5) are gathered element by element up to this size.
MAX_GATHER_ELEMENTS = 1 << 24
SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024
_MAX_NESTING = 64

FORMAT_LABELS = {
    "torch": "PyTorch (zip)",
    "torch-legacy": "PyTorch (legacy)",
    "npy": "NumPy .npy",
    "npz": "NumPy .npz",
    "safetensors": "safetensors",
    "hdf5": "HDF5",
}

# torch.save's legacy format starts with a pickled magic number: LONG1 0x1950a86a20f9469cfc6c.
_TORCH_LEGACY_MAGIC = bytes.fromhex("8a0a6cfc9c46f9206aa85019")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

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


# --- results ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stats:
    """Over all elements; min/max/mean/std over the finite ones (std with n-1, as torch.std)."""

    count: int
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    zeros: int = 0
    min: float | int | bool | None = None
    max: float | int | bool | None = None
    mean: float | None = None
    std: float | None = None


@dataclass(frozen=True)
class ViewStep:
    op: str  # "as stored", or the op as torch code: "[1:, 1:]", ".transpose(0, 1)", ...
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    storage_offset: int
    contiguous: bool
    copied: bool = False


@dataclass(frozen=True)
class TensorSummary:
    file: str
    format: str
    key: str | None
    shape: tuple[int, ...]
    dtype: str
    element_size: int
    numel: int
    nbytes: int
    stride: tuple[int, ...]
    storage_offset: int
    storage_size: int  # elements of this dtype in the storage the view looks at
    contiguous: bool
    names: tuple[str | None, ...] | None = None
    requires_grad: bool | None = None
    device: str | None = None
    layout: dict = field(default_factory=dict)  # how the file stores it (HDF5 chunks, byte order...)
    attrs: dict = field(default_factory=dict)
    shares_storage_with: tuple[str, ...] = ()
    stats: Stats | None = None
    preview: Any = None  # nested lists of the first elements along each dimension
    preview_shape: tuple[int, ...] | None = None
    views: tuple[ViewStep, ...] = ()
    note: str | None = None

    kind = "tensor"

    def to_dict(self) -> dict:
        d = {"kind": self.kind, **asdict(self)}
        return d


@dataclass(frozen=True)
class EntryRow:
    name: str
    kind: str  # "tensor" | "value" | "link" | "unreadable"
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    numel: int = 0
    nbytes: int = 0
    value: str | None = None  # repr of a non-tensor value, a link's target, or why it is unreadable
    storage_group: int | None = None


@dataclass(frozen=True)
class SharedStorage:
    group: int
    names: tuple[str, ...]
    storage_bytes: int
    same_view: bool  # every name is the very same view: tied weights
    tied: tuple[tuple[str, ...], ...] = ()  # names that are the same view, when some are


@dataclass(frozen=True)
class ContainerSummary:
    file: str
    format: str
    key: str | None
    entries: tuple[EntryRow, ...]
    tensors: int
    total_params: int
    total_bytes: int
    storage_bytes: int  # bytes of distinct storage: what shared views really take
    shared: tuple[SharedStorage, ...] = ()
    attrs: dict = field(default_factory=dict)

    kind = "container"

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}


# --- format recognition -------------------------------------------------------------------------

def detect_format(path: str) -> str:
    """The format from the first bytes (and a zip's member names); the extension never decides."""
    fmt = sniff_format(path)
    if fmt is None:
        with open(path, "rb") as fh:
            head = fh.read(8)
        if not head:
            raise InputError(f"{path}: empty file")
        raise InputError(
            f"{path}: not a tensor file ptm can read (PyTorch, NumPy .npy/.npz, safetensors or HDF5); "
            f"it starts with {head!r}"
        )
    return fmt


def sniff_format(path: str) -> str | None:
    """Like detect_format, but None for content that is no tensor format at all (an image, text).

    Files that look like a tensor format but are damaged or refused still raise InputError.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise unreadable(path, exc) from None
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(_HDF5_SIGNATURE) or _hdf5_with_userblock(path):
        return "hdf5"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _zip_kind(path)
    if head[:1] == b"\x80" and _TORCH_LEGACY_MAGIC in head[:32]:
        return "torch-legacy"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise InputError(_pickle_refusal(path))
    return None


def _hdf5_with_userblock(path: str) -> bool:
    # HDF5 may put its signature at 512, 1024, 2048, ... after a user block.
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            offset = 512
            while offset + 8 <= size and offset <= 1 << 20:
                fh.seek(offset)
                if fh.read(8) == _HDF5_SIGNATURE:
                    return True
                offset *= 2
    except OSError:
        return False
    return False


def _zip_kind(path: str) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: a zip archive (PyTorch or .npz) that is truncated or damaged ({exc})") from None
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "torch"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    if not names:
        return "npz"  # np.savez() with no arrays
    raise InputError(f"{path}: a zip archive, but neither a PyTorch file nor a NumPy .npz")


def _pickle_refusal(path: str) -> str:
    """Name what a bare pickle would import, without unpickling it (pickletools only reads opcodes)."""
    import pickletools

    imports: list[str] = []
    try:
        with open(path, "rb") as fh:
            data = fh.read(16 * 1024 * 1024)
        strings: list[str] = []
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("GLOBAL", "INST") and isinstance(arg, str):
                imports.append(arg.replace(" ", "."))
            elif opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings.append(arg)
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                imports.append(f"{strings[-2]}.{strings[-1]}")
            if opcode.name == "STOP":
                break
    except Exception:  # noqa: BLE001 - a broken pickle is refused all the same
        pass
    what = f"; unpickling it would import {', '.join(dict.fromkeys(imports))}" if imports else ""
    return (f"{path}: refused: a Python pickle, not a tensor file{what}. ptm never unpickles "
            "arbitrary objects, since that can run code")


# --- items: one tensor-like thing inside a file -------------------------------------------------

class Item:
    """Metadata of one entry plus a way to read it; `data` is loaded (or mapped) only when needed.

    `data` is a torch tensor, a NumPy array (dtypes torch lacks, e.g. strings), or an h5py Dataset.
    """

    kind = "tensor"

    def __init__(self, name: str, *, shape, dtype: str, element_size: int, stride=None, storage_offset: int = 0,
                 storage_size: int | None = None, torch_dtype=None, names=None, requires_grad=None,
                 device=None, layout=None, attrs=None, storage_id=None, storage_span=None,
                 loader: Callable[[], Any] | None = None, data: Any = None, unreadable: str | None = None):
        self.name = name
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype
        self.element_size = int(element_size)
        self.stride = tuple(stride) if stride is not None else contiguous_strides(self.shape)
        self.storage_offset = int(storage_offset)
        self.numel = math.prod(self.shape)
        self.storage_size = int(storage_size) if storage_size is not None else self.numel
        self.torch_dtype = torch_dtype
        self.names = tuple(names) if names is not None else None
        self.requires_grad = requires_grad
        self.device = device
        self.layout = dict(layout or {})
        self.attrs = dict(attrs or {})
        self.storage_id = storage_id
        self.storage_span = storage_span
        self._loader = loader
        self._data = data
        self.unreadable = unreadable
        self.null_dataspace = False  # HDF5's "no data at all": listed, never read

    @property
    def nbytes(self) -> int:
        return self.numel * self.element_size

    @property
    def meta(self) -> ViewMeta:
        return ViewMeta(self.shape, self.stride, self.storage_offset)

    @property
    def data(self):
        if self.unreadable:
            raise InputError(f"{self.name}: {self.unreadable}")
        if self._data is None and self._loader is not None:
            self._data = self._loader()
            self._loader = None
        return self._data

    def read(self, index: tuple) -> Any:
        """Elements at a basic index (ints and slices), as a torch tensor or a NumPy array."""
        data = self.data
        if _is_h5_dataset(data):
            return _h5_read(data, index, self.torch_dtype)
        return data[index] if index else data

    def same_view_key(self):
        return (self.storage_id, self.storage_offset, self.shape, self.stride, self.dtype)


class ValueItem:
    """A non-tensor leaf: an epoch number, a string, a config dict's scalar."""

    kind = "value"

    def __init__(self, name: str, value: Any):
        self.name = name
        self.value = value


class LinkItem:
    """An HDF5 external link: listed with its target, never followed (it names another file)."""

    kind = "link"

    def __init__(self, name: str, target: str):
        self.name = name
        self.target = target


def _is_h5_dataset(obj) -> bool:
    return type(obj).__module__.startswith("h5py") and type(obj).__name__ == "Dataset"


# --- opening files ------------------------------------------------------------------------------

class TensorFile:
    """An opened tensor file. Flat formats hold `items`; HDF5 answers lookups from the file."""

    def __init__(self, path: str, fmt: str, items: dict | None = None, sep: str = ".", attrs=None,
                 h5file=None, closers: Sequence[Callable[[], None]] = ()):
        self.path = path
        self.format = fmt
        self.items = items if items is not None else {}
        self.sep = sep
        self.attrs = dict(attrs or {})
        self.h5file = h5file
        self._closers = list(closers)

    @property
    def label(self) -> str:
        return FORMAT_LABELS[self.format]

    def close(self) -> None:
        for close in self._closers:
            try:
                close()
            except Exception:  # noqa: BLE001 - closing a damaged file must not mask the real error
                pass
        self._closers = []

    def __enter__(self) -> "TensorFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- lookups ------------------------------------------------------------------------------
    def select(self, key: str | None):
        """The whole file, one entry, or the entries under a prefix (HDF5 group, dotted name).

        Returns an Item for one tensor, or (prefix, list of items, attrs) for a container.
        """
        if self.format == "hdf5":
            return _h5_select(self, key)
        if key is None or key.strip("/") == "":
            if len(self.items) == 1 and "" in self.items:
                return self.items[""]
            return None, list(self.items.values()), self.attrs
        candidates = [key, key.strip("/"), key.strip("/").replace("/", self.sep)]
        if self.format == "npz":
            candidates += [c[:-4] for c in candidates if c.endswith(".npy")]
        for candidate in candidates:
            if candidate in self.items:
                return self.items[candidate]
        for candidate in dict.fromkeys(candidates):
            prefix = candidate.rstrip(self.sep) + self.sep
            inside = [item for name, item in self.items.items() if name.startswith(prefix)]
            if inside:
                return candidate.rstrip(self.sep), inside, {}
        raise UsageProblem(f"{self.path}: no entry {key!r}", _close_names(key, list(self.items)))


def _close_names(key: str, names: list[str]) -> list[str]:
    import difflib

    close = difflib.get_close_matches(key, names, n=4, cutoff=0.5)
    hints = [f"did you mean: {', '.join(close)}?"] if close else []
    hints.append(f"`ptm inspect-tensor FILE` lists the {len(names)} entries")
    return hints


def open_tensor_file(path: str) -> TensorFile:
    fmt = detect_format(path)
    opener = {
        "torch": _open_torch,
        "torch-legacy": _open_torch,
        "npy": _open_npy,
        "npz": _open_npz,
        "safetensors": _open_safetensors,
        "hdf5": _open_hdf5,
    }[fmt]
    try:
        return opener(path, fmt)
    except (InputError, UsageProblem):
        raise
    except MemoryError:
        raise InputError(f"{path}: not enough memory to read this file") from None
    except Exception as exc:  # noqa: BLE001 - any damage in a hostile file is one line, not a traceback
        raise InputError(f"{path}: cannot read this {FORMAT_LABELS[fmt]} file ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300] if first else type(exc).__name__


# --- PyTorch ------------------------------------------------------------------------------------

def _open_torch(path: str, fmt: str) -> TensorFile:
    import pickle

    import torch

    locations: dict[int, str] = {}

    def remember_location(storage, location):
        # Loaded on the CPU whatever it was saved from; the file's own device is worth showing.
        locations[storage.data_ptr()] = str(location)
        return storage

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location=remember_location, weights_only=True, mmap=(fmt == "torch"))
    except pickle.UnpicklingError as exc:
        raise InputError(_weights_only_refusal(path, str(exc))) from None
    except RuntimeError as exc:
        text = str(exc)
        if "zip archive" in text or "central directory" in text:
            raise InputError(f"{path}: a PyTorch zip file that is truncated or damaged") from None
        raise InputError(f"{path}: cannot load this PyTorch file ({_reason(exc)})") from None
    except (EOFError, ValueError, KeyError, IndexError, TypeError, AttributeError, OSError) as exc:
        raise InputError(f"{path}: a PyTorch file that is truncated or damaged ({_reason(exc)})") from None

    items: dict[str, Item | ValueItem] = {}
    _flatten_torch(obj, "", items, locations, depth=0, seen=set())
    if not items:
        raise InputError(f"{path}: holds an empty {type(obj).__name__}, no tensors")
    return TensorFile(path, fmt, items, sep=".")


def _weights_only_refusal(path: str, text: str) -> str:
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return (f"{path}: refused: its pickle would call {found.group(1)}, which can run code; "
                "ptm loads PyTorch files with weights_only=True and did not run it")
    detail = re.search(r"(Unsupported[^\n]*|WeightsUnpickler error:[^\n]*)", text)
    reason = f" ({detail.group(1).strip()})" if detail else ""
    return (f"{path}: refused: its pickle holds something weights_only=True does not allow{reason}; "
            "ptm loads only tensors and plain containers")


def _flatten_torch(obj, prefix: str, out: dict, locations: dict, depth: int, seen: set) -> None:
    import torch

    if depth > _MAX_NESTING:
        raise InputError(f"{prefix}: nested more than {_MAX_NESTING} levels deep")
    if isinstance(obj, torch.Tensor):
        out[prefix] = _torch_item(prefix, obj, locations)
        return
    if isinstance(obj, dict) or isinstance(obj, (list, tuple)) and not isinstance(obj, torch.Size):
        if id(obj) in seen:
            out[prefix] = ValueItem(prefix, "<cycle>")
            return
        seen = seen | {id(obj)}
        pairs = obj.items() if isinstance(obj, dict) else enumerate(obj)
        empty = True
        for key, value in pairs:
            empty = False
            name = f"{prefix}.{key}" if prefix else str(key)
            _flatten_torch(value, name, out, locations, depth + 1, seen)
        if empty and prefix:
            out[prefix] = ValueItem(prefix, obj)
        return
    out[prefix] = ValueItem(prefix, obj)


def _torch_item(name: str, tensor, locations: dict) -> Item:
    storage = tensor.untyped_storage()
    ptr = storage.data_ptr()
    nbytes = storage.nbytes()
    names = getattr(tensor, "names", None)  # named tensors were removed from recent PyTorch
    if names is not None and all(n is None for n in names):
        names = None
    return Item(
        name,
        shape=tuple(tensor.shape),
        dtype=_torch_dtype_name(tensor.dtype),
        element_size=tensor.element_size(),
        stride=tensor.stride(),
        storage_offset=tensor.storage_offset(),
        storage_size=nbytes // max(tensor.element_size(), 1),
        torch_dtype=tensor.dtype,
        names=names,
        requires_grad=bool(tensor.requires_grad),
        device=locations.get(ptr, str(tensor.device)),
        storage_id=("torch", ptr) if nbytes else None,
        storage_span=(0, nbytes),
        data=tensor,
    )


def _torch_dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


# --- NumPy --------------------------------------------------------------------------------------

def _numpy_torch_dtype(np_dtype):
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


def _array_to_data(array):
    """A NumPy array -> torch tensor sharing its memory when torch has the dtype; else the array."""
    import numpy as np
    import torch

    if _numpy_torch_dtype(array.dtype) is None:
        return array
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    with warnings.catch_warnings():
        # Memory-mapped arrays are read-only; nothing here writes to them.
        warnings.simplefilter("ignore")
        return torch.from_numpy(array) if array.size else torch.from_numpy(np.array(array))


def _numpy_item(name: str, *, shape, dtype, fortran: bool, loader, layout=None) -> Item:
    torch_dtype = _numpy_torch_dtype(dtype)
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
        dtype=_torch_dtype_name(torch_dtype) if torch_dtype is not None else str(dtype),
        element_size=dtype.itemsize,
        stride=stride,
        torch_dtype=torch_dtype,
        device=None,
        layout=layout,
        loader=loader,
        storage_id=None,
    )


def _read_npy_header(fh, path: str):
    import numpy as np

    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise InputError(f"{path}: unknown .npy version {version}")
    if dtype.hasobject:
        raise InputError(f"{path}: refused: an array of Python objects; reading it would unpickle them, "
                         "which can run code (ptm uses allow_pickle=False)")
    return tuple(shape), bool(fortran), dtype


def _open_npy(path: str, fmt: str) -> TensorFile:
    import numpy as np

    with open(path, "rb") as fh:
        shape, fortran, dtype = _read_npy_header(fh, path)
        data_start = fh.tell()
    expected = math.prod(shape) * dtype.itemsize
    actual = os.path.getsize(path) - data_start
    if actual < expected:
        raise InputError(f"{path}: truncated .npy: the header promises {expected:,} bytes of data, "
                         f"the file has {actual:,}")

    def load():
        if expected == 0:
            return _array_to_data(np.load(path, allow_pickle=False))
        return _array_to_data(np.load(path, mmap_mode="r", allow_pickle=False))

    item = _numpy_item("", shape=shape, dtype=dtype, fortran=fortran, loader=load)
    return TensorFile(path, fmt, {"": item})


def _open_npz(path: str, fmt: str) -> TensorFile:
    import numpy as np

    archive = zipfile.ZipFile(path)
    npz = np.load(path, allow_pickle=False)
    items: dict[str, Item] = {}
    for member in archive.infolist():
        name = member.filename[:-4] if member.filename.endswith(".npy") else member.filename
        try:
            with archive.open(member) as fh:
                shape, fortran, dtype = _read_npy_header(fh, f"{path}:{name}")
        except InputError as exc:
            items[name] = Item(name, shape=(), dtype="object", element_size=0, unreadable=exc.message)
            continue
        except Exception as exc:  # noqa: BLE001 - one damaged member is one unreadable row
            items[name] = Item(name, shape=(), dtype="?", element_size=0, unreadable=f"damaged ({_reason(exc)})")
            continue

        def load(key=name):
            return _array_to_data(npz[key])

        layout = {"compressed": member.compress_type != zipfile.ZIP_STORED}
        items[name] = _numpy_item(name, shape=shape, dtype=dtype, fortran=fortran, loader=load, layout=layout)
    return TensorFile(path, fmt, items, sep="/", closers=[npz.close, archive.close])


# --- safetensors --------------------------------------------------------------------------------

_SAFETENSORS_DTYPES = {
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
            dtype_name, itemsize = _SAFETENSORS_DTYPES[entry["dtype"]]
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


def _open_safetensors(path: str, fmt: str) -> TensorFile:
    import numpy as np
    import torch

    header, data_start = read_safetensors_header(path)
    metadata = header.pop("__metadata__", None) or {}
    items: dict[str, Item] = {}
    for name, entry in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        dtype_name, itemsize = _SAFETENSORS_DTYPES[entry["dtype"]]
        shape = tuple(int(s) for s in entry["shape"])
        begin, end = (int(v) for v in entry["data_offsets"])
        torch_dtype = getattr(torch, dtype_name)

        def load(begin=begin, end=end, shape=shape, torch_dtype=torch_dtype):
            if end == begin:
                return torch.empty(shape, dtype=torch_dtype)
            raw = np.memmap(path, dtype=np.uint8, mode="r", offset=data_start + begin, shape=(end - begin,))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return torch.from_numpy(raw).view(torch_dtype).reshape(shape)

        items[name] = Item(name, shape=shape, dtype=dtype_name, element_size=itemsize, torch_dtype=torch_dtype,
                           storage_id=("safetensors", 0) if end > begin else None, storage_span=(begin, end),
                           loader=load)
    attrs = {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}
    return TensorFile(path, fmt, dict(sorted(items.items())), sep=".", attrs=attrs)


# --- HDF5 ---------------------------------------------------------------------------------------

def _open_hdf5(path: str, fmt: str) -> TensorFile:
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: an HDF5 signature, but the file cannot be opened ({_reason(exc)})") from None
    return TensorFile(path, fmt, sep="/", attrs=_h5_attrs(handle.attrs), h5file=handle, closers=[handle.close])


def _h5_select(tfile: TensorFile, key: str | None):
    import h5py

    root = tfile.h5file
    path = "/" if key is None or key.strip("/") == "" else "/" + key.strip("/")
    if path == "/":
        obj = root
    else:
        try:
            link = root.get(path, getlink=True)
        except (KeyError, ValueError, OSError, RuntimeError):
            link = None
        if link is None:
            names = _h5_names(root, limit=2000)
            raise UsageProblem(f"{tfile.path}: no dataset or group {path!r}", _close_names(path.strip("/"), names))
        if isinstance(link, h5py.ExternalLink):
            raise UsageProblem(f"{tfile.path}: {path!r} is an external link to {link.filename}:{link.path}; "
                               "ptm does not follow links to other files", ["inspect that file directly"])
        obj = root.get(path)
        if obj is None:
            raise UsageProblem(f"{tfile.path}: {path!r} is a dangling link")
    if isinstance(obj, h5py.Dataset):
        return _h5_item(path.strip("/"), obj)
    if not isinstance(obj, h5py.Group):
        raise UsageProblem(f"{tfile.path}: {path!r} is a {type(obj).__name__}, not a dataset or group")
    items: list = []
    _h5_walk(obj, "", items, depth=0, on_path=set())
    return path.strip("/") or None, items, _h5_attrs(obj.attrs)


def _h5_names(root, limit: int) -> list[str]:
    names: list[str] = []

    def visit(name):
        names.append(name)
        return True if len(names) >= limit else None

    try:
        root.visit(visit)
    except Exception:  # noqa: BLE001 - hints only
        pass
    return names


def _h5_walk(group, prefix: str, out: list, depth: int, on_path: set) -> None:
    """Every dataset under `group`, hard links included (h5py's visit shows each object once)."""
    import h5py

    if depth > _MAX_NESTING:
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
            out.append(Item(full, shape=(), dtype="?", element_size=0, unreadable=f"cannot open ({_reason(exc)})"))
            continue
        if obj is None:
            target = getattr(link, "path", "?")
            out.append(LinkItem(full, f"dangling link to {target}"))
        elif isinstance(obj, h5py.Dataset):
            out.append(_h5_item(full, obj))
        elif isinstance(obj, h5py.Group):
            _h5_walk(obj, full, out, depth + 1, on_path)


def _h5_attrs(attrs) -> dict:
    out = {}
    try:
        keys = list(attrs.keys())[:64]
    except Exception:  # noqa: BLE001
        return out
    for key in keys:
        if key in ("DIMENSION_LIST", "REFERENCE_LIST", "DIMENSION_LABELS", "CLASS", "NAME"):
            continue  # HDF5 dimension-scale bookkeeping, shown as names instead
        try:
            out[key] = _plain(attrs[key])
        except Exception as exc:  # noqa: BLE001 - an attribute of an odd type
            out[key] = f"<unreadable: {type(exc).__name__}>"
    return out


def _plain(value, limit: int = 16):
    """An HDF5 attribute or NumPy value as JSON-friendly Python values, shortened."""
    import numpy as np

    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.void) and value.dtype.names:
        return {name: _plain(value[name]) for name in value.dtype.names}
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _plain(value[()])
        flat = [_plain(v) for v in value.reshape(-1)[:limit]]
        return flat if value.size <= limit else flat + ["…"]
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, complex):
        return _format_complex(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _h5_item(name: str, dset) -> Item:
    import h5py

    stored = dset.dtype
    torch_dtype = None
    try:
        torch_dtype = _numpy_torch_dtype(stored)
    except TypeError:
        torch_dtype = None
    attrs = _h5_attrs(dset.attrs)
    declared = attrs.get("torch_dtype")
    layout: dict = {}
    if torch_dtype is not None and CARRIER_DTYPES.get(declared) == _torch_dtype_name(torch_dtype):
        # Only the documented carriers are cast back; any other claim is ignored, never trusted.
        import torch

        layout["stored as"] = _torch_dtype_name(torch_dtype)
        torch_dtype = getattr(torch, declared)
        attrs.pop("torch_dtype")
    elif torch_dtype is not None and declared == _torch_dtype_name(torch_dtype):
        attrs.pop("torch_dtype")  # says what the dtype line already says
    element_size = stored.itemsize
    if torch_dtype is not None:
        element_size = torch_dtype.itemsize
        dtype_name = _torch_dtype_name(torch_dtype)
    else:
        dtype_name = h5_dtype_name(stored)
    layout["layout"] = _h5_layout(dset)
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
    names = None
    shape = dset.shape if dset.shape is not None else ()
    try:
        labels = [dim.label for dim in dset.dims] if len(shape) else []
        if any(labels):
            names = tuple(label or None for label in labels)
    except Exception:  # noqa: BLE001 - odd dimension scales are not worth failing over
        names = None
    try:
        address = h5py.h5o.get_info(dset.id).addr
    except Exception:  # noqa: BLE001
        address = id(dset)
    item = Item(name, shape=shape, dtype=dtype_name, element_size=element_size, torch_dtype=torch_dtype,
                names=names, layout=layout, attrs=attrs,
                storage_id=("hdf5", address), storage_span=(0, math.prod(shape) * element_size), data=dset)
    if dset.shape is None:
        item.unreadable = "an empty (null) dataspace"
        item.null_dataspace = True
    return item


def _h5_layout(dset) -> str:
    import h5py

    try:
        code = dset.id.get_create_plist().get_layout()
    except Exception:  # noqa: BLE001
        return "chunked" if dset.chunks else "contiguous"
    return {h5py.h5d.COMPACT: "compact", h5py.h5d.CONTIGUOUS: "contiguous", h5py.h5d.CHUNKED: "chunked",
            getattr(h5py.h5d, "VIRTUAL", -1): "virtual"}.get(code, str(code))


def h5_dtype_name(dtype) -> str:
    import h5py

    info = h5py.check_string_dtype(dtype)
    if info is not None:
        return "string" if info.length is None else f"string[{info.length}]"
    if h5py.check_vlen_dtype(dtype) is not None:
        return f"vlen {h5py.check_vlen_dtype(dtype)}"
    if dtype.names:
        return "compound {" + ", ".join(f"{n}: {h5_dtype_name(dtype.fields[n][0])}" for n in dtype.names) + "}"
    return str(dtype)


def _h5_to_torch(array, torch_dtype):
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


def _h5_read(dset, index: tuple, torch_dtype):
    import numpy as np

    if dset.shape == () or not index:
        array = np.asarray(dset[()])
    elif any(isinstance(i, slice) and i.start == i.stop for i in index) or 0 in dset.shape:
        array = np.empty(_index_shape(dset.shape, index), dtype=dset.dtype)
    else:
        array = np.asarray(dset[index])
    return _h5_to_torch(array, torch_dtype)


def _index_shape(shape, index) -> tuple[int, ...]:
    out = []
    for size, i in zip(shape, index):
        if isinstance(i, slice):
            out.append(len(range(*i.indices(size))))
    out.extend(shape[len(index):])
    return tuple(out)


def _h5_gather(dset, flat, torch_dtype):
    """Elements at row-major positions `flat` (any shape), reading only their bounding box."""
    import numpy as np

    shape = dset.shape
    if flat.size == 0:
        return _h5_to_torch(np.empty(flat.shape, dtype=dset.dtype), torch_dtype)
    if not shape:
        return _h5_to_torch(np.full(flat.shape, dset[()], dtype=dset.dtype), torch_dtype)
    coords = np.unravel_index(flat.reshape(-1), shape)
    box = tuple(slice(int(c.min()), int(c.max()) + 1) for c in coords)
    block = np.asarray(dset[box])
    values = block[tuple(c - b.start for c, b in zip(coords, box))]
    return _h5_to_torch(values.reshape(flat.shape), torch_dtype)


# --- views on items -----------------------------------------------------------------------------

def _storage_indices(steps: Sequence[Step]):
    """Positions, in the first storage, of every element of the last view (an int64 array).

    A copy (--contiguous on a non-contiguous view) starts a new row-major storage, so positions
    in it are mapped back through the view that was copied.
    """
    import numpy as np

    def positions(meta: ViewMeta):
        index = np.full(meta.shape, meta.offset, dtype=np.int64)
        for dim, (size, step) in enumerate(zip(meta.shape, meta.stride)):
            axis = [1] * len(meta.shape)
            axis[dim] = size
            index = index + (np.arange(size, dtype=np.int64) * step).reshape(axis)
        return index

    copied_views: list[ViewMeta] = []
    for before, step in zip(steps, steps[1:]):
        if step.copied:
            copied_views.append(before.meta)
    flat = positions(steps[-1].meta)
    for source in reversed(copied_views):
        if not source.shape:
            flat = np.full(flat.shape, source.offset, dtype=np.int64)
            continue
        coords = np.unravel_index(flat, source.shape)
        flat = source.offset + sum(c.astype(np.int64) * s for c, s in zip(coords, source.stride))
    return np.asarray(flat, dtype=np.int64)


def apply_views(item: Item, ops: Sequence[ViewOp]) -> tuple[Item, tuple[ViewStep, ...]]:
    """The entry seen through `ops`, and every step's size, offset, stride and contiguity."""
    if item.unreadable:
        raise InputError(f"{item.name}: {item.unreadable}")
    steps = apply_ops(item.meta, ops)
    described = tuple(
        ViewStep(step.op.describe() if step.op else "as stored", step.meta.shape, step.meta.stride,
                 step.meta.offset, step.meta.contiguous, step.copied)
        for step in steps
    )
    final = steps[-1].meta
    copied = any(step.copied for step in steps)
    data = item.data
    note = None
    if _is_torch_tensor(data):
        values = data
        for step in steps[1:]:
            values = values.contiguous() if step.copied else values.as_strided(
                step.meta.shape, step.meta.stride, step.meta.offset)
    elif final.numel > MAX_GATHER_ELEMENTS:
        values = None
        note = (f"values not read: the view has {final.numel:,} elements (limit {MAX_GATHER_ELEMENTS:,} "
                "for data on disk); narrow it with --select")
    else:
        flat = _storage_indices(steps)
        if _is_h5_dataset(data):
            values = _h5_gather(data, flat, item.torch_dtype)
        else:
            import numpy as np

            values = np.asarray(data).reshape(-1)[flat] if flat.size else np.empty(flat.shape, data.dtype)
    viewed = Item(
        item.name, shape=final.shape, dtype=item.dtype, element_size=item.element_size, stride=final.stride,
        storage_offset=final.offset, storage_size=final.numel if copied else item.storage_size,
        torch_dtype=item.torch_dtype, names=None, requires_grad=item.requires_grad, device=item.device,
        layout={} if copied else item.layout, attrs=item.attrs, data=values,
        unreadable=note,
    )
    return viewed, described


def _is_torch_tensor(obj) -> bool:
    return type(obj).__module__.startswith("torch") and hasattr(obj, "untyped_storage")


# --- statistics and preview ---------------------------------------------------------------------

def iter_blocks(shape: Sequence[int], budget: int = BLOCK_ELEMENTS,
                align: Sequence[int] | None = None) -> Iterator[tuple]:
    """Index tuples (slices only) that cover `shape` in row-major order, each at most `budget`
    elements where possible; HDF5 chunk boundaries along the first dimension are respected."""
    if not shape:
        yield ()
        return
    if 0 in shape:
        return
    inner = math.prod(shape[1:])
    if inner <= budget:
        rows = max(1, budget // inner)
        if align and align[0] > 1:
            rows = max(align[0], rows // align[0] * align[0])
        for start in range(0, shape[0], rows):
            yield (slice(start, min(start + rows, shape[0])),)
        return
    for i in range(shape[0]):
        for rest in iter_blocks(shape[1:], budget, align[1:] if align else None):
            yield (slice(i, i + 1),) + rest


class _Accumulator:
    """Chan's parallel merge of (count, mean, M2): exact enough in float64, one block at a time."""

    def __init__(self):
        self.count = self.nan = self.posinf = self.neginf = self.zeros = 0
        self.finite = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = self.max = None

    def add(self, block) -> None:
        import torch

        x = block.reshape(-1)
        self.count += x.numel()
        if x.numel() == 0:
            return
        if x.dtype == torch.bool:
            x = x.to(torch.uint8)
        elif x.dtype in (torch.uint16, torch.uint32):
            x = x.to(torch.int64)
        if x.is_complex():
            if x.dtype == torch.complex32:
                x = x.to(torch.complex64)
            self.nan += int(torch.isnan(x).sum())
            self.posinf += int(torch.isinf(x).sum())
            self.zeros += int((x == 0).sum())
            return
        self.zeros += int((x == 0).sum())
        if x.is_floating_point():
            x = x.to(torch.float64)
            finite = torch.isfinite(x)
            n_finite = int(finite.sum())
            if n_finite < x.numel():  # rare: only then pay for the masks and the copy
                nan = int(torch.isnan(x).sum())
                posinf = int((x == math.inf).sum())
                self.nan += nan
                self.posinf += posinf
                self.neginf += x.numel() - n_finite - nan - posinf
                x = x[finite]
            if x.numel() == 0:
                return
            low, high = (float(v) for v in torch.aminmax(x))
        elif x.dtype == torch.uint64:
            values = x.numpy()
            low, high = int(values.min()), int(values.max())
        else:
            low, high = (int(v) for v in torch.aminmax(x))
        self.min = low if self.min is None else min(self.min, low)
        self.max = high if self.max is None else max(self.max, high)
        x64 = x.to(torch.float64)
        n = x64.numel()
        variance, mean_t = torch.var_mean(x64, correction=0)
        mean = float(mean_t)
        m2 = float(variance) * n
        total = self.finite + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.finite * n / total
        self.finite = total

    def result(self, is_bool: bool) -> Stats:
        low, high = self.min, self.max
        if is_bool and low is not None:
            low, high = bool(low), bool(high)
        return Stats(
            count=self.count, nan=self.nan, posinf=self.posinf, neginf=self.neginf, zeros=self.zeros,
            min=low, max=high,
            mean=self.mean if self.finite else None,
            std=math.sqrt(self.m2 / (self.finite - 1)) if self.finite > 1 else None,
        )


def compute_stats(item: Item) -> Stats | None:
    if item.torch_dtype is None or item.unreadable:
        return None
    align = item.layout.get("chunks") if isinstance(item.layout.get("chunks"), tuple) else None
    acc = _Accumulator()
    for index in iter_blocks(item.shape, BLOCK_ELEMENTS, align):
        block = item.read(index)
        if not _is_torch_tensor(block):
            return None
        acc.add(block)
    return acc.result(is_bool=_torch_dtype_name(item.torch_dtype) == "bool")


def preview_index(shape: Sequence[int], per_dim: int) -> tuple:
    """The corner to show: the first `per_dim` along the last two dims, the first 2 before them."""
    index = []
    for dim, size in enumerate(shape):
        keep = per_dim if dim >= len(shape) - 2 else min(2, per_dim)
        index.append(slice(0, min(size, keep)))
    return tuple(index)


def _format_complex(value: complex) -> str:
    return f"{value.real:g}{value.imag:+g}j"


def to_python(values) -> Any:
    """A tensor or array -> nested lists of JSON-friendly numbers, bools and strings."""
    import numpy as np

    if _is_torch_tensor(values):
        import torch

        if values.dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2, torch.float8_e4m3fnuz,
                            torch.float8_e5m2fnuz):
            values = values.to(torch.float32)
        elif values.dtype == torch.complex32:
            values = values.to(torch.complex64)
        elif values.dtype in (torch.uint16, torch.uint32, torch.uint64):
            values = values.numpy()
        if _is_torch_tensor(values):
            raw = values.tolist()
            return _map_nested(raw, lambda v: _format_complex(v) if isinstance(v, complex) else v)
    array = np.asarray(values)
    if array.dtype.names or array.dtype.kind == "O":
        # Records and variable-length values: element by element (tolist would give raw tuples).
        def nested(a, depth):
            if depth == array.ndim:
                return _plain(a)
            return [nested(a[i], depth + 1) for i in range(a.shape[0])]

        return nested(array if array.ndim else array[()], 0)
    return _map_nested(array.tolist(), lambda v: _plain(v))


def _map_nested(value, fn):
    if isinstance(value, list):
        return [_map_nested(v, fn) for v in value]
    return fn(value)


def preview(item: Item, per_dim: int) -> tuple[Any, tuple[int, ...] | None]:
    if per_dim <= 0 or item.unreadable:
        return None, None
    index = preview_index(item.shape, per_dim)
    corner = item.read(index)
    shape = tuple(getattr(corner, "shape", ()))
    return to_python(corner), shape


# --- the inspect-tensor entry point -------------------------------------------------------------

def _shared_groups(items: Sequence[Item]) -> list[tuple[list[Item], int]]:
    """Entries whose bytes overlap in one storage: (items, storage bytes), in first-seen order."""
    by_storage: dict = {}
    for item in items:
        if isinstance(item, Item) and item.storage_id is not None and item.storage_span:
            by_storage.setdefault(item.storage_id, []).append(item)
    groups: list[tuple[list[Item], int]] = []
    for members in by_storage.values():
        members = sorted(members, key=lambda it: it.storage_span[0])
        current: list[Item] = []
        current_end = None
        begin = None
        for item in members:
            start, end = item.storage_span
            if current and start < current_end:
                current.append(item)
                current_end = max(current_end, end)
            else:
                if len(current) > 1:
                    groups.append((current, current_end - begin))
                current, begin, current_end = [item], start, end
        if len(current) > 1:
            groups.append((current, current_end - begin))
    order = {id(item): i for i, item in enumerate(items)}
    groups.sort(key=lambda g: min(order[id(it)] for it in g[0]))
    return [(sorted(g, key=lambda it: order[id(it)]), size) for g, size in groups]


def _value_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def container_summary(tfile: TensorFile, prefix: str | None, items: Sequence, attrs: dict) -> ContainerSummary:
    tensors = [it for it in items if isinstance(it, Item) and not it.unreadable]
    groups = _shared_groups(tensors)
    group_of: dict[int, int] = {}
    shared = []
    for number, (members, size) in enumerate(groups, start=1):
        for it in members:
            group_of[id(it)] = number
        by_view: dict = {}
        for it in members:
            by_view.setdefault(it.same_view_key(), []).append(it.name)
        tied = tuple(tuple(names) for names in by_view.values() if len(names) > 1)
        shared.append(SharedStorage(number, tuple(it.name for it in members), size, len(by_view) == 1, tied))
    strip = (prefix.rstrip(tfile.sep) + tfile.sep) if prefix else ""
    rows = []
    for it in items:
        name = it.name[len(strip):] if strip and it.name.startswith(strip) else it.name
        if isinstance(it, ValueItem):
            rows.append(EntryRow(name, "value", value=_value_repr(it.value)))
        elif isinstance(it, LinkItem):
            rows.append(EntryRow(name, "link", value=it.target))
        elif it.unreadable:
            rows.append(EntryRow(name, "unreadable", shape=None, dtype=it.dtype, value=it.unreadable))
        else:
            rows.append(EntryRow(name, "tensor", it.shape, it.dtype, it.numel, it.nbytes,
                                 storage_group=group_of.get(id(it))))
    storage_bytes = sum(it.nbytes for it in tensors if id(it) not in group_of) + sum(size for _, size in groups)
    return ContainerSummary(
        file=tfile.path, format=tfile.label, key=prefix, entries=tuple(rows), tensors=len(tensors),
        total_params=sum(it.numel for it in tensors), total_bytes=sum(it.nbytes for it in tensors),
        storage_bytes=storage_bytes, shared=tuple(shared), attrs=attrs,
    )


def tensor_summary(tfile: TensorFile, item: Item, key: str | None, ops: Sequence[ViewOp] = (),
                   stats: bool = True, preview_per_dim: int = 6, shares_with: Sequence[str] = ()) -> TensorSummary:
    if item.unreadable:
        raise InputError(f"{tfile.path}: {item.name or 'the array'}: {item.unreadable}")
    views: tuple[ViewStep, ...] = ()
    names = item.names
    if ops:
        item, views = apply_views(item, ops)
    note = item.unreadable
    try:
        values_preview, preview_shape = preview(item, preview_per_dim)
        summary_stats = compute_stats(item) if stats else None
    except (InputError, UsageProblem):
        raise
    except MemoryError:
        raise InputError(f"{tfile.path}: not enough memory to read {item.name or 'the tensor'}") from None
    except Exception as exc:  # noqa: BLE001 - damaged data in a file that opened fine
        raise InputError(f"{tfile.path}: cannot read the data of {item.name or 'the tensor'} "
                         f"({_reason(exc)})") from None
    return TensorSummary(
        file=tfile.path, format=tfile.label, key=key, shape=item.shape, dtype=item.dtype,
        element_size=item.element_size, numel=item.numel, nbytes=item.nbytes, stride=item.stride,
        storage_offset=item.storage_offset, storage_size=item.storage_size,
        contiguous=is_contiguous(item.shape, item.stride), names=names if not ops else None,
        requires_grad=item.requires_grad, device=item.device, layout=item.layout, attrs=item.attrs,
        shares_storage_with=tuple(shares_with), stats=summary_stats, preview=values_preview,
        preview_shape=preview_shape, views=views, note=note,
    )


def inspect_file(path: str, key: str | None = None, ops: Sequence[ViewOp] = (), stats: bool = True,
                 preview_per_dim: int = 6) -> TensorSummary | ContainerSummary:
    """`ptm inspect-tensor`: one tensor's anatomy, or a container's table of entries."""
    with open_tensor_file(path) as tfile:
        selected = tfile.select(key)
        if isinstance(selected, Item):
            shares = []
            if tfile.format != "hdf5" and selected.storage_id is not None:
                others = [it for it in tfile.items.values() if isinstance(it, Item) and it is not selected]
                for members, _ in _shared_groups([selected, *others]):
                    if selected in members:
                        shares = [it.name for it in members if it is not selected]
            return tensor_summary(tfile, selected, selected.name or key, ops, stats, preview_per_dim, shares)
        if isinstance(selected, (ValueItem, LinkItem)):
            shown = _value_repr(getattr(selected, "value", getattr(selected, "target", "")))
            if key is None:
                raise InputError(f"{path}: holds no tensors, only a {type(selected.value).__name__}: {shown}")
            raise UsageProblem(f"{path}: {key!r} is a {selected.kind}, not a tensor: {shown}")
        prefix, items, attrs = selected
        if ops:
            tensors = [it for it in items if isinstance(it, Item)]
            if len(tensors) == 1 and len(items) == 1:
                return tensor_summary(tfile, tensors[0], tensors[0].name, ops, stats, preview_per_dim)
            raise UsageProblem(f"{path}: --select/--transpose/--view/--contiguous work on one tensor; "
                               f"this holds {len(items)} entries", ["name one: ptm inspect-tensor FILE KEY ..."])
        return container_summary(tfile, prefix, items, attrs)
