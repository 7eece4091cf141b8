"""ptm export-hdf5: tensors and images into HDF5 for other tools (chapter 3's h5py section)."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated, Optional

import typer

from ptmcli.commands.options import FailFastOpt, FormatOpt
from ptmcli.errors import EXIT_OK, EXIT_SOME_FAILED, NoInputs
from ptmcli.models.registry import DEFAULT_CLASSIFIER
from ptmcli.sinks.formats import Format


class Compression(str, Enum):
    none = "none"
    gzip = "gzip"
    lzf = "lzf"


def export_hdf5(
    sources: Annotated[list[str], typer.Argument(help="Tensor files (any format inspect-tensor reads), images, folders of images, or - for paths on stdin.", show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", help="The HDF5 file to write.", show_default=False)],
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-n", help="Where to write: the dataset name for one tensor or for the images, the group for one state dict; the parent group for several sources.", show_default=False)] = None,
    compression: Annotated[Compression, typer.Option("--compression", "-c", case_sensitive=False, help="gzip is readable everywhere; lzf is faster but only h5py reads it.")] = Compression.none,
    level: Annotated[Optional[int], typer.Option("--level", min=0, max=9, help="gzip level (default 4).", show_default=False)] = None,
    chunks: Annotated[str, typer.Option("--chunks", help="auto (HDF5 picks when compressing), none, or a chunk shape like 1,3,224,224 for datasets of that rank.")] = "auto",
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists (with --append: replace datasets of the same name).")] = False,
    # The old name of --force: still accepted, no longer shown.
    overwrite: Annotated[bool, typer.Option("--overwrite", hidden=True)] = False,
    append: Annotated[bool, typer.Option("--append", help="Add datasets to an existing OUT; existing names are errors.")] = False,
    model: Annotated[str, typer.Option("--model", "-m", help="Preprocess images as this classifier does (see `ptm models`).")] = DEFAULT_CLASSIFIER,
    fail_fast: FailFastOpt = False,
    fmt: FormatOpt = Format.auto,
) -> None:
    """Write tensors and images to HDF5 for other tools (h5py, h5dump, MATLAB, ...).

    State dicts become nested groups (layer1.0.conv1.weight -> /layer1/0/conv1/weight). Images become one [N, 3, H, W] float32 dataset preprocessed as `ptm classify --model` would, plus a dataset of their paths.

    OUT is written under a temporary name and renamed when complete; an existing dataset is never replaced without --append --force.

    Examples:

      ptm export-hdf5 ourpoints.t -o ourpoints.h5 --dataset coords

      ptm export-hdf5 resnet101.pth -o weights.h5 --compression gzip

      ptm export-hdf5 photos/ -o batch.h5 --model efficientnet_lite0
    """
    from ptmcli.pipeline.export_hdf5 import export_hdf5 as run_export
    from ptmcli.sinks.progress import error_line
    from ptmcli.tensorio.export_hdf5 import ExportOptions, parse_chunks
    from ptmcli.tensorio.render import render_export

    if not sources:
        raise NoInputs("nothing to export", ["name tensor files, images or folders, or - for stdin"])
    options = ExportOptions(
        dataset=dataset, compression=compression.value, level=level, chunks=parse_chunks(chunks),
        force=force or overwrite, append=append, model=model, fail_fast=fail_fast,
    )
    result = run_export(sources, output, options, on_error=error_line, stdin=sys.stdin)
    render_export(result, fmt, sys.stdout)
    if result.skipped:
        error_line(f"note: skipped {len(result.skipped)} entries with no HDF5 form: "
                   + "; ".join(result.skipped[:5]) + (" ..." if len(result.skipped) > 5 else ""))
    raise typer.Exit(EXIT_SOME_FAILED if result.failed else EXIT_OK)
