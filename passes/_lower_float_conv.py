"""Lowerings of the float convolution layers (a BNN's fp32 first conv and
downsampling convs; the classifier is _lower_linear's) to FMA kernels with
weights laid out K-major at compile time and zero padding by a padded copy of
the input. A conv has two kernel shapes (use_column_kernel picks one): the
micro-kernel vectorised over output channels, and one vectorised over output
columns whose epilogue stores contiguous NCHW vectors (the stem's). Both
accumulate every output in the same order, so they give the same bits, and
both apply a fused batch norm (post_scale / post_shift) as one fma, then a
fused ReLU (fuse-conv-relu)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects import arith, vector
from xdsl.dialects.builtin import VectorType, f32, i32
from xdsl.ir import Operation, SSAValue

from bnnc.dialects import bnn
from bnnc.passes._loop_builder import IndexLike, LoopBuilder, memref_shape
from bnnc.passes._lowering import Lowerer, Lowering, WorkOf, collapse_trailing, conv_macs
from bnnc.passes._microkernel import (
    RegisterTile,
    accumulate,
    ceil_to,
    choose_column_tile,
    choose_tile,
    tap_position,
    tiled_conv_loops,
)


def _fma(lb: LoopBuilder, acc: SSAValue, a: SSAValue, w: SSAValue) -> SSAValue:
    return lb.emit(vector.FMAOp(a, w, acc))


def relu_vector(lb: LoopBuilder, v: SSAValue) -> SSAValue:
    """torch.relu of an f32 vector, x < 0 ? 0 : x (NaN and -0.0 unchanged),
    with integer ops (xDSL's arith.select is scalar-only): the lanes below 0
    get the bits of +0.0."""
    typ = v.type
    assert isinstance(typ, VectorType)
    ity = VectorType(i32, typ.get_shape())
    negative = lb.shrsi(lb.negative_sign_bit(v), lb.splat(31, ity))
    keep = lb.xor(negative, lb.splat(-1, ity))
    return lb.bitcast(lb.and_(lb.bitcast(v, ity), keep), typ)


Rows = tuple[IndexLike, IndexLike]


def _zero_padded(lowerer: Lowerer, x: SSAValue, ph: int, pw: int, rows: Rows) -> tuple[SSAValue, bool]:
    """The input zero-padded, filled only in `rows` (padded coordinates: the
    rows this block reads)."""
    if (ph, pw) == (0, 0):
        return x, False
    lb = lowerer.lb
    n_, c, h, w = memref_shape(x)
    dest = lb.alloc([n_, c, h + 2 * ph, w + 2 * pw], f32)
    src_lo, src_hi = lowerer.source_rows(rows, ph, h)
    # Zeros go only where the copy does not write (each element is stored
    # once): the pad columns of every row, and the rest of the rows outside
    # the source (the copy's rows are [src_lo + ph, src_hi + ph)).
    top = _imin(lb, rows[1], _iadd(lb, src_lo, ph))
    bottom = _imax(lb, rows[0], _iadd(lb, src_hi, ph))
    with lb.loops([n_, c]) as (n, ch):
        with lb.loop(rows[1], lb.index(rows[0])) as y:
            for x0, x1 in ((0, pw), (w + pw, w + 2 * pw)):
                if x1 > x0:
                    with lb.loop(x1, x0) as xx:
                        lb.store(lb.f32(0.0), dest, [n, ch, y.iv, xx.iv])
        for y0, y1 in ((rows[0], top), (bottom, rows[1])):
            with lb.loop(y1, lb.index(y0)) as y, lb.loop(w + pw, pw) as xx:
                lb.store(lb.f32(0.0), dest, [n, ch, y.iv, xx.iv])
        with lb.loop(src_hi, lb.index(src_lo)) as y, lb.loop(w) as xx:
            lb.store(lb.load(x, [n, ch, y.iv, xx.iv]), dest, [n, ch, lb.addi(y.iv, ph), lb.addi(xx.iv, pw)])
    return dest, True


def _iadd(lb: LoopBuilder, a: IndexLike, b: int) -> IndexLike:
    return a + b if isinstance(a, int) else lb.addi(a, b)


def _zero_padded_nhwc(lowerer: Lowerer, x: SSAValue, ph: int, pw: int, rows: Rows) -> tuple[SSAValue, bool]:
    """_zero_padded for an N x H x W x C input: each padded row is one run of
    (W + 2 pw) x C floats, its interior a contiguous copy of the source row."""
    if (ph, pw) == (0, 0):
        return x, False
    lb = lowerer.lb
    n_, h, w, c = memref_shape(x)
    dest = lb.alloc([n_, h + 2 * ph, w + 2 * pw, c], f32)
    src_lo, src_hi = lowerer.source_rows(rows, ph, h)
    with lb.loop(n_) as n:
        with lb.loop(rows[1], lb.index(rows[0])) as y, lb.loops([w + 2 * pw, c]) as (xx, ch):
            lb.store(lb.f32(0.0), dest, [n.iv, y.iv, xx, ch])
        with lb.loop(src_hi, lb.index(src_lo)) as y, lb.loops([w, c]) as (xx, ch):
            lb.store(lb.load(x, [n.iv, y.iv, xx, ch]), dest, [n.iv, lb.addi(y.iv, ph), lb.addi(xx, pw), ch])
    return dest, True


def _phase_split_padded(lowerer: Lowerer, x: SSAValue, ph: int, pw: int, sw: int, rows: Rows) -> SSAValue:
    """The zero-padded input with x split by phase: padded column s*q + phase
    is stored at [n, c, y, phase, q], so `lanes` output columns read a
    contiguous vector at every tap whatever the stride. Only `rows` (padded
    coordinates) are filled."""
    lb = lowerer.lb
    n_, c, h, w = memref_shape(x)
    wp = w + 2 * pw
    q_size = -(-wp // sw)
    dest = lb.alloc([n_, c, h + 2 * ph, sw, q_size], f32)
    src_lo, src_hi = lowerer.source_rows(rows, ph, h)
    # source column q * sw + phase - pw must lie in [0, w): q in [q_lo, q_hi) of each phase
    copied = []
    for phase in range(sw):
        q_lo = max(0, -(-(pw - phase) // sw))
        copied.append((q_lo, max(q_lo, (w - 1 + pw - phase) // sw + 1)))
    # zeros only where the copy does not write (as _zero_padded)
    top = _imin(lb, rows[1], _iadd(lb, src_lo, ph))
    bottom = _imax(lb, rows[0], _iadd(lb, src_hi, ph))
    with lb.loops([n_, c]) as (n, ch):
        with lb.loop(rows[1], lb.index(rows[0])) as y:
            for phase, (q_lo, q_hi) in enumerate(copied):
                for q0, q1 in ((0, q_lo), (q_hi, q_size)):
                    if q1 > q0:
                        with lb.loop(q1, q0) as q:
                            lb.store(lb.f32(0.0), dest, [n, ch, y.iv, phase, q.iv])
        for y0, y1 in ((rows[0], top), (bottom, rows[1])):
            with lb.loop(y1, lb.index(y0)) as y:
                for phase, (q_lo, q_hi) in enumerate(copied):
                    if q_hi > q_lo:
                        with lb.loop(q_hi, q_lo) as q:
                            lb.store(lb.f32(0.0), dest, [n, ch, y.iv, phase, q.iv])
        with lb.loop(src_hi, lb.index(src_lo)) as yl:
            y = yl.iv
            for phase, (q_lo, q_hi) in enumerate(copied):
                if q_hi <= q_lo:
                    continue
                with lb.loop(q_hi, q_lo) as q:
                    value = lb.load(x, [n, ch, y, lb.affine([(q.iv, sw)], phase - pw)])
                    lb.store(value, dest, [n, ch, lb.addi(y, ph), phase, q.iv])
    return dest


def _constant_table(
    lowerer: Lowerer, op: Operation, value: SSAValue | None, groups: int, cog: int, padded: int
) -> SSAValue | None:
    """A constant per-channel vector as a groups x padded table (zeros past cog)."""
    if value is None:
        return None
    table = np.zeros((groups, padded), dtype=np.float32)
    table[:, :cog] = lowerer.constant_value(value, op).reshape(groups, cog)
    return lowerer.global_buffer(table)


def use_column_kernel(out_width: int, lanes: int) -> bool:
    """Vectorise over output columns rather than output channels when the
    vectors covering a row waste at most a fifth of their lanes. The
    channel-vectorised kernel stores its tile transposed into NCHW (a scatter
    per vector: half the stem's time), the column kernel stores contiguous
    vectors but recomputes the overlap of a row's last vector when the width
    is not a multiple of the lanes. Measured on AVX-512 (16 lanes), 3x3 convs
    with 64-128 channels and the 7x7 stem: columns win by 5-60% at widths 28,
    40 and 112, tie at 56, lose by ~20% at 17 and 20."""
    covered = ceil_to(out_width, lanes)
    return out_width >= lanes and 5 * out_width >= 4 * covered


def column_lanes(out_width: int, lanes: int, channels_per_group: int) -> int:
    """The lanes of the column kernel's vectors, or 0 for the channel kernel.
    Full vectors when use_column_kernel says so. Otherwise, when the channel
    kernel would leave most of its lanes empty (a depthwise conv has one
    channel per group: 1 of 16 lanes), narrower column vectors (half, a
    quarter: at least 4 lanes) if a row of them wastes less: a 14- or 7-wide
    depthwise row fills 8- or 4-lane vectors to 88%. Both kernels sum every
    output in the same order, so the choice never changes a bit."""
    if out_width >= lanes and use_column_kernel(out_width, lanes):  # (and a row holds a vector)
        return lanes
    channel_use = channels_per_group / ceil_to(channels_per_group, lanes)  # of full vectors
    narrow = lanes // 2
    while narrow >= 4:
        column_use = (narrow / lanes) * out_width / ceil_to(out_width, narrow)
        if out_width >= narrow and use_column_kernel(out_width, narrow) and column_use > channel_use:
            return narrow
        narrow //= 2
    return 0


def lower_conv2d(lowerer: Lowerer, op: bnn.Conv2dOp, args: list[SSAValue], out: SSAValue) -> None:
    groups = op.groups.value.data
    co, cg, kh, kw = memref_shape(args[1])
    cog = co // groups
    ow = op.output_hw()[1]
    tile = choose_tile(lowerer.vector_bits, 32, lowerer.registers, cog)
    padded = ceil_to(cog, tile.channels)
    weight = lowerer.constant_value(op.weight, op).reshape(groups, cog, cg, kh, kw).transpose(0, 2, 3, 4, 1)
    wt = np.zeros((groups, cg, kh, kw, padded), dtype=np.float32)
    wt[..., :cog] = weight
    tables = _Tables(
        weights=lowerer.global_buffer(wt),
        bias=_constant_table(lowerer, op, op.bias, groups, cog, padded),
        scale=_constant_table(lowerer, op, op.post_scale, groups, cog, padded),
        shift=_constant_table(lowerer, op, op.post_shift, groups, cog, padded),
    )
    # An NHWC input or result takes the channel kernel: it reads one input
    # element per pixel and tap, and stores whole channel vectors (NHWC).
    nhwc = op.channels_last is not None or op.channels_last_input is not None
    lanes = 0 if nhwc else column_lanes(ow, tile.lanes, cog)
    if lanes:
        _column_conv(lowerer, op, args, out, tables, lanes)
    else:
        _channel_conv(lowerer, op, args, out, tables, tile)


@dataclass
class _Tables:
    """Compile-time operands of a float conv kernel: K-major weights
    (groups x cg x kh x kw x padded channels) and per-channel epilogue tables
    (groups x padded channels), or None when absent."""

    weights: SSAValue
    bias: SSAValue | None
    scale: SSAValue | None
    shift: SSAValue | None


def pixel_rows(
    oh: int, ow: int, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], blocks: int = 1
) -> int:
    """For a 1x1, stride-1, unpadded conv with NHWC input and result, every
    output pixel reads the input pixel at the same flat offset, so the
    OH x OW pixels can be tiled as fewer, longer rows: a row's last pixels
    that do not fill a register tile run one at a time (a 28-wide row:
    4 x 6 + 4 single pixels), so k rows joined into one leave k times fewer.
    The rows joined (k divides OH) stay at most 128 pixels long. A threaded
    kernel's `blocks` split the rows, so k keeps the largest block's pixels
    least (28 rows of 28 on 2 blocks: 14 rows of 56, 7 + 7, not 7 rows of
    112, 4 + 3), then the fewest rows. Returns k."""
    if kernel != (1, 1) or stride != (1, 1) or padding != (0, 0):
        return 1
    joins = [k for k in range(1, oh + 1) if oh % k == 0 and (k == 1 or k * ow <= 128)]
    return min(joins, key=lambda k: (-(-(oh // k) // blocks) * k * ow, -k))


def _channel_conv(
    lowerer: Lowerer, op: bnn.Conv2dOp, args: list[SSAValue], out: SSAValue, tables: _Tables, tile: RegisterTile
) -> None:
    """Vectorised over output channels: a pixels x channel-vectors tile.
    With an NHWC result its full channel vectors are stored as they are
    (only a partial last vector goes through `sums`); an NCHW result is
    scattered from `sums`. An NHWC input is read at [n, y, x, channel]."""
    lb = lowerer.lb
    groups = op.groups.value.data
    (sh, sw), (ph, pw), (dh, dw) = op.window()
    co, cg, kh, kw = memref_shape(args[1])
    cog = co // groups
    n_ = op.result_nchw()[0]
    oh, ow = op.output_hw()
    nhwc_in, nhwc_out = op.channels_last_input is not None, op.channels_last is not None
    vty = VectorType(f32, [tile.lanes])
    weights, bias = tables.weights, tables.bias
    pool = _FusedMaxPool.of(lowerer, op, out) if op.max_pool() is not None else None
    threaded = lowerer.thread is not None
    join = 1
    if nhwc_in and nhwc_out and pool is None:
        join = pixel_rows(oh, ow, (kh, kw), (sh, sw), (ph, pw), lowerer.blocks if threaded else 1)
    cin = op.input_nchw()[1]
    if join > 1:
        # rows of join * ow pixels over flat views of both buffers (a 1x1
        # unpadded conv: the input is read in place); the threads split the
        # joined rows (splitting the unjoined ones gave one thread them all)
        oh, ow = oh // join, ow * join
        conv_rows = lowerer.row_range(oh)
        source, fresh = collapse_trailing(lb, args[0], 4, 0), False
        out = collapse_trailing(lb, out, 4, 0)
    else:
        conv_rows = lowerer.row_range(oh) if pool is None else pool.conv_rows(oh)
        rows = lowerer.padded_rows(oh, sh, kh, dh, op.input_nchw()[2] + 2 * ph, conv_rows)
        if nhwc_in:
            source, fresh = _zero_padded_nhwc(lowerer, args[0], ph, pw, rows)
        else:
            source, fresh = _zero_padded(lowerer, args[0], ph, pw, rows)
    sums = lb.alloca_entry([tile.pixels, tile.channels], f32)

    def in_index(n, channel, oy, ox0, t, ky, kx) -> list[IndexLike]:
        if join > 1:  # pixel oy * ow + ox0 + t of the flat N x P x C input
            return [lb.affine([(n, oh * ow * cin), (oy, ow * cin), (ox0, cin), (t, cin), (channel, 1)])]
        iy, ix = tap_position(lb, oy, ox0, t, ky, kx, (sh, sw), (dh, dw))
        return [n, iy, ix, channel] if nhwc_in else [n, channel, iy, ix]

    def out_index(n, channel, oy, ox0, t) -> list[IndexLike]:
        if join > 1:
            return [lb.affine([(n, oh * ow * co), (oy, ow * co), (ox0, co), (t, co), (channel, 1)])]
        return [n, oy, lb.addi(ox0, t), channel] if nhwc_out else [n, channel, oy, lb.addi(ox0, t)]

    def emit(n, g, oc0: IndexLike, vectors: int, valid: int, oy: IndexLike, ox0: IndexLike, pixels: int):
        def weight_vector(ks: list[SSAValue], v: int) -> SSAValue:
            ic, ky, kx = ks
            return lb.vload(weights, [g, ic, ky, kx, lb.addi(oc0, v * tile.lanes)], vty)

        def input_element(ks: list[SSAValue], t: int) -> SSAValue:
            ic, ky, kx = ks
            return lb.load(source, in_index(n, lb.affine([(g, cg), (ic, 1)]), oy, ox0, t, ky, kx))

        accs = accumulate(lb, vty, pixels, vectors, [cg, kh, kw], weight_vector, input_element, _fma)
        for t in range(pixels):
            for v in range(vectors):
                acc = accs[t][v]
                oc = lb.addi(oc0, v * tile.lanes)
                if bias is not None:
                    acc = lb.addf(acc, lb.vload(bias, [g, oc], vty))
                if tables.scale is not None and tables.shift is not None:
                    scale, shift = lb.vload(tables.scale, [g, oc], vty), lb.vload(tables.shift, [g, oc], vty)
                    acc = _fma(lb, shift, acc, scale)
                if op.relu is not None:
                    acc = relu_vector(lb, acc)
                if nhwc_out and pool is None and (v + 1) * tile.lanes <= valid:
                    lb.vstore(acc, out, out_index(n, lb.affine([(g, cog), (oc, 1)]), oy, ox0, t))
                else:
                    lb.vstore(acc, sums, [t, v * tile.lanes])
        if pool is not None:
            for t in range(pixels):
                pool.fold(n, lb.affine([(g, cog), (oc0, 1)]), oy, lb.addi(ox0, t), sums, t, valid)
            return
        stored = valid - valid % tile.lanes if nhwc_out else 0  # channels already in `out`
        if valid > stored:
            with lb.loops([pixels, valid - stored]) as (t, c):
                c = lb.addi(c, stored)
                channel = lb.affine([(g, cog), (lb.addi(oc0, c), 1)])
                lb.store(lb.load(sums, [t, c]), out, out_index(n, channel, oy, ox0, t))

    tiled_conv_loops(
        lb,
        tile,
        batch=n_,
        groups=groups,
        channels_per_group=cog,
        out_hw=(oh, ow),
        emit=emit,
        rows=conv_rows,
    )
    if fresh:
        lb.dealloc(source)


def _imax(lb: LoopBuilder, a: IndexLike, b: IndexLike) -> IndexLike:
    return max(a, b) if isinstance(a, int) and isinstance(b, int) else lb.emit(arith.MaxSIOp(lb.index(a), lb.index(b)))


def _imin(lb: LoopBuilder, a: IndexLike, b: IndexLike) -> IndexLike:
    return min(a, b) if isinstance(a, int) and isinstance(b, int) else lb.emit(arith.MinSIOp(lb.index(a), lb.index(b)))


@dataclass
class _FusedMaxPool:
    """A conv's fused max pool (fuse-conv-maxpool), NHWC result `out`.
    Threads split the pooled rows; a thread computes the conv rows its pooled
    rows read (the one row two neighbours' windows share is computed by both)
    and folds only into its own pooled rows, which it first sets to -inf.
    Each conv value is folded into every pooled output whose window holds it
    with PyTorch's rule (take v if v > max or v is NaN); the conv produces a
    channel's values row by row, left to right, which is window order, so
    the result is the unfused pool's bits."""

    lowerer: Lowerer
    out: SSAValue
    kernel: tuple[int, int]
    strides: tuple[int, int]
    padding: tuple[int, int]
    pooled_rows: Rows

    @classmethod
    def of(cls, lowerer: Lowerer, op: bnn.Conv2dOp, out: SSAValue) -> _FusedMaxPool:
        pool = op.max_pool()
        assert pool is not None
        kernel, strides, padding, _ = pool
        n_, poh, pow_, c_ = memref_shape(out)
        lb = lowerer.lb
        p0, p1 = lowerer.row_range(poh)
        with lb.loop(n_) as n, lb.loop(p1, lb.index(p0)) as r, lb.loops([pow_, c_]) as (x, ch):
            lb.store(lb.f32(float("-inf")), out, [n.iv, r.iv, x, ch])
        return cls(lowerer, out, kernel, strides, padding, (p0, p1))

    def conv_rows(self, oh: int) -> Rows:
        """The conv rows [lo, hi) this thread's pooled rows read."""
        lb = self.lowerer.lb
        (k, _), (s, _), (p, _) = self.kernel, self.strides, self.padding
        p0, p1 = self.pooled_rows
        if isinstance(p0, int) and isinstance(p1, int):
            lo, hi = max(0, p0 * s - p), min(oh, p1 * s - p - s + k)
            return lo, max(lo, hi)
        lo = _imax(lb, 0, lb.affine([(p0, s)], -p))
        return lo, _imax(lb, lo, _imin(lb, oh, lb.affine([(p1, s)], k - p - s)))

    def _windows(self, at: IndexLike, axis: int, bounds: Rows) -> Rows:
        """The pooled positions [lo, hi) along `axis` whose windows hold conv position `at`,
        within `bounds`: ceil((at + p - k + 1) / s) .. floor((at + p) / s), offset by
        k s so the unsigned division sees a non-negative numerator."""
        lb = self.lowerer.lb
        k, s, p = self.kernel[axis], self.strides[axis], self.padding[axis]
        first = lb.subi(lb.divui(lb.affine([(at, 1)], p - k + s + k * s), s), lb.index(k))
        last = lb.divui(lb.affine([(at, 1)], p + s), s)  # one past
        return _imax(lb, bounds[0], first), _imin(lb, bounds[1], last)

    def fold(self, n: IndexLike, channel0: IndexLike, oy: IndexLike, ox: IndexLike, sums: SSAValue, t: int, valid: int) -> None:
        """Fold conv pixel (oy, ox)'s `valid` channels (row t of `sums`) into the pooled outputs."""
        lb = self.lowerer.lb
        r0, r1 = self._windows(oy, 0, self.pooled_rows)
        c0, c1 = self._windows(ox, 1, (0, memref_shape(self.out)[2]))
        with lb.loop(r1, lb.index(r0)) as r, lb.loop(c1, lb.index(c0)) as c, lb.loop(valid) as ch:
            at = [n, r.iv, c.iv, lb.addi(channel0, ch.iv)]
            v, m = lb.load(sums, [t, ch.iv]), lb.load(self.out, at)
            take = lb.or_(lb.cmpf(v, m, "ogt"), lb.cmpf(v, v, "uno"))
            lb.store(lb.select(take, v, m), self.out, at)


def _column_conv(
    lowerer: Lowerer, op: bnn.Conv2dOp, args: list[SSAValue], out: SSAValue, tables: _Tables, lanes: int
) -> None:
    """Vectorised over output columns: accumulators are `lanes` consecutive
    output columns of one channel; a K step (ic, ky, then every kx unrolled)
    loads one contiguous input vector per column vector and broadcasts one
    weight per channel. A row is ceil(ow / lanes) vectors, the last one
    shifted left to end at ow when ow % lanes != 0 (the overlap is recomputed
    bit for bit, so storing it twice is exact). The (row, vector) pairs of
    this thread's rows are walked as one flat range in tiles of
    `ctile.vectors` vectors, which may span rows; the rest one at a time."""
    lb = lowerer.lb
    groups = op.groups.value.data
    (sh, sw), (ph, pw), (dh, dw) = op.window()
    co, cg, kh, kw = memref_shape(args[1])
    cog = co // groups
    n_, _, oh, ow = memref_shape(out)
    ctile = choose_column_tile(lanes * 32, 32, lowerer.registers, cog)
    vty = VectorType(f32, [lanes])
    per_row = -(-ow // lanes)
    rows = lowerer.padded_rows(oh, sh, kh, dh, memref_shape(args[0])[2] + 2 * ph)
    if sw == 1:
        source, fresh = _zero_padded(lowerer, args[0], ph, pw, rows)
    else:
        source, fresh = _phase_split_padded(lowerer, args[0], ph, pw, sw, rows), True

    def input_vector(n: SSAValue, ch: SSAValue, iy: SSAValue, kx: int, ox0: SSAValue) -> SSAValue:
        # padded column (ox0 + l) * sw + kx * dw = sw * (ox0 + l + step) + phase
        step, phase = divmod(kx * dw, sw)
        if sw == 1:
            return lb.vload(source, [n, ch, iy, lb.addi(ox0, step)], vty)
        return lb.vload(source, [n, ch, iy, phase, lb.addi(ox0, step)], vty)

    def position(v: SSAValue) -> tuple[SSAValue, SSAValue]:
        """Output row and first column of flat vector index v."""
        oy, j = lb.divui(v, per_row), lb.remui(v, per_row)
        ox0 = lb.muli(j, lanes)
        if ow % lanes:
            ox0 = lb.emit(arith.MinSIOp(ox0, lb.index(ow - lanes)))
        return oy, ox0

    def emit(n: SSAValue, g: SSAValue, oc0: IndexLike, channels: int, v0: SSAValue, vectors: int) -> None:
        spots = [position(lb.addi(v0, p)) for p in range(vectors)]
        zero = lb.splat(0.0, vty)
        with lb.reduction([cg, kh], [zero] * (channels * vectors)) as red:
            ic, ky = red.ivs
            ch = lb.affine([(g, cg), (ic, 1)])
            accs = list(red.carried)
            for kx in range(kw):
                rows = [lb.affine([(oy, sh), (ky, dh)]) for oy, _ in spots]
                xs = [input_vector(n, ch, iy, kx, ox0) for iy, (_, ox0) in zip(rows, spots)]
                for c in range(channels):
                    w = lb.broadcast(lb.load(tables.weights, [g, ic, ky, kx, lb.addi(oc0, c)]), vty)
                    for p in range(vectors):
                        accs[c * vectors + p] = _fma(lb, accs[c * vectors + p], xs[p], w)
            red.next = accs
        for c in range(channels):
            oc = lb.addi(oc0, c)
            post = [
                None if t is None else lb.broadcast(lb.load(t, [g, oc]), vty)
                for t in (tables.bias, tables.scale, tables.shift)
            ]
            for p, (oy, ox0) in enumerate(spots):
                acc = red.results[c * vectors + p]
                if post[0] is not None:
                    acc = lb.addf(acc, post[0])
                if post[1] is not None and post[2] is not None:
                    acc = _fma(lb, post[2], acc, post[1])  # fma(acc, scale, shift)
                if op.relu is not None:
                    acc = relu_vector(lb, acc)
                lb.vstore(acc, out, [n, lb.affine([(g, cog), (oc, 1)]), oy, ox0])

    r0, r1 = lowerer.row_range(oh)
    v_begin, v_end = lb.muli(r0, per_row), lb.muli(r1, per_row)
    full_end = lb.subi(v_end, lb.remui(lb.subi(v_end, v_begin), ctile.vectors)) if ctile.vectors > 1 else v_end
    full_tiles, rest = divmod(cog, ctile.channels)

    def channel_tile(n, g, oc0: IndexLike, channels: int) -> None:
        with lb.loop(full_end, v_begin, ctile.vectors) as t:
            emit(n, g, oc0, channels, t.iv, ctile.vectors)
        if ctile.vectors > 1:
            with lb.loop(v_end, full_end) as t:
                emit(n, g, oc0, channels, t.iv, 1)

    with lb.loops([n_, groups]) as (n, g):
        if full_tiles:
            with lb.loop(full_tiles) as octile:
                channel_tile(n, g, lb.muli(octile.iv, ctile.channels), ctile.channels)
        if rest:
            channel_tile(n, g, full_tiles * ctile.channels, rest)
    if fresh:
        lb.dealloc(source)


FLOAT_CONV_LOWERINGS: dict[type[Operation], Lowering] = {
    bnn.Conv2dOp: lower_conv2d,
}

FLOAT_CONV_THREADED: dict[type[Operation], WorkOf] = {
    bnn.Conv2dOp: conv_macs,
}
