"""Classifications on stdout: a Rich table on a terminal, or tsv, csv, json, jsonl for programs.

A sink like the result files (`write(rows, batch)`, `close()`, `abort()`): every format writes rows
as each batch finishes and flushes, so a run killed after 7,000 images has printed 7,000 results.
Plain formats carry no colour codes or box drawing.
"""

from __future__ import annotations

import sys
from typing import Sequence, TextIO

from ptmcli.results import BatchOutput, Classification
from ptmcli.sinks.formats import Column, RowStream, pick, rich_table
from ptmcli.sinks.records import json_record, prediction_columns, prediction_fields


def pick_format(requested: str, stream: TextIO) -> str:
    """Classifications in a pipe are tsv rows: `auto` and `text` mean tsv here."""
    return pick(requested, stream, plain="tsv")


class ConsoleSink:
    """Streams classifications in one format. `with_errors` adds a row per failed input."""

    def __init__(self, fmt: str, stream: TextIO | None = None, with_errors: bool = False, times: bool = False):
        self.stream = stream or sys.stdout
        self.fmt = pick_format(fmt, self.stream)
        self.with_errors = with_errors
        self.times = times  # the run has video frames: csv/tsv and the table get a time column
        self._out = RowStream(self.fmt, self.stream, prediction_columns(times))

    def write(self, rows: Sequence[int], batch: BatchOutput) -> None:
        shown = [r for r in batch.results if r.ok or self.with_errors]
        if self.fmt == "table":
            if shown:
                self._out.table(_table(shown, self.times))
        elif self.fmt in ("json", "jsonl"):
            self._out.records(json_record(r) for r in shown)
        else:
            self._out.rows(fields for r in shown for fields in prediction_fields(r, self.times))

    def close(self) -> None:
        self._out.close()

    def abort(self) -> None:
        """Interrupted: what was printed stays printed; a JSON list is still closed, so it parses."""
        try:
            self.close()
        except (OSError, ValueError):
            pass  # stdout is gone (a closed pipe): nothing more to say there


_COLUMNS = (Column("file"), Column("#", right=True, overflow="ellipsis"), Column("label", overflow="ellipsis"),
            Column("probability", right=True, overflow="ellipsis"),
            Column("class", right=True, overflow="ellipsis", style="dim"))


def _table(rows: Sequence[Classification], times: bool = False):
    from rich.text import Text

    columns = (_COLUMNS[0], Column("time", right=True), *_COLUMNS[1:]) if times else _COLUMNS
    table = rich_table(columns, show_lines=False)
    for r in rows:
        named = [Text(r.path), "" if r.time is None else f"{r.time:.3f} s"] if times else [Text(r.path)]
        if not r.ok:
            table.add_row(*named, "", Text(f"error: {r.error}", style="red"), "", "")
            continue
        for p in r.predictions:
            table.add_row(*(named if p.rank == 1 else [""] * len(named)), str(p.rank), Text(p.label),
                          f"{100 * p.probability:.2f}%", str(p.index), end_section=p is r.predictions[-1])
    return table
