"""Results as frozen dataclasses of plain values: renderers and their tests never need torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Prediction:
    rank: int
    index: int
    label: str
    probability: float


@dataclass(frozen=True)
class Classification:
    """The top-k predictions for one input, or why there are none."""

    path: str
    predictions: tuple[Prediction, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        return "ok" if self.ok else "error"


@dataclass(frozen=True)
class BatchOutput:
    """One batch of results (classifications, translations, ...) and, when asked for, the numbers
    behind classifications.

    `probabilities` (all classes) and `features` (the embedding the classifier layer reads) have
    one row per entry of `results`; rows of failed inputs are NaN. Both are NumPy float32 arrays.
    """

    results: list
    probabilities: object = None
    features: object = None

    def head(self, n: int) -> "BatchOutput":
        """The first `n` results, and their rows of the numbers."""
        return BatchOutput(self.results[:n],
                           None if self.probabilities is None else self.probabilities[:n],
                           None if self.features is None else self.features[:n])


@dataclass(frozen=True)
class Translation:
    """The generator's output for one input (uint8 HWC RGB at the processed size), or why not."""

    path: str
    image: "np.ndarray | None" = None
    source: "np.ndarray | None" = None  # the input as processed, for side-by-side views
    alpha: "np.ndarray | None" = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
