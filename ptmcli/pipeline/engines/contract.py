"""What an engine runs (a Job) and what it is (an Engine): the contract both engines keep."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Protocol, Sequence

if TYPE_CHECKING:
    from ptmcli.pipeline.inputs import InputItem
    from ptmcli.results import BatchOutput


class Job(Protocol):
    device: str  # as asked for ("auto", "cpu", "cuda:1")
    weights_path: str
    batch_size: int  # inputs per batch handed to an actor

    def on_device(self, device: str) -> "Job": ...

    def open(self) -> Any:
        """The backend, loaded (in this process, or in a Ray actor)."""

    def batches(self, backend: Any, work: Sequence[tuple[int, "InputItem"]]
                ) -> Iterator[tuple[list[int], "BatchOutput"]]: ...

    def to_columns(self, backend: Any, outputs: list[tuple[list[int], "BatchOutput"]]) -> dict: ...

    def from_columns(self, columns: dict, paths: dict[int, str]) -> tuple[list[int], "BatchOutput"]: ...


class Engine(Protocol):
    device: str  # where forward passes run, as torch names it ("cpu", "cuda:0"; "cuda" on Ray)
    backend: Any  # the backend loaded here; None where the work runs elsewhere (Ray)

    def close(self) -> None:
        """Give back what the engine holds (Ray's redirected output); the run is over."""

    def run(self, work: Sequence[tuple[int, "InputItem"]]) -> Iterator[tuple[list[int], "BatchOutput"]]: ...
