"""channels-last: the float results of binary convs are laid out N x H x W x C,
so the conv's epilogue writes, and the next pack reads, whole vectors of
channels.

Why: a bnn.bconv2d computes a tile of output pixels x channel vectors. In NCHW
its epilogue (BN multiplier/bias, PReLU, clamp, post affine, residual add)
stores each channel's pixels at a stride of H x W, one scalar at a time; that
epilogue cost more than the XNOR-popcount itself in Bi-Real-style blocks.
Channels last, the same scalar epilogue loop runs along contiguous channels
and LLVM vectorises it, residual loads included. A transpose of the result
(a blocked copy) costs less than the strided epilogue saved, so every
float-result binary conv is converted, whoever reads it.

What it changes:
  - every float-result bnn.bconv2d gets `channels_last`: its result (and
    residual) type becomes N x OH x OW x C;
  - a bnn.pack of such a result gets `channels_last` and reads that layout;
  - a residual that is another converted conv's result is used as it is; one
    still in NCHW (e.g. a float downsampling shortcut) is transposed once into
    NHWC for the convs that take it;
  - every other use of a converted result (float ops, the function's result)
    reads one NHWC -> NCHW transpose, so nothing else sees a new layout.
Transposes are bnn.gather ops with the permutation's constant index. The
values computed are the same floats as before (only where they are stored
changes), so the result is bit-identical. Convs with a packed (threshold)
result, and small results (`min_elements`, see MIN_ELEMENTS), are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import arith
from xdsl.dialects.builtin import ModuleOp, TensorType, i64
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from bnnc.dialects import bnn
from bnnc.dialects.dense import from_numpy

NCHW_TO_NHWC = (0, 2, 3, 1)
NHWC_TO_NCHW = (0, 3, 1, 2)


def _is_float_bconv(op: Operation | None) -> bool:
    return isinstance(op, bnn.BConv2dOp) and op.threshold is None and op.channels_last is None


# A result smaller than this stays NCHW: at a few thousand elements the
# transposes' fixed cost per call outweighs the vectorised epilogue (the 8x8
# digits network ran 10% slower converted; Bi-Real's smallest result is 25k).
MIN_ELEMENTS = 4096


def _chosen(module: ModuleOp, min_elements: int) -> list[bnn.BConv2dOp]:
    """The float-result binary convs with at least `min_elements` outputs, in program order."""
    return [
        op for op in module.walk() if _is_float_bconv(op) and int(np.prod(op.result.type.get_shape())) >= min_elements
    ]


def _transpose(value: SSAValue, perm: tuple[int, ...], before: Operation, loc: Attribute) -> SSAValue:
    """A bnn.gather copying `value` into the axis order `perm`, inserted before `before`."""
    typ = value.type
    assert isinstance(typ, TensorType)
    shape = tuple(typ.get_shape())
    index = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape).transpose(perm)
    index = np.ascontiguousarray(index)
    const = arith.ConstantOp(from_numpy(index, i64))
    gather = bnn.GatherOp([value], const.result, TensorType(typ.element_type, list(index.shape)))
    const.location = gather.location = loc
    Rewriter.insert_op([const, gather], InsertPoint.before(before))
    return gather.result


def _nhwc_type(typ: TensorType) -> TensorType:
    n, c, h, w = typ.get_shape()
    return TensorType(typ.element_type, [n, h, w, c])


def convert(module: ModuleOp, min_elements: int = MIN_ELEMENTS) -> None:
    convs = _chosen(module, min_elements)
    converted = set(convs)
    nhwc_of: dict[SSAValue, SSAValue] = {}  # NCHW value -> its NHWC transpose, made once

    for op in convs:
        residual = op.residual
        if residual is not None and residual.owner not in converted:
            if residual not in nhwc_of:
                owner = residual.owner
                where = owner.next_op if isinstance(owner, Operation) else _first_op(op)
                assert where is not None
                loc = owner.location if isinstance(owner, Operation) else op.location
                nhwc_of[residual] = _transpose(residual, NCHW_TO_NHWC, where, loc)
            residual = nhwc_of[residual]
        old = op.result
        new = op.clone_with(result_type=_nhwc_type(old.type), residual=residual, channels_last=True)
        Rewriter.insert_op(new, InsertPoint.after(op))
        nchw: SSAValue | None = None
        for use in list(old.uses):
            user = use.operation
            if isinstance(user, bnn.PackOp) and user.channels_last is None:
                pack = bnn.PackOp(new.result, user.groups.value.data, channels_last=True)
                pack.location = user.location
                Rewriter.replace_op(user, pack)
            elif user in converted and use.index == _residual_index(user):
                user.operands[use.index] = new.result
            else:
                if nchw is None:
                    assert new.next_op is not None
                    nchw = _transpose(new.result, NHWC_TO_NCHW, new.next_op, new.location)
                user.operands[use.index] = nchw
        converted.discard(op)
        converted.add(new)
        Rewriter.erase_op(op)


def _residual_index(op: bnn.BConv2dOp) -> int | None:
    if op.residual is None:
        return None
    return next(i for i, v in enumerate(op.operands) if v is op.residual)


def _first_op(op: Operation) -> Operation:
    block = op.parent_block()
    assert block is not None and block.first_op is not None
    return block.first_op


@dataclass(frozen=True)
class ChannelsLastPass(ModulePass):
    name = "channels-last"

    min_elements: int = MIN_ELEMENTS
    """Results with fewer elements stay NCHW (0: convert every one)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        convert(op, self.min_elements)
