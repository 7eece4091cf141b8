"""The one run loop: batches of results -> sinks, for every command that processes inputs.

classify, zebrafy and export-hdf5 each configure it with their batches (inputs already decoded
and computed, in input order) and their sinks; the loop owns what they share: SIGTERM and Ctrl-C
(`StopOnSignal`), `--fail-fast`, the progress bar, one `ptm:` line per failed input, the order in
which sinks are closed or aborted, and the exit code (0, 1 some inputs failed, 128+N signal N).

A sink is anything with `write(rows, batch)`, `close()` and `abort()`, where `batch.results` are
result objects with `ok` and `error`. `write` may return the batch as it now stands when writing
turned some of its results into failures (an image that could not be saved, a tensor file that
broke while being copied); the loop counts those, and later sinks see them as failures too.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence, TypeVar

from ptmcli.errors import EXIT_OK, EXIT_SOME_FAILED
from ptmcli.pipeline.signals import StopOnSignal, Stopped

T = TypeVar("T")


class Sink(Protocol):
    def write(self, rows: Sequence[int], batch: Any) -> Any:
        """Write one batch; return None, or the batch with the results that failed to be written
        turned into failures."""

    def close(self) -> None: ...

    def abort(self) -> None:
        """The run failed or was interrupted: leave what is written consistent, raise nothing."""


def first_failure_cut(items: Sequence[T], failed: Callable[[T], bool]) -> tuple[list[T], bool]:
    """`--fail-fast`, the one cut: the items up to and including the first failed one, and
    whether there was one. Nothing after a failure is computed, written or reported."""
    for i, item in enumerate(items):
        if failed(item):
            return list(items[:i + 1]), True
    return list(items), False


@dataclass(frozen=True)
class Outcome:
    failed: int  # inputs that failed
    stopped_by: int | None  # the signal that stopped the run, if one did
    cut: bool  # --fail-fast stopped the run at a failed input

    @property
    def exit_code(self) -> int:
        if self.stopped_by is not None:
            return 128 + self.stopped_by
        return EXIT_SOME_FAILED if self.failed else EXIT_OK


@dataclass(frozen=True)
class Loop:
    """How a command runs the loop: its progress label, its rules for stopping."""

    description: str
    total: int | None
    fail_fast: bool = False
    stdout_free: bool = True  # results go to files, so a bar on the terminal garbles nothing
    # A stopped run whose output is one atomic file keeps nothing: its sinks are aborted and
    # Stopped is raised (export-hdf5). Otherwise the sinks are closed over the work done.
    discard_when_stopped: bool = False


def run(batches: Iterable[tuple[Sequence[int], Any]], sinks: Sequence[Sink], loop: Loop,
        stop: StopOnSignal | None = None, report_error: Callable[[str], None] | None = None) -> Outcome:
    """Drive `batches` into `sinks` until done, stopped or cut; close or abort the sinks, in order."""
    from ptmcli.sinks.progress import error_line, progress

    report_error = report_error or error_line
    stop = stop or StopOnSignal()
    failed, cut = 0, False
    with stop, _closing(batches):
        try:
            with progress(loop.total, loop.description, stdout_free=loop.stdout_free) as advance:
                for rows, batch in batches:
                    rows, batch, cut = _cut(rows, batch, loop.fail_fast)
                    failed += _report(batch.results, report_error)  # before the results they explain
                    for sink in sinks:
                        written = sink.write(rows, batch)
                        if written is not None:  # writing failed some results: they are said now
                            failed += _report(written.results, report_error, already=batch.results)
                            batch = written
                        if loop.fail_fast:
                            rows, batch, cut = _cut(rows, batch, True)
                    advance(len(rows))
                    if stop.requested or cut:
                        break
            if stop.requested and loop.discard_when_stopped:
                raise Stopped(stop.signum)
        except BaseException:
            for sink in sinks:
                sink.abort()
            raise
        _close(sinks)
    return Outcome(failed, stop.signum, cut)


def _report(results: Sequence[Any], report_error: Callable[[str], None], already: Sequence[Any] = ()) -> int:
    """One line per failed result not failed `already`; returns how many."""
    count = 0
    for i, result in enumerate(results):
        if not result.ok and (i >= len(already) or already[i].ok):
            report_error(result.error)
            count += 1
    return count


def _cut(rows: Sequence[int], batch: Any, fail_fast: bool) -> tuple[Sequence[int], Any, bool]:
    if not fail_fast:
        return rows, batch, False
    kept, cut = first_failure_cut(batch.results, lambda result: not result.ok)
    if len(kept) == len(batch.results):
        return rows, batch, cut
    return rows[:len(kept)], batch.head(len(kept)), cut


def _close(sinks: Sequence[Sink]) -> None:
    """Close in order; when one cannot close, the later ones are aborted (a report of what was
    done is still worth having) and the error goes on."""
    for i, sink in enumerate(sinks):
        try:
            sink.close()
        except BaseException:
            for later in sinks[i + 1:]:
                later.abort()
            raise


@contextmanager
def _closing(batches: Any) -> Iterator[None]:
    """A generator of batches is closed however the loop ends: its decode threads stop."""
    try:
        yield
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
