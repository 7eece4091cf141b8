"""`ptm export-hdf5` on the run loop: sources -> (images decoded ahead) -> units -> the HDF5 file.

Each source is one unit of the loop, in the order given: a tensor file is copied when its turn
comes; an image is decoded in a background thread meanwhile, cropped and normalised as
`ptm classify --model` would, and joins the image batch. A damaged source is one `ptm:` line and
the others are still written (exit 1); `--fail-fast` stops at it and writes nothing; a signal
leaves OUT as it was (tensorio/export_hdf5.py's sink does the writing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence, TextIO

from ptmcli.errors import InputError
from ptmcli.pipeline.inputs import InputItem, collect, nothing_to_do
from ptmcli.results import BatchOutput
from ptmcli.tensorio.export_hdf5 import (
    ExportFile,
    ExportOptions,
    ExportResult,
    SourceUnit,
    check_destination,
    check_options,
)
from ptmcli.tensorio.sniff import sniff_format

__all__ = ["ExportOptions", "ExportResult", "export_hdf5"]


@dataclass(frozen=True)
class _Source:
    path: str
    image: bool  # decoded as an image; otherwise a tensor file
    error: str | None = None  # already known to fail (missing, refused on sight)
    named: bool = False  # a file named as such: if it is no image either, the error says both


def export_hdf5(
    args: Sequence[str],
    output: str,
    options: ExportOptions,
    on_error: Callable[[str], None],
    stdin: TextIO | None = None,
) -> ExportResult:
    """Write every source into OUTPUT; one on_error call per bad input, in input order, the
    others still written."""
    from ptmcli.pipeline.run import Loop, run
    from ptmcli.pipeline.signals import StopOnSignal

    check_options(options)
    out = check_destination(output, options)
    sources = _collect_sources(args, stdin)
    spec = None
    if any(s.image and s.error is None for s in sources):
        from ptmcli.models.registry import get_classifier

        spec = get_classifier(options.model).preprocess  # an unknown --model stops before writing
    images = sum(s.image for s in sources)
    units = len(sources) - images + (1 if images else 0)
    # SIGTERM or Ctrl-C: the block being copied is finished, then Stopped removes the temporary
    # file on its way out and OUT stays as it was (created, replaced or appended to: not at all).
    stop = StopOnSignal()
    sink = ExportFile(out, options, spec, units, stop.check)
    run(_units(sources, spec, options.batch_size), [sink],
        Loop("exporting", len(sources), options.fail_fast, discard_when_stopped=True),
        stop=stop, report_error=on_error)
    return sink.result()


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


def _units(sources: Sequence[_Source], spec, batch_size: int) -> Iterator[tuple[list[int], BatchOutput]]:
    """One unit per source, in input order; images decoded ahead."""
    images = [s for s in sources if s.image and s.error is None]
    decoded = _decoded_images(images, spec, batch_size) if images else iter(())
    try:
        for row, source in enumerate(sources):
            if source.error is not None:
                unit = SourceUnit(source.path, source.image, error=source.error)
            elif source.image:
                loaded = next(decoded)
                unit = SourceUnit(source.path, True, pixels=loaded.value, error=loaded.error)
            else:
                unit = SourceUnit(source.path)
            yield [row], BatchOutput([unit])
    finally:
        close = getattr(decoded, "close", None)
        if close is not None:
            close()  # stops the decode thread when the export stops early


def _decoded_images(images: Sequence[_Source], spec, batch_size: int) -> Iterator:
    """Each image source's normalised crop (a batching.Loaded), in order, decoded ahead."""
    from ptmcli.models.classifier import to_batch
    from ptmcli.pipeline.batching import prefetch_batches
    from ptmcli.pixels.crop import load_for_model

    named = {s.path for s in images if s.named}

    def load(path: str):
        import torch

        try:
            crop = load_for_model(path, spec)
        except InputError as exc:
            if path in named and "not an image" in exc.message:
                raise InputError(f"{path}: neither a tensor file (PyTorch, NumPy, safetensors, HDF5) "
                                 "nor an image Pillow can read") from None
            raise
        return to_batch([crop], spec, torch.device("cpu"), torch.float32)[0].contiguous().numpy()

    batches = prefetch_batches([InputItem(s.path) for s in images], load, batch_size)
    try:
        for batch in batches:
            yield from batch
    finally:
        batches.close()
