"""Where the work runs: in this process (`local`) or on a Ray cluster (`ray`).

An engine runs a *job*: a picklable recipe that opens a backend (`open()`), and what to compute
with it (`batches(backend, work)`), plus, for Ray, how batches travel as NumPy columns
(`to_columns`, `from_columns`). Classification (`pipeline/classification.ClassifyJob`) and
translation (`pipeline/translation.ZebrafyJob`) are jobs; both engines take the work as
(row, input) pairs and yield (rows, BatchOutput) in input order, so the same sinks and the same
run loop serve both. `--runtime` (what computes a forward pass) is independent.
"""

from __future__ import annotations

from ptmcli.errors import UsageProblem
from ptmcli.pipeline.engines.contract import Engine, Job

__all__ = ["ENGINES", "Engine", "Job", "check_engine", "open_engine"]

ENGINES = ("local", "ray")


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
