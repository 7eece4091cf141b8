"""`--engine ray` (classify, zebrafy): the same job as a Ray Data `map_batches` actor pool.

Ray schedules everything: `ray.data.from_items` holds the inputs, an `ActorPoolStrategy` pool of
`JobActor`s (one backend per actor, one GPU each on CUDA) decodes and computes them,
and the driver streams results back in input order into the same writers and result files as
the local engine. ptm adds no scheduler of its own.

`ray.init()` joins the cluster named by `RAY_ADDRESS` (or started with `ray start`), else starts
one on this machine. Workers need ptm installed and must see the input files and the weights
file at the same paths as the driver (a shared file system), as usual for Ray batch inference.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from ptmcli.errors import PtmError, UsageProblem

if TYPE_CHECKING:
    from ptmcli.pipeline.engines.contract import Job
    from ptmcli.pipeline.inputs import InputItem
    from ptmcli.results import BatchOutput


def import_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise UsageProblem(
            "--engine ray needs Ray, which is not installed",
            ["pip install 'ptmcli[ray]'  (or pip install 'ray[data]')"],
        ) from None
    return ray


class JobActor:
    """One backend per actor, opened once from the job's recipe; called with batches of inputs."""

    def __init__(self, job: "Job"):
        if not Path(job.weights_path).is_file():
            raise FileNotFoundError(f"weights file {job.weights_path} is not on this Ray worker node "
                                    "(it needs a shared path)")
        self.job = job
        self.backend = job.open()

    def __call__(self, batch: dict) -> dict:
        from ptmcli.pipeline.inputs import InputItem

        times = batch["time"] if "time" in batch else [float("nan")] * len(batch["row"])
        work = [(int(row), InputItem(str(path), error=str(error) or None, video=bool(video),
                                     time=None if t != t else float(t)))  # NaN: not a frame
                for row, path, error, video, t in zip(batch["row"], batch["path"], batch["input_error"],
                                                      batch["video"], times)]
        return self.job.to_columns(self.backend, list(self.job.batches(self.backend, work)))


# Model batches per actor call: within a call the actor's decode threads read the next batch
# while the model computes this one; with one batch per call it decoded, then computed.
CALL_BATCHES = 4


def call_size(batch_size: int, inputs: int, actors: int) -> int:
    """Inputs per actor call: up to CALL_BATCHES model batches, fewer when that would leave
    actors idle (every actor gets a call), always a whole number of batches."""
    per_actor = -(-inputs // max(1, actors))
    return batch_size * max(1, min(CALL_BATCHES, -(-per_actor // batch_size)))


def _quiet() -> "_RayChatterToLog | None":
    return _RayChatterToLog() if os.environ.get("PTM_DEBUG", "") in ("", "0") else None


def _join(ray, quiet: "_RayChatterToLog | None") -> None:
    if not ray.is_initialized():
        ray.init(logging_level=logging.WARNING if quiet is None else logging.ERROR,
                 include_dashboard=False, log_to_driver=quiet is None)


def cluster_gpus() -> int:
    """The GPUs of the Ray cluster this run joins (or starts here): the hardware the actors will
    compute on, which device, precision and runtime are settled against (models/backends.py)."""
    ray = import_ray()
    quiet = _quiet()
    try:
        _join(ray, quiet)
        return int(ray.cluster_resources().get("GPU", 0))
    finally:
        if quiet is not None:
            quiet.restore()


class RayEngine:
    """Run a job on Ray; yields (rows, BatchOutput) in input order.

    Ray is started (or joined) here, before the first batch, so its signal handlers are in place
    before the caller installs its own. The job's choice was settled against the cluster's
    resources (`cluster_gpus`): "cuda" for actors that hold a GPU, "cpu" otherwise.
    """

    backend = None  # the backends live in the actors

    def __init__(self, job: "Job", actors: int | None = None):
        self.ray = import_ray()
        self._quiet = _quiet()
        self.actors = actors
        _join(self.ray, self._quiet)
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        resources = self.ray.cluster_resources()
        self.gpus, self.cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
        self.device = self._device(job.choice.device)
        self.job = job

    def _device(self, settled: str) -> str:
        device = settled.strip().lower()
        if device.startswith("cuda"):
            if not self.gpus:
                raise UsageProblem(f"--device {device}: the Ray cluster has no GPUs",
                                   ["use --device cpu, or add GPU nodes to the cluster"])
            return "cuda"  # Ray gives each actor its own GPU as cuda:0 (CUDA_VISIBLE_DEVICES)
        if device != "cpu":
            raise UsageProblem(f"--engine ray runs on CUDA or CPU nodes, not {device}", ["use --device cpu or cuda"])
        return device

    def close(self) -> None:
        if self._quiet is not None:
            self._quiet.restore()
            self._quiet = None

    def run(self, work: Sequence[tuple[int, "InputItem"]]) -> Iterator[tuple[list[int], "BatchOutput"]]:
        if not work:
            return (nothing for nothing in ())
        ray = self.ray
        on_gpu = self.device == "cuda"
        size = self.actors or (self.gpus if on_gpu else max(1, self.cpus // 2))

        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        dataset = ray.data.from_items(
            [{"row": row, "path": item.path, "input_error": item.error or "", "video": item.video,
              "time": float("nan") if item.time is None else item.time}
             for row, item in work]
        )
        computed = dataset.map_batches(
            JobActor,
            fn_constructor_kwargs=dict(job=self.job),
            batch_size=call_size(self.job.batch_size, len(work), size),
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=size),
            num_gpus=1 if on_gpu else 0,
            num_cpus=1,
        )
        return _stream(ray, computed, self.job, {row: item.path for row, item in work})


class _RayChatterToLog:
    """Ray's start-up and worker messages go to a log file, not to ptm's stderr.

    Ray writes from C++ (core_worker) straight to file descriptor 2 and from Python through
    logging handlers made at import, so the descriptor itself is pointed at a log file; ptm's own
    `sys.stderr` is a copy of the original descriptor and still reaches the terminal. The log is
    kept (and named) only when the run fails; `--debug` shows everything as it comes.
    """

    def __init__(self) -> None:
        import tempfile

        sys.stderr.flush()
        self.log = tempfile.NamedTemporaryFile(prefix="ptm-ray-", suffix=".log", delete=False)
        self._saved_fd = os.dup(2)
        self._saved_stderr = sys.stderr
        os.dup2(self.log.fileno(), 2)
        sys.stderr = os.fdopen(os.dup(self._saved_fd), "w", buffering=1, encoding=self._saved_stderr.encoding,
                               errors="backslashreplace")

    def restore(self, keep: bool = False) -> None:
        sys.stderr.flush()
        os.dup2(self._saved_fd, 2)
        os.close(self._saved_fd)
        sys.stderr.close()
        sys.stderr = self._saved_stderr
        self.log.close()
        if not keep:
            os.unlink(self.log.name)


def _stream(ray, computed, job: "Job", paths: dict) -> Iterator[tuple[list[int], "BatchOutput"]]:
    try:
        for batch in computed.iter_batches(batch_size=None, batch_format="numpy"):
            yield job.from_columns(batch, paths)
    except ray.exceptions.RayError as exc:
        first = str(exc).strip().splitlines()
        raise PtmError(
            f"the Ray engine failed: {first[-1] if first else type(exc).__name__}",
            ["rerun with --debug for Ray's traceback; workers need ptm installed and the inputs "
             "and weights at the same paths"],
        ) from exc
