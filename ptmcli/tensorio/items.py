"""The item model every reader produces: what is inside an opened tensor file.

- `Item`: one tensor-like entry: its metadata (shape, dtype, stride, storage) and a way to read
  it. The data is loaded or memory-mapped only when first needed.
- `ValueItem`: a non-tensor leaf of a checkpoint (an epoch number, a string).
- `LinkItem`: an HDF5 external link, listed and never followed.
- `TensorFile`: an opened file; `select(key)` finds one entry or a sub-tree of entries.

Nothing here knows a file format: readers pass in how to load, read and gather their data.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

from ptmcli.errors import InputError, UsageProblem
from ptmcli.tensorio.boundary import as_ptm_error
from ptmcli.tensorio.sniff import FORMAT_LABELS
from ptmcli.tensorio.views import ViewMeta, contiguous_strides

# Deeper nesting than this is a hostile file, not a checkpoint (and would exhaust the stack).
MAX_NESTING = 64

# (data, index, torch dtype) -> the elements at a basic index, for data that is not in memory.
ReadBlock = Callable[[Any, tuple, Any], Any]
# (data, row-major storage positions, torch dtype) -> those elements, in the positions' shape.
Gather = Callable[[Any, Any, Any], Any]


class Item:
    """Metadata of one entry plus a way to read it; `data` is loaded (or mapped) only when needed.

    `data` is a torch tensor, a NumPy array (dtypes torch lacks, e.g. strings), or data on disk
    (an h5py Dataset) that the reader's `read_block` and `gather` know how to slice.
    """

    kind = "tensor"

    def __init__(self, name: str, *, shape, dtype: str, element_size: int, stride=None, storage_offset: int = 0,
                 storage_size: int | None = None, torch_dtype=None, names=None, requires_grad=None,
                 device=None, layout=None, attrs=None, storage_id=None, storage_span=None,
                 loader: Callable[[], Any] | None = None, data: Any = None, unreadable: str | None = None,
                 read_block: ReadBlock | None = None, gather: Gather | None = None):
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
        self._read_block = read_block
        self._gather = gather
        self.unreadable = unreadable  # why the data cannot be read; the entry is still listed
        self.null_dataspace = False  # HDF5's "no data at all": listed, never read, not an error

    @property
    def nbytes(self) -> int:
        return self.numel * self.element_size

    @property
    def meta(self) -> ViewMeta:
        return ViewMeta(self.shape, self.stride, self.storage_offset)

    @property
    def refused(self) -> bool:
        """An entry whose data could not be read: a failure to report, unlike a null dataspace."""
        return bool(self.unreadable) and not self.null_dataspace

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
        if self._read_block is not None:
            return self._read_block(data, index, self.torch_dtype)
        return data[index] if index else data

    def gather(self, flat) -> Any:
        """Elements at storage positions `flat` (an int64 array of any shape), in that shape."""
        import numpy as np

        data = self.data
        if self._gather is not None:
            return self._gather(data, flat, self.torch_dtype)
        # Memory order is storage order: a Fortran-ordered .npy has column-major strides.
        return np.ravel(np.asarray(data), order="K")[flat] if flat.size else np.empty(flat.shape, data.dtype)

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


class Container(NamedTuple):
    """What `TensorFile.select` returns for more than one entry: a file, a group, a name prefix."""

    prefix: str | None
    entries: list
    attrs: dict


class TensorFile:
    """An opened tensor file whose entries are all known on opening (every format but HDF5)."""

    def __init__(self, path: str, fmt: str, items: dict | None = None, sep: str = ".", attrs=None,
                 closers: Sequence[Callable[[], None]] = ()):
        self.path = path
        self.format = fmt
        self.items = items if items is not None else {}
        self.sep = sep
        self.attrs = dict(attrs or {})
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

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.close()
        if exc is not None:
            converted = as_ptm_error(self.path, self.format, exc)
            if converted is not exc:
                raise converted from exc

    def select(self, key: str | None) -> Item | ValueItem | LinkItem | Container:
        """The whole file, one entry, or the entries under a prefix (a dotted name, `/` works too)."""
        if key is None or key.strip("/") == "":
            if len(self.items) == 1 and "" in self.items:
                return self.items[""]
            return Container(None, list(self.items.values()), self.attrs)
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
                return Container(candidate.rstrip(self.sep), inside, {})
        raise UsageProblem(f"{self.path}: no entry {key!r}", close_names(key, list(self.items)))


def close_names(key: str, names: list[str]) -> list[str]:
    """Hints for a key that is not there: the names it is closest to."""
    import difflib

    close = difflib.get_close_matches(key, names, n=4, cutoff=0.5)
    hints = [f"did you mean: {', '.join(close)}?"] if close else []
    hints.append(f"`ptm inspect-tensor FILE` lists the {len(names)} entries")
    return hints


def is_torch_tensor(obj) -> bool:
    # By module name, so that nothing here imports torch to ask.
    return type(obj).__module__.startswith("torch") and hasattr(obj, "untyped_storage")
