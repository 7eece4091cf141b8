"""`ptm export-hdf5`: tensors and images into HDF5, the way chapter 3 shares data with other tools.

Each tensor becomes a dataset as the book writes it (`create_dataset(name, data=t.numpy())`),
copied in blocks so a memory-mapped checkpoint or a large HDF5 source never sits in memory whole.
Dotted state-dict names become nested groups (`layer1.0.conv1.weight` -> `/layer1/0/conv1/weight`).

What HDF5 lacks travels in attributes:
- `torch_dtype`: the PyTorch dtype name. HDF5 has no bfloat16 (nor float8 or complex32), so those
  are stored as float32 (complex64) — every value is exact — and `ptm inspect-tensor` casts back.
- `source`, `source_key`, `source_format`: where the data came from.
- dimension names, as HDF5 dimension labels (`dset.dims[i].label`), which h5py and h5dump show.

Files are written under a temporary name in the output's folder and renamed when complete, so a
failed or interrupted export leaves no broken file and an existing file stays as it was.
`--append` copies the existing file first (costs one extra copy; the original is never modified
in place), then renames the copy over it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence, TextIO

from ptmcli.atomic import temp_beside
from ptmcli.errors import InputError, OutputExists, UsageProblem
from ptmcli.models.registry import DEFAULT_CLASSIFIER
from ptmcli.pipeline.inputs import InputItem, collect_inputs
from ptmcli.tensorio.tensors import (
    BLOCK_ELEMENTS,
    CARRIER_DTYPES,
    FORMAT_LABELS,
    Item,
    LinkItem,
    ValueItem,
    h5_dtype_name,
    iter_blocks,
    open_tensor_file,
    sniff_format,
)

COMPRESSIONS = ("none", "gzip", "lzf")
IMAGE_DIM_NAMES = ("N", "C", "H", "W")
# Attributes ptm writes itself; an HDF5 source's own attributes are copied besides these.
_OWN_ATTRS = {"torch_dtype", "source", "source_key", "source_format"}
_SCALE_ATTRS = {"DIMENSION_LIST", "REFERENCE_LIST", "DIMENSION_LABELS", "CLASS", "NAME"}


@dataclass(frozen=True)
class ExportOptions:
    dataset: str | None = None
    compression: str = "none"
    level: int | None = None
    chunks: str | tuple[int, ...] = "auto"  # "auto", "none" or a chunk shape
    overwrite: bool = False
    append: bool = False
    model: str = DEFAULT_CLASSIFIER
    fail_fast: bool = False
    batch_size: int = 16


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


@dataclass(frozen=True)
class ExportResult:
    output: str
    datasets: tuple[WrittenDataset, ...] = ()
    failed: int = 0
    skipped: tuple[str, ...] = ()  # non-tensor entries that have no HDF5 form
    written: bool = False  # whether OUT was created or replaced


def parse_chunks(text: str) -> str | tuple[int, ...]:
    value = text.strip().lower()
    if value in ("auto", "none"):
        return value
    try:
        shape = tuple(int(part) for part in value.replace("x", ",").split(",") if part.strip())
    except ValueError:
        shape = ()
    if not shape or any(s <= 0 for s in shape):
        raise UsageProblem(f"--chunks {text!r}: expected auto, none, or positive sizes like 1,3,224,224")
    return shape


def check_options(options: ExportOptions) -> None:
    if options.compression not in COMPRESSIONS:
        raise UsageProblem(f"--compression {options.compression!r}: choose one of {', '.join(COMPRESSIONS)}")
    if options.level is not None:
        if options.compression != "gzip":
            raise UsageProblem("--level applies to --compression gzip only")
        if not 0 <= options.level <= 9:
            raise UsageProblem(f"--level {options.level}: gzip levels are 0..9")
    if options.chunks == "none" and options.compression != "none":
        raise UsageProblem("compression needs chunked datasets: drop --chunks none or --compression")
    if options.dataset is not None:
        _segments(options.dataset, "/", "--dataset")


# --- names --------------------------------------------------------------------------------------

def _segments(name: str, sep: str, what: str) -> list[str]:
    parts = [p for p in name.strip(sep).split(sep)] if name.strip(sep) else []
    for part in parts:
        if part in ("", ".", "..") or "/" in part:
            raise InputError(f"{what}: {name!r} cannot be an HDF5 path (empty, '.' or '..' part)")
    return parts


def hdf5_path(*parts: str) -> str:
    return "/".join(p for p in parts if p)


# --- the export ---------------------------------------------------------------------------------

@dataclass
class _Sources:
    # tensor files in input order, each with the error that already rules it out (or None)
    tensors: list[tuple[str, str | None]] = field(default_factory=list)
    images: list[InputItem] = field(default_factory=list)
    # explicitly named files that are no tensor format: decoded as images, errors say both
    named_images: set[str] = field(default_factory=set)


def _classify_sources(args: Iterable[str], stdin: TextIO | None) -> _Sources:
    sources = _Sources()
    for arg in args:
        from_folder = arg != "-" and Path(arg).is_dir()
        for item in collect_inputs([arg], stdin):
            if item.error:
                sources.tensors.append((item.path, f"{item.path}: {item.error}"))
            elif from_folder:
                sources.images.append(item)  # folders hold images, as for `ptm classify`
            else:
                try:
                    fmt = sniff_format(item.path)
                except InputError as exc:
                    sources.tensors.append((item.path, exc.message))
                    continue
                if fmt is None:
                    sources.images.append(item)
                    sources.named_images.add(item.path)
                else:
                    sources.tensors.append((item.path, None))
    return sources


def export_hdf5(
    args: Sequence[str],
    output: str,
    options: ExportOptions,
    on_error: Callable[[str], None],
    on_progress: Callable[[int], None] | None = None,
    stdin: TextIO | None = None,
) -> ExportResult:
    """Write every source into OUTPUT; one on_error call per bad input (tensor files in input
    order, then images), the others still written."""
    import h5py

    check_options(options)
    out = Path(output)
    exists = out.exists()
    if exists and out.is_dir():
        raise UsageProblem(f"-o {output}: is a directory; name a file such as {out / 'out.h5'}")
    if exists and not (options.overwrite or options.append):
        raise OutputExists(f"{output} exists", ["--overwrite replaces it; --append adds datasets to it"])
    if exists and options.append and not h5py.is_hdf5(str(out)):
        raise UsageProblem(f"--append: {output} is not an HDF5 file")
    if not out.parent.exists() and str(out.parent) not in ("", "."):
        raise UsageProblem(f"-o {output}: folder {out.parent} does not exist")

    sources = _classify_sources(args, stdin)
    usable = [path for path, error in sources.tensors if error is None]
    # Names depend on what was asked for, not on which inputs turn out to be broken.
    units = len(sources.tensors) + (1 if sources.images else 0)
    failed = 0
    if not usable and not sources.images or options.fail_fast and len(usable) < len(sources.tensors):
        for path, error in sources.tensors:
            if error:
                on_error(error)
                failed += 1
                if options.fail_fast:
                    break
        return ExportResult(str(out), failed=failed)

    tmp = str(temp_beside(out, mode_of=out if exists else None))
    written: list[WrittenDataset] = []
    skipped: list[str] = []
    try:
        appending = exists and options.append
        if appending:
            shutil.copyfile(out, tmp)
        with h5py.File(tmp, "a" if appending else "w") as h5:
            writer = _Writer(h5, options)
            for path, error in sources.tensors:
                if error is None:
                    try:
                        done, skip = writer.write_source(path, _tensor_base(path, options, units))
                        written.extend(done)
                        skipped.extend(skip)
                        continue
                    except InputError as exc:
                        error = exc.message
                on_error(error)
                failed += 1
                if options.fail_fast:
                    break
            if sources.images and not (failed and options.fail_fast):
                name = _image_name(options, units)
                done, image_failures = writer.write_images(sources, name, on_error, on_progress)
                written.extend(done)
                failed += image_failures
        if not written or (failed and options.fail_fast):
            os.unlink(tmp)
            return ExportResult(str(out), failed=failed, skipped=tuple(skipped))
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return ExportResult(str(out), tuple(written), failed, tuple(skipped), written=True)


def _tensor_base(path: str, options: ExportOptions, units: int) -> str | None:
    """Where one tensor file goes: None means "the root for a container, the stem for a tensor"."""
    stem = _stem(path)
    if units == 1:
        return options.dataset.strip("/") if options.dataset else None
    return hdf5_path(options.dataset.strip("/") if options.dataset else "", stem)


def _stem(path: str) -> str:
    # "model.v2.pth" -> "model.v2"; a name that is all extension keeps its name.
    return Path(path).stem or Path(path).name


def _image_name(options: ExportOptions, units: int) -> str:
    if units == 1 and options.dataset:
        return options.dataset.strip("/")
    return hdf5_path(options.dataset.strip("/") if options.dataset and units > 1 else "", "images")


class _Writer:
    def __init__(self, h5, options: ExportOptions):
        self.h5 = h5
        self.options = options

    # -- shared checks ----------------------------------------------------------------------
    def _check_free(self, targets: Sequence[str], source: str) -> list[str]:
        """Refuse names that clash with each other or with what the file holds; return the
        existing datasets that --append --overwrite will replace."""
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
                if self.options.append and self.options.overwrite and not _is_group(self.h5[target]):
                    replace.append(target)
                else:
                    raise InputError(
                        f"{source}: {target!r} already exists in the output; use --dataset NAME for another "
                        "name (or --append --overwrite to replace it)"
                    )
        return replace

    def _filters(self, shape: Sequence[int], default_chunks: tuple[int, ...] | None = None) -> dict:
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

    def _make_parents(self, target: str, created: list[str]) -> None:
        parts = target.split("/")
        for i in range(1, len(parts)):
            group = "/".join(parts[:i])
            if group not in self.h5:
                self.h5.create_group(group)
                created.append(group)

    def _rollback(self, created: list[str]) -> None:
        for name in reversed(created):
            if name in self.h5:
                del self.h5[name]

    # -- tensor files -------------------------------------------------------------------------
    def write_source(self, path: str, base: str | None) -> tuple[list[WrittenDataset], list[str]]:
        with open_tensor_file(path) as tfile:
            selected = tfile.select(None)
            if isinstance(selected, Item):
                entries = [selected]
                single = True
            else:
                _, entries, _ = selected
                single = False
            stem = _stem(path)
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
                    target = base if base is not None else stem
                else:
                    segments = _segments(entry.name, tfile.sep, f"{path}: entry")
                    target = hdf5_path(base or "", *segments)
                plan.append((target, entry))
            if not plan:
                raise InputError(f"{path}: nothing to export (no tensors or plain values)")
            replace = self._check_free([t for t, _ in plan], path)
            created: list[str] = []
            written: list[WrittenDataset] = []
            first_of_view: dict = {}
            try:
                for target in replace:
                    del self.h5[target]
                for target, entry in plan:
                    self._make_parents(target, created)
                    created.append(target)
                    if isinstance(entry, ValueItem):
                        written.append(self._write_value(target, entry, path, tfile.format))
                        continue
                    key = entry.same_view_key() if entry.storage_id is not None else None
                    if key is not None and key in first_of_view:
                        self.h5[target] = self.h5[first_of_view[key]]
                        stored = h5_dtype_name(self.h5[target].dtype)
                        written.append(WrittenDataset(target, entry.shape, entry.dtype, stored, path,
                                                      entry.name or None, link_to=first_of_view[key]))
                        continue
                    written.append(self._write_item(target, entry, path, tfile.format))
                    if key is not None:
                        first_of_view[key] = target
            except InputError:
                self._rollback(created)
                raise
            except MemoryError:
                self._rollback(created)
                raise InputError(f"{path}: not enough memory to copy it") from None
            except Exception as exc:  # noqa: BLE001 - damaged data in a file that opened fine
                self._rollback(created)
                raise InputError(f"{path}: cannot export ({type(exc).__name__}: {exc})") from None
            return written, skipped

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
                dset = self.h5.create_dataset(target, data=array, dtype=dtype, **self._filters(array.shape))
        else:
            stored = np.dtype(CARRIER_DTYPES.get(item.dtype, item.dtype))
            align = None
            dset = self.h5.create_dataset(target, shape=item.shape, dtype=stored, **self._filters(item.shape))
            if dset.chunks:
                align = dset.chunks
            for index in iter_blocks(item.shape, BLOCK_ELEMENTS, align):
                block = item.read(index)
                dset[index] = _to_numpy(block, stored)
            dset.attrs["torch_dtype"] = item.dtype
        if is_h5:
            for key, value in data.attrs.items():
                if key not in _OWN_ATTRS and key not in _SCALE_ATTRS:
                    dset.attrs[key] = value
        self._source_attrs(dset, path, item.name, fmt)
        if item.names and len(item.names) == len(item.shape):
            for dim, label in zip(dset.dims, item.names):
                if label:
                    dim.label = label
        return WrittenDataset(target, item.shape, item.dtype, h5_dtype_name(dset.dtype), path, item.name or None)

    # -- images -------------------------------------------------------------------------------
    def write_images(self, sources: _Sources, name: str, on_error: Callable[[str], None],
                     on_progress: Callable[[int], None] | None) -> tuple[list[WrittenDataset], int]:
        """All images as one [N, 3, H, W] float32 dataset, preprocessed as `ptm classify` would."""
        import h5py
        import torch

        from ptmcli.models.registry import get_classifier
        from ptmcli.pipeline.batching import prefetch_batches
        from ptmcli.pipeline.images import open_image
        from ptmcli.pipeline.preprocess import resize_and_crop, to_batch

        spec = get_classifier(self.options.model).preprocess
        paths_name = f"{name}_paths"
        failed = 0
        try:
            replace = self._check_free([name, paths_name], "images")
        except InputError as exc:
            on_error(exc.message)
            return [], len(sources.images)
        for target in replace:
            del self.h5[target]
        crop = spec.crop
        created: list[str] = []
        self._make_parents(name, created)
        filters = self._filters((1, 3, crop, crop), default_chunks=(1, 3, crop, crop))
        images = self.h5.create_dataset(name, shape=(0, 3, crop, crop), maxshape=(None, 3, crop, crop),
                                        dtype="float32", **filters)
        created.append(name)
        paths = self.h5.create_dataset(paths_name, shape=(0,), maxshape=(None,), dtype=h5py.string_dtype(),
                                       chunks=(256,))
        created.append(paths_name)

        def load(path: str):
            try:
                return resize_and_crop(open_image(path, min_short_side=spec.resize), spec)
            except InputError as exc:
                if path in sources.named_images and "not an image" in exc.message:
                    raise InputError(f"{path}: neither a tensor file (PyTorch, NumPy, safetensors, HDF5) "
                                     "nor an image Pillow can read") from None
                raise

        count = 0
        cpu = torch.device("cpu")
        try:
            for batch in prefetch_batches(sources.images, load, self.options.batch_size):
                good = [loaded for loaded in batch if loaded.error is None]
                for loaded in batch:
                    if loaded.error is not None:
                        on_error(loaded.error)
                        failed += 1
                if good:
                    array = to_batch([g.value for g in good], spec, cpu, torch.float32).contiguous().numpy()
                    images.resize(count + len(good), axis=0)
                    images[count:] = array
                    paths.resize(count + len(good), axis=0)
                    paths[count:] = [g.item.path for g in good]
                    count += len(good)
                if on_progress:
                    on_progress(len(batch))
                if failed and self.options.fail_fast:
                    break
        except BaseException:
            self._rollback(created)
            raise
        if count == 0:
            self._rollback(created)
            return [], failed
        for dim, label in zip(images.dims, IMAGE_DIM_NAMES):
            dim.label = label
        images.attrs["torch_dtype"] = "float32"
        images.attrs["source"] = "images"
        images.attrs["model"] = self.options.model
        images.attrs["resize"] = spec.resize
        images.attrs["crop"] = spec.crop
        images.attrs["mean"] = list(spec.mean)
        images.attrs["std"] = list(spec.std)
        images.attrs["interpolation"] = spec.interpolation
        images.attrs["paths_dataset"] = paths_name
        paths.dims[0].label = "N"
        return [
            WrittenDataset(name, (count, 3, crop, crop), "float32", "float32", f"{count} images"),
            WrittenDataset(paths_name, (count,), "string", "string", f"{count} images"),
        ], failed


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
