"""Lowerings of the binary bnn ops (bconv2d, bdense) to scf loop nests on
bit-packed words: pack signs into i64 words along channels (bit 1 = -1), then
accumulate popcount(x xor w): dot = K - 2 * disagreements."""

from __future__ import annotations

from xdsl.dialects import arith
from xdsl.dialects.builtin import i64
from xdsl.ir import Operation, SSAValue

from bnnc.dialects import bnn
from bnnc.passes._loop_builder import LoopBuilder, memref_shape
from bnnc.passes._lowering import Lowerer, Lowering, window_taps

# ------------------------------------------------------------- binary convs


def _pack_channels(lb: LoopBuilder, x: SSAValue, groups: int) -> SSAValue:
    """Sign bits of x (N x C x H x W f32) packed along channels per group:
    P[n, h, w, g * words + j] bit i = (x[n, g*Cg + 64j + i, h, w] < 0)."""
    shape = memref_shape(x)
    n_, c, spatial = shape[0], shape[1], shape[2:]
    cg = c // groups
    words = bnn.words_for(cg)
    packed = lb.alloc([n_, *spatial, groups * words], i64)
    with lb.loops([n_, *spatial, groups, words]) as ivs:
        n, pos, g, j = ivs[0], ivs[1:-2], ivs[-2], ivs[-1]
        first = lb.affine([(g, cg), (j, bnn.WORD_BITS)])
        # bits in this word: min(64, Cg - 64 j)
        left = lb.subi(lb.index(cg), lb.muli(j, bnn.WORD_BITS))
        nbits = lb.emit(arith.MinSIOp(left, lb.index(bnn.WORD_BITS)))
        with lb.loop(nbits, carried=[lb.i64(0)]) as bit:
            v = lb.load(x, [n, lb.addi(first, bit.iv), *pos])
            negative = lb.bool_to_i64(lb.cmpf(v, 0.0, "olt"))
            shifted = lb.emit(arith.ShLIOp(negative, lb.index_to_i64(bit.iv)))
            bit.next = [lb.emit(arith.OrIOp(bit.carried[0], shifted))]
        lb.store(bit.results[0], packed, [n, *pos, lb.affine([(g, words), (j, 1)])])
    return packed


def _pad_word(lb: LoopBuilder, pad_value: int, cg: int, j: SSAValue) -> SSAValue:
    """The packed word of a padded tap: +1 is all zeros, -1 sets the valid bits of word j."""
    if pad_value >= 0:
        return lb.i64(0)
    left = lb.index_to_i64(lb.subi(lb.index(cg), lb.muli(j, bnn.WORD_BITS)))
    full = lb.cmpi(left, bnn.WORD_BITS, "sge")
    partial = lb.subi(lb.emit(arith.ShLIOp(lb.i64(1), left)), lb.i64(1))
    return lb.select(full, lb.i64(-1), partial)


def _epilogue(lb: LoopBuilder, dot: SSAValue, mult: SSAValue | None, bias: SSAValue | None, ch: SSAValue) -> SSAValue:
    value = lb.sitofp(dot)
    if mult is not None:
        value = lb.mulf(value, lb.load(mult, [ch]))
    if bias is not None:
        value = lb.addf(value, lb.load(bias, [ch]))
    return value


def _optional_operands(op: Operation, args: list[SSAValue]) -> tuple[SSAValue | None, SSAValue | None]:
    by_value = dict(zip(op.operands, args))
    mult = by_value[op.multiplier] if op.multiplier is not None else None
    bias = by_value[op.bias] if op.bias is not None else None
    return mult, bias


def lower_bconv2d(L: Lowerer, op: bnn.BConv2dOp, args: list[SSAValue], out: SSAValue) -> None:
    lb = L.lb
    x, w = args[0], args[1]
    mult, bias = _optional_operands(op, args)
    groups = op.groups.value.data
    pad_value = op.pad_value.value.data
    _, c, h, wd = memref_shape(x)
    co, kh, kw, words = memref_shape(w)
    cg, cog = c // groups, co // groups
    packed = _pack_channels(lb, x, groups)
    with lb.loops(memref_shape(out)) as (n, oc, oy, ox):
        g = lb.divui(oc, cog)
        with lb.reduction([kh, kw], [lb.i64(0)]) as taps:
            ky, kx = taps.ivs
            inb, iy, ix = window_taps(lb, oy, ox, ky, kx, op.window(), (h, wd))
            with lb.reduction([words], [lb.i64(0)]) as red:
                (j,) = red.ivs
                xw = lb.load(packed, [n, iy, ix, lb.affine([(g, words), (j, 1)])])
                if pad_value != 0:
                    xw = lb.select(inb, xw, _pad_word(lb, pad_value, cg, j))
                diff = lb.ctpop(lb.emit(arith.XOrIOp(xw, lb.load(w, [oc, ky, kx, j]))))
                red.next = [lb.emit(arith.AddiOp(red.carried[0], diff))]
            tap = lb.subi(lb.i64(cg), lb.emit(arith.ShLIOp(red.results[0], lb.i64(1))))
            if pad_value == 0:
                tap = lb.select(inb, tap, lb.i64(0))
            taps.next = [lb.emit(arith.AddiOp(taps.carried[0], tap))]
        lb.store(_epilogue(lb, taps.results[0], mult, bias, oc), out, [n, oc, oy, ox])
    lb.dealloc(packed)


def lower_bdense(L: Lowerer, op: bnn.BDenseOp, args: list[SSAValue], out: SSAValue) -> None:
    lb = L.lb
    x, w = args[0], args[1]
    mult, bias = _optional_operands(op, args)
    k = memref_shape(x)[1]
    m_, words = memref_shape(w)
    packed = _pack_channels(lb, x, 1)
    with lb.loops(memref_shape(out)) as (n, m):
        with lb.reduction([words], [lb.i64(0)]) as red:
            (j,) = red.ivs
            diff = lb.ctpop(lb.emit(arith.XOrIOp(lb.load(packed, [n, j]), lb.load(w, [m, j]))))
            red.next = [lb.emit(arith.AddiOp(red.carried[0], diff))]
        dot = lb.subi(lb.i64(k), lb.emit(arith.ShLIOp(red.results[0], lb.i64(1))))
        lb.store(_epilogue(lb, dot, mult, bias, m), out, [n, m])
    lb.dealloc(packed)


BINARY_LOWERINGS: dict[type[Operation], Lowering] = {
    bnn.BConv2dOp: lower_bconv2d,
    bnn.BDenseOp: lower_bdense,
}
