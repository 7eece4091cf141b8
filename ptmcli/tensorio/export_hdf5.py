"""`ptm export-hdf5`: tensors and images into HDF5, the way chapter 3 shares data with other tools.

Sources are written in the order given, and each bad one is reported in that order too. Tensor
files become datasets (hdf5_writer.py): dotted state-dict names become nested groups
(`layer1.0.conv1.weight` -> `/layer1/0/conv1/weight`). Images (named files that are no tensor
format, and folders) become one [N, 3, H, W] batch, decoded in a background thread meanwhile.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TextIO

from ptmcli.atomic import temp_beside
from ptmcli.errors import InputError, OutputExists, UsageProblem
from ptmcli.models.registry import DEFAULT_CLASSIFIER
from ptmcli.pipeline.inputs import InputItem, collect, nothing_to_do
from ptmcli.pipeline.signals import StopOnSignal
from ptmcli.tensorio.hdf5_writer import HDF5Writer, ImageBatch, WrittenDataset, hdf5_path, segments, stem
from ptmcli.tensorio.sniff import sniff_format

COMPRESSIONS = ("none", "gzip", "lzf")


@dataclass(frozen=True)
class ExportOptions:
    dataset: str | None = None
    compression: str = "none"
    level: int | None = None
    chunks: str | tuple[int, ...] = "auto"  # "auto", "none" or a chunk shape
    force: bool = False  # replace OUT; with append: replace datasets of the same name
    append: bool = False
    model: str = DEFAULT_CLASSIFIER
    fail_fast: bool = False
    batch_size: int = 16


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
        segments(options.dataset, "/", "--dataset")


# --- sources ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Source:
    path: str
    image: bool  # decoded as an image; otherwise a tensor file
    error: str | None = None  # already known to fail (missing, refused on sight)
    named: bool = False  # a file named as such: if it is no image either, the error says both


def _collect_sources(args: Iterable[str], stdin: TextIO | None) -> list[_Source]:
    inputs = collect(args, stdin)
    problem = nothing_to_do(inputs, "export") if inputs else None
    if problem is not None:
        raise problem
    sources: list[_Source] = []
    for entry in inputs:
        item = entry.item
        if item.error:
            sources.append(_Source(item.path, image=False, error=f"{item.path}: {item.error}"))
        elif entry.root is not None:
            sources.append(_Source(item.path, image=True))  # folders hold images, as for `ptm classify`
        else:
            try:
                fmt = sniff_format(item.path)
            except InputError as exc:
                sources.append(_Source(item.path, image=False, error=exc.message))
                continue
            sources.append(_Source(item.path, image=fmt is None, named=fmt is None))
    return sources


def _decoded_images(images: Sequence[_Source], spec, batch_size: int) -> Iterator:
    """Each image source's crop (a batching.Loaded), in order, decoded ahead in a background thread."""
    from ptmcli.pipeline.batching import prefetch_batches
    from ptmcli.pixels.crop import load_for_model

    named = {s.path for s in images if s.named}

    def load(path: str):
        try:
            return load_for_model(path, spec)
        except InputError as exc:
            if path in named and "not an image" in exc.message:
                raise InputError(f"{path}: neither a tensor file (PyTorch, NumPy, safetensors, HDF5) "
                                 "nor an image Pillow can read") from None
            raise

    batches = prefetch_batches([InputItem(s.path) for s in images], load, batch_size)
    try:
        for batch in batches:
            yield from batch
    finally:
        batches.close()  # stops the decode thread when the export stops early


# --- the export ---------------------------------------------------------------------------------

