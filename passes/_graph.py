"""Shared helpers of the graph-level (middle-end) passes: constants as NumPy
arrays, per-channel constant vectors, and building new constants in place."""

from __future__ import annotations

import numpy as np
from xdsl.dialects import arith
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, TensorType, f32, i64
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter
from xdsl.rewriter import InsertPoint

from bnnc.dialects import bnn
from bnnc.dialects.dense import from_numpy, to_numpy


def const_array(value: SSAValue | None) -> np.ndarray | None:
    """The value of a dense `arith.constant`, or None if `value` is not one."""
    if value is None:
        return None
    op = value.owner
    if isinstance(op, arith.ConstantOp) and isinstance(op.value, DenseIntOrFPElementsAttr):
        return to_numpy(op.value)
    return None


def shape_of(value: SSAValue) -> tuple[int, ...]:
    typ = value.type
    assert isinstance(typ, TensorType)
    return tuple(typ.get_shape())


def channel_vector(value: SSAValue, like: SSAValue) -> np.ndarray | None:
    """If `value` is a constant that broadcasts against `like` (rank >= 2,
    channels on axis 1) as one value per channel, that vector (f32, length C)."""
    arr = const_array(value)
    if arr is None or arr.dtype != np.float32:
        return None
    shape = shape_of(like)
    if len(shape) < 2 or arr.ndim > len(shape):
        return None
    aligned = (1,) * (len(shape) - arr.ndim) + tuple(arr.shape)
    if any(d != 1 for i, d in enumerate(aligned) if i != 1) or aligned[1] not in (1, shape[1]):
        return None
    flat = arr.reshape(-1).astype(np.float32)
    return np.broadcast_to(flat, (shape[1],)).copy() if flat.size == 1 else flat.copy()


def insert_const(rewriter: PatternRewriter, array: np.ndarray, before: Operation) -> SSAValue:
    """An `arith.constant` holding `array` (f32 or i64), inserted before `before`."""
    element = f32 if array.dtype == np.float32 else i64
    op = arith.ConstantOp(from_numpy(array, element))
    rewriter.insert(op, InsertPoint.before(before))
    return op.result


def single_user(value: SSAValue) -> Operation | None:
    """The operation that uses `value`, if exactly one use exists."""
    uses = list(value.uses)
    return uses[0].operation if len(uses) == 1 else None


def erase_dead(rewriter: PatternRewriter, values) -> None:
    """Erase the side-effect-free ops defining `values` (and, transitively, their
    operands' definitions) once nothing uses them."""
    from xdsl.traits import is_side_effect_free

    stack = [v for v in values if v is not None]
    while stack:
        v = stack.pop()
        op = v.owner
        if not isinstance(op, Operation) or any(r.uses for r in op.results) or not is_side_effect_free(op):
            continue
        operands = list(op.operands)
        rewriter.erase(op)
        stack.extend(operands)


def replace(rewriter: PatternRewriter, op: Operation, new: Operation | list[Operation], results=None) -> None:
    """rewriter.replace_op, with the replaced op's location on the new ops."""
    ops = new if isinstance(new, list) else [new]
    for n in ops:
        n.location = op.location
    rewriter.replace(op, ops, results)


def binary_consumers(value: SSAValue) -> tuple[list[Operation], int] | None:
    """If every use of the f32 `value` reads it as +-1 bits (the input of a
    bnn.bconv2d, or a bnn.pack), those users and the channel groups they
    agree on; None if another op uses it, the groups disagree, or it is unused."""
    users: list[Operation] = []
    groups: set[int] = set()
    for use in value.uses:
        op = use.operation
        if isinstance(op, bnn.BConv2dOp) and use.index == 0 and not op.input_is_packed:
            groups.add(op.groups.value.data)
        elif isinstance(op, bnn.PackOp) and op.threshold is None:
            groups.add(op.groups.value.data)
        else:
            return None
        if op not in users:
            users.append(op)
    if not users or len(groups) != 1:
        return None
    return users, groups.pop()


def feed_packed(rewriter: PatternRewriter, users: list[Operation], packed: SSAValue, channels: int) -> None:
    """Make the binary consumers found by `binary_consumers` read `packed` instead."""
    for op in users:
        if isinstance(op, bnn.PackOp):
            rewriter.replace_all_uses_with(op.result, packed)
            rewriter.erase(op)
        else:
            replace(rewriter, op, op.clone_with(input=packed, in_channels=channels))


def find_or_make_pack(rewriter: PatternRewriter, source: SSAValue, groups: int, user: Operation) -> SSAValue:
    """The bnn.pack of `source` with `groups` for `user`, reusing an existing one
    that comes before it (one pack per value and groups)."""
    from xdsl.ir import Block

    for use in source.uses:
        op = use.operation
        if (
            isinstance(op, bnn.PackOp)
            and op.threshold is None
            and op.groups.value.data == groups
            and op.parent_block() is user.parent_block()
            and op.is_before_in_block(user)
        ):
            return op.result
    pack = bnn.PackOp(source, groups)
    owner = source.owner
    if isinstance(owner, Operation):
        pack.location = owner.location
        rewriter.insert(pack, InsertPoint.after(owner))
    else:
        assert isinstance(owner, Block)
        rewriter.insert(pack, InsertPoint.at_start(owner))
    return pack.result
