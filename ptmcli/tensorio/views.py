"""Chapter 3's view arithmetic without a tensor: size, stride and storage offset under indexing,
transpose, view and contiguous, computed exactly as PyTorch does, plus the small `--select` parser.

Pure Python on purpose: it answers "what would `b[1:, 1:]` be" for data that is not a torch tensor
(an HDF5 dataset read only as far as asked) and its tests compare it with torch itself. No `eval`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence, Union

from ptmcli.errors import UsageProblem

# What one `--select` item can be: an integer, a slice, `...` or `None` (a new axis of size 1).
Index = Union[int, slice, type(Ellipsis), None]


@dataclass(frozen=True)
class ViewMeta:
    """A view onto a storage: the three numbers chapter 3 is about."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int = 0

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def contiguous(self) -> bool:
        return is_contiguous(self.shape, self.stride)

    @staticmethod
    def row_major(shape: Sequence[int], offset: int = 0) -> "ViewMeta":
        return ViewMeta(tuple(shape), contiguous_strides(shape), offset)


@dataclass(frozen=True)
class ViewOp:
    """One step of `--select/--transpose/--view/--contiguous`, as typed and as parsed."""

    kind: str  # "select" | "transpose" | "view" | "contiguous"
    args: tuple = ()
    text: str = ""

    def describe(self) -> str:
        if self.kind == "select":
            return f"[{self.text}]"
        if self.kind == "transpose":
            return f".transpose({self.args[0]}, {self.args[1]})"
        if self.kind == "view":
            return f".view({', '.join(map(str, self.args))})"
        return ".contiguous()"


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def is_contiguous(shape: Sequence[int], stride: Sequence[int]) -> bool:
    """torch's rule: sizes of 1 have any stride, and an empty tensor is always contiguous."""
    if math.prod(shape) == 0:
        return True
    expected = 1
    for size, step in zip(reversed(shape), reversed(stride)):
        if size != 1:
            if step != expected:
                return False
            expected *= size
    return True


def _wrap_dim(dim: int, ndim: int, what: str) -> int:
    # torch lets a 0-d tensor name dims -1 and 0 (as if it had one).
    bound = max(ndim, 1)
    if not -bound <= dim < bound:
        raise UsageProblem(f"{what}: dimension {dim} out of range for a {ndim}-d tensor "
                           f"(expected {-bound}..{bound - 1})")
    return dim + bound if dim < 0 else dim


# --- --select -------------------------------------------------------------------------

_INT = r"[+-]?\d+"
_SLICE = re.compile(rf"^\s*({_INT})?\s*:\s*({_INT})?\s*(?::\s*({_INT})?\s*)?$")


def parse_select(text: str) -> tuple[Index, ...]:
    """'1:, 0' -> (slice(1, None), 0). Integers, slices a:b:c, `...` and None; nothing else."""
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    parts = body.split(",")
    if len(parts) > 1 and parts[-1].strip() == "":
        parts = parts[:-1]  # Python allows a trailing comma: t[1:,]
    items: list[Index] = []
    for part in parts:
        token = part.strip()
        if re.fullmatch(_INT, token):
            items.append(int(token))
        elif token in ("...", "Ellipsis"):
            items.append(Ellipsis)
        elif token in ("None", "newaxis", "np.newaxis"):
            items.append(None)
        elif (match := _SLICE.match(token)) is not None:
            start, stop, step = (int(g) if g is not None else None for g in match.groups())
            if step is not None and step <= 0:
                raise UsageProblem(f"--select {text!r}: slice step must be positive (torch has no negative steps)")
            items.append(slice(start, stop, step))
        else:
            raise UsageProblem(
                f"--select {text!r}: cannot read {token!r}",
                ["items are integers, slices like 1:, :2, ::2, 1:5:2, `...` or None, separated by commas"],
            )
    if sum(item is Ellipsis for item in items) > 1:
        raise UsageProblem(f"--select {text!r}: only one `...` is allowed")
    return tuple(items)


