"""The one run loop (pipeline/run.py) on its own: what every command that processes inputs gets."""

from __future__ import annotations

import os
import signal

import pytest

from ptmcli.pipeline.run import Loop, first_failure_cut, run
from ptmcli.pipeline.signals import Stopped
from ptmcli.results import BatchOutput, Classification


def ok(path: str) -> Classification:
    return Classification(path)


def bad(path: str) -> Classification:
    return Classification(path, error=f"{path}: broken")


class Recorder:
    """A sink that notes what it was given and what was done to it."""

    def __init__(self, log: list, name: str, fail_on: str | None = None, close_raises: bool = False):
        self.log, self.name, self.fail_on, self.close_raises = log, name, fail_on, close_raises

    def write(self, rows, batch):
        self.log.append((self.name, "write", list(rows), [r.path for r in batch.results]))
        if self.fail_on and any(r.path == self.fail_on for r in batch.results):
            return BatchOutput([bad(r.path) if r.path == self.fail_on else r for r in batch.results])
        return None

    def close(self):
        self.log.append((self.name, "close"))
        if self.close_raises:
            raise OSError("disk full")

    def abort(self):
        self.log.append((self.name, "abort"))


def batches(*groups):
    row = 0
    for group in groups:
        yield list(range(row, row + len(group))), BatchOutput(list(group))
        row += len(group)


def test_counts_failures_says_each_once_and_closes_in_order():
    log, said = [], []
    outcome = run(batches([ok("a"), bad("b")], [ok("c")]), [Recorder(log, "file"), Recorder(log, "report")],
                  Loop("testing", 3), report_error=said.append)
    assert said == ["b: broken"]
    assert (outcome.failed, outcome.stopped_by, outcome.cut, outcome.exit_code) == (1, None, False, 1)
    assert log[-2:] == [("file", "close"), ("report", "close")]


def test_fail_fast_cuts_at_the_first_failure_and_reads_no_further():
    log, said = [], []
    consumed = []

    def source():
        for rows, batch in batches([ok("a"), bad("b"), ok("c")], [ok("d")]):
            consumed.append(rows)
            yield rows, batch

    outcome = run(source(), [Recorder(log, "file")], Loop("testing", 4, fail_fast=True), report_error=said.append)
    assert log[0] == ("file", "write", [0, 1], ["a", "b"])
    assert consumed == [[0, 1, 2]] and said == ["b: broken"] and outcome.cut and outcome.exit_code == 1


def test_a_failure_while_writing_is_said_counted_and_seen_by_later_sinks():
    log, said = [], []
    outcome = run(batches([ok("a"), ok("b"), ok("c")]), [Recorder(log, "images", fail_on="b"),
                                                        Recorder(log, "report")],
                  Loop("testing", 3, fail_fast=True), report_error=said.append)
    assert said == ["b: broken"] and outcome.failed == 1
    # --fail-fast: the report sees the batch up to the failed write, not what came after it
    assert ("report", "write", [0, 1], ["a", "b"]) in log


def test_an_error_aborts_every_sink_and_goes_on():
    log = []

    def source():
        yield from batches([ok("a")])
        raise RuntimeError("backend died")

    with pytest.raises(RuntimeError, match="backend died"):
        run(source(), [Recorder(log, "file"), Recorder(log, "report")], Loop("testing", 2))
    assert log[-2:] == [("file", "abort"), ("report", "abort")]


def test_a_sink_that_cannot_close_aborts_those_after_it():
    log = []
    with pytest.raises(OSError, match="disk full"):
        run(batches([ok("a")]), [Recorder(log, "file", close_raises=True), Recorder(log, "report")],
            Loop("testing", 1))
    assert log[-2:] == [("file", "close"), ("report", "abort")]


def test_a_signal_finishes_the_batch_then_stops_with_128_plus_n():
    log = []

    def source():
        yield from batches([ok("a")])
        os.kill(os.getpid(), signal.SIGTERM)
        yield from batches([ok("b")])
        yield from batches([ok("c")])

    outcome = run(source(), [Recorder(log, "file")], Loop("testing", 3))
    assert outcome.exit_code == 143 and log[-1] == ("file", "close")
    assert [entry[3] for entry in log if entry[1] == "write"] == [["a"], ["b"]]


def test_a_signal_discards_an_atomic_output():
    log = []

    def source():
        os.kill(os.getpid(), signal.SIGTERM)
        yield from batches([ok("a")])

    with pytest.raises(Stopped):
        run(source(), [Recorder(log, "file")], Loop("testing", 1, discard_when_stopped=True))
    assert log[-1] == ("file", "abort")


def test_first_failure_cut():
    assert first_failure_cut([1, 2, 3], lambda n: n == 2) == ([1, 2], True)
    assert first_failure_cut([1, 3], lambda n: n == 2) == ([1, 3], False)
    assert first_failure_cut([], lambda n: True) == ([], False)
