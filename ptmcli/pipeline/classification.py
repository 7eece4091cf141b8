"""Inputs -> decoded batches -> a classifier -> result batches: the one loop every engine runs.

The local engine runs it over the whole work list; each Ray actor runs it over the inputs Ray
hands it. Either way the same padding, the same top-k and the same `--fail-fast` rule apply, so
both give the same rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Protocol, Sequence

from ptmcli.pipeline.batching import Loaded, prefetch_batches
from ptmcli.pipeline.inputs import InputItem
from ptmcli.results import BatchOutput, Classification, Prediction

if TYPE_CHECKING:
    import numpy as np


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


def until_first_failure(batch: list[Loaded]) -> list[Loaded]:
    """`--fail-fast`: the batch up to and including its first failed input."""
    for i, loaded in enumerate(batch):
        if loaded.error is not None:
            return batch[:i + 1]
    return batch


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
) -> Iterator[tuple[list[int], BatchOutput]]:
    """(rows, results) batch by batch, in input order; failed inputs carry their error.

    With `fail_fast`, nothing after the first failed input is computed or returned: the batch
    that holds it is cut there before its forward pass, and the iteration ends.
    """
    rows = [row for row, _ in work]
    cursor = 0
    batches = prefetch_batches((item for _, item in work), backend.prepare, batch_size,
                               workers=backend.decode_workers)
    try:
        for batch in batches:
            failed = any(loaded.error is not None for loaded in batch)
            if fail_fast and failed:
                batch = until_first_failure(batch)
            output = _batch_output(backend, batch, top, pad_to, probabilities, features)
            yield rows[cursor:cursor + len(batch)], output
            cursor += len(batch)
            if fail_fast and failed:
                return
    finally:
        batches.close()


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
            Classification(loaded.item.path, error=loaded.error)
            if loaded.error
            else Classification(loaded.item.path, next(predicted))
            for loaded in batch
        ],
        probabilities=spread(probs, classes) if probabilities else None,
        features=spread(embedding, embedding.shape[1]) if features else None,
    )
