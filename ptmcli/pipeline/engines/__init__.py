"""Where the work runs: in this process (`local`) or on a Ray cluster (`ray`).

An engine runs a *job*: a picklable recipe that opens a backend (`open()`), and what to compute
with it (`batches(backend, work)`), plus, for Ray, how batches travel as NumPy columns
(`to_columns`, `from_columns`). Classification (`pipeline/classification.ClassifyJob`) and
translation (`pipeline/translation.ZebrafyJob`) are jobs; both engines take the work as
(row, input) pairs and yield (rows, BatchOutput) in input order, so the same sinks and the same
run loop serve both. `--runtime` (what computes a forward pass) is independent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Protocol, Sequence

from ptmcli.errors import UsageProblem

if TYPE_CHECKING:
    from ptmcli.pipeline.inputs import InputItem
    from ptmcli.results import BatchOutput

ENGINES = ("local", "ray")


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


def check_engine(name: str, actors: int | None) -> None:
    """Refuse a bad --engine before any work (Ray missing included)."""
    if name not in ENGINES:
        raise UsageProblem(f"--engine {name!r} is not an engine", [f"use one of: {', '.join(ENGINES)}"])
    if actors is not None and name != "ray":
        raise UsageProblem("--actors is for --engine ray")
    if name == "ray":
        from ptmcli.pipeline.engines.ray_engine import import_ray

        import_ray()


def open_engine(name: str, job: Job, actors: int | None = None, backend=None) -> Engine:
    """The engine `name` for `job`; `backend` is one already opened for it (the local engine uses
    it rather than loading a second copy)."""
    if name == "ray":
        from ptmcli.pipeline.engines.ray_engine import RayEngine

        return RayEngine(job, actors)
    from ptmcli.pipeline.engines.local import LocalEngine

    return LocalEngine(job, backend)
