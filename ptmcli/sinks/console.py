"""Results -> Rich table | json | jsonl | csv | tsv on stdout; errors and progress on stderr.

Every format writes rows as each batch finishes and flushes, so a run killed after 7,000 images
has printed 7,000 results. Plain formats carry no colour codes or box drawing.
"""

from __future__ import annotations

import csv
import json
import sys
from contextlib import contextmanager
from typing import Iterator, Sequence, TextIO

from ptmcli.results import Classification

FORMATS = ("auto", "table", "json", "jsonl", "csv", "tsv")
TEXT_COLUMNS = ("path", "status", "rank", "index", "label", "probability", "error")


def pick_format(requested: str, stream: TextIO) -> str:
    """`auto`: a table for people at a terminal, tsv for pipes and files."""
    if requested != "auto":
        return requested
    return "table" if _isatty(stream) else "tsv"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _round(p: float) -> float:
    return float(f"{p:.6g}")


class ClassificationWriter:
    """Streams classifications in one format. `with_errors` adds a row per failed input."""

    def __init__(self, fmt: str, stream: TextIO | None = None, with_errors: bool = False):
        self.stream = stream or sys.stdout
        self.fmt = pick_format(fmt, self.stream)
        self.with_errors = with_errors
        self._started = False
        self._csv = None
        if self.fmt in ("csv", "tsv"):
            self._csv = csv.writer(self.stream, dialect="excel" if self.fmt == "csv" else "excel-tab",
                                   lineterminator="\n")

    def write(self, batch: Sequence[Classification]) -> None:
        rows = [r for r in batch if r.ok or self.with_errors]
        if self.fmt == "table":
            self._table(rows)
        elif self.fmt == "jsonl":
            for r in rows:
                self.stream.write(json.dumps(_rounded(r.to_dict()), ensure_ascii=False) + "\n")
        elif self.fmt == "json":
            for r in rows:
                self.stream.write(("[\n  " if not self._started else ",\n  ")
                                  + json.dumps(_rounded(r.to_dict()), ensure_ascii=False))
                self._started = True
        else:
            if not self._started:
                self._csv.writerow(TEXT_COLUMNS)
                self._started = True
            for r in rows:
                if not r.ok:
                    self._csv.writerow([r.path, "error", "", "", "", "", r.error])
                for p in r.predictions:
                    self._csv.writerow([r.path, "ok", p.rank, p.index, p.label, f"{p.probability:.6f}", ""])
        self.stream.flush()

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write("\n]\n" if self._started else "[]\n")
        elif self.fmt in ("csv", "tsv") and not self._started:
            self._csv.writerow(TEXT_COLUMNS)
        self.stream.flush()

    def _table(self, rows: Sequence[Classification]) -> None:
        if not rows:
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(show_lines=False, header_style="bold")
        table.add_column("file", overflow="fold")
        table.add_column("#", justify="right")
        table.add_column("label")
        table.add_column("probability", justify="right")
        table.add_column("class", justify="right", style="dim")
        for r in rows:
            if not r.ok:
                table.add_row(r.path, "", f"[red]error: {r.error}[/red]", "", "")
                continue
            for p in r.predictions:
                table.add_row(r.path if p.rank == 1 else "", str(p.rank), p.label,
                              f"{100 * p.probability:.2f}%", str(p.index), end_section=p is r.predictions[-1])
        Console(file=self.stream).print(table)


def _rounded(d: dict) -> dict:
    if "predictions" in d:
        d["predictions"] = [{**p, "probability": _round(p["probability"])} for p in d["predictions"]]
    return d


def error_line(message: str, stream: TextIO | None = None) -> None:
    """One line on stderr per failed input: `ptm: <path>: <reason>`."""
    stream = stream or sys.stderr
    stream.write(f"ptm: {message}\n")
    stream.flush()


@contextmanager
def progress(total: int | None, description: str, stream: TextIO | None = None,
             stdout_free: bool = False) -> Iterator:
    """A Rich progress bar on stderr for long runs; else a no-op.

    Shown only when stderr is a terminal and results are not being printed to that terminal too
    (`stdout_free`, or stdout redirected): a live bar and a table on one screen garble each other,
    and results scrolling by already show progress.
    """
    stream = stream or sys.stderr
    if not _isatty(stream) or (total is not None and total < 2) or (_isatty(sys.stdout) and not stdout_free):
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=Console(file=stream), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


@contextmanager
def transfer_progress(description: str, stream: TextIO | None = None) -> Iterator:
    """A download bar on stderr (terminal only), started by the first byte: finding a file that is
    already here shows nothing. The callback takes (bytes so far, total or None)."""
    stream = stream or sys.stderr
    if not _isatty(stream):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   console=Console(file=stream), transient=True)
    task = None

    def update(done: int, total: int | None) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(description, total=total)
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if task is not None:
            bar.stop()

