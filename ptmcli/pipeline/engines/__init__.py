"""Ways to run a classifier over many inputs: in this process (`local`) or on a Ray cluster (`ray`).

Both take the work as (row, input) pairs and yield (rows, BatchOutput) as batches finish, so the
same result files and stdout writers serve both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Sequence

if TYPE_CHECKING:
    from ptmcli.models.classifier import Classifier
    from ptmcli.pipeline.inputs import InputItem
    from ptmcli.results import BatchOutput

ENGINES = ("local", "ray")


def classify_local(
    classifier: "Classifier",
    work: Sequence[tuple[int, "InputItem"]],
    top: int,
    batch_size: int,
    probabilities: bool = False,
    features: bool = False,
) -> Iterator[tuple[list[int], "BatchOutput"]]:
    rows = [row for row, _ in work]
    cursor = 0
    # Every pass padded to batch_size: rows then do not depend on their batch-mates, so resumed
    # and sharded runs equal an uninterrupted one bit for bit.
    outputs = classifier.classify_outputs((item for _, item in work), top, batch_size, probabilities, features,
                                          pad_to=batch_size)
    for output in outputs:
        count = len(output.results)
        yield rows[cursor:cursor + count], output
        cursor += count
