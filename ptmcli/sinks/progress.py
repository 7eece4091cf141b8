"""What a run says on stderr while it works: one line per failed input, notes, and progress bars.

stdout carries only results. Bars are drawn only on a terminal, never into a pipe or a log file.
"""

from __future__ import annotations

import re
import sys
from contextlib import contextmanager
from typing import Iterator, TextIO

from ptmcli.sinks.formats import isatty

# Line breaks and other control characters, as a message may carry them from a file's bytes (an
# .npz member named "DF\r\n\x1a\ntran.npy", fuzz/README.md) or a path: written escaped.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """`text` with each control character escaped as Python writes it (`\\r`, `\\x1a`)."""
    return _CONTROL.sub(lambda found: repr(found.group())[1:-1], text)


def error_line(message: str, stream: TextIO | None = None) -> None:
    """One line on stderr per failed input: `ptm: <path>: <reason>`, whatever the path or the
    reason hold."""
    stream = stream or sys.stderr
    stream.write(f"ptm: {one_line(message)}\n")
    stream.flush()


def note_line(message: str, stream: TextIO | None = None) -> None:
    """One line on stderr about what ptm is doing on the user's behalf: `ptm: note: <message>`."""
    error_line(f"note: {message}", stream)


@contextmanager
def progress(total: int | None, description: str, stream: TextIO | None = None,
             stdout_free: bool = False) -> Iterator:
    """A Rich progress bar on stderr for long runs; else a no-op.

    Shown only when stderr is a terminal and results are not being printed to that terminal too
    (`stdout_free`, or stdout redirected): a live bar and a table on one screen garble each other,
    and results scrolling by already show progress.
    """
    stream = stream or sys.stderr
    if not isatty(stream) or (total is not None and total < 2) or (isatty(sys.stdout) and not stdout_free):
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
    if not isatty(stream):
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
