"""LoopBuilder (passes/_loop_builder.py), the IR builder every lowering uses:
constants hoisted to the entry block and shared, loop nests, carried values."""

from __future__ import annotations

import pytest
from xdsl.dialects import arith, func, scf
from xdsl.dialects.builtin import IndexType, ModuleOp, VectorType, f32, i64

from bnnc.passes._loop_builder import LoopBuilder


def _function():
    f = func.FuncOp("f", ((), ()))
    return f, LoopBuilder(f.body.block)


def _finish(f):
    f.body.block.add_op(func.ReturnOp())
    module = ModuleOp([f])
    module.verify()
    return module


def test_constants_are_hoisted_and_shared():
    f, b = _function()
    with b.loop(4) as loop:
        one = b.index(1)
        b.addi(loop.iv, 1)
    assert b.index(1) is one and b.i64(1) is not one  # shared per (value, type)
    assert b.f32(0.5) is b.f32(0.5)
    assert b.splat(2, VectorType(i64, [4])) is b.vector_constant([2, 2, 2, 2], VectorType(i64, [4]))
    _finish(f)
    entry = list(f.body.block.ops)
    consts = [op for op in entry if isinstance(op, arith.ConstantOp)]
    assert entry[: len(consts)] == consts  # all at the top of the entry block
    assert {c.result.type for c in consts} >= {IndexType(), i64, f32}


def test_identities_emit_nothing():
    f, b = _function()
    with b.loop(8) as loop:
        assert b.addi(loop.iv, 0) is loop.iv
        assert b.muli(loop.iv, 1) is loop.iv
    _finish(f)
    (for_op,) = [op for op in f.body.block.ops if isinstance(op, scf.ForOp)]
    assert [type(op) for op in for_op.body.block.ops] == [scf.YieldOp]


def test_nest_is_outermost_first():
    f, b = _function()
    with b.loops([2, 3, 5]) as ivs:
        assert len(ivs) == 3
    _finish(f)
    bounds = []
    op = next(op for op in f.body.block.ops if isinstance(op, scf.ForOp))
    while isinstance(op, scf.ForOp):
        bounds.append(op.ub.owner.value.value.data)
        op = next(iter(op.body.block.ops))
    assert bounds == [2, 3, 5]


def test_reduction_carries_values_through_every_level():
    f, b = _function()
    init = b.i64(0)
    with b.reduction([4, 4], [init]) as red:
        red.next = [b.iadd(red.carried[0], b.i64(1))]
    (result,) = red.results
    _finish(f)
    outer = result.owner
    assert isinstance(outer, scf.ForOp) and outer.iter_args[0] is init
    inner = next(op for op in outer.body.block.ops if isinstance(op, scf.ForOp))
    assert inner.iter_args[0] is outer.body.block.args[1]


def test_loop_must_yield_every_carried_value():
    f, b = _function()
    with pytest.raises(AssertionError, match="one value per carried value"), b.loop(4, carried=[b.i64(0)]):
        pass


@pytest.mark.parametrize("lanes", [2, 4, 8, 16])
def test_transpose_shuffles_compute_a_transpose(lanes):
    """lb.transpose's shuffles, followed lane by lane: result[i] lane j is
    rows[j] lane i, in lanes * log2(lanes) two-input shuffles."""
    from xdsl.dialects import vector

    vty = VectorType(f32, [lanes])
    f = func.FuncOp("f", ([vty] * lanes, ()))
    b = LoopBuilder(f.body.block)
    rows = list(f.body.block.args)
    result = b.transpose(rows)
    _finish(f)
    lanes_of = {row: [(j, i) for i in range(lanes)] for j, row in enumerate(rows)}
    shuffles = [op for op in f.body.block.ops if isinstance(op, vector.ShuffleOp)]
    for op in shuffles:
        both = lanes_of[op.v1] + lanes_of[op.v2]
        lanes_of[op.result] = [both[k] for k in op.mask.get_values()]
    assert len(shuffles) == lanes * (lanes.bit_length() - 1)
    assert [lanes_of[v] for v in result] == [[(j, i) for j in range(lanes)] for i in range(lanes)]
