"""Decode inputs in a background thread while the model computes, in bounded batches.

One thread is enough: Pillow's decoders and resizers release the GIL, and on a 2-core machine a
process pool only moves the same work to the same cores at the price of pickling every image.
The queue is bounded, so memory stays flat however many inputs there are.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, Iterable, Iterator, TypeVar

from ptmcli.errors import InputError
from ptmcli.inputs import InputItem

T = TypeVar("T")

_DONE = object()


@dataclass(frozen=True)
class Loaded(Generic[T]):
    item: InputItem
    value: T | None = None
    error: str | None = None


def _load_one(item: InputItem, load: Callable[[str], T]) -> Loaded[T]:
    if item.error:
        return Loaded(item, error=f"{item.path}: {item.error}")
    try:
        return Loaded(item, value=load(item.path))
    except InputError as exc:
        return Loaded(item, error=exc.message)
    except MemoryError:
        return Loaded(item, error=f"{item.path}: not enough memory to decode this image")
    except Exception as exc:  # noqa: BLE001 - a hostile file must not stop the other inputs
        return Loaded(item, error=f"{item.path}: cannot decode image ({type(exc).__name__}: {exc})")


def prefetch_batches(
    items: Iterable[InputItem],
    load: Callable[[str], T],
    batch_size: int,
    group_key: Callable[[T], Hashable] | None = None,
    depth: int = 2,
) -> Iterator[list[Loaded[T]]]:
    """Yield lists of up to `batch_size` loaded items, in input order.

    With `group_key`, a batch holds only values with equal keys (e.g. equal image sizes); failed
    items ride along with whatever batch is open, so order is kept.
    """
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(obj) -> bool:
        while not stop.is_set():
            try:
                out.put(obj, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def producer() -> None:
        batch: list[Loaded[T]] = []
        key = None
        try:
            for item in items:
                if stop.is_set():
                    return
                loaded = _load_one(item, load)
                if group_key is not None and loaded.value is not None:
                    new_key = group_key(loaded.value)
                    if batch and key is not None and new_key != key and any(b.value is not None for b in batch):
                        if not put(batch):
                            return
                        batch = []
                    key = new_key
                batch.append(loaded)
                if len(batch) >= batch_size:
                    if not put(batch):
                        return
                    batch, key = [], None
            if batch:
                put(batch)
        except BaseException as exc:  # noqa: BLE001 - hand it to the consumer to raise
            put(exc)
        finally:
            put(_DONE)

    thread = threading.Thread(target=producer, name="ptm-decode", daemon=True)
    thread.start()
    try:
        while True:
            obj = out.get()
            if obj is _DONE:
                return
            if isinstance(obj, BaseException):
                raise obj
            yield obj
    finally:
        stop.set()
