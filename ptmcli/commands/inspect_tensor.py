"""ptm inspect-tensor: chapter 3's tensor anatomy (size, stride, storage offset), for files on disk."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand

from ptmcli.commands.options import FormatOpt
from ptmcli.errors import EXIT_OK, EXIT_SOME_FAILED
from ptmcli.sinks.formats import Format


class ViewOrderCommand(TyperCommand):
    """Reads --select/--transpose/--view/--contiguous in the order typed (see tensorio.views.split_view_args)."""

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
    fmt: FormatOpt = Format.auto,
) -> None:
    """Show what a tensor is underneath: shape, dtype, stride, storage offset, statistics.

    A file with many tensors (a state dict, .npz, safetensors, an HDF5 group) gets a table of entries with totals and which entries share one storage. An entry that cannot be read is listed, named on stderr, and makes the exit code 1.

    --select, --transpose, --view and --contiguous apply in the order typed and show each step's size, offset and stride, as chapter 3's exercises do by hand.

    Examples:

      ptm inspect-tensor ourpoints.t

      ptm inspect-tensor resnet101.pth layer1.0.conv1.weight --format json

      ptm inspect-tensor nine.pt --view 3 3 --select '1:, 1:'

      ptm inspect-tensor data.h5 group/dataset --select '-2:'
    """
    from ptmcli.sinks.progress import error_line
    from ptmcli.tensorio.render import render_inspect
    from ptmcli.tensorio.summary import inspect_file

    # The view options were taken out in typed order by ViewOrderCommand; their parameters
    # above exist for --help only.
    ops = ctx.meta.get("ptm_view_ops", [])
    summary = inspect_file(file, key, ops, stats=stats, preview_per_dim=preview)
    render_inspect(summary, fmt, sys.stdout)
    refused = summary.refused if summary.kind == "container" else ()
    for name, why in refused:
        error_line(f"{summary.file}: {name}: {why}")
    raise typer.Exit(EXIT_SOME_FAILED if refused else EXIT_OK)
