"""ptm models: the classifiers ptm can run, read from the registry (no torch, no torchvision)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from ptmcli.commands.options import Format, FormatOpt


def models(
    pattern: Annotated[Optional[str], typer.Argument(help="Only names matching this glob, e.g. 'resnet*'.")] = None,
    fmt: FormatOpt = Format.auto,
) -> None:
    """List the classifiers ptm can run: size, ImageNet accuracy, and whether weights are here.

    Examples:

      ptm models

      ptm models 'efficientnet*' --format json
    """
    from ptmcli.models.registry import CLASSIFY, list_models
    from ptmcli.models.weights import find
    from ptmcli.sinks.formats import Column, number_text, pick, write_listing

    records = []
    for spec in list_models(pattern, task=CLASSIFY):
        path = find(spec.weights)
        records.append({  # keys as _KEYS
            "name": spec.name,
            "params_m": round(spec.num_params / 1e6, 2) if spec.num_params else None,
            "gflops": spec.gflops,
            "acc1": spec.acc1,
            "acc5": spec.acc5,
            "input": spec.preprocess.crop,
            "weights": spec.weights.filename,
            "present": path is not None,
            "path": str(path) if path else None,
        })
    if pick(fmt, sys.stdout) != "table":
        write_listing(records, [Column(key) for key in _KEYS], fmt, sys.stdout)
        return
    columns = [Column("name", "model"), Column("params_m", "params (M)", right=True),
               Column("gflops", "GFLOPs", right=True), Column("acc1", "acc@1", right=True),
               Column("acc5", "acc@5", right=True), Column("input", right=True), Column("present", "weights here")]

    def table_cells(record: dict) -> list[str]:
        def cell(key: str) -> str:
            return "" if record[key] is None else number_text(record[key])

        return [escape(record["name"]), cell("params_m"), cell("gflops"), cell("acc1"), cell("acc5"),
                str(record["input"]), "[green]yes[/green]" if record["present"] else "[dim]no[/dim]"]

    from rich.markup import escape

    write_listing(records, columns, "table", sys.stdout, table_cells=table_cells)


_KEYS = ("name", "params_m", "gflops", "acc1", "acc5", "input", "weights", "present", "path")
