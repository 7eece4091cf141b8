"""One way to stop a run that writes: SIGTERM and Ctrl-C finish the work in flight, then stop.

Slurm's time limit, `kill` and Kubernetes send SIGTERM; people press Ctrl-C. Either way the batch
being computed is finished and written, result files are left consistent, and the command exits
128 + the signal number (143, 130). A second Ctrl-C stops at once (KeyboardInterrupt), for a
person who does not want to wait. The previous handlers are put back on exit, so in-process
callers (tests, embedding programs) keep theirs.
"""

from __future__ import annotations

import signal


class StopOnSignal:
    """`with StopOnSignal() as stop:` ... check `stop.requested` between units of work."""

    def __init__(self) -> None:
        self.signum: int | None = None
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
