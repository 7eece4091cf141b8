"""The local engine: the model loads in this process, decoding runs in a background thread."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Sequence

from ptmcli.models.backends import BackendChoice, load_backend
from ptmcli.pipeline.classification import classify_batches

if TYPE_CHECKING:
    from ptmcli.pipeline.inputs import InputItem
    from ptmcli.results import BatchOutput


class LocalEngine:
    def __init__(self, choice: BackendChoice, backend=None):
        self.classifier = backend if backend is not None else load_backend(choice)
        self.categories = self.classifier.categories
        self.device = str(self.classifier.device)

    def close(self) -> None:
        pass

    def feature_dim(self) -> int:
        return self.classifier.feature_dim

    def run(self, work: Sequence[tuple[int, "InputItem"]], *, top: int, batch_size: int, pad_to: int,
            probabilities: bool, features: bool, fail_fast: bool) -> Iterator[tuple[list[int], "BatchOutput"]]:
        return classify_batches(self.classifier, work, top=top, batch_size=batch_size, pad_to=pad_to,
                                probabilities=probabilities, features=features, fail_fast=fail_fast)
