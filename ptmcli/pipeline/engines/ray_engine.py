"""`ptm classify --engine ray`: the same classifier as a Ray Data `map_batches` actor pool.

Ray schedules everything: `ray.data.from_items` holds the inputs, an `ActorPoolStrategy` pool of
`ClassifyActor`s (one model load per actor, one GPU each on CUDA) decodes and classifies them,
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
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from ptmcli.errors import PtmError, UsageProblem
from ptmcli.models.backends import BackendChoice, load_backend
from ptmcli.pipeline.classification import classify_batches

if TYPE_CHECKING:
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


class ClassifyActor:
    """One model per actor, loaded once; called with batches of input paths."""

    def __init__(self, choice: BackendChoice, top: int, batch_size: int, pad_to: int,
                 probabilities: bool, features: bool, fail_fast: bool):
        if not Path(choice.weights_path).is_file():
            raise FileNotFoundError(f"weights file {choice.weights_path} is not on this Ray worker node "
                                    "(it needs a shared path)")
        self.classifier = load_backend(choice)
        self.options = dict(top=top, batch_size=batch_size, pad_to=pad_to, probabilities=probabilities,
                            features=features, fail_fast=fail_fast)

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        from ptmcli.pipeline.inputs import InputItem

        work = [(int(row), InputItem(str(path), error=str(error) or None))
                for row, path, error in zip(batch["row"], batch["path"], batch["input_error"])]
        outputs = list(classify_batches(self.classifier, work, **self.options))
        rows = [row for local_rows, _ in outputs for row in local_rows]
        results = [r for _, output in outputs for r in output.results]
        k = min(self.options["top"], len(self.classifier.categories))
        top_index = np.full((len(results), k), -1, dtype=np.int32)
        top_probability = np.full((len(results), k), np.nan, dtype=np.float32)
        for i, result in enumerate(results):
            for j, p in enumerate(result.predictions):
                top_index[i, j], top_probability[i, j] = p.index, p.probability
        columns = {
            "row": np.asarray(rows, dtype=np.int64),
            "error": np.array([r.error or "" for r in results], dtype=object),
            "top_index": top_index,
            "top_probability": top_probability,
        }
        if self.options["probabilities"]:
            columns["probabilities"] = np.concatenate([o.probabilities for _, o in outputs])
        if self.options["features"]:
            columns["features"] = np.concatenate([o.features for _, o in outputs])
        return columns


class RayEngine:
    """Classify on Ray; yields (rows, BatchOutput) in input order.

    Ray is started (or joined) here, before the first batch, so its signal handlers are in place
    before the caller installs its own.
    """

    def __init__(self, choice: BackendChoice, actors: int | None = None):
        self.ray = import_ray()
        self._quiet = _RayChatterToLog() if os.environ.get("PTM_DEBUG", "") in ("", "0") else None
        self.choice = choice
        self.actors = actors
        self.spec = choice.spec
        self.categories = self.spec.categories()
        if not self.ray.is_initialized():
            self.ray.init(logging_level=logging.WARNING if self._quiet is None else logging.ERROR,
                          include_dashboard=False, log_to_driver=self._quiet is None)
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        resources = self.ray.cluster_resources()
        self.gpus, self.cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
        device = choice.asked_device.strip().lower()
        if device == "auto":
            device = "cuda" if self.gpus else "cpu"
        if device.startswith("cuda"):
            if not self.gpus:
                raise UsageProblem(f"--device {device}: the Ray cluster has no GPUs",
                                   ["use --device cpu, or add GPU nodes to the cluster"])
            device = "cuda"  # Ray gives each actor its own GPU as cuda:0 (CUDA_VISIBLE_DEVICES)
        self.device = device

    def close(self) -> None:
        if self._quiet is not None:
            self._quiet.restore()
            self._quiet = None

    def feature_dim(self) -> int:
        from ptmcli.models.heads import feature_dim

        return feature_dim(self.spec)

    def run(self, work: Sequence[tuple[int, "InputItem"]], *, top: int, batch_size: int, pad_to: int,
            probabilities: bool, features: bool, fail_fast: bool) -> Iterator[tuple[list[int], "BatchOutput"]]:
        if not work:
            return (nothing for nothing in ())
        ray = self.ray
        on_gpu = self.device == "cuda"
        size = self.actors or (self.gpus if on_gpu else max(1, self.cpus // 2))

        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        dataset = ray.data.from_items(
            [{"row": row, "path": item.path, "input_error": item.error or ""} for row, item in work]
        )
        classified = dataset.map_batches(
            ClassifyActor,
            fn_constructor_kwargs=dict(choice=replace(self.choice, device=self.device), top=top, batch_size=batch_size,
                                       pad_to=pad_to, probabilities=probabilities, features=features,
                                       fail_fast=fail_fast),
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=size),
            num_gpus=1 if on_gpu else 0,
            num_cpus=1,
        )
        return _stream(ray, classified, {row: item.path for row, item in work}, self.categories)


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


def _stream(ray, classified, paths: dict, categories: Sequence[str]) -> Iterator[tuple[list[int], "BatchOutput"]]:
    from ptmcli.results import BatchOutput, Classification, Prediction

    try:
        for batch in classified.iter_batches(batch_size=None, batch_format="numpy"):
            rows = [int(r) for r in batch["row"]]
            results = []
            for i, row in enumerate(rows):
                error = str(batch["error"][i])
                if error:
                    results.append(Classification(paths[row], error=error))
                    continue
                predictions = tuple(
                    Prediction(rank=j + 1, index=int(index), label=categories[int(index)],
                               probability=float(batch["top_probability"][i][j]))
                    for j, index in enumerate(batch["top_index"][i]) if index >= 0
                )
                results.append(Classification(paths[row], predictions))
            yield rows, BatchOutput(
                results=results,
                probabilities=batch.get("probabilities"),
                features=batch.get("features"),
            )
    except ray.exceptions.RayError as exc:
        first = str(exc).strip().splitlines()
        raise PtmError(
            f"the Ray engine failed: {first[-1] if first else type(exc).__name__}",
            ["rerun with --debug for Ray's traceback; workers need ptm installed and the inputs "
             "and weights at the same paths"],
        ) from exc
