"""Shared pieces of the bnn lowerings: the per-function lowering state and
the loop-nest idioms (broadcast elementwise, window taps) every kernel uses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import arith, memref
from xdsl.dialects.builtin import (
    ArrayAttr,
    IntegerAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
    TensorType,
    UnitAttr,
    f32,
    i64,
)
from xdsl.ir import Operation, SSAValue
from xdsl.utils.exceptions import PassFailedException

from bnnc.dialects.dense import from_numpy
from bnnc.passes._loop_builder import IndexLike, LoopBuilder, memref_shape


def memref_of(typ: TensorType) -> MemRefType:
    return MemRefType(typ.element_type, list(typ.get_shape()))


Lowering = Callable[["Lowerer", Operation, list[SSAValue], SSAValue], None]
# How much work a threaded op is (see convert_bnn_to_loops.THREADED_WORK).
WorkOf = Callable[[Operation], int]


def conv_macs(op: Operation) -> int:
    """Output pixels x weight elements: MACs of a conv (bit-MACs / Cin-words for bconv)."""
    out = op.results[0].type.get_shape()
    oh, ow = op.output_hw()
    weight = op.operands[1].type.get_shape()
    return out[0] * oh * ow * weight[0] * weight[1] * weight[2] * weight[3]


@dataclass
class Lowerer:
    """Bufferizes one function: maps tensor values to memrefs while lowering."""

    module: ModuleOp
    lb: LoopBuilder
    buffers: dict[SSAValue, SSAValue]
    constants: dict[SSAValue, np.ndarray]
    globals_made: list[int]
    vector_bits: int = 128
    registers: int = 16
    # Lane width of binary kernels' popcount accumulators (64: one per word).
    popcount_bits: int = 64
    # The kernel being lowered runs on `threads` threads as number `thread`
    # (index values), or on one thread when these are None.
    thread: SSAValue | None = None
    threads: SSAValue | None = None
    blocks: int = 1  # the static value of `threads` (the call's bnnc.blocks)
    thread_min_work: int = 0

    def row_range(self, rows: int) -> tuple[IndexLike, IndexLike]:
        """This thread's share [begin, end) of `rows` output rows."""
        if self.thread is None or self.threads is None:
            return 0, rows
        lb = self.lb
        per = lb.divui(lb.addi(self.threads, rows - 1), self.threads)
        begin = lb.emit(arith.MinSIOp(lb.muli(self.thread, per), lb.index(rows)))
        end = lb.emit(arith.MinSIOp(lb.addi(begin, per), lb.index(rows)))
        return begin, end

    def padded_rows(
        self,
        out_rows: int,
        stride: int,
        kernel: int,
        dilation: int,
        padded: int,
        rows: tuple[IndexLike, IndexLike] | None = None,
    ) -> tuple[IndexLike, IndexLike]:
        """The rows [lo, hi) of a padded input that this block's output rows
        (`rows`, default its row_range) read (all of them on one thread): a
        block fills only these rows of its padded copy."""
        if self.thread is None or self.threads is None:
            return 0, padded
        lb = self.lb
        begin, end = self.row_range(out_rows) if rows is None else rows
        lo = lb.muli(begin, stride)
        hi = lb.emit(arith.MinSIOp(lb.affine([(end, stride)], (kernel - 1) * dilation + 1 - stride), lb.index(padded)))
        return lo, lb.emit(arith.MaxSIOp(hi, lo))

    def source_rows(self, padded_rows: tuple[IndexLike, IndexLike], pad: int, rows: int) -> tuple[IndexLike, IndexLike]:
        """The unpadded rows [lo, hi) that land in `padded_rows` of a copy padded by `pad`."""
        lo, hi = padded_rows
        if not isinstance(lo, SSAValue) and not isinstance(hi, SSAValue):
            return max(0, lo - pad), min(rows, hi - pad)
        lb = self.lb
        src_lo = lb.emit(arith.MaxSIOp(lb.affine([(lo, 1)], -pad), lb.index(0)))
        src_hi = lb.emit(arith.MinSIOp(lb.affine([(hi, 1)], -pad), lb.index(rows)))
        return src_lo, src_hi

    def constant_value(self, value: SSAValue, user: Operation) -> np.ndarray:
        if value not in self.constants:
            raise PassFailedException(f"{user.name}: operand must be a constant tensor for this lowering")
        return np.asarray(self.constants[value])

    def global_buffer(self, array: np.ndarray) -> SSAValue:
        element = f32 if array.dtype == np.float32 else i64
        index = len(self.globals_made)
        self.globals_made.append(index)
        name = f"__bnnc_const_{index}"
        typ = MemRefType(element, list(array.shape))
        self.module.body.block.add_op(
            memref.GlobalOp.get(
                StringAttr(name),
                typ,
                from_numpy(array, element, memref=False),
                constant=UnitAttr(),
                alignment=64,
            )
        )
        return self.lb.emit(memref.GetGlobalOp(name, typ))


