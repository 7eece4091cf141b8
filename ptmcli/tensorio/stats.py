"""Statistics of a tensor of any size, one block at a time, so memory stays flat.

Blocks also drive export-hdf5's copies: `iter_blocks` covers a shape in row-major slices of about
a million elements, aligned to HDF5 chunks along the first dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

from ptmcli.tensorio.dtypes import torch_dtype_name
from ptmcli.tensorio.items import Item, is_torch_tensor

# A block for statistics and copies: big enough to be fast, small enough to stay flat in memory.
BLOCK_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class Stats:
    """Over all elements; min/max/mean/std over the finite ones (std with n-1, as torch.std)."""

    count: int
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    zeros: int = 0
    min: float | int | bool | None = None
    max: float | int | bool | None = None
    mean: float | None = None
    std: float | None = None


def iter_blocks(shape: Sequence[int], budget: int = BLOCK_ELEMENTS,
                align: Sequence[int] | None = None) -> Iterator[tuple]:
    """Index tuples (slices only) that cover `shape` in row-major order, each at most `budget`
    elements where possible; HDF5 chunk boundaries along the first dimension are respected."""
    if not shape:
        yield ()
        return
    if 0 in shape:
        return
    inner = math.prod(shape[1:])
    if inner <= budget:
        rows = max(1, budget // inner)
        if align and align[0] > 1:
            rows = max(align[0], rows // align[0] * align[0])
        for start in range(0, shape[0], rows):
            yield (slice(start, min(start + rows, shape[0])),)
        return
    for i in range(shape[0]):
        for rest in iter_blocks(shape[1:], budget, align[1:] if align else None):
            yield (slice(i, i + 1),) + rest


class _Accumulator:
    """Chan's parallel merge of (count, mean, M2): exact enough in float64, one block at a time."""

    def __init__(self):
        self.count = self.nan = self.posinf = self.neginf = self.zeros = 0
        self.finite = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = self.max = None

    def add(self, block) -> None:
        import torch

        x = block.reshape(-1)
        self.count += x.numel()
        if x.numel() == 0:
            return
        if x.dtype == torch.bool:
            x = x.to(torch.uint8)
        elif x.dtype in (torch.uint16, torch.uint32):
            x = x.to(torch.int64)
        if x.is_complex():
            if x.dtype == torch.complex32:
                x = x.to(torch.complex64)
            self.nan += int(torch.isnan(x).sum())
            self.posinf += int(torch.isinf(x).sum())
            self.zeros += int((x == 0).sum())
            return
        self.zeros += int((x == 0).sum())
        if x.is_floating_point():
            x = x.to(torch.float64)
            finite = torch.isfinite(x)
            n_finite = int(finite.sum())
            if n_finite < x.numel():  # rare: only then pay for the masks and the copy
                nan = int(torch.isnan(x).sum())
                posinf = int((x == math.inf).sum())
                self.nan += nan
                self.posinf += posinf
                self.neginf += x.numel() - n_finite - nan - posinf
                x = x[finite]
            if x.numel() == 0:
                return
            low, high = (float(v) for v in torch.aminmax(x))
        elif x.dtype == torch.uint64:
            values = x.numpy()  # torch's aminmax lacks uint64
            low, high = int(values.min()), int(values.max())
        else:
            low, high = (int(v) for v in torch.aminmax(x))
        self.min = low if self.min is None else min(self.min, low)
        self.max = high if self.max is None else max(self.max, high)
        x64 = x.to(torch.float64)
        n = x64.numel()
        variance, mean_t = torch.var_mean(x64, correction=0)
        mean = float(mean_t)
        m2 = float(variance) * n
        total = self.finite + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.finite * n / total
        self.finite = total

    def result(self, is_bool: bool) -> Stats:
        low, high = self.min, self.max
        if is_bool and low is not None:
            low, high = bool(low), bool(high)
        return Stats(
            count=self.count, nan=self.nan, posinf=self.posinf, neginf=self.neginf, zeros=self.zeros,
            min=low, max=high,
            mean=self.mean if self.finite else None,
            std=math.sqrt(self.m2 / (self.finite - 1)) if self.finite > 1 else None,
        )


def compute_stats(item: Item) -> Stats | None:
    """Statistics of a numeric entry, read block by block; None for strings, records, objects."""
    if item.torch_dtype is None or item.unreadable:
        return None
    align = item.layout.get("chunks") if isinstance(item.layout.get("chunks"), tuple) else None
    acc = _Accumulator()
    for index in iter_blocks(item.shape, BLOCK_ELEMENTS, align):
        block = item.read(index)
        if not is_torch_tensor(block):
            return None
        acc.add(block)
    return acc.result(is_bool=torch_dtype_name(item.torch_dtype) == "bool")
