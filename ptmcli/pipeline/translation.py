"""Inputs -> decoded batches -> a generator -> translations: what every engine runs for zebrafy.

Same-size inputs share a forward pass; a batch that does not fit the device is retried one input
at a time (models/generator.py). The local engine runs this over the whole work list; each Ray
actor over the inputs Ray hands it; either way the same padding and the same `--fail-fast` cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from ptmcli.errors import InputError
from ptmcli.pipeline.batching import load_failed, prefetch_batches, prefetch_stream
from ptmcli.pipeline.engines.contract import ChoiceJob
from ptmcli.pipeline.inputs import InputItem
from ptmcli.pipeline.run import first_failure_cut
from ptmcli.results import BatchOutput, FrameStamp, Translation, VideoStream

if TYPE_CHECKING:
    import numpy as np

    from ptmcli.models.backends import BackendChoice
    from ptmcli.models.generator import GeneratorBackend
    from ptmcli.pixels.video import Clip


def translate_batches(zebra: "GeneratorBackend", items: Sequence[InputItem], batch_size: int,
                      fail_fast: bool = False, clip: "Clip | None" = None,
                      even: Callable[[int], bool] = lambda i: False) -> Iterator[list[tuple[int, Translation]]]:
    """(position in `items`, translation) batch by batch, in input order; failed inputs carry their
    error. A video gives one translation per frame, in order, under its one position (`even(i)`:
    its output needs even sides). With `fail_fast`, nothing after the first failed input is computed."""
    for start, group in _photo_runs_and_videos(items):
        if group[0].video:
            from ptmcli.pixels.video import Clip

            translated = _video_batches(zebra, group[0], start, batch_size, clip or Clip(zebra.short_side),
                                        even(start))
        else:
            translated = _photo_batches(zebra, group, start, batch_size, fail_fast)
        try:
            for batch in translated:
                yield batch
                if fail_fast and any(not result.ok for _, result in batch):
                    return
        finally:
            translated.close()


def _photo_runs_and_videos(items: Sequence[InputItem]) -> Iterator[tuple[int, list[InputItem]]]:
    """Consecutive photos together (they share batches), each video on its own."""
    run: list[InputItem] = []
    for i, item in enumerate(items):
        if item.video and item.error is None:
            if run:
                yield i - len(run), run
                run = []
            yield i, [item]
        else:
            run.append(item)
    if run:
        yield len(items) - len(run), run


def _photo_batches(zebra: "GeneratorBackend", items: list[InputItem], start: int, batch_size: int,
                   fail_fast: bool) -> Iterator[list[tuple[int, Translation]]]:
    batches = prefetch_batches(items, zebra.prepare, batch_size, group_key=lambda p: p.rgb.shape,
                               workers=zebra.decode_workers)
    position = start
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
            yield list(enumerate(results, position))
            position += len(results)
            if failed:
                return
    finally:
        batches.close()


def _video_batches(zebra: "GeneratorBackend", item: InputItem, position: int, batch_size: int, clip: "Clip",
                   even: bool) -> Iterator[list[tuple[int, Translation]]]:
    """A video's frames, `batch_size` a forward pass, decoded in the background; a frame that
    fails (too large for the device) or a decode error part way ends the video as one failure."""
    from dataclasses import replace

    from ptmcli.pixels.video import video_frames

    frames = video_frames(item.path, replace(clip, even=even))
    batches = prefetch_stream(_chunks(frames, batch_size))
    try:
        for batch in batches:
            if isinstance(batch, _Failed):
                yield [(position, Translation(item.path, error=batch.message))]
                return
            outputs = zebra.translate_each([prepared for prepared, _ in batch], [item.path] * len(batch))
            problem = next((value for value in outputs if isinstance(value, str)), None)
            if problem is not None:
                yield [(position, Translation(item.path, error=problem))]
                return
            yield [(position, Translation(item.path, image=value, source=prepared.rgb, frame=stamp))
                   for value, (prepared, stamp) in zip(outputs, batch)]
    finally:
        batches.close()


@dataclass(frozen=True)
class _Failed:
    message: str


def _chunks(frames: Iterator, size: int) -> Iterator:
    """Lists of up to `size` frames; a decode error ends the stream as a `_Failed`."""
    chunk: list = []
    try:
        for frame in frames:
            chunk.append(frame)
            if len(chunk) >= size:
                yield chunk
                chunk = []
    except InputError as exc:
        if chunk:
            yield chunk
        yield _Failed(exc.message)
        return
    if chunk:
        yield chunk


@dataclass(frozen=True)
class ZebrafyJob(ChoiceJob):
    """Translation as an engine runs it (see pipeline/engines)."""

    choice: "BackendChoice"
    batch_size: int
    fail_fast: bool = False
    clip: "Clip | None" = None  # which part of each video, and its frames' size
    even_rows: frozenset[int] = frozenset()  # rows whose output video needs even sides

    def batches(self, backend: "GeneratorBackend",
                work: Sequence[tuple[int, InputItem]]) -> Iterator[tuple[list[int], BatchOutput]]:
        rows = [row for row, _ in work]
        batches = translate_batches(backend, [item for _, item in work], self.batch_size, self.fail_fast,
                                    self.clip, lambda i: rows[i] in self.even_rows)
        try:
            for batch in batches:
                yield [rows[i] for i, _ in batch], BatchOutput([result for _, result in batch])
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
            "frame": np.array([_stamp_record(r.frame) for r in results], dtype=object),
        }

    def failed(self, path: str, error: str) -> Translation:
        return Translation(path, error=error)

    def result_from(self, path: str, columns: dict, i: int) -> Translation:
        height, width = (int(n) for n in columns["size"][i])
        image, source, alpha = (_picture(columns[column][i], height, width, channels)
                                for column, channels in (("image", 3), ("source", 3), ("alpha", 1)))
        frame = columns["frame"][i] if "frame" in columns else ""
        return Translation(path, image=image, source=source, alpha=alpha, frame=_stamp_from(frame))


def _stamp_record(stamp: "FrameStamp | None") -> str:
    """A frame's stamp as JSON text, for a column."""
    import json
    from dataclasses import asdict

    return "" if stamp is None else json.dumps(asdict(stamp))


def _stamp_from(record: str) -> "FrameStamp | None":
    import json

    if not record:
        return None
    fields = json.loads(record)
    stream = fields.pop("stream")
    for key in ("time_base", "frame_rate"):
        stream[key] = tuple(stream[key]) if stream[key] is not None else None
    return FrameStamp(**fields, stream=VideoStream(**stream))


def _picture(data: bytes, height: int, width: int, channels: int) -> "np.ndarray | None":
    import numpy as np

    if not len(data):
        return None
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.frombuffer(data, dtype=np.uint8).reshape(shape).copy()
