"""Decode inputs in background threads while the model computes, in bounded batches.

Threads, not processes: Pillow's decoders and resizers release the GIL, and a process pool would
pickle every image. On a small CPU one decode thread is right (decode and model share the same
cores); with a GPU doing the math, more threads keep it fed. Queues are bounded, so memory stays
flat however many inputs there are.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import takewhile
from typing import Callable, Generic, Hashable, Iterable, Iterator, TypeVar

from ptmcli.errors import InputError
from ptmcli.pipeline.inputs import InputItem

T = TypeVar("T")

_DONE = object()


@dataclass(frozen=True)
class Loaded(Generic[T]):
    item: InputItem
    value: T | None = None
    error: str | None = None


def load_failed(loaded: Loaded) -> bool:
    return loaded.error is not None


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
    workers: int = 1,
    together: Callable[[InputItem], Hashable | None] | None = None,
    load_together: Callable[[list[InputItem]], Iterable[Loaded[T]]] | None = None,
) -> Iterator[list[Loaded[T]]]:
    """Yield lists of up to `batch_size` loaded items, in input order.

    With `group_key`, a batch holds only values with equal keys (e.g. equal image sizes); failed
    items ride along with whatever batch is open, so order is kept. Consecutive items for which
    `together` gives the same key (not None) are loaded in one call of `load_together`, one
    Loaded per item in order (the sampled frames of one video: decoded once, in order).
    """
    stop = threading.Event()
    window = batch_size * depth
    if together is None or load_together is None:
        found = _ordered_loads(items, load, workers, window, stop)
    else:
        found = _loads_in_runs(items, load, workers, window, stop, together, load_together)
    loads = takewhile(lambda _: not stop.is_set(), found)
    return prefetch_stream(_grouped(loads, batch_size, group_key), depth, stop)


def _loads_in_runs(items: Iterable[InputItem], load: Callable[[str], T], workers: int, window: int,
                   stop: threading.Event, together: Callable[[InputItem], Hashable | None],
                   load_together: Callable[[list[InputItem]], Iterable[Loaded[T]]]) -> Iterator[Loaded[T]]:
    from itertools import groupby

    for key, run in groupby(items, key=together):
        if key is None:
            yield from _ordered_loads(run, load, workers, window, stop)
        else:
            yield from load_together(list(run))


def prefetch_stream(values: Iterator[T], depth: int = 2, stop: threading.Event | None = None) -> Iterator[T]:
    """`values` computed in a background thread, at most `depth` ahead of the consumer; closing
    the returned generator stops the thread at its next value."""
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = stop or threading.Event()

    def put(obj) -> bool:
        while not stop.is_set():
            try:
                out.put(obj, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def producer() -> None:
        try:
            for value in values:
                if stop.is_set() or not put(value):
                    return
        except BaseException as exc:  # noqa: BLE001 - hand it to the consumer to raise
            put(exc)
        finally:
            put(_DONE)

    # A generator: the thread starts at the first value asked for, so one never asked for is
    # never started (and closing stops it either way).
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


def _grouped(loads: Iterable[Loaded[T]], batch_size: int,
             group_key: Callable[[T], Hashable] | None) -> Iterator[list[Loaded[T]]]:
    """Loads in batches of up to `batch_size`; with `group_key`, of equal keys only."""
    batch: list[Loaded[T]] = []
    key = None
    for loaded in loads:
        if group_key is not None and loaded.value is not None:
            new_key = group_key(loaded.value)
            if batch and key is not None and new_key != key and any(b.value is not None for b in batch):
                yield batch
                batch = []
            key = new_key
        batch.append(loaded)
        if len(batch) >= batch_size:
            yield batch
            batch, key = [], None
    if batch:
        yield batch


def _ordered_loads(items: Iterable[InputItem], load: Callable[[str], T], workers: int, window: int,
                   stop: threading.Event) -> Iterator[Loaded[T]]:
    """`_load_one` over `items`, in input order, with up to `workers` decodes in flight."""
    if workers <= 1:
        for item in items:
            yield _load_one(item, load)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ptm-decode") as pool:
        pending: deque = deque()
        for item in items:
            if stop.is_set():
                break
            pending.append(pool.submit(_load_one, item, load))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending and not stop.is_set():
            yield pending.popleft().result()
        for future in pending:
            future.cancel()
