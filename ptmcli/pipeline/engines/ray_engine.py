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
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from ptmcli.errors import PtmError, UsageProblem

if TYPE_CHECKING:
    from ptmcli.pipeline.inputs import InputItem
    from ptmcli.results import BatchOutput


def ray_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _import_ray():
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

    def __init__(self, model: str, weights: str, device: str, top: int, batch_size: int,
                 probabilities: bool, features: bool, precision: str = "fp32", fast_decode: bool = True):
        from ptmcli.models.classifier import Classifier
        from ptmcli.models.registry import get_classifier
        from ptmcli.pipeline.device import resolve_device, resolve_precision

        if not Path(weights).is_file():
            raise FileNotFoundError(f"weights file {weights} is not on Ray worker node (needs a shared path)")
        torch_device = resolve_device(device)
        self.classifier = Classifier(get_classifier(model), Path(weights), torch_device,
                                     resolve_precision(precision, torch_device), fast_decode=fast_decode)
        self.top, self.batch_size = top, batch_size
        self.probabilities, self.features = probabilities, features

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        from ptmcli.pipeline.inputs import InputItem

        items = [InputItem(str(path), error=str(error) or None)
                 for path, error in zip(batch["path"], batch["input_error"])]
        outputs = list(self.classifier.classify_outputs(
            items, self.top, self.batch_size, self.probabilities, self.features, pad_to=self.batch_size
        ))
        results = [r for output in outputs for r in output.results]
        k = min(self.top, len(self.classifier.categories))
        top_index = np.full((len(results), k), -1, dtype=np.int32)
        top_probability = np.full((len(results), k), np.nan, dtype=np.float32)
        for i, result in enumerate(results):
            for j, p in enumerate(result.predictions):
                top_index[i, j], top_probability[i, j] = p.index, p.probability
        columns = {
            "row": np.asarray(batch["row"], dtype=np.int64),
            "error": np.array([r.error or "" for r in results], dtype=object),
            "top_index": top_index,
            "top_probability": top_probability,
        }
        if self.probabilities:
            columns["probabilities"] = np.concatenate([o.probabilities for o in outputs])
        if self.features:
            columns["features"] = np.concatenate([o.features for o in outputs])
        return columns


def classify_ray(
    model: str,
    weights: Path,
    device: str,
    work: Sequence[tuple[int, "InputItem"]],
    categories: Sequence[str],
    top: int,
    batch_size: int,
    probabilities: bool = False,
    features: bool = False,
    actors: int | None = None,
    precision: str = "fp32",
    fast_decode: bool = True,
) -> Iterator[tuple[list[int], "BatchOutput"]]:
    """Classify `work` ((row, input) pairs) on Ray; yields (rows, BatchOutput) in input order.

    Ray is started (or joined) now, not at the first batch, so its signal handlers are in place
    before the caller installs its own.
    """
    ray = _import_ray()
    if not work:
        return iter(())
    if not ray.is_initialized():
        ray.init(logging_level=logging.WARNING, include_dashboard=False,
                 log_to_driver=sys.stderr.isatty())
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    device = device.strip().lower()
    if device == "auto":
        device = "cuda" if gpus else "cpu"
    on_gpu = device.startswith("cuda")
    if on_gpu and not gpus:
        raise UsageProblem(f"--device {device}: the Ray cluster has no GPUs",
                           ["use --device cpu, or add GPU nodes to the cluster"])
    if on_gpu:
        device = "cuda"  # Ray gives each actor its own GPU as cuda:0 (CUDA_VISIBLE_DEVICES)
    size = actors or (gpus if on_gpu else max(1, cpus // 2))

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True

    dataset = ray.data.from_items(
        [{"row": row, "path": item.path, "input_error": item.error or ""} for row, item in work]
    )
    classified = dataset.map_batches(
        ClassifyActor,
        fn_constructor_kwargs=dict(model=model, weights=str(weights), device=device, top=top,
                                   batch_size=batch_size, probabilities=probabilities, features=features,
                                   precision=precision, fast_decode=fast_decode),
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=size),
        num_gpus=1 if on_gpu else 0,
        num_cpus=1,
    )
    return _stream(ray, classified, {row: item.path for row, item in work}, categories)


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
