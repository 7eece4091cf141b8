"""Inputs -> decoded batches -> a classifier -> result batches: the one loop every engine runs.

The local engine runs it over the whole work list; each Ray actor runs it over the inputs Ray
hands it. Either way the same padding, the same top-k and the same `--fail-fast` rule apply, so
both give the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Iterator, Protocol, Sequence

from ptmcli.pipeline.batching import Loaded, load_failed, prefetch_batches
from ptmcli.pipeline.engines.contract import ChoiceJob
from ptmcli.pipeline.inputs import InputItem
from ptmcli.pipeline.run import first_failure_cut
from ptmcli.results import BatchOutput, Classification, Prediction

if TYPE_CHECKING:
    import numpy as np

    from ptmcli.models.backends import BackendChoice
    from ptmcli.pixels.recipes import Preprocess


class ClassifierBackend(Protocol):
    """What the loop needs of a classifier, whatever computes it."""

    categories: list[str]
    decode_workers: int

    @property
    def feature_dim(self) -> int: ...

    def prepare(self, path: str) -> "np.ndarray": ...

    def forward(self, arrays: list["np.ndarray"], top: int, pad_to: int | None = None,
                features: bool = False) -> tuple["np.ndarray", "np.ndarray", "np.ndarray | None"]:
        """(probabilities [n, classes] float32, indices of the `top` best [n, k], embeddings or None)"""


def padded_batch_size(batch_size: int, inputs_total: int) -> int:
    """Every forward pass of a run has this many rows.

    Kernels choose their algorithm by batch shape, so a row's numbers depend on how many rows its
    pass had; with one fixed size per (batch size, input list), stdout, result files, resumed
    runs, shards and Ray all compute the same bits. Taking the whole input list (before --shard
    and --resume), not the batch size alone, keeps a one-image run from computing 16.
    """
    return max(1, min(batch_size, inputs_total))


def classify_batches(
    backend: ClassifierBackend,
    work: Sequence[tuple[int, InputItem]],
    *,
    top: int,
    batch_size: int,
    pad_to: int,
    probabilities: bool = False,
    features: bool = False,
    fail_fast: bool = False,
    recipe: "Preprocess | None" = None,
) -> Iterator[tuple[list[int], BatchOutput]]:
    """(rows, results) batch by batch, in input order; failed inputs carry their error.

    With `fail_fast`, nothing after the first failed input is computed or returned: the batch
    that holds it is cut there before its forward pass, and the iteration ends. The sampled
    frames of a video (items with a `time`) are decoded together, cropped with `recipe`.
    """
    rows = [row for row, _ in work]
    cursor = 0
    batches = prefetch_batches((item for _, item in work), backend.prepare, batch_size,
                               workers=backend.decode_workers, together=_video_of,
                               load_together=None if recipe is None else partial(_frame_loads, recipe=recipe))
    try:
        for batch in batches:
            batch, failed = first_failure_cut(batch, load_failed) if fail_fast else (batch, False)
            output = _batch_output(backend, batch, top, pad_to, probabilities, features)
            yield rows[cursor:cursor + len(batch)], output
            cursor += len(batch)
            if failed:
                return
    finally:
        batches.close()


def _video_of(item: InputItem) -> str | None:
    return item.path if item.time is not None and item.error is None else None


def _frame_loads(items: list[InputItem], recipe: "Preprocess") -> Iterator[Loaded]:
    """The sampled frames of one video, decoded once and in order: a crop each, or why not. A
    video that fails part way fails its frames not yet given (each a line: it is rare, since
    the plan of the run has read the whole video already)."""
    from ptmcli.errors import InputError
    from ptmcli.pixels.sampling import frame_crops

    crops = frame_crops(items[0].path, [item.time for item in items], recipe)
    done = 0
    try:
        for item, crop in zip(items, crops):
            yield Loaded(item, error=crop) if isinstance(crop, str) else Loaded(item, value=crop)
            done += 1
    except InputError as exc:
        problem = exc.message
    except MemoryError:
        problem = f"{items[0].path}: not enough memory to decode this video"
    else:
        return
    finally:
        crops.close()
    for item in items[done:]:
        yield Loaded(item, error=f"{problem} (the frame at {item.time:.3f} s)")


def top_predictions(probs: "np.ndarray", order: "np.ndarray",
                    categories: Sequence[str]) -> list[tuple[Prediction, ...]]:
    return [
        tuple(Prediction(rank=r + 1, index=int(i), label=categories[int(i)], probability=float(row[i]))
              for r, i in enumerate(indices))
        for row, indices in zip(probs, order)
    ]


def _batch_output(backend: ClassifierBackend, batch: list[Loaded], top: int, pad_to: int,
                  probabilities: bool, features: bool) -> BatchOutput:
    import numpy as np

    good = [loaded.value for loaded in batch if loaded.error is None]
    classes = len(backend.categories)
    if good:
        probs, order, embedding = backend.forward(good, top, pad_to=pad_to, features=features)
    else:
        probs, order = np.zeros((0, classes), dtype=np.float32), np.zeros((0, 0), dtype=np.int64)
        embedding = np.zeros((0, backend.feature_dim), dtype=np.float32) if features else None
    rows_ok = np.array([loaded.error is None for loaded in batch], dtype=bool)

    def spread(values: "np.ndarray", width: int) -> "np.ndarray":
        full = np.full((len(batch), width), np.nan, dtype=np.float32)
        full[rows_ok] = values
        return full

    predicted = iter(top_predictions(probs, order, backend.categories))
    return BatchOutput(
        results=[
            Classification(loaded.item.path, error=loaded.error, time=loaded.item.time)
            if loaded.error
            else Classification(loaded.item.path, next(predicted), time=loaded.item.time)
            for loaded in batch
        ],
        probabilities=spread(probs, classes) if probabilities else None,
        features=spread(embedding, embedding.shape[1]) if features else None,
    )


@dataclass(frozen=True)
class ClassifyJob(ChoiceJob):
    """Classification as an engine runs it: a picklable recipe (`choice`) that opens the backend,
    and what to compute per batch. A Ray actor is given this and computes what the driver would."""

    choice: "BackendChoice"
    top: int
    batch_size: int
    pad_to: int
    probabilities: bool = False
    features: bool = False
    fail_fast: bool = False
    categories: tuple[str, ...] = ()  # the spec's, for results that come back from elsewhere

    def batches(self, backend: ClassifierBackend,
                work: Sequence[tuple[int, InputItem]]) -> Iterator[tuple[list[int], BatchOutput]]:
        return classify_batches(backend, work, top=self.top, batch_size=self.batch_size, pad_to=self.pad_to,
                                probabilities=self.probabilities, features=self.features,
                                fail_fast=self.fail_fast, recipe=self.choice.spec.preprocess)

    def to_columns(self, backend: ClassifierBackend, outputs: list[tuple[list[int], BatchOutput]]) -> dict:
        """Batches as NumPy columns, the form Ray Data carries between actor and driver."""
        import numpy as np

        results = [r for _, output in outputs for r in output.results]
        k = min(self.top, len(backend.categories))
        top_index = np.full((len(results), k), -1, dtype=np.int32)
        top_probability = np.full((len(results), k), np.nan, dtype=np.float32)
        for i, result in enumerate(results):
            for j, p in enumerate(result.predictions):
                top_index[i, j], top_probability[i, j] = p.index, p.probability
        columns = {
            "row": np.asarray([row for rows, _ in outputs for row in rows], dtype=np.int64),
            "error": np.array([r.error or "" for r in results], dtype=object),
            "time": np.array([np.nan if r.time is None else r.time for r in results], dtype=np.float64),
            "top_index": top_index,
            "top_probability": top_probability,
        }
        if self.probabilities:
            columns["probabilities"] = np.concatenate([o.probabilities for _, o in outputs])
        if self.features:
            columns["features"] = np.concatenate([o.features for _, o in outputs])
        return columns

    def from_columns(self, columns: dict, paths: dict[int, str]) -> tuple[list[int], BatchOutput]:
        """As every job's, with each sampled frame's time."""
        import math

        rows, output = ChoiceJob.from_columns(self, columns, paths)
        if "time" not in columns:
            return rows, output
        times = [None if math.isnan(t) else float(t) for t in columns["time"]]
        return rows, BatchOutput([replace(r, time=t) for r, t in zip(output.results, times)],
                                 output.probabilities, output.features)

    def failed(self, path: str, error: str) -> Classification:
        return Classification(path, error=error)

    def result_from(self, path: str, columns: dict, i: int) -> Classification:
        return Classification(path, tuple(
            Prediction(rank=j + 1, index=int(index), label=self.categories[int(index)],
                       probability=float(columns["top_probability"][i][j]))
            for j, index in enumerate(columns["top_index"][i]) if index >= 0))
