"""The local engine: the backend loads in this process, decoding runs in background threads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Sequence

if TYPE_CHECKING:
    from ptmcli.pipeline.engines.contract import Job
    from ptmcli.pipeline.inputs import InputItem
    from ptmcli.results import BatchOutput


class LocalEngine:
    def __init__(self, job: "Job", backend=None):
        self.job = job
        self.backend = backend if backend is not None else job.open()
        self.device = str(self.backend.device)

    def close(self) -> None:
        pass

    def run(self, work: Sequence[tuple[int, "InputItem"]]) -> Iterator[tuple[list[int], "BatchOutput"]]:
        return self.job.batches(self.backend, work)
