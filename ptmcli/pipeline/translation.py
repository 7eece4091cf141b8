"""Inputs -> decoded batches -> a generator -> translations: what every engine runs for zebrafy.

Same-size inputs share a forward pass; a batch that does not fit the device is retried one input
at a time (models/generator.py). The local engine runs this over the whole work list; each Ray
actor over the inputs Ray hands it; either way the same padding and the same `--fail-fast` cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

from ptmcli.pipeline.batching import load_failed, prefetch_batches
from ptmcli.pipeline.engines.contract import ChoiceJob
from ptmcli.pipeline.inputs import InputItem
from ptmcli.pipeline.run import first_failure_cut
from ptmcli.results import BatchOutput, Translation

if TYPE_CHECKING:
    import numpy as np

    from ptmcli.models.backends import BackendChoice
    from ptmcli.models.generator import GeneratorBackend


def translate_batches(zebra: "GeneratorBackend", items: Sequence[InputItem], batch_size: int,
                      fail_fast: bool = False) -> Iterator[list[Translation]]:
    """Translations batch by batch, in input order; failed inputs carry their error. With
    `fail_fast`, nothing after the first failed input is computed."""
    batches = prefetch_batches(items, zebra.prepare, batch_size, group_key=lambda p: p.rgb.shape,
                               workers=zebra.decode_workers)
    try:
        for batch in batches:
            batch, failed = first_failure_cut(batch, load_failed) if fail_fast else (batch, False)
            good = [loaded for loaded in batch if loaded.error is None]
            outputs = zebra.translate_each([g.value for g in good], [g.item.path for g in good]) if good else []
            by_id = {id(loaded): value for loaded, value in zip(good, outputs)}
            results = []
            for loaded in batch:
                value = by_id.get(id(loaded))
                if loaded.error is not None:
                    results.append(Translation(loaded.item.path, error=loaded.error))
                elif isinstance(value, str):
                    results.append(Translation(loaded.item.path, error=value))
                else:
                    results.append(Translation(loaded.item.path, image=value, source=loaded.value.rgb,
                                               alpha=loaded.value.alpha))
            yield results
            if failed:
                return
    finally:
        batches.close()


@dataclass(frozen=True)
class ZebrafyJob(ChoiceJob):
    """Translation as an engine runs it (see pipeline/engines)."""

    choice: "BackendChoice"
    batch_size: int
    fail_fast: bool = False

    def batches(self, backend: "GeneratorBackend",
                work: Sequence[tuple[int, InputItem]]) -> Iterator[tuple[list[int], BatchOutput]]:
        rows = [row for row, _ in work]
        cursor = 0
        batches = translate_batches(backend, [item for _, item in work], self.batch_size, self.fail_fast)
        try:
            for results in batches:
                yield rows[cursor:cursor + len(results)], BatchOutput(results)
                cursor += len(results)
        finally:
            batches.close()

    def to_columns(self, backend: "GeneratorBackend", outputs: list[tuple[list[int], BatchOutput]]) -> dict:
        """Pictures as raw bytes and their sizes: Ray Data's columns hold arrays of one shape."""
        import numpy as np

        results = [r for _, output in outputs for r in output.results]

        def raw(array) -> bytes:
            return b"" if array is None else np.ascontiguousarray(array).tobytes()

        return {
            "row": np.asarray([row for rows, _ in outputs for row in rows], dtype=np.int64),
            "error": np.array([r.error or "" for r in results], dtype=object),
            "size": np.array([r.image.shape[:2] if r.ok else (0, 0) for r in results], dtype=np.int64).reshape(-1, 2),
            "image": np.array([raw(r.image) for r in results], dtype=object),
            "source": np.array([raw(r.source) for r in results], dtype=object),
            "alpha": np.array([raw(r.alpha) for r in results], dtype=object),
        }

    def failed(self, path: str, error: str) -> Translation:
        return Translation(path, error=error)

    def result_from(self, path: str, columns: dict, i: int) -> Translation:
        height, width = (int(n) for n in columns["size"][i])
        image, source, alpha = (_picture(columns[column][i], height, width, channels)
                                for column, channels in (("image", 3), ("source", 3), ("alpha", 1)))
        return Translation(path, image=image, source=source, alpha=alpha)


def _picture(data: bytes, height: int, width: int, channels: int) -> "np.ndarray | None":
    import numpy as np

    if not len(data):
        return None
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.frombuffer(data, dtype=np.uint8).reshape(shape).copy()
