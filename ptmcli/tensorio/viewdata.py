"""Views applied to an entry's data: `--select 1:, --transpose 0 1 ...` on a tensor in a file.

views.py does the arithmetic (sizes, strides, offsets) without data; here the result gets its
values. A torch tensor is viewed with `as_strided`, as torch itself would. Data that is not a
tensor (HDF5 on disk, NumPy strings) is gathered by storage position, up to a limit, so a view
reads only its own elements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ptmcli.errors import InputError
from ptmcli.tensorio.items import Item, is_torch_tensor
from ptmcli.tensorio.views import Step, ViewMeta, ViewOp, apply_ops

# Views of data that is not in memory (HDF5) are gathered element by element up to this size.
MAX_GATHER_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class ViewStep:
    op: str  # "as stored", or the op as torch code: "[1:, 1:]", ".transpose(0, 1)", ...
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    storage_offset: int
    contiguous: bool
    copied: bool = False


def storage_indices(steps: Sequence[Step]):
    """Positions, in the first storage, of every element of the last view (an int64 array).

    A copy (--contiguous on a non-contiguous view) starts a new row-major storage, so positions
    in it are mapped back through the view that was copied.
    """
    import numpy as np

    def positions(meta: ViewMeta):
        index = np.full(meta.shape, meta.offset, dtype=np.int64)
        for dim, (size, step) in enumerate(zip(meta.shape, meta.stride)):
            axis = [1] * len(meta.shape)
            axis[dim] = size
            index = index + (np.arange(size, dtype=np.int64) * step).reshape(axis)
        return index

    copied_views: list[ViewMeta] = []
    for before, step in zip(steps, steps[1:]):
        if step.copied:
            copied_views.append(before.meta)
    flat = positions(steps[-1].meta)
    for source in reversed(copied_views):
        if not source.shape:
            flat = np.full(flat.shape, source.offset, dtype=np.int64)
            continue
        coords = np.unravel_index(flat, source.shape)
        flat = source.offset + sum(c.astype(np.int64) * s for c, s in zip(coords, source.stride))
    return np.asarray(flat, dtype=np.int64)


def apply_views(item: Item, ops: Sequence[ViewOp]) -> tuple[Item, tuple[ViewStep, ...]]:
    """The entry seen through `ops`, and every step's size, offset, stride and contiguity."""
    if item.unreadable:
        raise InputError(f"{item.name}: {item.unreadable}")
    steps = apply_ops(item.meta, ops)
    described = tuple(
        ViewStep(step.op.describe() if step.op else "as stored", step.meta.shape, step.meta.stride,
                 step.meta.offset, step.meta.contiguous, step.copied)
        for step in steps
    )
    final = steps[-1].meta
    copied = any(step.copied for step in steps)
    data = item.data
    note = None
    if is_torch_tensor(data):
        values = data
        for step in steps[1:]:
            values = values.contiguous() if step.copied else values.as_strided(
                step.meta.shape, step.meta.stride, step.meta.offset)
    elif final.numel > MAX_GATHER_ELEMENTS:
        values = None
        note = (f"values not read: the view has {final.numel:,} elements (limit {MAX_GATHER_ELEMENTS:,} "
                "for data on disk); narrow it with --select")
    else:
        values = item.gather(storage_indices(steps))
    # The view's values are in memory now (or were too many to read): the result reads them as is.
    viewed = Item(
        item.name, shape=final.shape, dtype=item.dtype, element_size=item.element_size, stride=final.stride,
        storage_offset=final.offset, storage_size=final.numel if copied else item.storage_size,
        torch_dtype=item.torch_dtype, names=None, requires_grad=item.requires_grad, device=item.device,
        layout={} if copied else item.layout, attrs=item.attrs, data=values,
        unreadable=note,
    )
    return viewed, described
