"""Where the work runs: in this process (`local`) or on a Ray cluster (`ray`).

Both take the work as (row, input) pairs and yield (rows, BatchOutput) in input order as batches
finish, so the same sinks serve both. `--runtime` (what computes a forward pass) is independent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Protocol, Sequence

from ptmcli.errors import UsageProblem

if TYPE_CHECKING:
    from ptmcli.models.backends import BackendChoice
    from ptmcli.pipeline.inputs import InputItem
    from ptmcli.results import BatchOutput

ENGINES = ("local", "ray")


class Engine(Protocol):
    categories: list[str]
    device: str  # where forward passes run, as torch names it ("cpu", "cuda:0"; "cuda" on Ray)

    def feature_dim(self) -> int: ...

    def close(self) -> None:
        """Give back what the engine holds (Ray's redirected output); the run is over."""

    def run(self, work: Sequence[tuple[int, "InputItem"]], *, top: int, batch_size: int, pad_to: int,
            probabilities: bool, features: bool, fail_fast: bool) -> Iterator[tuple[list[int], "BatchOutput"]]: ...


def check_engine(name: str, actors: int | None) -> None:
    """Refuse a bad --engine before any work (Ray missing included)."""
    if name not in ENGINES:
        raise UsageProblem(f"--engine {name!r} is not an engine", [f"use one of: {', '.join(ENGINES)}"])
    if actors is not None and name != "ray":
        raise UsageProblem("--actors is for --engine ray")
    if name == "ray":
        from ptmcli.pipeline.engines.ray_engine import import_ray

        import_ray()


def open_engine(name: str, choice: "BackendChoice", actors: int | None = None, backend=None) -> Engine:
    """The engine `name`; `backend` is a classifier already loaded for `choice` (the local engine
    uses it rather than loading a second copy)."""
    if name == "ray":
        from ptmcli.pipeline.engines.ray_engine import RayEngine

        return RayEngine(choice, actors)
    from ptmcli.pipeline.engines.local import LocalEngine

    return LocalEngine(choice, backend)
