"""Classifications on stdout: a Rich table on a terminal, or tsv, csv, json, jsonl for programs.

A sink like the result files (`write(rows, batch)`, `close()`, `abort()`): every format writes rows
as each batch finishes and flushes, so a run killed after 7,000 images has printed 7,000 results.
Plain formats carry no colour codes or box drawing.
"""

from __future__ import annotations

import json
import sys
from typing import Sequence, TextIO

from ptmcli.results import BatchOutput, Classification
from ptmcli.sinks.formats import csv_writer, pick
from ptmcli.sinks.records import PREDICTION_COLUMNS, json_record, prediction_fields


def pick_format(requested: str, stream: TextIO) -> str:
    """Classifications in a pipe are tsv rows: `auto` and `text` mean tsv here."""
    return pick(requested, stream, plain="tsv")


class ConsoleSink:
    """Streams classifications in one format. `with_errors` adds a row per failed input."""

    def __init__(self, fmt: str, stream: TextIO | None = None, with_errors: bool = False):
        self.stream = stream or sys.stdout
        self.fmt = pick_format(fmt, self.stream)
        self.with_errors = with_errors
        self._started = False
        self._csv = csv_writer(self.stream, self.fmt) if self.fmt in ("csv", "tsv") else None

    def write(self, rows: Sequence[int], batch: BatchOutput) -> None:
        shown = [r for r in batch.results if r.ok or self.with_errors]
        if self.fmt == "table":
            self._table(shown)
        elif self.fmt == "jsonl":
            for r in shown:
                self.stream.write(json.dumps(json_record(r), ensure_ascii=False) + "\n")
        elif self.fmt == "json":
            for r in shown:
                self.stream.write(("[\n  " if not self._started else ",\n  ")
                                  + json.dumps(json_record(r), ensure_ascii=False))
                self._started = True
        else:
            if not self._started:
                self._csv.writerow(PREDICTION_COLUMNS)
                self._started = True
            for r in shown:
                self._csv.writerows(prediction_fields(r))
        self.stream.flush()

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write("\n]\n" if self._started else "[]\n")
        elif self.fmt in ("csv", "tsv") and not self._started:
            self._csv.writerow(PREDICTION_COLUMNS)
        self.stream.flush()

    def abort(self) -> None:
        """Interrupted: what was printed stays printed; a JSON list is still closed, so it parses."""
        try:
            self.close()
        except (OSError, ValueError):
            pass  # stdout is gone (a closed pipe): nothing more to say there

    def _table(self, rows: Sequence[Classification]) -> None:
        if not rows:
            return
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(show_lines=False, header_style="bold")
        table.add_column("file", overflow="fold")
        table.add_column("#", justify="right")
        table.add_column("label")
        table.add_column("probability", justify="right")
        table.add_column("class", justify="right", style="dim")
        for r in rows:
            if not r.ok:
                table.add_row(Text(r.path), "", Text(f"error: {r.error}", style="red"), "", "")
                continue
            for p in r.predictions:
                table.add_row(Text(r.path) if p.rank == 1 else "", str(p.rank), Text(p.label),
                              f"{100 * p.probability:.2f}%", str(p.index), end_section=p is r.predictions[-1])
        Console(file=self.stream).print(table)


