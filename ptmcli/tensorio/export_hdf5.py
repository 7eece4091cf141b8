"""export-hdf5's pieces: its options checked, the destination checked, and the HDF5 file as a sink.

Sources are written in the order given, and each bad one is reported in that order too. Tensor
files become datasets (hdf5_writer.py): dotted state-dict names become nested groups
(`layer1.0.conv1.weight` -> `/layer1/0/conv1/weight`). Images (named files that are no tensor
format, and folders) become one [N, 3, H, W] batch.

What HDF5 lacks travels in attributes:
- `torch_dtype`: the PyTorch dtype name. HDF5 has no bfloat16 (nor float8 or complex32), so those
  are stored as float32 (complex64) — every value is exact — and `ptm inspect-tensor` casts back.
- `source`, `source_key`, `source_format`: where the data came from.
- dimension names, as HDF5 dimension labels (`dset.dims[i].label`), which h5py and h5dump show.

The file is written under a temporary name in the output's folder (ptmcli/atomic.py) and renamed
when complete, so a failed or interrupted export leaves no broken file and an existing file stays
as it was. `--append` copies the existing file first (costs one extra copy; the original is never
modified in place), then renames the copy over it. The run itself (inputs, decoding, the loop)
is pipeline/export_hdf5.py.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from ptmcli.atomic import Pending
from ptmcli.errors import InputError, OutputExists, UsageProblem
from ptmcli.results import BatchOutput
from ptmcli.tensorio.hdf5_writer import (
    COMPRESSIONS,
    ExportOptions,
    HDF5Writer,
    ImageBatch,
    WrittenDataset,
    hdf5_path,
    segments,
    stem,
)

if TYPE_CHECKING:
    import numpy as np

    from ptmcli.models.registry import Preprocess

__all__ = ["ExportFile", "ExportOptions", "ExportResult", "SourceUnit", "check_destination", "check_options",
           "parse_chunks"]


@dataclass(frozen=True)
class ExportResult:
    output: str
    datasets: tuple[WrittenDataset, ...] = ()
    failed: int = 0
    skipped: tuple[str, ...] = ()  # non-tensor entries that have no HDF5 form
    written: bool = False  # whether OUT was created or replaced


@dataclass(frozen=True)
class SourceUnit:
    """One source as the run loop hands it to the file: a tensor file to copy, one image's
    normalised crop ([3, crop, crop] float32), or why it failed."""

    path: str
    is_image: bool = False
    pixels: "np.ndarray | None" = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


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
        segments(options.dataset, "/", "--dataset")


def check_destination(output: str, options: ExportOptions) -> Path:
    """Refuse (exit 2) an OUT that cannot be written as asked, before any source is read."""
    import h5py

    out = Path(output)
    exists = out.exists()
    if exists and out.is_dir():
        raise UsageProblem(f"-o {output}: is a directory; name a file such as {out / 'out.h5'}")
    if exists and not (options.force or options.append):
        # --overwrite is the old name of --force, still accepted.
        raise OutputExists(f"{output} exists", ["--force (or --overwrite) replaces it; --append adds datasets to it"])
    if exists and options.append and not h5py.is_hdf5(str(out)):
        raise UsageProblem(f"--append: {output} is not an HDF5 file")
    if not out.parent.exists() and str(out.parent) not in ("", "."):
        raise UsageProblem(f"-o {output}: folder {out.parent} does not exist")
    return out


class ExportFile:
    """The run loop's sink for export-hdf5: every source into one HDF5 file, committed at close.

    The temporary file is made at the first source that has something to write, so a run where
    every source fails touches nothing. `units` is how many datasets-or-groups were asked for (all
    images count as one): names depend on what was asked for, not on which inputs turn out broken.
    """

    def __init__(self, out: Path, options: ExportOptions, spec: "Preprocess | None", units: int,
                 check_stop: Callable[[], None]):
        self.out = out
        self.options = options
        self.spec = spec
        self.units = units
        self.check_stop = check_stop
        self.written: list[WrittenDataset] = []
        self.skipped: list[str] = []
        self.failed = 0
        self.committed = False
        self._pending: Pending | None = None
        self._h5 = None
        self._writer: HDF5Writer | None = None
        self._images: ImageBatch | None = None
        self._images_refused: str | None = None
        self._crops: list[SourceUnit] = []  # decoded, not yet in the file

    def write(self, rows: Sequence[int], batch: BatchOutput) -> BatchOutput | None:
        results = list(batch.results)
        changed = False
        for i, unit in enumerate(results):
            error = unit.error
            if error is None:
                self.check_stop()
                error = self._add_image(unit) if unit.is_image else self._add_tensor_file(unit.path)
                if error is not None:
                    results[i], changed = SourceUnit(unit.path, unit.is_image, error=error), True
            self.failed += error is not None
        return BatchOutput(results) if changed else None

    def _open(self) -> HDF5Writer:
        if self._writer is None:
            import h5py

            appending = self.out.exists() and self.options.append
            self._pending = Pending(self.out, mode_of=self.out if self.out.exists() else None)
            if appending:
                shutil.copyfile(self.out, self._pending.path)
            self._h5 = h5py.File(self._pending.path, "a" if appending else "w")
            self._writer = HDF5Writer(self._h5, self.options, self.check_stop)
        return self._writer

    def _add_tensor_file(self, path: str) -> str | None:
        writer = self._open()
        try:
            done, skip = writer.write_tensor_file(path, self._tensor_base(path))
        except InputError as exc:
            return exc.message
        except MemoryError:
            return f"{path}: not enough memory to read it"
        except Exception as exc:  # noqa: BLE001 - a damaged source is one failed input, not the end
            return f"{path}: cannot read it ({type(exc).__name__}: {exc})"
        self.written.extend(done)
        self.skipped.extend(skip)
        return None

    def _add_image(self, unit: SourceUnit) -> str | None:
        if self._images_refused is not None:
            return f"{unit.path}: not exported: {self._images_refused}"
        if self._images is None:
            try:
                self._images = ImageBatch(self._open(), self._image_name(), self.options.model, self.spec)
            except InputError as exc:
                self._images_refused = exc.message
                return exc.message
        self._crops.append(unit)
        if len(self._crops) >= self.options.batch_size:
            self._flush_images()
        return None

    def _flush_images(self) -> None:
        import numpy as np

        if self._crops:
            self._images.append(np.stack([u.pixels for u in self._crops]), [u.path for u in self._crops])
            self._crops = []

    def close(self) -> None:
        if self._writer is None:
            return
        if self._images is not None:
            self._flush_images()
            self.written.extend(self._images.finish())
        self._h5.close()
        self.check_stop()  # a signal after the last block still means "do not write OUT"
        if not self.written or (self.failed and self.options.fail_fast):
            self._pending.discard()
            return
        self._pending.commit()
        self.committed = True

    def abort(self) -> None:
        if self._h5 is not None:
            try:
                self._h5.close()
            except Exception:  # noqa: BLE001 - the file is removed next anyway
                pass
        if self._pending is not None:
            self._pending.discard()

    def result(self) -> ExportResult:
        return ExportResult(str(self.out), tuple(self.written) if self.committed else (), self.failed,
                            tuple(self.skipped), written=self.committed)

    def _tensor_base(self, path: str) -> str | None:
        """Where one tensor file goes: None means "the root for a container, the stem for a tensor"."""
        dataset = self.options.dataset
        if self.units == 1:
            return dataset.strip("/") if dataset else None
        return hdf5_path(dataset.strip("/") if dataset else "", stem(path))

    def _image_name(self) -> str:
        dataset = self.options.dataset.strip("/") if self.options.dataset else ""
        if self.units == 1 and dataset:
            return dataset
        return hdf5_path(dataset if self.units > 1 else "", "images")