# --------------------------------------------------------------- elementwise


def broadcast_indices(lb: LoopBuilder, operand: SSAValue, out_ivs: list[SSAValue]) -> list[SSAValue | int]:
    shape = memref_shape(operand)
    offset = len(out_ivs) - len(shape)
    return [0 if d == 1 else out_ivs[offset + i] for i, d in enumerate(shape)]


def _collapsed_from(out_shape: Sequence[int], operand_shapes: Sequence[Sequence[int]]) -> int:
    """The first of the trailing axes an elementwise loop can run over as one
    flat axis: axes every operand either has in full or broadcasts entirely.
    The batch and channel axes (0, 1) stay separate (they index per-channel
    parameters and split between threads); rank <= 2 keeps every axis."""
    rank = len(out_shape)
    start = rank - 1
    floor = 2 if rank >= 3 else max(rank - 1, 0)
    while start > floor:
        axes = range(start - 1, rank)
        ok = True
        for shape in operand_shapes:
            padded = (1,) * (rank - len(shape)) + tuple(shape)
            dims = [padded[a] for a in axes]
            if dims != [out_shape[a] for a in axes] and any(d != 1 for d in dims):
                ok = False
        if not ok:
            break
        start -= 1
    return start


def collapse_trailing(lb: LoopBuilder, value: SSAValue, rank: int, start: int) -> SSAValue:
    """`value` (aligned to the right of a rank-`rank` shape) with the axes from
    `start` on merged into one (a view: the same pointer)."""
    shape = memref_shape(value)
    first = max(start - (rank - len(shape)), 0)
    if first >= len(shape) - 1:
        return value
    groups = [[i] for i in range(first)] + [list(range(first, len(shape)))]
    new_shape = [*shape[:first], int(np.prod(shape[first:]))]
    reassociation = ArrayAttr([ArrayAttr([IntegerAttr(i, i64) for i in g]) for g in groups])
    op = memref.CollapseShapeOp(
        operands=[value],
        result_types=[MemRefType(value.type.element_type, new_shape)],
        properties={"reassociation": reassociation},
    )
    return lb.emit(op)


def elementwise(
    lowerer: Lowerer,
    out: SSAValue,
    operands: Sequence[SSAValue],
    body: Callable[[LoopBuilder, list[SSAValue], list[SSAValue]], SSAValue],
) -> None:
    """out[ivs] = body(operands broadcast-loaded at ivs).

    Trailing axes that every operand has in full (or broadcasts entirely) run
    as one flat innermost loop over contiguous memory (one long loop LLVM
    vectorises, instead of a short one per row); `ivs` then holds the outer
    indices and the flat index, so a body may only read ivs[0] and ivs[1]
    (batch and channel) besides passing them through. Threads split the
    outer rows (N x C for NCHW)."""
    lb = lowerer.lb
    shape = memref_shape(out)
    if not shape:
        values = [lb.load(v, []) for v in operands]
        lb.store(body(lb, values, []), out, [])
        return
    rank = len(shape)
    start = _collapsed_from(shape, [memref_shape(v) for v in operands])
    flat_out = collapse_trailing(lb, out, rank, start)
    flat_operands = [collapse_trailing(lb, v, rank, start) for v in operands]
    outer, inner = list(shape[:start]), int(np.prod(shape[start:]))
    begin, end = lowerer.row_range(int(np.prod(outer)))
    with lb.loop(end, begin) as row:
        outer_ivs = unravel_index(lb, row.iv, outer)
        with lb.loop(inner) as flat:
            ivs = [*outer_ivs, flat.iv]
            values = [lb.load(v, broadcast_indices(lb, v, ivs)) for v in flat_operands]
            lb.store(body(lb, values, ivs), flat_out, ivs)


def unravel_index(lb: LoopBuilder, linear: SSAValue, shape: Sequence[int]) -> list[SSAValue]:
    """Row-major indices of `linear` in `shape` (no arithmetic for unit axes)."""
    indices: list[SSAValue] = []
    for i, d in enumerate(shape):
        stride = int(np.prod(shape[i + 1 :]))
        if d == 1:
            indices.append(lb.index(0))
            continue
        q = lb.divui(linear, stride) if stride != 1 else linear
        indices.append(lb.remui(q, d) if i and int(np.prod(shape[:i])) > 1 else q)
    return indices


def channel_view(lb: LoopBuilder, vector: SSAValue, rank: int, ivs: list[SSAValue]) -> SSAValue:
    """vector[c] at the channel (axis 1) of ivs; a 1-element vector broadcasts."""
    return lb.load(vector, [0 if memref_shape(vector)[0] == 1 else ivs[1]])
