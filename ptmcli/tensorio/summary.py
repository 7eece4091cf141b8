"""`ptm inspect-tensor` as a library: a file (and a key, and views) -> a summary of plain values.

One tensor gives a `TensorSummary` (its anatomy, statistics, a preview, each view step); anything
holding several entries gives a `ContainerSummary` (a row per entry, totals, shared storage).
Rendering lives in render.py. Entries whose data cannot be read are listed as `unreadable` rows
and named in `ContainerSummary.refused`, so the command can report them and exit 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from ptmcli.errors import InputError, UsageProblem
from ptmcli.tensorio.boundary import reason
from ptmcli.tensorio.items import Item, LinkItem, TensorFile, ValueItem
from ptmcli.tensorio.readers import open_tensor_file
from ptmcli.tensorio.stats import Stats, compute_stats
from ptmcli.tensorio.values import to_python, value_repr
from ptmcli.tensorio.viewdata import ViewStep, apply_views
from ptmcli.tensorio.views import ViewOp, is_contiguous


@dataclass(frozen=True)
class TensorSummary:
    file: str
    format: str
    key: str | None
    shape: tuple[int, ...]
    dtype: str
    element_size: int
    numel: int
    nbytes: int
    stride: tuple[int, ...]
    storage_offset: int
    storage_size: int  # elements of this dtype in the storage the view looks at
    contiguous: bool
    names: tuple[str | None, ...] | None = None
    requires_grad: bool | None = None
    device: str | None = None
    layout: dict = field(default_factory=dict)  # how the file stores it (HDF5 chunks, byte order...)
    attrs: dict = field(default_factory=dict)
    shares_storage_with: tuple[str, ...] = ()
    stats: Stats | None = None
    preview: Any = None  # nested lists of the first elements along each dimension
    preview_shape: tuple[int, ...] | None = None
    views: tuple[ViewStep, ...] = ()
    note: str | None = None

    kind = "tensor"

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class EntryRow:
    name: str
    kind: str  # "tensor" | "value" | "link" | "unreadable"
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    numel: int = 0
    nbytes: int = 0
    value: str | None = None  # repr of a non-tensor value, a link's target, or why it is unreadable
    storage_group: int | None = None


@dataclass(frozen=True)
class SharedStorage:
    group: int
    names: tuple[str, ...]
    storage_bytes: int
    same_view: bool  # every name is the very same view: tied weights
    tied: tuple[tuple[str, ...], ...] = ()  # names that are the same view, when some are


@dataclass(frozen=True)
class ContainerSummary:
    file: str
    format: str
    key: str | None
    entries: tuple[EntryRow, ...]
    tensors: int
    total_params: int
    total_bytes: int
    storage_bytes: int  # bytes of distinct storage: what shared views really take
    shared: tuple[SharedStorage, ...] = ()
    attrs: dict = field(default_factory=dict)
    # (full entry name, reason) for each entry whose data cannot be read (a null dataspace can be).
    refused: tuple[tuple[str, str], ...] = ()

    kind = "container"

    def to_dict(self) -> dict:
        d = {"kind": self.kind, **asdict(self)}
        # JSON already lists these as entries of kind "unreadable", with the reason as value.
        del d["refused"]
        return d


def shared_groups(items: Sequence) -> list[tuple[list[Item], int]]:
    """Entries whose bytes overlap in one storage: (items, storage bytes), in first-seen order."""
    by_storage: dict = {}
    for item in items:
        if isinstance(item, Item) and item.storage_id is not None and item.storage_span:
            by_storage.setdefault(item.storage_id, []).append(item)
    groups: list[tuple[list[Item], int]] = []
    for members in by_storage.values():
        members = sorted(members, key=lambda it: it.storage_span[0])
        current: list[Item] = []
        current_end = None
        begin = None
        for item in members:
            start, end = item.storage_span
            if current and start < current_end:
                current.append(item)
                current_end = max(current_end, end)
            else:
                if len(current) > 1:
                    groups.append((current, current_end - begin))
                current, begin, current_end = [item], start, end
        if len(current) > 1:
            groups.append((current, current_end - begin))
    order = {id(item): i for i, item in enumerate(items)}
    groups.sort(key=lambda g: min(order[id(it)] for it in g[0]))
    return [(sorted(g, key=lambda it: order[id(it)]), size) for g, size in groups]


def container_summary(tfile: TensorFile, prefix: str | None, items: Sequence, attrs: dict) -> ContainerSummary:
    tensors = [it for it in items if isinstance(it, Item) and not it.unreadable]
    groups = shared_groups(tensors)
    group_of: dict[int, int] = {}
    shared = []
    for number, (members, size) in enumerate(groups, start=1):
        for it in members:
            group_of[id(it)] = number
        by_view: dict = {}
        for it in members:
            by_view.setdefault(it.same_view_key(), []).append(it.name)
        tied = tuple(tuple(names) for names in by_view.values() if len(names) > 1)
        shared.append(SharedStorage(number, tuple(it.name for it in members), size, len(by_view) == 1, tied))
    strip = (prefix.rstrip(tfile.sep) + tfile.sep) if prefix else ""
    rows = []
    for it in items:
        name = it.name[len(strip):] if strip and it.name.startswith(strip) else it.name
        if isinstance(it, ValueItem):
            rows.append(EntryRow(name, "value", value=value_repr(it.value)))
        elif isinstance(it, LinkItem):
            rows.append(EntryRow(name, "link", value=it.target))
        elif it.unreadable:
            rows.append(EntryRow(name, "unreadable", shape=None, dtype=it.dtype, value=it.unreadable))
        else:
            rows.append(EntryRow(name, "tensor", it.shape, it.dtype, it.numel, it.nbytes,
                                 storage_group=group_of.get(id(it))))
    storage_bytes = sum(it.nbytes for it in tensors if id(it) not in group_of) + sum(size for _, size in groups)
    refused = tuple((it.name, it.unreadable) for it in items if isinstance(it, Item) and it.refused)
    return ContainerSummary(
        file=tfile.path, format=tfile.label, key=prefix, entries=tuple(rows), tensors=len(tensors),
        total_params=sum(it.numel for it in tensors), total_bytes=sum(it.nbytes for it in tensors),
        storage_bytes=storage_bytes, shared=tuple(shared), attrs=attrs, refused=refused,
    )


def preview_index(shape: Sequence[int], per_dim: int) -> tuple:
    """The corner to show: the first `per_dim` along the last two dims, the first 2 before them."""
    index = []
    for dim, size in enumerate(shape):
        keep = per_dim if dim >= len(shape) - 2 else min(2, per_dim)
        index.append(slice(0, min(size, keep)))
    return tuple(index)


def preview(item: Item, per_dim: int) -> tuple[Any, tuple[int, ...] | None]:
    if per_dim <= 0 or item.unreadable:
        return None, None
    corner = item.read(preview_index(item.shape, per_dim))
    shape = tuple(getattr(corner, "shape", ()))
    return to_python(corner), shape


def tensor_summary(tfile: TensorFile, item: Item, key: str | None, ops: Sequence[ViewOp] = (),
                   stats: bool = True, preview_per_dim: int = 6, shares_with: Sequence[str] = ()) -> TensorSummary:
    if item.unreadable:
        raise InputError(f"{tfile.path}: {item.name or 'the array'}: {item.unreadable}")
    views: tuple[ViewStep, ...] = ()
    names = item.names
    if ops:
        item, views = apply_views(item, ops)
    note = item.unreadable
    try:
        values_preview, preview_shape = preview(item, preview_per_dim)
        summary_stats = compute_stats(item) if stats else None
    except (InputError, UsageProblem):
        raise
    except MemoryError:
        raise InputError(f"{tfile.path}: not enough memory to read {item.name or 'the tensor'}") from None
    except Exception as exc:  # noqa: BLE001 - damaged data in a file that opened fine
        raise InputError(f"{tfile.path}: cannot read the data of {item.name or 'the tensor'} "
                         f"({reason(exc)})") from None
    return TensorSummary(
        file=tfile.path, format=tfile.label, key=key, shape=item.shape, dtype=item.dtype,
        element_size=item.element_size, numel=item.numel, nbytes=item.nbytes, stride=item.stride,
        storage_offset=item.storage_offset, storage_size=item.storage_size,
        contiguous=is_contiguous(item.shape, item.stride), names=names if not ops else None,
        requires_grad=item.requires_grad, device=item.device, layout=item.layout, attrs=item.attrs,
        shares_storage_with=tuple(shares_with), stats=summary_stats, preview=values_preview,
        preview_shape=preview_shape, views=views, note=note,
    )


def inspect_file(path: str, key: str | None = None, ops: Sequence[ViewOp] = (), stats: bool = True,
                 preview_per_dim: int = 6) -> TensorSummary | ContainerSummary:
    """`ptm inspect-tensor`: one tensor's anatomy, or a container's table of entries."""
    with open_tensor_file(path) as tfile:
        selected = tfile.select(key)
        if isinstance(selected, Item):
            shares = []
            if tfile.format != "hdf5" and selected.storage_id is not None:
                others = [it for it in tfile.items.values() if isinstance(it, Item) and it is not selected]
                for members, _ in shared_groups([selected, *others]):
                    if selected in members:
                        shares = [it.name for it in members if it is not selected]
            return tensor_summary(tfile, selected, selected.name or key, ops, stats, preview_per_dim, shares)
        if isinstance(selected, (ValueItem, LinkItem)):
            shown = value_repr(getattr(selected, "value", getattr(selected, "target", "")))
            if key is None:
                raise InputError(f"{path}: holds no tensors, only a {type(selected.value).__name__}: {shown}")
            raise UsageProblem(f"{path}: {key!r} is a {selected.kind}, not a tensor: {shown}")
        prefix, items, attrs = selected
        if ops:
            tensors = [it for it in items if isinstance(it, Item)]
            if len(tensors) == 1 and len(items) == 1:
                return tensor_summary(tfile, tensors[0], tensors[0].name, ops, stats, preview_per_dim)
            raise UsageProblem(f"{path}: --select/--transpose/--view/--contiguous work on one tensor; "
                               f"this holds {len(items)} entries", ["name one: ptm inspect-tensor FILE KEY ..."])
        return container_summary(tfile, prefix, items, attrs)
