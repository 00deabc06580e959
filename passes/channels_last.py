"""channels-last: the float results of binary convs are laid out N x H x W x C,
so the conv's epilogue writes, and the next pack reads, whole vectors of
channels.

Why: a bnn.bconv2d computes a tile of output pixels x channel vectors, and
the ops that read its result next (the pack of the next binary conv, a
residual add, a pool, a float conv) work on whole vectors of channels when
they are contiguous. In NCHW those readers, and the conv's epilogue (BN
multiplier/bias, PReLU, clamp, post affine, residual add), would need the
tile transposed. So a float-result binary conv with such a reader, or
whose residual comes from a converted conv, is converted. One whose readers
all take NCHW anyway (the function's result, float ops) and whose residual
(if any) is NCHW is not: its epilogue transposes each output row in
registers (lower_bconv2d's row buffer), which costs less than writing NHWC
and transposing the whole result in another pass.

The float ops around the binary path follow, so that no transpose sits
between them and it: Bi-Real's stem (conv -> max pool -> pack and residual)
and downsampling shortcut (avg pool -> 1x1 conv -> residual) cost ~1.2 ms of
4.9 in transposes and NCHW kernels before.

What it changes:
  - a float-result bnn.bconv2d with a reader that takes NHWC, or with a
    residual from such a conv, gets `channels_last`: its result (and
    residual) type becomes N x OH x OW x C;
  - a bnn.pack, bnn.max_pool2d, bnn.avg_pool2d or bnn.batch_norm whose
    input is NHWC gets `channels_last` and reads (all but a pack also write)
    that layout;
  - a float bnn.conv2d (one group) reads an NHWC input as it is
    (`channels_last_input`), and writes NHWC (`channels_last`) when every
    reader of its result takes NHWC: a pack, a converted conv's residual,
    another float conv, or a pool or batch norm whose readers all do
    (BinaryResNetE's stem: conv -> ReLU -> max pool -> BN). Otherwise it stays
    NCHW, so converting it never adds a transpose;
  - a residual still in NCHW (a float shortcut the rule above left alone,
    an argument) is transposed once into NHWC for the convs that take it;
  - every other use of an NHWC result (float ops, the function's result)
    reads one NHWC -> NCHW transpose, so nothing else sees a new layout.
Transposes are bnn.gather ops with the permutation's constant index. The
values computed are the same floats as before (only where they are stored
changes: each kernel keeps its summation order in either layout), so the
result is bit-identical. Convs with a packed (threshold) result, and small
results (`min_elements`, see MIN_ELEMENTS), are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import arith
from xdsl.dialects.builtin import ModuleOp, TensorType, UnitAttr, i64
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


def _chosen(module: ModuleOp, min_elements: int, every: bool = False) -> list[bnn.BConv2dOp]:
    """The float-result binary convs with at least `min_elements` outputs
    that some neighbour wants NHWC, in program order: a reader that takes
    NHWC (`_some_reader_takes_nhwc`), or a residual computed by a chosen
    conv (a chain of residual blocks stays NHWC: the transpose, if any, comes
    once at its end). Grown from the convs with such a reader until stable."""
    candidates = [op for op in module.walk() if _is_float_bconv(op) and _numel(op.result) >= min_elements]
    if every:
        return candidates
    chosen: set[Operation] = set()
    while True:
        grown = {
            op
            for op in candidates
            if _some_reader_takes_nhwc(op.result, chosen)
            or (op.residual is not None and op.residual.owner in chosen)
        }
        if grown == chosen:
            return [op for op in candidates if op in chosen]
        chosen = grown


def _some_reader_takes_nhwc(value: SSAValue, bconvs: set[Operation]) -> bool:
    """Whether a reader of `value` can read it N x H x W x C: a pack, the
    residual of a conv in `bconvs`, a float conv's input (one group), or a
    pool. A conv with no such reader and no NHWC residual (read only by the
    function's result or float ops) stays NCHW: its epilogue writes NCHW rows
    from registers (lower_bconv2d's row buffer) at about the cost of NHWC,
    and a transpose would cost another pass over the result."""
    for use in value.uses:
        user = use.operation
        if isinstance(user, (bnn.PackOp, *_POOLS)):
            return True
        if user in bconvs and use.index == _residual_index(user):  # type: ignore[arg-type]
            return True
        if isinstance(user, bnn.Conv2dOp) and use.index == 0 and user.groups.value.data == 1:
            return True
    return False


def _numel(value: SSAValue) -> int:
    return int(np.prod(value.type.get_shape()))


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


# The float ops that can read (and, but for a pack, write) N x H x W x C.
_POOLS = (bnn.MaxPool2dOp, bnn.AvgPool2dOp)
# Ops that keep their input's layout when it is NHWC: the pools, and an
# inference batch norm (a per-channel fma, on the last axis in NHWC).
_FOLLOWERS = (*_POOLS, bnn.BatchNormOp)


def _reads_nhwc(value: SSAValue, bconvs: set[Operation]) -> bool:
    """Whether every reader of `value` can take it N x H x W x C with no
    transpose: a pack, a converted conv's residual, a float conv's input, or
    a pool or batch norm whose own readers all can (they keep their input's
    layout)."""
    uses = list(value.uses)
    if not uses:
        return False
    for use in uses:
        user = use.operation
        if isinstance(user, bnn.PackOp):
            continue
        if user in bconvs and use.index == _residual_index(user):
            continue
        if isinstance(user, bnn.Conv2dOp) and use.index == 0 and user.groups.value.data == 1:
            continue
        if isinstance(user, _FOLLOWERS) and use.index == 0 and _reads_nhwc(user.result, bconvs):
            continue
        return False
    return True


def _plan(
    module: ModuleOp, min_elements: int, every: bool = False
) -> tuple[list[Operation], dict[Operation, set[int]], set[SSAValue]]:
    """The ops to convert in program order, the operands each of them reads
    NHWC, and the values that become NHWC. A float-result binary conv always
    writes NHWC; a pool and a pack follow their input; a float conv2d (one
    group) reads NHWC when its input is, and writes NHWC only when every
    reader takes NHWC, so converting it never adds a transpose."""
    bconvs: set[Operation] = set(_chosen(module, min_elements, every))
    order: list[Operation] = []
    slots: dict[Operation, set[int]] = {}
    nhwc: set[SSAValue] = set()
    for op in module.walk():
        if op in bconvs:
            index = _residual_index(op)  # type: ignore[arg-type]
            slots[op] = set() if index is None else {index}
            nhwc.add(op.results[0])
        elif isinstance(op, bnn.PackOp) and op.channels_last is None and op.input in nhwc:
            slots[op] = {0}
        elif isinstance(op, _FOLLOWERS) and op.channels_last is None and op.input in nhwc:
            slots[op] = {0}
            nhwc.add(op.result)
        elif isinstance(op, bnn.Conv2dOp) and op.groups.value.data == 1 and op.channels_last is None:
            reads = op.channels_last_input is None and op.input in nhwc
            writes = _numel(op.result) >= min_elements and _reads_nhwc(op.result, bconvs)
            if not (reads or writes):
                continue
            slots[op] = {0} if reads else set()
            if writes:
                nhwc.add(op.result)
        else:
            continue
        order.append(op)
    return order, slots, nhwc


def _rebuilt(op: Operation, operands: list[SSAValue], nhwc_input: bool, nhwc_result: bool) -> Operation:
    """`op` reading `operands` (operand 0 NHWC if `nhwc_input`), marked for its new layouts."""
    if isinstance(op, bnn.BConv2dOp):
        residual = operands[_residual_index(op)] if op.residual is not None else None
        return op.clone_with(result_type=_nhwc_type(op.result.type), residual=residual, channels_last=True)
    if isinstance(op, bnn.PackOp):
        extra = {"threshold": operands[1], "direction": operands[2]} if op.threshold is not None else {}
        return bnn.PackOp(operands[0], op.groups.value.data, channels_last=True, **extra)
    props = dict(op.properties)
    if isinstance(op, _FOLLOWERS) or nhwc_result:
        props["channels_last"] = UnitAttr()
    if isinstance(op, bnn.Conv2dOp) and nhwc_input:
        props["channels_last_input"] = UnitAttr()
    result = op.results[0].type
    return type(op).create(
        operands=operands,
        result_types=[_nhwc_type(result) if nhwc_result else result],
        properties=props,
        attributes=dict(op.attributes),
    )


def convert(module: ModuleOp, min_elements: int = MIN_ELEMENTS, every_float_bconv: bool = False) -> None:
    order, slots, nhwc = _plan(module, min_elements, every_float_bconv)
    new_of: dict[SSAValue, SSAValue] = {}  # a converted op's old result -> its NHWC result
    nhwc_of: dict[SSAValue, SSAValue] = {}  # NCHW value -> its NHWC transpose, made once

    for op in order:
        operands = list(op.operands)
        for i in slots[op]:
            value = operands[i]
            if value in new_of:
                operands[i] = new_of[value]
                continue
            # an NCHW residual (a float shortcut, an argument): transposed once, where it is defined
            if value not in nhwc_of:
                owner = value.owner
                where = owner.next_op if isinstance(owner, Operation) else _first_op(op)
                assert where is not None
                loc = owner.location if isinstance(owner, Operation) else op.location
                nhwc_of[value] = _transpose(value, NCHW_TO_NHWC, where, loc)
            operands[i] = nhwc_of[value]
        old = op.results[0]
        new = _rebuilt(op, operands, 0 in slots[op], old in nhwc)
        new.location = op.location
        Rewriter.insert_op(new, InsertPoint.after(op))
        if old not in nhwc:
            old.replace_all_uses_with(new.results[0])
            continue
        new_of[old] = new.results[0]
        nchw: SSAValue | None = None
        for use in list(old.uses):
            user = use.operation
            if use.index in slots.get(user, ()):
                continue  # reads new_of[old] when its turn comes
            if nchw is None:
                assert new.next_op is not None
                nchw = _transpose(new.results[0], NHWC_TO_NCHW, new.next_op, new.location)
            user.operands[use.index] = nchw
    for op in reversed(order):
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

    every_float_bconv: bool = False
    """Convert every float-result binary conv (of min_elements and up),
    whoever reads it: the fuzzer's NHWC request, so that the NHWC epilogue
    and the transposes run on graphs whose layers would stay NCHW."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        convert(op, self.min_elements, self.every_float_bconv)
