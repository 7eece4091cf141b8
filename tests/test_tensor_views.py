"""View arithmetic (--select/--transpose/--view/--contiguous) against torch's own size/stride/offset."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptmcli.errors import UsageProblem
from ptmcli.tensorio.views import (
    ViewMeta,
    ViewOp,
    apply_ops,
    is_contiguous,
    parse_select,
    split_view_args,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def meta_of(t: torch.Tensor) -> ViewMeta:
    return ViewMeta(tuple(t.shape), tuple(t.stride()), t.storage_offset())


def torch_apply(t: torch.Tensor, op: ViewOp) -> torch.Tensor:
    if op.kind == "select":
        return t[op.args]
    if op.kind == "transpose":
        return t.transpose(*op.args)
    if op.kind == "view":
        return t.view(*op.args) if op.args else t.view(())
    return t.contiguous()


index_item = st.one_of(
    st.integers(-5, 5),
    st.builds(slice, st.none() | st.integers(-6, 6), st.none() | st.integers(-6, 6), st.none() | st.integers(1, 3)),
    st.just(None),
)


@st.composite
def op_chain(draw):
    shape = draw(st.lists(st.integers(0, 4), max_size=4))
    ops = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["select", "transpose", "view", "contiguous"]))
        if kind == "select":
            items = draw(st.lists(index_item, max_size=4))
            if draw(st.booleans()):
                items.insert(draw(st.integers(0, len(items))), Ellipsis)
            ops.append(ViewOp("select", tuple(items)))
        elif kind == "transpose":
            ops.append(ViewOp("transpose", (draw(st.integers(-3, 3)), draw(st.integers(-3, 3)))))
        elif kind == "view":
            ops.append(ViewOp("view", tuple(draw(st.lists(st.sampled_from([-1, 0, 1, 2, 3, 4, 6, 12]), max_size=3)))))
        else:
            ops.append(ViewOp("contiguous"))
    return shape, ops


@FAST
@given(op_chain())
def test_view_arithmetic_equals_torch(chain):
    shape, ops = chain
    t = torch.zeros(shape)
    meta = meta_of(t)
    for op in ops:
        try:
            expected = torch_apply(t, op)
        except (IndexError, RuntimeError, ValueError):
            with pytest.raises(UsageProblem):
                apply_ops(meta, [op])
            return
        step = apply_ops(meta, [op])[-1]
        assert (step.meta.shape, step.meta.stride, step.meta.offset) == \
            (tuple(expected.shape), expected.stride(), expected.storage_offset()), op
        assert step.meta.contiguous == expected.is_contiguous()
        if op.kind == "contiguous":
            assert step.copied == (expected.untyped_storage().data_ptr() != t.untyped_storage().data_ptr())
        t, meta = expected, step.meta


@FAST
@given(st.lists(st.integers(0, 3), max_size=4), st.data())
def test_is_contiguous_matches_torch_on_permuted_views(shape, data):
    t = torch.zeros(shape)
    if len(shape) > 1:
        t = t.permute(*data.draw(st.permutations(range(len(shape)))))
    assert is_contiguous(tuple(t.shape), t.stride()) == t.is_contiguous()


def test_book_exercise_3_14():
    # a = torch.tensor(list(range(9))); b = a.view(3, 3); c = b[1:, 1:]
    steps = apply_ops(ViewMeta((9,), (1,)), [ViewOp("view", (3, 3)), ViewOp("select", parse_select("1:, 1:"))])
    assert [s.meta for s in steps] == [ViewMeta((9,), (1,), 0), ViewMeta((3, 3), (3, 1), 0),
                                       ViewMeta((2, 2), (3, 1), 4)]
    assert not steps[-1].meta.contiguous


@pytest.mark.parametrize("text, expected", [
    ("1:, 0", (slice(1, None), 0)),
    ("[1:, 0]", (slice(1, None), 0)),
    ("..., ::2", (Ellipsis, slice(None, None, 2))),
    ("None, -1", (None, -1)),
    ("1:5:2,", (slice(1, 5, 2),)),
    (" -2: ", (slice(-2, None),)),
    (":", (slice(None, None),)),
])
def test_parse_select(text, expected):
    assert parse_select(text) == expected


@pytest.mark.parametrize("text", ["__import__('os')", "1;2", "a", "1:2:0", "::-1", "..., ...", "1,,2", "0x1"])
def test_parse_select_refuses_everything_else(text):
    with pytest.raises(UsageProblem):
        parse_select(text)


def test_split_view_args_keeps_typed_order_and_leaves_the_rest():
    rest, ops = split_view_args(["f.pt", "--select", "0", "--format", "json", "--transpose", "0", "1",
                                 "--select=1:", "--view", "3", "-1", "key", "--contiguous", "--view=2,2"])
    assert rest == ["f.pt", "--format", "json", "key"]
    assert [(op.kind, op.args) for op in ops] == [
        ("select", (0,)), ("transpose", (0, 1)), ("select", (slice(1, None),)), ("view", (3, -1)),
        ("contiguous", ()), ("view", (2, 2)),
    ]


def test_split_view_args_stops_at_double_dash():
    rest, ops = split_view_args(["--", "--select", "0"])
    assert rest == ["--", "--select", "0"] and ops == []


@pytest.mark.parametrize("args", [["--select"], ["--transpose", "0"], ["--view"], ["--view", "x"],
                                  ["--transpose", "a", "b"], ["--contiguous=yes"]])
def test_split_view_args_errors(args):
    with pytest.raises(UsageProblem):
        split_view_args(args)


def test_view_error_explains_the_fix():
    meta = meta_of(torch.zeros(4, 3)[:, :2])
    with pytest.raises(UsageProblem) as info:
        apply_ops(meta, [ViewOp("view", (8,))])
    assert "--contiguous" in " ".join(info.value.hints)
    assert apply_ops(meta, [ViewOp("contiguous"), ViewOp("view", (8,))])[-1].meta == ViewMeta((8,), (1,), 0)
