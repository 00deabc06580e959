"""Lowerings of the binary bnn ops to register-blocked, vectorised loop nests.

Activations are bit-packed along channels into i64 words, planar per word:
P[n, word, y, x] (bit 1 = -1), copied once into a padded buffer whose border
holds the pad word, so the micro-kernel has no bounds checks. Weights are laid
out K-major at compile time, Wt[g, ky, kx, word, oc], output channels padded to
the register tile, so one vector load brings `lanes` output channels' words.

The micro-kernel vectorises over output channels (as hand-written BNN
kernels do): it broadcasts one activation word and XORs it against
`lanes` output channels' words, accumulating popcounts in a tile of
`pixels x vectors` vector registers with no horizontal sums in the K loop.
dot = K - 2 * popcount; zero padding is exact by subtracting, for border pixels
only, the +1-padded taps' contributions: a compile-time table of their sums
per border class (which taps of a row / column fall outside the input).
The epilogue applies the output transform while the tile is in registers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import arith
from xdsl.dialects.builtin import VectorType, f32, i64
from xdsl.ir import Operation, SSAValue

from bnnc.dialects import bnn
from bnnc.dialects.bitpack import (
    WORD_BITS,
    binarized_description,
    epilogue_offsets,
    packed_words,
    padding_correction,
    words_for,
)
from bnnc.passes._loop_builder import IndexLike, LoopBuilder, memref_shape
from bnnc.passes._lowering import Lowerer, Lowering, WorkOf, conv_macs
from bnnc.passes._microkernel import (
    accumulate_popcount,
    ceil_to,
    choose_popcount_tile,
    interior_range,
    tap_position,
    tiled_conv_loops,
)

WORD = WORD_BITS


# ------------------------------------------------------------------ packing


def _valid_bits(lb: LoopBuilder, cg: int, j: SSAValue) -> SSAValue:
    """min(64, Cg - 64 j): the meaningful bits in word j of a group."""
    left = lb.subi(lb.index(cg), lb.muli(j, WORD))
    return lb.emit(arith.MinSIOp(left, lb.index(WORD)))


def _sign_bits(lb: LoopBuilder, bits: IndexLike, element: Callable[[SSAValue], SSAValue]) -> SSAValue:
    """One packed word from contiguous values: bit i set when element(i) < 0,
    an OR-reduction over a loop LLVM vectorises (compare, shift, OR)."""
    with lb.loop(bits, carried=[lb.i64(0)]) as bit:
        negative = lb.bool_to_i64(lb.cmpf(element(bit.iv), 0.0, "olt"))
        bit.next = [lb.or_(bit.carried[0], lb.shl(negative, lb.index_to_i64(bit.iv)))]
    return bit.results[0]


def _pack_into(lb: LoopBuilder, x: SSAValue, groups: int, dest: SSAValue, pad: tuple[int, int]) -> None:
    """Sign bits of x (N x C x H x W f32) into dest[n, g*Wg + j, pad_h + y, pad_w + x].
    Bits are ORed in channel by channel so the innermost loop runs along x,
    contiguous in both buffers (LLVM vectorises it)."""
    n_, c, h, w = memref_shape(x)
    cg = c // groups
    words = words_for(cg)
    with lb.loops([n_, groups, words]) as (n, g, j):
        word = lb.affine([(g, words), (j, 1)])
        first = lb.affine([(g, cg), (j, WORD)])
        with lb.loops([h, w]) as (y, xx):
            lb.store(lb.i64(0), dest, [n, word, lb.addi(y, pad[0]), lb.addi(xx, pad[1])])
        with lb.loop(_valid_bits(lb, cg, j)) as bit:
            shift = lb.index_to_i64(bit.iv)
            ch = lb.addi(first, bit.iv)
            with lb.loops([h, w]) as (y, xx):
                py, px = lb.addi(y, pad[0]), lb.addi(xx, pad[1])
                negative = lb.bool_to_i64(lb.cmpf(lb.load(x, [n, ch, y, xx]), 0.0, "olt"))
                old = lb.load(dest, [n, word, py, px])
                lb.store(lb.or_(old, lb.shl(negative, shift)), dest, [n, word, py, px])


def _pad_word(lb: LoopBuilder, pad_value: int, cg: int, k: SSAValue) -> SSAValue:
    """The packed word k (of a group's words_for(cg), then the next group's)
    of a padded tap: +1 (and 0, corrected later) is all zeros; -1 sets the
    valid bits of the word, min(64, cg - 64 j) for its index j in its group:
    all ones shifted right by 64 minus that."""
    if pad_value >= 0:
        return lb.i64(0)
    j = lb.remui(k, words_for(cg))
    unused = lb.maxsi(lb.affine([(j, WORD)], WORD - cg), lb.index(0))
    return lb.shrui(lb.i64(-1), lb.index_to_i64(unused))


def _fill_border(
    lb: LoopBuilder, dest: SSAValue, cg: int, pad: tuple[int, int], pad_value: int, extra: int = 0
) -> None:
    """The pad word around the input, and in the `extra` columns right of the
    right padding (read only by the discarded lanes of a column kernel's tile)."""
    n_, total_words, hp, wp = memref_shape(dest)
    if pad == (0, 0) and not extra:
        return
    with lb.loops([n_, total_words]) as (n, k):
        value = _pad_word(lb, pad_value, cg, k)
        for y0, y1 in ((0, pad[0]), (hp - pad[0], hp)):
            with lb.loops([y1 - y0, wp]) as (y, xx):
                lb.store(value, dest, [n, k, lb.addi(y, y0), xx])
        for x0, x1 in ((0, pad[1]), (wp - pad[1] - extra, wp)):
            with lb.loops([hp - 2 * pad[0], x1 - x0]) as (y, xx):
                lb.store(value, dest, [n, k, lb.addi(y, pad[0]), lb.addi(xx, x0)])


def _packed_padded(lowerer: Lowerer, x: SSAValue, op: bnn.BConv2dOp, extra: int = 0) -> tuple[SSAValue, bool]:
    """The conv's input as a padded packed buffer (`extra` more columns on the
    right, see _fill_border), and whether it is a fresh allocation."""
    lb = lowerer.lb
    groups = op.groups.value.data
    (ph, pw) = op.window()[1]
    cin = op.channels_in
    cg = cin // groups
    pad_value = op.pad_value.value.data
    if op.input_is_packed:
        n_, words, h, w = memref_shape(x)
        if (ph, pw) == (0, 0) and not extra:
            return x, False
        dest = lb.alloc([n_, words, h + 2 * ph, w + 2 * pw + extra], i64)
        _fill_border(lb, dest, cg, (ph, pw), pad_value, extra)
        # only the rows this block reads (all of them on one thread)
        (sh, _), _, (dh, _) = op.window()
        kh = op.kernel_size[0]
        rows = lowerer.padded_rows(op.output_hw()[0], sh, kh, dh, h + 2 * ph)
        src_lo, src_hi = lowerer.source_rows(rows, ph, h)
        with lb.loops([n_, words]) as (n, k), lb.loop(src_hi, lb.index(src_lo)) as y, lb.loop(w) as xx:
            lb.store(lb.load(x, [n, k, y.iv, xx.iv]), dest, [n, k, lb.addi(y.iv, ph), lb.addi(xx.iv, pw)])
        return dest, True
    n_, c, h, w = memref_shape(x)
    dest = lb.alloc([n_, packed_words(c, groups), h + 2 * ph, w + 2 * pw + extra], i64)
    _fill_border(lb, dest, cg, (ph, pw), pad_value, extra)
    _pack_into(lb, x, groups, dest, (ph, pw))
    return dest, True


# -------------------------------------------------------- compile-time tables


def _channel_table(
    lowerer: Lowerer, op: Operation, value: SSAValue | None, groups: int, padded: int, fill: float, dtype
) -> SSAValue | None:
    """A per-output-channel constant laid out [group, padded channel]."""
    if value is None:
        return None
    data = lowerer.constant_value(value, op).reshape(groups, -1)
    table = np.full((groups, padded), fill, dtype=dtype)
    table[:, : data.shape[1]] = data
    return lowerer.global_buffer(table)


def _weights_k_major(weight: np.ndarray, groups: int, padded: int) -> np.ndarray:
    """Cout x KH x KW x Wg -> G x KH x KW x Wg x padded Cout/G (zero words pad)."""
    co, kh, kw, words = weight.shape
    cog = co // groups
    w = weight.reshape(groups, cog, kh, kw, words).transpose(0, 2, 3, 4, 1)
    out = np.zeros((groups, kh, kw, words, padded), dtype=np.int64)
    out[..., :cog] = w
    return out


def _correction_table(lowerer: Lowerer, op: bnn.BConv2dOp, args: list[SSAValue], groups: int, padded: int) -> SSAValue | None:
    """_correction_classes as a global buffer."""
    table = _correction_classes(lowerer, op, groups, padded)
    return None if table is None else lowerer.global_buffer(table)


def _correction_classes(lowerer: Lowerer, op: bnn.BConv2dOp, groups: int, padded: int) -> np.ndarray | None:
    """What a border pixel's out-of-bounds taps wrongly added, summed, per
    border class (_border_classes): table[g, cy, cx, oc]. A tap's share is,
    for zero padding, computed here from the weights (the +1-padded tap's
    contribution, Cg - 2 popcount(w)), or the op's own `correction` operand
    (correction[oc, ky, kx])."""
    pad_value = op.pad_value.value.data
    if op.correction is not None:
        corr = lowerer.constant_value(op.correction, op)
    elif pad_value == 0 and any(op.window()[1]):
        weight = lowerer.constant_value(op.weight, op)
        corr = padding_correction(weight, op.channels_in // groups)
    else:
        return None
    co, kh, kw = corr.shape
    cog = co // groups
    taps = np.zeros((groups, kh, kw, padded), dtype=np.int64)
    taps[..., :cog] = corr.reshape(groups, cog, kh, kw).transpose(0, 2, 3, 1)
    (sh, sw), (ph, pw), (dh, dw) = op.window()
    h, w = op.operands[0].type.get_shape()[2:]
    outside_y = _outside_taps(op.output_hw()[0], sh, ph, dh, kh, h)  # classes x kh
    outside_x = _outside_taps(op.output_hw()[1], sw, pw, dw, kw, w)
    outside = outside_y[:, None, :, None] | outside_x[None, :, None, :]  # cy x cx x kh x kw
    return np.einsum("yxab,gabc->gyxc", outside.astype(np.int64), taps)


def _outside_taps(out_size: int, stride: int, pad: int, dilation: int, kernel: int, in_size: int) -> np.ndarray:
    """outside[class, k]: whether tap k of an output index of that border
    class reads the padding (_border_classes; the interior class reads none)."""
    lo, hi = interior_range(out_size, stride, pad, dilation, kernel, in_size)
    reps = [*range(lo), None, *range(hi, out_size)]
    taps = np.arange(kernel) * dilation - pad
    return np.array(
        [np.zeros(kernel, bool) if o is None else ((o * stride + taps < 0) | (o * stride + taps >= in_size)) for o in reps]
    )


def _border_class(lb: LoopBuilder, o: IndexLike, interior: tuple[int, int]) -> SSAValue:
    """An output index's border class along one axis: itself below the
    interior range [lo, hi), lo inside it, lo + 1 + (o - hi) above it."""
    lo, hi = interior
    below = lb.emit(arith.MinSIOp(lb.index(o), lb.index(lo)))
    above = lb.emit(arith.MaxSIOp(lb.affine([(lb.index(o), 1)], 1 - hi), lb.index(0)))
    return lb.addi(below, above)


# -------------------------------------------------------------- micro-kernel


@dataclass
class _Epilogue:
    """Per-channel tables of the output transform, laid out [group, channel]."""

    multiplier: SSAValue | None
    bias: SSAValue | None
    slope: SSAValue | None
    threshold: SSAValue | None
    clamp_min: float | None
    clamp_max: float | None
    post_multiplier: SSAValue | None
    post_bias: SSAValue | None
    offset: SSAValue | None = None  # integer added to the dot before the multiplier


def _offsets_of(lowerer: Lowerer, op: Operation) -> np.ndarray | None:
    """The popcount form's integer epilogue offsets per channel (epilogue_offsets), or None."""
    if op.multiplier is None or op.bias is None:
        return None
    m = lowerer.constant_value(op.multiplier, op).reshape(-1).astype(np.float32)
    b = np.broadcast_to(lowerer.constant_value(op.bias, op).reshape(-1).astype(np.float32), m.shape)
    return epilogue_offsets(m, b, binarized_description(op))


def _epilogue_of(lowerer: Lowerer, op: Operation, args: list[SSAValue], groups: int, padded: int) -> _Epilogue:
    lo = op.clamp_min.value.data if op.clamp_min is not None else None
    hi = op.clamp_max.value.data if op.clamp_max is not None else None
    k = _offsets_of(lowerer, op)
    if k is not None:  # those channels: (dot + k) * m + 0
        m = lowerer.constant_value(op.multiplier, op).reshape(-1).astype(np.float32)
        b = np.broadcast_to(lowerer.constant_value(op.bias, op).reshape(-1).astype(np.float32), m.shape)
        tables = [np.zeros((groups, padded), dtype) for dtype in (np.float32, np.int64)]
        tables[0][:, : m.size // groups] = np.where(k != 0, 0.0, b).reshape(groups, -1)
        tables[1][:, : m.size // groups] = k.reshape(groups, -1)
        bias, offset = (lowerer.global_buffer(t) for t in tables)
    else:
        bias, offset = _channel_table(lowerer, op, op.bias, groups, padded, 0.0, np.float32), None
    return _Epilogue(
        _channel_table(lowerer, op, op.multiplier, groups, padded, 1.0, np.float32),
        bias,
        _channel_table(lowerer, op, op.slope, groups, padded, 1.0, np.float32),
        _channel_table(lowerer, op, op.threshold, groups, padded, -(1 << 40), np.int64),  # never below: padded lanes
        lo,
        hi,
        _channel_table(lowerer, op, op.post_multiplier, groups, padded, 1.0, np.float32),
        _channel_table(lowerer, op, op.post_bias, groups, padded, 0.0, np.float32),
        offset,
    )


def _dot(lb: LoopBuilder, acc: SSAValue, k_total: int, vty: VectorType) -> SSAValue:
    return lb.subi(lb.splat(k_total, vty), lb.shl(acc, lb.splat(1, vty)))


def _float_transform(lb: LoopBuilder, ep: _Epilogue, dot: SSAValue, g: IndexLike, oc: IndexLike) -> SSAValue:
    """The output transform of one channel's scalar dot (xDSL's arith casts are
    scalar-only, and NCHW stores are per element anyway)."""
    # |dot| <= K, the bits of one receptive field: far below 2^31 (K >= 2^31
    # would need a 256 MiB packed filter per output channel); |offset| <= 2^20.
    if ep.offset is not None:
        dot = lb.addi(dot, lb.load(ep.offset, [g, oc]))
    value = lb.sitofp(dot, fits_i32=True)
    if ep.multiplier is not None and ep.bias is not None:
        value = lb.fma(value, lb.load(ep.multiplier, [g, oc]), lb.load(ep.bias, [g, oc]))
    elif ep.multiplier is not None:
        value = lb.mulf(value, lb.load(ep.multiplier, [g, oc]))
    elif ep.bias is not None:
        value = lb.addf(value, lb.load(ep.bias, [g, oc]))
    if ep.slope is not None:
        value = lb.select(lb.cmpf(value, 0.0, "ogt"), value, lb.mulf(value, lb.load(ep.slope, [g, oc])))
    if ep.clamp_min is not None:
        value = lb.select(lb.cmpf(value, ep.clamp_min, "olt"), lb.f32(ep.clamp_min), value)
    if ep.clamp_max is not None:
        value = lb.select(lb.cmpf(value, ep.clamp_max, "ogt"), lb.f32(ep.clamp_max), value)
    if ep.post_multiplier is not None:  # the graph's own mul and add: two roundings
        value = lb.mulf(value, lb.load(ep.post_multiplier, [g, oc]))
    if ep.post_bias is not None:
        value = lb.addf(value, lb.load(ep.post_bias, [g, oc]))
    return value


# ---------------------------------------------------------------- bconv2d


def _or_bit(
    lb: LoopBuilder,
    out: SSAValue,
    bit: SSAValue,
    n: SSAValue,
    channel: SSAValue,
    cog_out: int,
    words_out: int,
    oy: IndexLike,
    ox: IndexLike,
) -> None:
    """OR `bit` (0/1) into the packed output word of `channel` (laid out in out_groups)."""
    og, within = lb.divui(channel, cog_out), lb.remui(channel, cog_out)
    word = lb.affine([(og, words_out), (lb.divui(within, WORD), 1)])
    shift = lb.index_to_i64(lb.remui(within, WORD))
    old = lb.load(out, [n, word, oy, ox])
    lb.store(lb.or_(old, lb.shl(bit, shift)), out, [n, word, oy, ox])


def lower_bconv2d(lowerer: Lowerer, op: bnn.BConv2dOp, args: list[SSAValue], out: SSAValue) -> None:
    # imported here: the column kernel builds on this module's helpers
    from bnnc.passes._bconv_columns import column_tile, lower_bconv2d_columns

    column = column_tile(lowerer, op)
    if column is not None:
        lower_bconv2d_columns(lowerer, op, args, out, column)
        return
    lb = lowerer.lb
    groups = op.groups.value.data
    (sh, sw), (ph, pw), (dh, dw) = op.window()
    cin = op.channels_in
    cg = cin // groups
    co, kh, kw, words = memref_shape(args[1])
    cog = co // groups
    n_ = memref_shape(out)[0]
    oh, ow = op.output_hw()
    channels_last = op.channels_last is not None
    h, w = (memref_shape(args[0])[2], memref_shape(args[0])[3])
    tile = choose_popcount_tile(lowerer.vector_bits, lowerer.registers, cog, lowerer.popcount_bits)
    padded = ceil_to(cog, tile.channels)
    vty = VectorType(i64, [tile.lanes])

    weights = lowerer.global_buffer(_weights_k_major(lowerer.constant_value(op.weight, op), groups, padded))
    correction = _correction_table(lowerer, op, args, groups, padded)
    ep = _epilogue_of(lowerer, op, args, groups, padded)
    # args follow the operands in definition order: input, weight, correction, residual, ...
    residual = args[2 + (op.correction is not None)] if op.residual is not None else None
    source, fresh = _packed_padded(lowerer, args[0], op)
    dots = lb.alloca_entry([tile.pixels, tile.channels], i64)
    k_total = kh * kw * cg
    threshold_out = op.threshold is not None
    rows = lowerer.row_range(oh)
    # NCHW float results go through a row buffer (see _store_row_nchw)
    row_buffer = None
    if not threshold_out and not channels_last and ow * tile.channels * 4 <= ROW_BUFFER_BYTES:
        row_buffer = lb.alloca_entry([ow, tile.channels], f32)
    if threshold_out:
        out_groups = op.out_groups.value.data if op.out_groups is not None else 1
        cog_out, words_out = co // out_groups, words_for(co // out_groups)
        with lb.loops([n_, memref_shape(out)[1]]) as (n, k), lb.loop(rows[1], lb.index(rows[0])) as y:
            with lb.loop(ow) as xx:
                lb.store(lb.i64(0), out, [n, k, y.iv, xx.iv])

    rows_inside = interior_range(oh, sh, ph, dh, kh, h)
    cols_inside = interior_range(ow, sw, pw, dw, kw, w)

    def emit_tile(
        n, g, oc0: IndexLike, vectors: int, valid: int, oy: IndexLike, ox0: IndexLike, pixels: int
    ):
        def weight_vector(ks: list[SSAValue], v: int) -> SSAValue:
            ky, kx, j = ks
            return lb.vload(weights, [g, ky, kx, j, lb.addi(oc0, v * tile.lanes)], vty)

        def activation_word(ks: list[SSAValue], t: int) -> SSAValue:
            ky, kx, j = ks
            iy, ix = tap_position(lb, oy, ox0, t, ky, kx, (sh, sw), (dh, dw))
            return lb.load(source, [n, lb.affine([(g, words), (j, 1)]), iy, ix])

        accs = accumulate_popcount(
            lb, vty, pixels, vectors, [kh, kw, words], weight_vector, activation_word, lowerer.popcount_bits
        )
        # The tile's dot products go to a small stack buffer; one scalar loop
        # then applies the epilogue (short IR for every tile shape). Its inner
        # loop runs along channels: channels-last results are contiguous
        # there, and LLVM vectorises the whole epilogue.
        # with zero padding every pixel subtracts its border class's
        # correction (one vector load; 0 inside), so one copy of the tile
        # serves the border and the interior
        corrected = correction is not None
        cy = _border_class(lb, oy, rows_inside) if corrected else None
        for t in range(pixels):
            cx = _border_class(lb, lb.addi(ox0, t), cols_inside) if corrected else None
            for v in range(vectors):
                dot = _dot(lb, accs[t][v], k_total, vty)
                if corrected:
                    oc = lb.addi(oc0, v * tile.lanes)
                    dot = lb.subi(dot, lb.vload(correction, [g, cy, cx, oc], vty))
                lb.vstore(dot, dots, [t, v * tile.lanes])
        with lb.loops([pixels, valid]) as (t, c):
            dot = lb.load(dots, [t, c])
            ox = lb.addi(ox0, t)
            oc = lb.addi(oc0, c)
            channel = lb.affine([(g, cog), (oc, 1)])
            if threshold_out:
                below = lb.emit(arith.ShRUIOp(lb.subi(dot, lb.load(ep.threshold, [g, oc])), lb.i64(63)))
                _or_bit(lb, out, below, n, channel, cog_out, words_out, oy, ox)
            elif row_buffer is not None:
                lb.store(_float_transform(lb, ep, dot, g, oc), row_buffer, [ox, c])
            else:
                value = _float_transform(lb, ep, dot, g, oc)
                at = [n, oy, ox, channel] if channels_last else [n, channel, oy, ox]
                if residual is not None:  # after the whole transform, in the add's operand order
                    r = lb.load(residual, at)
                    value = lb.addf(r, value) if op.residual_lhs is not None else lb.addf(value, r)
                lb.store(value, out, at)

    def after_row(n: SSAValue, g: SSAValue, oc0: IndexLike, valid: int, oy: SSAValue) -> None:
        assert row_buffer is not None
        channel0 = lb.affine([(g, cog), (oc0, 1)]) if isinstance(oc0, SSAValue) else lb.affine([(g, cog)], oc0)
        lhs = op.residual_lhs is not None
        _store_row_nchw(lb, lowerer.vector_bits // 32, row_buffer, out, residual, lhs, n, channel0, oy, ow, valid)

    tiled_conv_loops(
        lb,
        tile,
        batch=n_,
        groups=groups,
        channels_per_group=cog,
        out_hw=(oh, ow),
        emit=emit_tile,
        rows=rows,
        after_row=None if row_buffer is None else after_row,
    )
    if fresh:
        lb.dealloc(source)


# The largest row buffer (output columns x a channel tile of f32) an NCHW
# float result goes through; wider rows keep the per-element strided stores.
ROW_BUFFER_BYTES = 64 * 1024


def _store_row_nchw(
    lb: LoopBuilder,
    max_lanes: int,
    row_buffer: SSAValue,
    out: SSAValue,
    residual: SSAValue | None,
    residual_lhs: bool,
    n: SSAValue,
    channel0: SSAValue,
    oy: SSAValue,
    ow: int,
    valid: int,
) -> None:
    """out[n, channel0 + c, oy, x] (+ residual) = row_buffer[x, c] for x < ow,
    c < valid: one output row of a channel tile, written NCHW.

    Why: the tile's results are channel vectors (one pixel each), while NCHW
    wants each channel's pixels contiguous; storing them element by element
    at a stride of H x W (or writing NHWC and transposing the whole tensor
    afterwards, another pass over a result that need not fit in cache) costs
    more than the kernel's own epilogue. The row (ow x tile channels, in L1)
    is transposed in L x L register blocks (lb.transpose) into whole-vector
    stores along x, the residual read the same way; L = the widest f32
    vector, then halves for the columns left (56 = 3 x 16 + 8, 28 = 16 + 8
    + 4), at least 4 lanes; the few elements left are copied one by one."""
    x0, lanes = 0, max_lanes

    def finish(value: SSAValue, at: list[IndexLike], load: Callable[[list[IndexLike]], SSAValue]) -> SSAValue:
        if residual is None:
            return value
        r = load(at)
        return lb.addf(r, value) if residual_lhs else lb.addf(value, r)

    def scalar(x_lo: int, x_hi: int, c_lo: int) -> None:
        if x_hi <= x_lo or valid <= c_lo:
            return
        with lb.loop(valid, c_lo) as c, lb.loop(x_hi, x_lo) as x:
            at = [n, lb.addi(channel0, c.iv), oy, x.iv]
            value = finish(lb.load(row_buffer, [x.iv, c.iv]), at, lambda a: lb.load(residual, a))
            lb.store(value, out, at)

    while lanes >= 4:
        count = (ow - x0) // lanes * lanes
        full_c = valid // lanes * lanes
        if count and full_c:
            vty = VectorType(f32, [lanes])
            # (the channel blocks in a loop, not unrolled: one copy of the
            # transpose per block size keeps the IR short)
            with lb.loop(x0 + count, x0, lanes) as xb, lb.loop(full_c, 0, lanes) as cb:
                rows = [lb.vload(row_buffer, [lb.addi(xb.iv, j), cb.iv], vty) for j in range(lanes)]
                for i, v in enumerate(lb.transpose(rows)):
                    at = [n, lb.affine([(channel0, 1), (cb.iv, 1)], i), oy, xb.iv]
                    lb.vstore(finish(v, at, lambda a: lb.vload(residual, a, vty)), out, at)
            scalar(x0, x0 + count, full_c)
            x0 += count
        lanes //= 2
    scalar(x0, ow, 0)


# ------------------------------------------------------------------ bdense


def lower_bdense(lowerer: Lowerer, op: bnn.BDenseOp, args: list[SSAValue], out: SSAValue) -> None:
    lb = lowerer.lb
    x = args[0]
    n_, k = memref_shape(x)
    m_, words = memref_shape(args[1])
    tile = choose_popcount_tile(lowerer.vector_bits, lowerer.registers, m_, lowerer.popcount_bits)
    padded = ceil_to(m_, tile.channels)
    vty = VectorType(i64, [tile.lanes])
    weight = lowerer.constant_value(op.weight, op)  # M x W
    wt = np.zeros((words, padded), dtype=np.int64)
    wt[:, :m_] = weight.T
    weights = lowerer.global_buffer(wt)
    ep = _epilogue_of(lowerer, op, args, 1, padded)
    packed = lb.alloc([n_, words], i64)
    with lb.loops([n_, words]) as (n, j):
        first = lb.muli(j, WORD)
        word = _sign_bits(lb, _valid_bits(lb, k, j), lambda i: lb.load(x, [n, lb.addi(first, i)]))
        lb.store(word, packed, [n, j])

    def emit(n: SSAValue, m0: IndexLike, vectors: int, valid: int) -> None:
        accs = accumulate_popcount(
            lb,
            vty,
            1,
            vectors,
            [words],
            lambda ks, v: lb.vload(weights, [ks[0], lb.addi(m0, v * tile.lanes)], vty),
            lambda ks, t: lb.load(packed, [n, ks[0]]),
            lowerer.popcount_bits,
        )
        for v in range(vectors):
            oc = lb.addi(m0, v * tile.lanes)
            dot = _dot(lb, accs[0][v], k, vty)
            for lane in range(min(tile.lanes, valid - v * tile.lanes)):
                channel = lb.addi(oc, lane)
                lb.store(_float_transform(lb, ep, lb.extract(dot, lane), 0, channel), out, [n, channel])

    full_tiles, rest = divmod(m_, tile.channels)
    with lb.loops([n_]) as (n,):
        if full_tiles:
            with lb.loop(full_tiles) as mt:
                emit(n, lb.muli(mt.iv, tile.channels), tile.vectors, tile.channels)
        if rest:
            emit(n, full_tiles * tile.channels, -(-rest // tile.lanes), rest)
    lb.dealloc(packed)


# ---------------------------------------------------------------- bmaxpool


def lower_bmax_pool2d(lowerer: Lowerer, op: bnn.BMaxPool2dOp, args: list[SSAValue], out: SSAValue) -> None:
    """AND of the packed words over the window's in-bounds taps."""
    lb, x = lowerer.lb, args[0]
    _, _, h, w = memref_shape(x)
    (sh, sw), (ph, pw), (dh, dw) = op.window()
    kh, kw = op.kernel.get_values()
    with lb.loops(memref_shape(out)) as (n, k, oy, ox):
        with lb.reduction([kh, kw], [lb.i64(-1)]) as red:
            ky, kx = red.ivs
            iy = lb.affine([(oy, sh), (ky, dh)], -ph)
            ix = lb.affine([(ox, sw), (kx, dw)], -pw)
            inside = lb.and_(lb.in_range(iy, h), lb.in_range(ix, w))
            v = lb.load(x, [n, k, lb.clamp_index(iy, h - 1), lb.clamp_index(ix, w - 1)])
            v = lb.select(inside, v, lb.i64(-1))
            red.next = [lb.emit(arith.AndIOp(red.carried[0], v))]
        lb.store(red.results[0], out, [n, k, oy, ox])


BINARY_LOWERINGS: dict[type[Operation], Lowering] = {
    bnn.BConv2dOp: lower_bconv2d,
    bnn.BDenseOp: lower_bdense,
    bnn.BMaxPool2dOp: lower_bmax_pool2d,
}

# A popcount step does 64 bit-MACs, about 16x the work of a float MAC.
BINARY_THREADED: dict[type[Operation], WorkOf] = {
    bnn.BConv2dOp: lambda op: conv_macs(op) * 16,
    # memory-bound: the float elements it reads
}