def apply_select(meta: ViewMeta, items: Sequence[Index], text: str = "") -> ViewMeta:
    """Basic indexing as torch applies it: ints drop a dim, slices narrow, None inserts one."""
    shape, stride, offset = list(meta.shape), list(meta.stride), meta.offset
    ndim = len(shape)
    specified = sum(1 for item in items if item is not None and item is not Ellipsis)
    if specified > ndim:
        raise UsageProblem(f"--select {text!r}: too many indices for a {ndim}-d tensor")
    if sum(item is Ellipsis for item in items) > 1:
        raise UsageProblem(f"--select {text!r}: only one `...` is allowed")
    dim = 0
    for item in items:
        if item is Ellipsis:
            # Measured against the tensor as given, before any None added a dimension.
            dim += ndim - specified
        elif item is None:
            new_stride = 1 if dim >= len(shape) else shape[dim] * stride[dim]
            shape.insert(dim, 1)
            stride.insert(dim, new_stride)
            dim += 1
        elif isinstance(item, int):
            size = shape[dim]
            if not -size <= item < size:
                raise UsageProblem(f"--select {text!r}: index {item} is out of bounds for dimension {dim} "
                                   f"with size {size}")
            offset += (item + size if item < 0 else item) * stride[dim]
            del shape[dim], stride[dim]
        else:
            size, step = shape[dim], item.step or 1
            start = 0 if item.start is None else item.start
            stop = size if item.stop is None else item.stop
            start = start + size if start < 0 else start
            stop = stop + size if stop < 0 else stop
            start = min(max(start, 0), size)
            stop = min(max(stop, start), size)
            offset += start * stride[dim]
            shape[dim] = (stop - start + step - 1) // step
            stride[dim] *= step
            dim += 1
    return ViewMeta(tuple(shape), tuple(stride), offset)


# --- transpose, view, contiguous -----------------------------------------------------------

def apply_transpose(meta: ViewMeta, dim0: int, dim1: int) -> ViewMeta:
    ndim = len(meta.shape)
    what = f"--transpose {dim0} {dim1}"
    a, b = _wrap_dim(dim0, ndim, what), _wrap_dim(dim1, ndim, what)
    if ndim == 0 or a == b:
        return meta
    shape, stride = list(meta.shape), list(meta.stride)
    shape[a], shape[b] = shape[b], shape[a]
    stride[a], stride[b] = stride[b], stride[a]
    return ViewMeta(tuple(shape), tuple(stride), meta.offset)


