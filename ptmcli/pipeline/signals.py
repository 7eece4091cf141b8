"""One way to stop a run that writes: SIGTERM and Ctrl-C finish the work in flight, then stop.

Slurm's time limit, `kill` and Kubernetes send SIGTERM; people press Ctrl-C. Either way the batch
being computed is finished and written, result files are left consistent, and the command exits
128 + the signal number (143, 130). A second Ctrl-C stops at once (KeyboardInterrupt), for a
person who does not want to wait. The previous handlers are put back on exit, so in-process
callers (tests, embedding programs) keep theirs.

A run whose output is one atomic file (export-hdf5, merge, a weights download) stops by raising
`Stopped`, at `stop.check()` between units of work or, with `at_once=True`, straight from the
handler, as Ctrl-C's KeyboardInterrupt does: the temporary file is removed on the way out, the
destination is left as it was, and `ptmcli.cli.main` exits 128 + the signal number. Without this,
SIGTERM's default action kills the process before any cleanup runs and leaves the temporary file.
"""

from __future__ import annotations

import signal


class Stopped(BaseException):
    """A run stopped by a signal. A BaseException, like KeyboardInterrupt, so that handlers of
    ordinary errors (`except Exception`) do not turn it into one failed input."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopOnSignal:
    """`with StopOnSignal() as stop:` ... check `stop.requested` between units of work, or call
    `stop.check()` to raise Stopped there; `StopOnSignal(at_once=True)` raises it in the handler."""

    def __init__(self, at_once: bool = False) -> None:
        self.signum: int | None = None
        self.at_once = at_once
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int | None:
        return None if self.signum is None else 128 + self.signum

    def _handle(self, signum, _frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        if self.at_once:
            raise Stopped(signum)

    def check(self) -> None:
        """Raise Stopped if a signal came; call it where stopping leaves nothing half done."""
        if self.signum is not None:
            raise Stopped(self.signum)

    def __enter__(self) -> StopOnSignal:
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (embedded use): leave signals alone
                pass
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
