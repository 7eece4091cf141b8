"""Datasets into an open HDF5 file: one tensor file's entries, or images as one growing batch.

Each tensor becomes a dataset as the book writes it (`create_dataset(name, data=t.numpy())`),
copied in blocks so a memory-mapped checkpoint or a large HDF5 source never sits in memory whole.
What one input adds is removed again if it fails partway, so the file holds whole inputs only.
Names are checked before anything is written: HDF5 cannot hold `a` as a dataset and a group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ptmcli.errors import InputError
from ptmcli.tensorio.dtypes import CARRIER_DTYPES, h5_dtype_name
from ptmcli.tensorio.items import Item, LinkItem, ValueItem
from ptmcli.tensorio.readers import open_tensor_file
from ptmcli.tensorio.readers.hdf5 import SCALE_ATTRS
from ptmcli.tensorio.sniff import FORMAT_LABELS
from ptmcli.tensorio.stats import BLOCK_ELEMENTS, iter_blocks

if TYPE_CHECKING:
    import numpy as np

    from ptmcli.models.registry import Preprocess
    from ptmcli.pipeline.signals import StopOnSignal
    from ptmcli.tensorio.export_hdf5 import ExportOptions

IMAGE_DIM_NAMES = ("N", "C", "H", "W")
# Attributes ptm writes itself; an HDF5 source's own attributes are copied besides these.
_OWN_ATTRS = {"torch_dtype", "source", "source_key", "source_format"}
_PATHS_CHUNK = 256


@dataclass(frozen=True)
class WrittenDataset:
    name: str  # the HDF5 path, without the leading slash
    shape: tuple[int, ...]
    dtype: str  # as PyTorch (or NumPy) calls it
    stored_dtype: str  # as HDF5 holds it
    source: str
    source_key: str | None = None
    link_to: str | None = None  # a hard link to this dataset (the same view saved twice: tied weights)

    def to_dict(self) -> dict:
        return {
            "name": self.name, "shape": list(self.shape), "dtype": self.dtype,
            "stored_dtype": self.stored_dtype, "source": self.source, "source_key": self.source_key,
            "link_to": self.link_to,
        }


# --- names --------------------------------------------------------------------------------------

def segments(name: str, sep: str, what: str) -> list[str]:
    """A dotted (or slashed) name as HDF5 path parts; parts HDF5 cannot hold are errors."""
    parts = [p for p in name.strip(sep).split(sep)] if name.strip(sep) else []
    for part in parts:
        if part in ("", ".", "..") or "/" in part:
            raise InputError(f"{what}: {name!r} cannot be an HDF5 path (empty, '.' or '..' part)")
    return parts


def hdf5_path(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def stem(path: str) -> str:
    # "model.v2.pth" -> "model.v2"; a name that is all extension keeps its name.
    return Path(path).stem or Path(path).name


# --- the writer ---------------------------------------------------------------------------------

class HDF5Writer:
    def __init__(self, h5, options: "ExportOptions", stop: "StopOnSignal | None" = None):
        self.h5 = h5
        self.options = options
        self.stop = stop

    def check_stop(self) -> None:
        """Raise Stopped if a signal asked to stop (between blocks: a large tensor is many)."""
        if self.stop is not None:
            self.stop.check()

    # -- shared checks ----------------------------------------------------------------------
    def check_free(self, targets: Sequence[str], source: str) -> list[str]:
        """Refuse names that clash with each other or with what the file holds; return the
        existing datasets that --append --force will replace."""
        planned = set(targets)
        if len(planned) != len(targets):
            raise InputError(f"{source}: two entries map to the same HDF5 name")
        for target in targets:
            parts = target.split("/")
            for i in range(1, len(parts)):
                if "/".join(parts[:i]) in planned:
                    raise InputError(f"{source}: cannot store both {'/'.join(parts[:i])!r} and {target!r}: "
                                     "HDF5 needs the first to be a dataset and a group at once")
        replace = []
        for target in targets:
            parts = target.split("/")
            for i in range(1, len(parts)):
                ancestor = "/".join(parts[:i])
                if ancestor in self.h5 and not _is_group(self.h5[ancestor]):
                    raise InputError(f"{source}: {ancestor!r} already exists in the file as a dataset")
            if target in self.h5:
                if self.options.append and self.options.force and not _is_group(self.h5[target]):
                    replace.append(target)
                else:
                    raise InputError(
                        f"{source}: {target!r} already exists in the output; use --dataset NAME for another "
                        "name (or --append --force to replace it)"
                    )
        return replace

    def filters(self, shape: Sequence[int], default_chunks: tuple[int, ...] | None = None) -> dict:
        options = self.options
        if not shape or 0 in shape:
            return {}  # HDF5 refuses filters on scalars; empty datasets have nothing to compress
        kw: dict = {}
        if isinstance(options.chunks, tuple) and len(options.chunks) == len(shape):
            kw["chunks"] = tuple(min(c, s) for c, s in zip(options.chunks, shape))
        elif default_chunks is not None:
            kw["chunks"] = default_chunks
        elif options.compression != "none":
            kw["chunks"] = True
        if options.compression == "gzip":
            kw.update(compression="gzip", compression_opts=4 if options.level is None else options.level)
        elif options.compression == "lzf":
            kw["compression"] = "lzf"
        return kw

    def make_parents(self, target: str, created: list[str]) -> None:
        parts = target.split("/")
        for i in range(1, len(parts)):
            group = "/".join(parts[:i])
            if group not in self.h5:
                self.h5.create_group(group)
                created.append(group)

    def rollback(self, created: list[str]) -> None:
        for name in reversed(created):
            if name in self.h5:
                del self.h5[name]

    # -- tensor files -------------------------------------------------------------------------
    def write_tensor_file(self, path: str, base: str | None) -> tuple[list[WrittenDataset], list[str]]:
        """Every entry of one tensor file: (datasets written, entries skipped with why)."""
        with open_tensor_file(path) as tfile:
            selected = tfile.select(None)
            if isinstance(selected, Item):
                entries = [selected]
                single = True
            else:
                entries = selected.entries
                single = False
            plan: list[tuple[str, Item | ValueItem]] = []
            skipped: list[str] = []
            for entry in entries:
                if isinstance(entry, LinkItem):
                    skipped.append(f"{path}: {entry.name} (external link)")
                    continue
                if isinstance(entry, ValueItem) and not _storable_value(entry.value):
                    skipped.append(f"{path}: {entry.name} ({type(entry.value).__name__})")
                    continue
                if isinstance(entry, Item) and entry.null_dataspace:
                    skipped.append(f"{path}: {entry.name} (null dataspace)")
                    continue
                if isinstance(entry, Item) and entry.unreadable:
                    raise InputError(f"{path}: {entry.name}: {entry.unreadable}")
                if single or entry.name == "":
                    target = base if base is not None else stem(path)
                else:
                    target = hdf5_path(base or "", *segments(entry.name, tfile.sep, f"{path}: entry"))
                plan.append((target, entry))
            if not plan:
                raise InputError(f"{path}: nothing to export (no tensors or plain values)")
            replace = self.check_free([t for t, _ in plan], path)
            created: list[str] = []
            try:
                for target in replace:
                    del self.h5[target]
                written = self._write_plan(plan, path, tfile.format, created)
            except InputError:
                self.rollback(created)
                raise
            except MemoryError:
                self.rollback(created)
                raise InputError(f"{path}: not enough memory to copy it") from None
            except Exception as exc:  # noqa: BLE001 - damaged data in a file that opened fine
                self.rollback(created)
                raise InputError(f"{path}: cannot export ({type(exc).__name__}: {exc})") from None
            return written, skipped

    def _write_plan(self, plan, path: str, fmt: str, created: list[str]) -> list[WrittenDataset]:
        written: list[WrittenDataset] = []
        first_of_view: dict = {}
        for target, entry in plan:
            self.make_parents(target, created)
            created.append(target)
            if isinstance(entry, ValueItem):
                written.append(self._write_value(target, entry, path, fmt))
                continue
            key = entry.same_view_key() if entry.storage_id is not None else None
            if key is not None and key in first_of_view:
                # The same view under a second name (tied weights): one dataset, two names.
                self.h5[target] = self.h5[first_of_view[key]]
                stored = h5_dtype_name(self.h5[target].dtype)
                written.append(WrittenDataset(target, entry.shape, entry.dtype, stored, path,
                                              entry.name or None, link_to=first_of_view[key]))
                continue
            written.append(self._write_item(target, entry, path, fmt))
            if key is not None:
                first_of_view[key] = target
        return written

    def _write_value(self, target: str, entry: ValueItem, path: str, fmt: str) -> WrittenDataset:
        import h5py
        import numpy as np

        value = entry.value
        if isinstance(value, str):
            dset = self.h5.create_dataset(target, data=value, dtype=h5py.string_dtype())
        else:
            dset = self.h5.create_dataset(target, data=np.asarray(value))
        dset.attrs["python_type"] = type(value).__name__
        self._source_attrs(dset, path, entry.name, fmt)
        return WrittenDataset(target, (), type(value).__name__, h5_dtype_name(dset.dtype), path, entry.name or None)

    def _source_attrs(self, dset, path: str, key: str, fmt: str) -> None:
        dset.attrs["source"] = os.path.abspath(path)
        if key:
            dset.attrs["source_key"] = key
        dset.attrs["source_format"] = FORMAT_LABELS.get(fmt, fmt)

    def _write_item(self, target: str, item: Item, path: str, fmt: str) -> WrittenDataset:
        import h5py
        import numpy as np

        data = item.data
        is_h5 = type(data).__module__.startswith("h5py")
        if item.torch_dtype is None:
            # Strings, compounds: NumPy carries them; fixed-width unicode becomes UTF-8 strings.
            array = np.asarray(data[()] if is_h5 else data)
            if array.dtype.kind == "U":
                dset = self.h5.create_dataset(target, data=array.astype(object), dtype=h5py.string_dtype())
            else:
                dtype = data.dtype if is_h5 else array.dtype  # keeps HDF5 string/vlen types as they were
                dset = self.h5.create_dataset(target, data=array, dtype=dtype, **self.filters(array.shape))
        else:
            stored = np.dtype(CARRIER_DTYPES.get(item.dtype, item.dtype))
            align = None
            dset = self.h5.create_dataset(target, shape=item.shape, dtype=stored, **self.filters(item.shape))
            if dset.chunks:
                align = dset.chunks
            for index in iter_blocks(item.shape, BLOCK_ELEMENTS, align):
                self.check_stop()
                block = item.read(index)
                dset[index] = _to_numpy(block, stored)
            dset.attrs["torch_dtype"] = item.dtype
        if is_h5:
            for key, value in data.attrs.items():
                if key not in _OWN_ATTRS and key not in SCALE_ATTRS:
                    dset.attrs[key] = value
        self._source_attrs(dset, path, item.name, fmt)
        if item.names and len(item.names) == len(item.shape):
            for dim, label in zip(dset.dims, item.names):
                if label:
                    dim.label = label
        return WrittenDataset(target, item.shape, item.dtype, h5_dtype_name(dset.dtype), path, item.name or None)


class ImageBatch:
    """Images as one [N, 3, H, W] float32 dataset and a dataset of their paths, grown as they come.

    Preprocessed exactly as `ptm classify --model` feeds the network: the crops come from
    `pixels.crop.load_for_model`, the normalisation from `to_batch`.
    """

    def __init__(self, writer: HDF5Writer, name: str, model: str, spec: "Preprocess"):
        import h5py

        self.writer = writer
        self.name = name
        self.paths_name = f"{name}_paths"
        self.model = model
        self.spec = spec
        h5 = writer.h5
        for target in writer.check_free([name, self.paths_name], "images"):
            del h5[target]
        crop = self.spec.crop
        self.created: list[str] = []
        writer.make_parents(name, self.created)
        filters = writer.filters((1, 3, crop, crop), default_chunks=(1, 3, crop, crop))
        self.images = h5.create_dataset(name, shape=(0, 3, crop, crop), maxshape=(None, 3, crop, crop),
                                        dtype="float32", **filters)
        self.created.append(name)
        self.paths = h5.create_dataset(self.paths_name, shape=(0,), maxshape=(None,), dtype=h5py.string_dtype(),
                                       chunks=(_PATHS_CHUNK,))
        self.created.append(self.paths_name)
        self.count = 0

    def append(self, crops: "Sequence[np.ndarray]", paths: Sequence[str]) -> None:
        import torch

        from ptmcli.models.classifier import to_batch

        if not crops:
            return
        array = to_batch(list(crops), self.spec, torch.device("cpu"), torch.float32).contiguous().numpy()
        self.images.resize(self.count + len(crops), axis=0)
        self.images[self.count:] = array
        self.paths.resize(self.count + len(crops), axis=0)
        self.paths[self.count:] = list(paths)
        self.count += len(crops)

    def rollback(self) -> None:
        self.writer.rollback(self.created)

    def finish(self) -> list[WrittenDataset]:
        """Label and describe the datasets; none at all when no image made it."""
        if self.count == 0:
            self.rollback()
            return []
        spec, images = self.spec, self.images
        for dim, label in zip(images.dims, IMAGE_DIM_NAMES):
            dim.label = label
        images.attrs["torch_dtype"] = "float32"
        images.attrs["source"] = "images"
        images.attrs["model"] = self.model
        images.attrs["resize"] = spec.resize
        images.attrs["crop"] = spec.crop
        images.attrs["mean"] = list(spec.mean)
        images.attrs["std"] = list(spec.std)
        images.attrs["interpolation"] = spec.interpolation
        images.attrs["paths_dataset"] = self.paths_name
        self.paths.dims[0].label = "N"
        crop, count = spec.crop, self.count
        return [
            WrittenDataset(self.name, (count, 3, crop, crop), "float32", "float32", f"{count} images"),
            WrittenDataset(self.paths_name, (count,), "string", "string", f"{count} images"),
        ]


def _is_group(obj) -> bool:
    return type(obj).__name__ in ("Group", "File")


def _storable_value(value) -> bool:
    return isinstance(value, (bool, int, float, str)) and not (isinstance(value, int) and abs(value) >= 1 << 63)


def _to_numpy(block, stored):
    """A block (torch tensor or NumPy array) -> a NumPy array of the HDF5 dtype."""
    import numpy as np

    if hasattr(block, "detach"):
        import torch

        block = block.detach()
        carrier = {np.dtype("float32"): torch.float32, np.dtype("complex64"): torch.complex64}.get(stored)
        if carrier is not None and block.dtype != carrier:
            block = block.to(carrier)
        block = block.cpu().numpy()
    # np.require keeps 0-d arrays 0-d (ascontiguousarray would make them 1-d).
    return np.require(np.asarray(block, dtype=stored), requirements="C")