def export_hdf5(
    args: Sequence[str],
    output: str,
    options: ExportOptions,
    on_error: Callable[[str], None],
    on_progress: Callable[[int], None] | None = None,
    stdin: TextIO | None = None,
) -> ExportResult:
    """Write every source into OUTPUT; one on_error call per bad input, in input order, the
    others still written."""
    import h5py

    check_options(options)
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

    sources = _collect_sources(args, stdin)
    known_bad = [s for s in sources if s.error]
    if len(known_bad) == len(sources) or options.fail_fast and known_bad:
        # Nothing to write, or --fail-fast with a failure already certain: report, touch nothing.
        reported = known_bad[:1] if options.fail_fast else known_bad
        for source in reported:
            on_error(source.error)
        return ExportResult(str(out), failed=len(reported))
    spec = None
    if any(s.image for s in sources):
        from ptmcli.models.registry import get_classifier

        spec = get_classifier(options.model).preprocess  # an unknown --model stops before writing

    # SIGTERM or Ctrl-C: the block being copied is finished, then Stopped removes the temporary
    # file on its way out and OUT stays as it was (created, replaced or appended to: not at all).
    with StopOnSignal() as stop:
        tmp = str(temp_beside(out, mode_of=out if exists else None))
        try:
            appending = exists and options.append
            if appending:
                shutil.copyfile(out, tmp)
            with h5py.File(tmp, "a" if appending else "w") as h5:
                written, skipped, failed = _write_sources(HDF5Writer(h5, options, stop), sources, spec, options,
                                                          on_error, on_progress)
            stop.check()  # a signal after the last block still means "do not write OUT"
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


def _write_sources(writer: HDF5Writer, sources: Sequence[_Source], spec, options: ExportOptions,
                   on_error: Callable[[str], None], on_progress: Callable[[int], None] | None,
                   ) -> tuple[list[WrittenDataset], list[str], int]:
    """Every source in input order: (datasets written, entries skipped, inputs failed)."""
    images = [s for s in sources if s.image]
    # Names depend on what was asked for, not on which inputs turn out to be broken.
    units = len(sources) - len(images) + (1 if images else 0)
    written: list[WrittenDataset] = []
    skipped: list[str] = []
    failed = 0
    batch: ImageBatch | None = None
    images_refused = False
    pending: list = []  # decoded crops not yet in the file
    decoded = _decoded_images(images, spec, options.batch_size) if images else None
    try:
        for source in sources:
            writer.check_stop()
            error = source.error
            if not source.image and error is None:
                try:
                    done, skip = writer.write_tensor_file(source.path, _tensor_base(source.path, options, units))
                    written.extend(done)
                    skipped.extend(skip)
                except InputError as exc:
                    error = exc.message
            elif source.image:
                loaded = next(decoded)
                if images_refused:
                    continue  # counted, and said once, when the image datasets were refused
                if batch is None:
                    try:
                        batch = ImageBatch(writer, _image_name(options, units), options.model, spec)
                    except InputError as exc:
                        images_refused = True
                        on_error(exc.message)
                        failed += len(images)
                        if options.fail_fast:
                            break
                        continue
                if loaded.error is not None:
                    error = loaded.error
                else:
                    pending.append(loaded)
                    if len(pending) >= options.batch_size:
                        batch.append([p.value for p in pending], [p.item.path for p in pending])
                        pending = []
            if on_progress:
                on_progress(1)
            if error is not None:
                on_error(error)
                failed += 1
                if options.fail_fast:
                    break
        if batch is not None:
            batch.append([p.value for p in pending], [p.item.path for p in pending])
            written.extend(batch.finish())
    finally:
        if decoded is not None:
            decoded.close()
    return written, skipped, failed


def _tensor_base(path: str, options: ExportOptions, units: int) -> str | None:
    """Where one tensor file goes: None means "the root for a container, the stem for a tensor"."""
    if units == 1:
        return options.dataset.strip("/") if options.dataset else None
    return hdf5_path(options.dataset.strip("/") if options.dataset else "", stem(path))


def _image_name(options: ExportOptions, units: int) -> str:
    if units == 1 and options.dataset:
        return options.dataset.strip("/")
    return hdf5_path(options.dataset.strip("/") if options.dataset and units > 1 else "", "images")
