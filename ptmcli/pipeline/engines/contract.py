"""What an engine runs (a Job) and what it is (an Engine): the contract both engines keep."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Protocol, Sequence

if TYPE_CHECKING:
    from ptmcli.pipeline.inputs import InputItem
    from ptmcli.results import BatchOutput


class Job(Protocol):
    device: str  # as asked for ("auto", "cpu", "cuda:1")
    choice: Any  # models/backends.BackendChoice: its `device` is settled ("cuda" on Ray's GPUs)
    weights_path: str
    batch_size: int  # inputs per batch handed to an actor

    def on_device(self, device: str) -> "Job": ...

    def open(self) -> Any:
        """The backend, loaded (in this process, or in a Ray actor)."""

    def batches(self, backend: Any, work: Sequence[tuple[int, "InputItem"]]
                ) -> Iterator[tuple[list[int], "BatchOutput"]]: ...

    def to_columns(self, backend: Any, outputs: list[tuple[list[int], "BatchOutput"]]) -> dict: ...

    def from_columns(self, columns: dict, paths: dict[int, str]) -> tuple[list[int], "BatchOutput"]: ...


class ChoiceJob:
    """What jobs built on a `choice` (models/backends.BackendChoice: the spec, its weights file,
    device, precision, runtime) share: the device asked for, and moving to another."""

    choice: Any

    @property
    def device(self) -> str:
        return self.choice.asked_device

    @property
    def weights_path(self) -> str:
        return str(self.choice.weights_path)

    def open(self) -> Any:
        """The backend, loaded (in this process, or in a Ray actor) as the driver chose it."""
        from ptmcli.models.backends import load_backend

        return load_backend(self.choice)

    def on_device(self, device: str):
        from dataclasses import replace

        return replace(self, choice=replace(self.choice, device=device))

    def from_columns(self, columns: dict, paths: dict[int, str]) -> tuple[list[int], "BatchOutput"]:
        """Rows that came back from elsewhere (a Ray actor's columns) as results again."""
        from ptmcli.results import BatchOutput

        rows = [int(r) for r in columns["row"]]
        results = [self.failed(paths[row], str(columns["error"][i])) if str(columns["error"][i])
                   else self.result_from(paths[row], columns, i) for i, row in enumerate(rows)]
        return rows, BatchOutput(results, columns.get("probabilities"), columns.get("features"))

    def failed(self, path: str, error: str) -> Any: ...

    def result_from(self, path: str, columns: dict, i: int) -> Any:
        """Row `i` of `columns` as the job's result object."""


class Engine(Protocol):
    device: str  # where forward passes run, as torch names it ("cpu", "cuda:0"; "cuda" on Ray)
    backend: Any  # the backend loaded here; None where the work runs elsewhere (Ray)

    def close(self) -> None:
        """Give back what the engine holds (Ray's redirected output); the run is over."""

    def run(self, work: Sequence[tuple[int, "InputItem"]]) -> Iterator[tuple[list[int], "BatchOutput"]]: ...
