"""The decode pipeline keeps input order, batches by key, and survives failing loads."""

from __future__ import annotations

import random
import threading
import time

import pytest

from ptmcli.errors import InputError
from ptmcli.pipeline.batching import prefetch_batches
from ptmcli.pipeline.inputs import InputItem


def slow_load(path: str) -> int:
    time.sleep(random.random() / 500)  # finish out of order across threads
    if path.endswith("bad"):
        raise InputError(f"{path}: broken")
    if path.endswith("boom"):
        raise struct_error()
    return int(path.split("-")[0])


def struct_error() -> Exception:
    import struct

    try:
        struct.unpack("I", b"")
    except struct.error as exc:
        return exc
    raise AssertionError


@pytest.mark.parametrize("workers", [1, 4])
def test_order_and_errors(workers):
    paths = [f"{i}-ok" for i in range(50)] + ["50-bad", "51-boom", "52-ok", "missing"]
    items = [InputItem(p) for p in paths[:-1]] + [InputItem("missing", error="no such file")]
    batches = list(prefetch_batches(items, slow_load, batch_size=8, workers=workers))
    flat = [loaded for batch in batches for loaded in batch]
    assert [l.item.path for l in flat] == paths
    assert [l.value for l in flat[:50]] == list(range(50))
    assert flat[50].error == "50-bad: broken"
    assert "51-boom" in flat[51].error and "error" in flat[51].error
    assert flat[53].error == "missing: no such file"
    assert all(len(b) <= 8 for b in batches)


def test_group_key_makes_uniform_batches():
    values = [1, 1, 2, 2, 2, 1]
    items = [InputItem(f"{v}-{i}") for i, v in enumerate(values)]
    batches = list(prefetch_batches(items, lambda p: int(p.split("-")[0]), batch_size=8, group_key=lambda v: v))
    assert [[l.value for l in b] for b in batches] == [[1, 1], [2, 2, 2], [1]]


def test_consumer_stopping_early_ends_the_decode_thread():
    items = (InputItem(f"{i}-ok") for i in range(10_000))
    gen = prefetch_batches(items, slow_load, batch_size=4)
    next(gen)
    gen.close()
    time.sleep(0.5)
    assert not [t for t in threading.enumerate() if t.name == "ptm-decode" and t.is_alive()]
