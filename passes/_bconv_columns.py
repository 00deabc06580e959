"""bconv2d with a float NCHW result, vectorised over output columns.

Why: the channel-vectorised micro-kernel (_lower_binary) leaves each tile's
results as channel vectors of one pixel, while NCHW wants each channel's
pixels contiguous, so its results go through a row buffer and register
transposes (log2 L shuffle stages per L x L block) on the shuffle port the
popcounts also need: at 64ch@56x56 the epilogue and transposes took about a
quarter of the layer. Here the roles swap, as the float conv's column kernel
(_lower_float_conv) does: one vector load brings `lanes` consecutive output
columns' activation words (the packed input is planar per word, so a row of
words is contiguous when the stride along x is 1), one weight word per output
channel is broadcast, and a `channels x vectors` tile of accumulators
(accumulate_popcount, with the roles of its operands swapped) holds each
channel's consecutive pixels: the epilogue stores them along x straight into
the NCHW result, no transpose.

A tile's last vector may run past the row (ow not a multiple of the tile):
the padded input copy has enough extra columns for those lanes to read, and
only the row's pixels are stored (a partial vector lane by lane).

The epilogue works on 32-bit lanes: the popcounts of two vectors are
truncated by one shuffle, K - 2 popcount is added to the f32 bits of
1.5 * 2^23 and the float has a base subtracted, exactly (_bases): 1.5 * 2^23
minus the channel's popcount-form offset, and for zero padding plus the
correction from a compile-time table per row border class, output channel
and column (from the per-class sums of _lower_binary), read by every tile
(0 inside: one copy of the tile serves border and interior). The output
transform (multiplier, bias, post affine; no PReLU or clamp) and the
residual follow in _float_transform's order, so the bits equal the channel
kernel's.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from xdsl.dialects import vector
from xdsl.dialects.builtin import IntegerType, VectorType, f32, i64
from xdsl.ir import SSAValue

from bnnc.dialects import bnn
from bnnc.passes._loop_builder import IndexLike, LoopBuilder, memref_shape
from bnnc.passes._lower_binary import (
    _border_class,
    _correction_classes,
    _Epilogue,
    _epilogue_of,
    _offsets_of,
    _packed_padded,
    _weights_k_major,
)
from bnnc.passes._lowering import Lowerer
from bnnc.passes._microkernel import ColumnTile, accumulate_popcount, ceil_to, choose_column_tile, interior_range

# Rows whose last vector would hold more than this fraction of discarded lanes
# keep the channel-vectorised kernel (the lanes cost as much as real ones).
MAX_WASTE = 1 / 8
i32 = IntegerType(32)


def column_tile(lowerer: Lowerer, op: bnn.BConv2dOp) -> ColumnTile | None:
    """The column kernel's tile for this conv, or None where it does not apply:
    packed (threshold) or channels-last results, a stride along x (columns
    not contiguous), narrow popcount accumulators (NEON's channel tile is
    sized for them), vectors of fewer than 4 words, or rows that leave too
    many lanes of their last vector unused; and transforms with a select
    (PReLU, clamps: xDSL's arith.select is scalar-only), or receptive fields
    too large for the exact conversion (_bases)."""
    if op.threshold is not None or op.channels_last is not None or lowerer.popcount_bits < 64:
        return None
    (_, sw), _, _ = op.window()
    lanes = lowerer.vector_bits // 64
    ow = op.output_hw()[1]
    if sw != 1 or lanes < 4 or ceil_to(ow, lanes) - ow > MAX_WASTE * ow:
        return None
    co, kh, kw, _ = op.weight.type.get_shape()
    if 2 * kh * kw * op.channels_in // op.groups.value.data + OFFSET_BOUND >= EXACT_I32_TO_F32:
        return None
    if op.slope is not None or op.clamp_min is not None or op.clamp_max is not None:
        return None
    return choose_column_tile(lowerer.vector_bits, 64, lowerer.registers, co // op.groups.value.data)


# The exact i32 -> f32 conversion (_bases) needs |K - 2 popcount| < 2^22 and
# |correction| + |offset| < 2^22 (|correction| <= K, epilogue offsets <= 2^20).
OFFSET_BOUND = 1 << 20
EXACT_I32_TO_F32 = 1 << 22
MAGIC_BITS = 0x4B400000  # the f32 1.5 * 2^23
MAGIC = 12582912.0


def _low_halves(lb: LoopBuilder, accs: list[SSAValue]) -> SSAValue:
    """One i32 vector of the low 32 bits of every lane of one or two i64
    vectors (concatenated): the even i32 lanes on these little-endian targets.
    One shuffle truncates both (AVX-512: one vpermt2d for 16 values, where
    truncating each vector costs two uops), so everything after it runs on
    twice the lanes."""
    typ = accs[0].type
    assert isinstance(typ, VectorType)
    lanes = typ.get_shape()[0]
    halves = [lb.emit(vector.BitcastOp(a, VectorType(i32, [2 * lanes]))) for a in accs]
    return lb.shuffle(halves[0], halves[-1], list(range(0, 2 * lanes * len(accs), 2)))


def _vector_transform(lb: LoopBuilder, ep: _Epilogue, value: SSAValue, g: IndexLike, oc: IndexLike) -> SSAValue:
    """_float_transform after the dot (+ offset) is a float: one channel's
    vector, in the same order of operations and roundings (no slope or clamp:
    column_tile excludes them; the offset is already in `value`)."""

    def param(table: SSAValue) -> SSAValue:
        return lb.broadcast(lb.load(table, [g, oc]), value.type)

    if ep.multiplier is not None and ep.bias is not None:
        value = lb.fma(value, param(ep.multiplier), param(ep.bias))
    elif ep.multiplier is not None:
        value = lb.mulf(value, param(ep.multiplier))
    elif ep.bias is not None:
        value = lb.addf(value, param(ep.bias))
    if ep.post_multiplier is not None:
        value = lb.mulf(value, param(ep.post_multiplier))
    if ep.post_bias is not None:
        value = lb.addf(value, param(ep.post_bias))
    return value


def _add_residual(lb: LoopBuilder, op: bnn.BConv2dOp, value: SSAValue, r: SSAValue) -> SSAValue:
    """After the whole transform, in the add's operand order (-0.0 + 0.0 differs)."""
    return lb.addf(r, value) if op.residual_lhs is not None else lb.addf(value, r)


def _bases(
    lowerer: Lowerer, op: bnn.BConv2dOp, groups: int, padded: int, span: int
) -> tuple[SSAValue | None, SSAValue | None]:
    """What the f32 lanes MAGIC + d (d = K - 2 popcount, from the bits
    MAGIC_BITS + d) have subtracted to become d - correction + offset,
    exactly (integers below 2^24 on both sides): base[g, oc] = MAGIC - k
    without padding correction (and no table), or for zero padding (and no
    base) table[g, cy, oc, x] =
    MAGIC + correction - k: the correction of column x (of `span` computed
    columns; 0 beyond the row) in row border class cy."""
    offsets = _offsets_of(lowerer, op)
    k = np.zeros((groups, padded))
    if offsets is not None:
        k[:, : offsets.size // groups] = offsets.reshape(groups, -1)
    classes = _correction_classes(lowerer, op, groups, padded)  # g, cy, cx, oc
    if classes is None:
        return lowerer.global_buffer((MAGIC - k).astype(np.float32)), None
    _, (_, pw), (_, dw) = op.window()
    ow, w, kw = op.output_hw()[1], op.operands[0].type.get_shape()[3], op.kernel_size[1]
    lo, hi = interior_range(ow, 1, pw, dw, kw, w)
    column_class = [min(x, lo) + max(x + 1 - hi, 0) for x in range(ow)]  # as _border_class
    correction = np.zeros((*classes.shape[:2], padded, span))
    correction[..., :ow] = classes[:, :, column_class, :].transpose(0, 1, 3, 2)
    return None, lowerer.global_buffer((MAGIC + correction - k[:, None, :, None]).astype(np.float32))


def lower_bconv2d_columns(
    lowerer: Lowerer, op: bnn.BConv2dOp, args: list[SSAValue], out: SSAValue, tile: ColumnTile
) -> None:
    lb = lowerer.lb
    groups = op.groups.value.data
    (sh, _), (ph, _), (dh, dw) = op.window()
    cg = op.channels_in // groups
    co, kh, kw, words = memref_shape(args[1])
    cog = co // groups
    n_ = memref_shape(out)[0]
    oh, ow = op.output_hw()
    h = memref_shape(args[0])[2]
    lanes = tile.lanes
    span = ceil_to(ow, lanes)
    step = tile.vectors * lanes
    padded = ceil_to(cog, tile.channels)
    vty = VectorType(i64, [lanes])

    weights = lowerer.global_buffer(_weights_k_major(lowerer.constant_value(op.weight, op), groups, padded))
    base, correction = _bases(lowerer, op, groups, padded, span)
    ep = replace(_epilogue_of(lowerer, op, args, groups, padded), offset=None)  # the offset is in the bases
    residual = args[2 + (op.correction is not None)] if op.residual is not None else None
    source, fresh = _packed_padded(lowerer, args[0], op, span - ow)
    k_total = kh * kw * cg
    rows_inside = interior_range(oh, sh, ph, dh, kh, h)

    def emit_tile(n, g, oc0: IndexLike, channels: int, oy: SSAValue, cy: SSAValue | None, x0: IndexLike, pixels: int):
        """`channels` output channels x `pixels` columns from x0 of row oy;
        cy: the row's border class when the tile subtracts the correction."""
        vectors = -(-pixels // lanes)

        def activation_vector(ks: list[SSAValue], v: int) -> SSAValue:
            ky, kx, j = ks
            iy = lb.affine([(oy, sh), (ky, dh)])
            ix = lb.affine([(x0, 1), (kx, dw)], v * lanes)
            return lb.vload(source, [n, lb.affine([(g, words), (j, 1)]), iy, ix], vty)

        def weight_word(ks: list[SSAValue], t: int) -> SSAValue:
            ky, kx, j = ks
            return lb.load(weights, [g, ky, kx, j, lb.addi(oc0, t)])

        accs = accumulate_popcount(
            lb, vty, channels, vectors, [kh, kw, words], activation_vector, weight_word, lowerer.popcount_bits
        )
        for t in range(channels):
            oc = lb.addi(oc0, t)
            channel = lb.affine([(g, cog), (oc, 1)])
            # whole vectors in pairs (one f32 vector of twice the lanes), then the rest one by one
            whole = min(vectors, pixels // lanes)
            groups_of = [(v, 2) for v in range(0, whole - 1, 2)] + [(v, 1) for v in range(whole // 2 * 2, vectors)]
            for v, count in groups_of:
                low = _low_halves(lb, accs[t][v : v + count])
                ity, fty = low.type, VectorType(f32, low.type.get_shape())
                bits = lb.subi(lb.splat(MAGIC_BITS + k_total, ity), lb.iadd(low, low))  # MAGIC + d as f32 bits
                if cy is not None:
                    at = [g, cy, oc, lb.affine([(x0, 1)], v * lanes)]
                    subtract = lb.vload(correction, at, fty)
                else:
                    subtract = lb.broadcast(lb.load(base, [g, oc]), fty)
                value = _vector_transform(lb, ep, lb.subf(lb.bitcast(bits, fty), subtract), g, oc)
                x = lb.affine([(x0, 1)], v * lanes)
                valid = min(lanes * count, pixels - v * lanes)
                if valid == lanes * count:  # whole vectors along x, straight into the NCHW row
                    at = [n, channel, oy, x]
                    if residual is not None:
                        value = _add_residual(lb, op, value, lb.vload(residual, at, value.type))
                    lb.vstore(value, out, at)
                    continue
                for lane in range(valid):  # the row's last columns
                    at = [n, channel, oy, lb.addi(x, lane)]
                    element = lb.extract(value, lane)
                    if residual is not None:
                        element = _add_residual(lb, op, element, lb.load(residual, at))
                    lb.store(element, out, at)

    full, rest = divmod(ow, step)

    def row(n, g, oc0: IndexLike, channels: int, oy: SSAValue) -> None:
        # with zero padding every tile reads its row class's correction (a
        # vector load, as the base's broadcast is): one copy of the tile
        # serves the border and the interior
        cy = _border_class(lb, oy, rows_inside) if correction is not None else None
        if full:
            with lb.loop(full) as i:
                emit_tile(n, g, oc0, channels, oy, cy, lb.muli(i.iv, step), step)
        if rest:
            emit_tile(n, g, oc0, channels, oy, cy, full * step, rest)

    rows = lowerer.row_range(oh)

    def channel_tile(n, g, oc0: IndexLike, channels: int) -> None:
        with lb.loop(rows[1], lb.index(rows[0])) as r:
            row(n, g, oc0, channels, r.iv)

    full_tiles, rest_channels = divmod(cog, tile.channels)
    with lb.loops([n_, groups]) as (n, g):
        if full_tiles:
            with lb.loop(full_tiles) as octile:
                channel_tile(n, g, lb.muli(octile.iv, tile.channels), tile.channels)
        if rest_channels:
            channel_tile(n, g, full_tiles * tile.channels, rest_channels)
    if fresh:
        lb.dealloc(source)
