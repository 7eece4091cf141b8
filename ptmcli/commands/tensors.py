"""ptm inspect-tensor and ptm export-hdf5: chapter 3's tensors and HDF5, for files on disk."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand

from ptmcli.commands.options import FailFastOpt
from ptmcli.errors import EXIT_OK, EXIT_SOME_FAILED, NoInputs
from ptmcli.models.registry import DEFAULT_CLASSIFIER


class TextFormat(str, Enum):
    auto = "auto"
    table = "table"
    text = "text"
    json = "json"


class Compression(str, Enum):
    none = "none"
    gzip = "gzip"
    lzf = "lzf"


TextFormatOpt = Annotated[
    TextFormat,
    typer.Option("--format", "-f", case_sensitive=False,
                 help="auto: Rich on a terminal, plain text in a pipe or file; json for scripts."),
]


class ViewOrderCommand(TyperCommand):
    """Reads --select/--transpose/--view/--contiguous in the order typed (see tensorviews.split_view_args)."""

    def parse_args(self, ctx, args):
        from ptmcli.tensorio.views import split_view_args

        rest, ops = split_view_args(args)
        ctx.meta["ptm_view_ops"] = ops
        return super().parse_args(ctx, rest)


def inspect_tensor(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="A .pt/.pth/.t, .npy/.npz, .safetensors or HDF5 file (the content decides).", show_default=False)],
    key: Annotated[Optional[str], typer.Argument(help="One entry: a state-dict name (layer1.0.weight), an .npz member, or an HDF5 path (group/dataset).", show_default=False)] = None,
    select: Annotated[Optional[str], typer.Option("--select", metavar="INDEX", help="Index like Python: '1:, 0', '..., ::2', 'None, 0'. Repeatable.", show_default=False)] = None,
    transpose: Annotated[Optional[str], typer.Option("--transpose", metavar="DIM0 DIM1", help="Swap two dimensions. Repeatable.", show_default=False)] = None,
    view: Annotated[Optional[str], typer.Option("--view", metavar="SIZE...", help="Reshape without copying, e.g. --view 3 3 or --view 3,-1 (the integers that follow). Repeatable.", show_default=False)] = None,
    contiguous: Annotated[bool, typer.Option("--contiguous", help="Copy into a fresh row-major storage if not contiguous (as .contiguous()).")] = False,
    stats: Annotated[bool, typer.Option("--stats/--no-stats", help="Compute min, max, mean, std and NaN/Inf/zero counts (reads the whole tensor, in blocks).")] = True,
    preview: Annotated[int, typer.Option("--preview", min=0, max=100, help="Elements shown per dimension (0: none).")] = 6,
    fmt: TextFormatOpt = TextFormat.auto,
) -> None:
    """Show what a tensor is underneath: shape, dtype, stride, storage offset, statistics.

    A file with many tensors (a state dict, .npz, safetensors, an HDF5 group) gets a table of entries with totals and which entries share one storage.

    --select, --transpose, --view and --contiguous apply in the order typed and show each step's size, offset and stride, as chapter 3's exercises do by hand.

    Examples:

      ptm inspect-tensor ourpoints.t

      ptm inspect-tensor resnet101.pth layer1.0.conv1.weight --format json

      ptm inspect-tensor nine.pt --view 3 3 --select '1:, 1:'

      ptm inspect-tensor data.h5 group/dataset --select '-2:'
    """
    from ptmcli.tensorio.render import render_inspect
    from ptmcli.tensorio.tensors import inspect_file

    ops = ctx.meta.get("ptm_view_ops", [])
    summary = inspect_file(file, key, ops, stats=stats, preview_per_dim=preview)
    render_inspect(summary, fmt.value, sys.stdout)


def export_hdf5(
    sources: Annotated[list[str], typer.Argument(help="Tensor files (any format inspect-tensor reads), images, folders of images, or - for paths on stdin.", show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", help="The HDF5 file to write.", show_default=False)],
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-n", help="Where to write: the dataset name for one tensor or for the images, the group for one state dict; the parent group for several sources.", show_default=False)] = None,
    compression: Annotated[Compression, typer.Option("--compression", "-c", case_sensitive=False, help="gzip is readable everywhere; lzf is faster but only h5py reads it.")] = Compression.none,
    level: Annotated[Optional[int], typer.Option("--level", min=0, max=9, help="gzip level (default 4).", show_default=False)] = None,
    chunks: Annotated[str, typer.Option("--chunks", help="auto (HDF5 picks when compressing), none, or a chunk shape like 1,3,224,224 for datasets of that rank.")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it exists (with --append: replace datasets of the same name).")] = False,
    append: Annotated[bool, typer.Option("--append", help="Add datasets to an existing OUT; existing names are errors.")] = False,
    model: Annotated[str, typer.Option("--model", "-m", help="Preprocess images as this classifier does (see `ptm models`).")] = DEFAULT_CLASSIFIER,
    fail_fast: FailFastOpt = False,
    fmt: TextFormatOpt = TextFormat.auto,
) -> None:
    """Write tensors and images to HDF5 for other tools (h5py, h5dump, MATLAB, ...).

    State dicts become nested groups (layer1.0.conv1.weight -> /layer1/0/conv1/weight). Images become one [N, 3, H, W] float32 dataset preprocessed as `ptm classify --model` would, plus a dataset of their paths.

    OUT is written under a temporary name and renamed when complete; an existing dataset is never replaced without --append --overwrite.

    Examples:

      ptm export-hdf5 ourpoints.t -o ourpoints.h5 --dataset coords

      ptm export-hdf5 resnet101.pth -o weights.h5 --compression gzip

      ptm export-hdf5 photos/ -o batch.h5 --model efficientnet_lite0
    """
    from ptmcli.sinks.progress import error_line, progress
    from ptmcli.tensorio.export_hdf5 import ExportOptions, parse_chunks
    from ptmcli.tensorio.export_hdf5 import export_hdf5 as run_export
    from ptmcli.tensorio.render import render_export

    if not sources:
        raise NoInputs("nothing to export", ["name tensor files, images or folders, or - for stdin"])
    options = ExportOptions(
        dataset=dataset, compression=compression.value, level=level, chunks=parse_chunks(chunks),
        overwrite=overwrite, append=append, model=model, fail_fast=fail_fast,
    )
    with progress(None, "exporting", stdout_free=True) as advance:
        result = run_export(sources, output, options, on_error=error_line, on_progress=advance, stdin=sys.stdin)
    render_export(result, fmt.value, sys.stdout)
    if result.skipped:
        error_line(f"note: skipped {len(result.skipped)} entries with no HDF5 form: "
                   + "; ".join(result.skipped[:5]) + (" ..." if len(result.skipped) > 5 else ""))
    raise typer.Exit(EXIT_SOME_FAILED if result.failed else EXIT_OK)