def infer_size(sizes: Sequence[int], numel: int) -> tuple[int, ...]:
    """Resolve one -1 the way torch's view does, with its error cases."""
    shown = "[" + ", ".join(map(str, sizes)) + "]"
    if sum(1 for s in sizes if s == -1) > 1:
        raise UsageProblem(f"--view {' '.join(map(str, sizes))}: only one dimension can be -1")
    if any(s < -1 for s in sizes):
        raise UsageProblem(f"--view {' '.join(map(str, sizes))}: invalid size {min(sizes)}")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if known == 0:
            raise UsageProblem(f"--view: cannot reshape a tensor of {numel} elements into shape {shown}: "
                               "the -1 could be any value")
        if numel % known:
            raise UsageProblem(f"--view: shape {shown} is invalid for input of size {numel}")
        return tuple(numel // known if s == -1 else s for s in sizes)
    if known != numel:
        raise UsageProblem(f"--view: shape {shown} is invalid for input of size {numel}")
    return tuple(sizes)


def _view_strides(old_shape, old_stride, new_shape) -> tuple[int, ...] | None:
    """ATen's computeStride: the strides that make `new_shape` a view, or None if none exist."""
    numel = math.prod(old_shape)
    if not old_shape:
        return tuple(1 for _ in new_shape)
    if numel == 0 and tuple(old_shape) == tuple(new_shape):
        return tuple(old_stride)
    ndim = len(new_shape)
    new_stride = [0] * ndim
    if numel == 0:
        for d in range(ndim - 1, -1, -1):
            new_stride[d] = 1 if d == ndim - 1 else max(new_shape[d + 1], 1) * new_stride[d + 1]
        return tuple(new_stride)
    view_d = ndim - 1
    chunk_base_stride = old_stride[-1]
    tensor_numel = view_numel = 1
    for tensor_d in range(len(old_shape) - 1, -1, -1):
        tensor_numel *= old_shape[tensor_d]
        if tensor_d == 0 or (old_shape[tensor_d - 1] != 1
                             and old_stride[tensor_d - 1] != tensor_numel * chunk_base_stride):
            while view_d >= 0 and (view_numel < tensor_numel or new_shape[view_d] == 1):
                new_stride[view_d] = view_numel * chunk_base_stride
                view_numel *= new_shape[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if tensor_d > 0:
                chunk_base_stride = old_stride[tensor_d - 1]
                tensor_numel = view_numel = 1
    if view_d != -1:
        return None
    return tuple(new_stride)


def apply_view(meta: ViewMeta, sizes: Sequence[int]) -> ViewMeta:
    shape = infer_size(sizes, meta.numel)
    stride = _view_strides(meta.shape, meta.stride, shape)
    if stride is None:
        raise UsageProblem(
            f"--view {' '.join(map(str, sizes))}: not possible without a copy: this view's strides "
            f"{meta.stride} span several contiguous pieces",
            ["put --contiguous before --view (torch: .contiguous().view(...) or .reshape(...))"],
        )
    return ViewMeta(shape, stride, meta.offset)


def apply_contiguous(meta: ViewMeta) -> tuple[ViewMeta, bool]:
    """torch returns the tensor itself when it is already contiguous; otherwise a fresh copy."""
    if meta.contiguous:
        return meta, False
    return ViewMeta.row_major(meta.shape), True


@dataclass(frozen=True)
class Step:
    """The view after one op, and whether the op copied the data into a new storage."""

    op: ViewOp | None
    meta: ViewMeta
    copied: bool = False


def apply_ops(meta: ViewMeta, ops: Sequence[ViewOp]) -> list[Step]:
    """Every intermediate view, starting with the tensor as stored."""
    steps = [Step(None, meta)]
    for op in ops:
        copied = False
        if op.kind == "select":
            meta = apply_select(meta, op.args, op.text)
        elif op.kind == "transpose":
            meta = apply_transpose(meta, *op.args)
        elif op.kind == "view":
            meta = apply_view(meta, op.args)
        elif op.kind == "contiguous":
            meta, copied = apply_contiguous(meta)
        else:  # pragma: no cover - ops come from parse_view_args
            raise ValueError(op.kind)
        steps.append(Step(op, meta, copied))
    return steps


# --- command-line order ----------------------------------------------------------------------

VIEW_OPTIONS = ("--select", "--transpose", "--view", "--contiguous")
_INT_TOKEN = re.compile(r"^[+-]?\d+$")


def _ints(values: Sequence[str], option: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise UsageProblem(f"{option} takes integers, got {' '.join(values)!r}") from None


def split_view_args(args: Sequence[str]) -> tuple[list[str], list[ViewOp]]:
    """Take the view options out of a command line, in the order they were typed.

    Click gathers each option's values separately, which loses the order between different
    options (`--select 0 --transpose 0 1 --select 1:` must run left to right), and it cannot
    give `--view` a variable number of sizes. So these four are read here, before Click sees
    the rest. `--view` takes the integers that follow it (`--view 3 3`, `--view 3,-1` or
    `--view=3,3`); arguments after `--` are left alone.
    """
    rest: list[str] = []
    ops: list[ViewOp] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            rest.extend(args[i:])
            break
        name, eq, inline = token.partition("=")
        if name not in VIEW_OPTIONS:
            rest.append(token)
            i += 1
            continue
        i += 1
        if name == "--contiguous":
            if eq:
                raise UsageProblem("--contiguous takes no value")
            ops.append(ViewOp("contiguous"))
        elif name == "--select":
            if not eq:
                if i >= len(args):
                    raise UsageProblem("--select needs an index expression, e.g. --select '1:, 0'")
                inline, i = args[i], i + 1
            ops.append(ViewOp("select", parse_select(inline), inline.strip()))
        elif name == "--transpose":
            values = inline.replace(",", " ").split() if eq else list(args[i:i + 2])
            if not eq:
                i += len(values)
            if len(values) != 2:
                raise UsageProblem("--transpose needs two dimensions, e.g. --transpose 0 1")
            ops.append(ViewOp("transpose", _ints(values, "--transpose")))
        else:  # --view
            if eq:
                values = inline.replace(",", " ").split()
            else:
                values = []
                while i < len(args) and (_INT_TOKEN.match(args[i]) or
                                         re.fullmatch(r"[+-]?\d+(,[+-]?\d+)+,?", args[i])):
                    values.extend(v for v in args[i].split(",") if v)
                    i += 1
            if not values:
                raise UsageProblem("--view needs sizes, e.g. --view 3 3 or --view 3,-1")
            ops.append(ViewOp("view", _ints(values, "--view")))
    return rest, ops
