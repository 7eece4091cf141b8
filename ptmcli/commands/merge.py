"""ptm merge: the result files of `--shard K/N` runs -> one file."""

from __future__ import annotations

from typing import Annotated

import typer

from ptmcli.errors import EXIT_OK


def merge(
    sources: Annotated[list[str], typer.Argument(help="Result files of the shards (.h5, .jsonl, .csv or .tsv).", show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", help="The merged file (same kind as the sources).", show_default=False)],
    partial: Annotated[bool, typer.Option("--partial", help="Merge even if shards are missing or unfinished (their rows are left out or pending).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace --output if it exists.")] = False,
) -> None:
    """Join the result files of `ptm classify --shard K/N` runs into one file, in input order.

    HDF5 rows are copied (not linked as a virtual dataset): the merged file stands alone and equals the file one unsharded run writes.

    Refused: files made with other settings or inputs, missing or unfinished shards (unless --partial).

    Examples:

      ptm merge shard-*.h5 -o all.h5

      ptm merge part-*.jsonl -o all.jsonl
    """
    from pathlib import Path

    from ptmcli.pipeline.signals import StopOnSignal
    from ptmcli.sinks.merge import merge_results

    # The merged file is written whole or not at all: a signal stops at once and the temporary
    # file is removed on the way out (SIGTERM's default action would leave it).
    with StopOnSignal(at_once=True):
        merge_results([Path(s) for s in sources], Path(output), partial=partial, force=force)
    raise typer.Exit(EXIT_OK)
