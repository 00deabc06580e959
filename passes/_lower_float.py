"""Lowerings of the float bnn ops (elementwise, batch norm, pooling, data
movement) to scf loop nests. Float convs and linear layers are
_lower_float_conv's."""

from __future__ import annotations

import math as pymath
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
from xdsl.ir import Operation, SSAValue

from bnnc.dialects import bnn
from bnnc.passes._loop_builder import IndexLike, LoopBuilder, memref_shape
from bnnc.passes._lowering import (
    Lowerer,
    Lowering,
    WorkOf,
    channel_view,
    collapse_trailing,
    elementwise,
    unravel_index,
)


def lower_sign(lowerer: Lowerer, op: bnn.SignOp, args: list[SSAValue], out: SSAValue) -> None:
    def body(lb: LoopBuilder, v: list[SSAValue], _: list[SSAValue]) -> SSAValue:
        # binarize(x) = +1 unless x < 0 (so -0.0 and NaN give +1)
        return lb.select(lb.cmpf(v[0], 0.0, "olt"), lb.f32(-1.0), lb.f32(1.0))

    elementwise(lowerer, out, args, body)


def lower_relu(lowerer: Lowerer, op: bnn.ReluOp, args: list[SSAValue], out: SSAValue) -> None:
    # x < 0 ? 0 : x keeps NaN, as torch.relu does
    elementwise(lowerer, out, args, lambda lb, v, _: lb.select(lb.cmpf(v[0], 0.0, "olt"), lb.f32(0.0), v[0]))


def lower_abs(lowerer: Lowerer, op: bnn.AbsOp, args: list[SSAValue], out: SSAValue) -> None:
    elementwise(lowerer, out, args, lambda lb, v, _: lb.absf(v[0]))


def lower_hardtanh(lowerer: Lowerer, op: bnn.HardtanhOp, args: list[SSAValue], out: SSAValue) -> None:
    lo, hi = op.min_val.value.data, op.max_val.value.data

    def body(lb: LoopBuilder, v: list[SSAValue], _: list[SSAValue]) -> SSAValue:
        x = v[0]
        x = lb.select(lb.cmpf(x, lo, "olt"), lb.f32(lo), x)
        return lb.select(lb.cmpf(x, hi, "ogt"), lb.f32(hi), x)

    elementwise(lowerer, out, args, body)


def lower_prelu(lowerer: Lowerer, op: bnn.PReluOp, args: list[SSAValue], out: SSAValue) -> None:
    x, slope = args

    def body(lb: LoopBuilder, v: list[SSAValue], ivs: list[SSAValue]) -> SSAValue:
        a = channel_view(lb, slope, len(ivs), ivs)
        return lb.select(lb.cmpf(v[0], 0.0, "ogt"), v[0], lb.mulf(a, v[0]))

    elementwise(lowerer, out, [x], body)


def binary_elementwise(fn: Callable[[LoopBuilder, SSAValue, SSAValue], SSAValue]) -> Lowering:
    def lower(lowerer: Lowerer, op: Operation, args: list[SSAValue], out: SSAValue) -> None:
        elementwise(lowerer, out, args, lambda lb, v, _: fn(lb, v[0], v[1]))

    return lower


def lower_batch_norm(lowerer: Lowerer, op: bnn.BatchNormOp, args: list[SSAValue], out: SSAValue) -> None:
    """y = fma(x, scale[c], shift[c]) with scale = (1 / sqrt(var + eps)) * gamma and
    shift = beta - mean * scale in f32, exactly as PyTorch's CPU kernel computes
    it (one rounding: values that cancel to 0 keep PyTorch's tiny residue and
    sign, which decides a following binarize)."""
    x = args[0]
    mean, var, gamma, beta = (lowerer.constant_value(v, op) for v in op.operands[1:])
    scale, shift = bnn.batch_norm_affine(mean, var, gamma, beta, op.epsilon.value.data)
    scale_buf, shift_buf = lowerer.global_buffer(scale), lowerer.global_buffer(shift)
    if op.channels_last is not None:  # N x H x W x C: a contiguous loop over channels per pixel
        lb = lowerer.lb
        n, h, w, c = memref_shape(out)
        begin, end = lowerer.row_range(n * h * w)
        with lb.loop(end, begin) as pixel:
            at = unravel_index(lb, pixel.iv, [n, h, w])
            with lb.loop(c) as ch:
                value = lb.load(x, [*at, ch.iv])
                lb.store(lb.fma(value, lb.load(scale_buf, [ch.iv]), lb.load(shift_buf, [ch.iv])), out, [*at, ch.iv])
        return

    def body(lb: LoopBuilder, v: list[SSAValue], ivs: list[SSAValue]) -> SSAValue:
        return lb.fma(v[0], lb.load(scale_buf, [ivs[1]]), lb.load(shift_buf, [ivs[1]]))

    elementwise(lowerer, out, [x], body)


# ------------------------------------------------------------- data movement


def lower_cat(lowerer: Lowerer, op: bnn.CatOp, args: list[SSAValue], out: SSAValue) -> None:
    """Each source is one contiguous run per index of the axes before `axis`
    (and so is its place in the result): one flat copy loop per source, which
    LLVM vectorises (BinaryDenseNet's channel concats are runs of 14k-200k
    floats, whose innermost axis is 7-56 long). Threads split each run."""
    lb, axis, offset = lowerer.lb, op.axis.value.data, 0
    shape = memref_shape(out)
    rank, inner = len(shape), pymath.prod(shape[axis + 1 :])
    dest = collapse_trailing(lb, out, rank, axis)
    for src in args:
        run = memref_shape(src)[axis] * inner
        flat = collapse_trailing(lb, src, rank, axis)
        begin, end = lowerer.row_range(run)
        with lb.loops(shape[:axis]) as outer, lb.loop(end, lb.index(begin)) as k:
            lb.store(lb.load(flat, [*outer, k.iv]), dest, [*outer, lb.addi(k.iv, offset * inner)])
        offset += memref_shape(src)[axis]


def lower_reshape(lowerer: Lowerer, op: bnn.ReshapeOp, args: list[SSAValue], out: SSAValue) -> None:
    """Both buffers are contiguous and row-major, so a reshape keeps every
    element at its flat offset: one flat copy (1-D views of both, no index
    arithmetic per element; LLVM vectorises it), instead of a div/rem chain
    per element per axis."""
    lb, src = lowerer.lb, args[0]
    src_shape, out_shape = memref_shape(src), memref_shape(out)
    if not src_shape or not out_shape:  # a single element
        lb.store(lb.load(src, [0] * len(src_shape)), out, [0] * len(out_shape))
        return
    flat_src = collapse_trailing(lb, src, len(src_shape), 0)
    flat_out = collapse_trailing(lb, out, len(out_shape), 0)
    with lb.loop(pymath.prod(out_shape)) as loop:
        lb.store(lb.load(flat_src, [loop.iv]), flat_out, [loop.iv])


def lower_pad(lowerer: Lowerer, op: bnn.PadOp, args: list[SSAValue], out: SSAValue) -> None:
    """out[n, c, y, x] = in[n, c, y - top, x - left] inside, `value` in the border.
    Each plane is written as runs with no per-element bounds test: the top and
    bottom border rows as one flat fill each, and per source row a left fill,
    a contiguous copy (which LLVM vectorises) and a right fill."""
    lb, src = lowerer.lb, args[0]
    n_, c_, h, w = memref_shape(src)
    ow = memref_shape(out)[3]
    left, right, top, bottom = op.padding.get_values()
    value = lb.f32(op.value.value.data)
    flat_out = collapse_trailing(lb, out, 4, 2)  # [n, c, oh * ow]: a border band is one run

    def fill(n: IndexLike, c: IndexLike, begin: IndexLike, count: int) -> None:
        if count:
            with lb.loop(count) as loop:
                lb.store(value, flat_out, [n, c, lb.addi(loop.iv, begin)])

    with lb.loops([n_, c_]) as (n, c):
        fill(n, c, 0, top * ow)
        with lb.loop(h) as row:
            base = lb.affine([(row.iv, ow)], top * ow)  # flat offset of output row top + y
            fill(n, c, base, left)
            with lb.loop(w) as col:
                lb.store(lb.load(src, [n, c, row.iv, col.iv]), flat_out, [n, c, lb.addi(base, lb.addi(col.iv, left))])
            fill(n, c, lb.addi(base, left + w), right)
        fill(n, c, (top + h) * ow, bottom * ow)


# ------------------------------------------------------------------ pooling


def _axis_segments(out: int, size: int, k: int, s: int, p: int, d: int) -> list[tuple[int, int, tuple[int, ...]]]:
    """Output positions along one axis as (lo, hi, taps): the interior, whose
    windows lie wholly in bounds, as one range with every tap; each border
    position alone with its in-bounds taps (static, so no bounds checks)."""

    def taps(o: int) -> tuple[int, ...]:
        return tuple(t for t in range(k) if 0 <= o * s + t * d - p < size)

    lo = min(-(-p // s), out)
    hi = max(min(out, (size - 1 + p - (k - 1) * d) // s + 1), lo)
    if lo == hi:
        return [(o, o + 1, taps(o)) for o in range(out)]
    return (
        [(o, o + 1, taps(o)) for o in range(lo)]
        + [(lo, hi, tuple(range(k)))]
        + [(o, o + 1, taps(o)) for o in range(hi, out)]
    )


@contextmanager
def _positions(lb: LoopBuilder, lo: int, hi: int) -> Iterator[SSAValue]:
    """A loop over [lo, hi), or the constant lo when it is one position."""
    if hi - lo == 1:
        yield lb.index(lo)
        return
    with lb.loop(hi, lo) as loop:
        yield loop.iv


@contextmanager
def _planes(lowerer: Lowerer, n_: int, c_: int) -> Iterator[tuple[IndexLike, SSAValue]]:
    """Loop over this thread's share of the N x C planes; yields (n, c)."""
    lb = lowerer.lb
    begin, end = lowerer.row_range(n_ * c_)
    with lb.loop(end, begin) as plane:
        if n_ == 1:
            yield 0, plane.iv
        else:
            yield lb.divui(plane.iv, c_), lb.remui(plane.iv, c_)


def _pool(
    lowerer: Lowerer,
    op: bnn.MaxPool2dOp | bnn.AvgPool2dOp,
    x: SSAValue,
    out: SSAValue,
    reduce: Callable[[list[SSAValue], tuple[int, int], tuple[int, int]], SSAValue],
) -> None:
    """out[n, c, oy, ox] = reduce(in-bounds taps in row-major window order).
    Each output plane is cut into border rows/columns (each with its static
    in-bounds taps) and the interior (every tap, no bounds checks), so the
    interior loop along ox is plain loads LLVM vectorises. Threads split the
    N x C planes. `channels_last` pools take _pool_nhwc's loop order; every
    output reduces the same taps in the same order either way."""
    lb = lowerer.lb
    n_, c_, h, w = op.nchw(op.input)
    _, _, oh, ow = op.nchw(op.result)
    kh, kw = op.kernel.get_values()
    (sh, sw), (ph, pw), (dh, dw) = op.window()
    rows = _axis_segments(oh, h, kh, sh, ph, dh)
    cols = _axis_segments(ow, w, kw, sw, pw, dw)
    if op.is_channels_last():
        _pool_nhwc(lowerer, x, out, reduce, rows, cols, op)
        return
    with _planes(lowerer, n_, c_) as (n, c):
        for ylo, yhi, kys in rows:
            for xlo, xhi, kxs in cols:
                with _positions(lb, ylo, yhi) as oy, _positions(lb, xlo, xhi) as ox:
                    values = []
                    for ky in kys:
                        iy = lb.affine([(oy, sh)], ky * dh - ph)
                        for kx in kxs:
                            values.append(lb.load(x, [n, c, iy, lb.affine([(ox, sw)], kx * dw - pw)]))
                    lb.store(reduce(values, (ylo, yhi), (xlo, xhi)), out, [n, c, oy, ox])


Segments = list[tuple[int, int, tuple[int, ...]]]


def _pool_nhwc(
    lowerer: Lowerer,
    x: SSAValue,
    out: SSAValue,
    reduce: Callable[[list[SSAValue], tuple[int, int], tuple[int, int]], SSAValue],
    rows: Segments,
    cols: Segments,
    op: bnn.MaxPool2dOp | bnn.AvgPool2dOp,
) -> None:
    """_pool on N x H x W x C: the window positions are the outer loops and
    the innermost loop runs along contiguous channels, so every tap is a
    contiguous vector load (LLVM vectorises the channel loop) and each input
    row is read once per window row rather than once per channel plane.
    Threads split the channels."""
    lb = lowerer.lb
    n_, _, _, c_ = memref_shape(x)
    (sh, sw), (ph, pw), (dh, dw) = op.window()
    c0, c1 = lowerer.row_range(c_)
    with lb.loop(n_) as n:
        for ylo, yhi, kys in rows:
            for xlo, xhi, kxs in cols:
                with _positions(lb, ylo, yhi) as oy, _positions(lb, xlo, xhi) as ox:
                    iys = [lb.affine([(oy, sh)], ky * dh - ph) for ky in kys]
                    ixs = [lb.affine([(ox, sw)], kx * dw - pw) for kx in kxs]
                    with lb.loop(c1, c0) as c:
                        values = [lb.load(x, [n.iv, iy, ix, c.iv]) for iy in iys for ix in ixs]
                        lb.store(reduce(values, (ylo, yhi), (xlo, xhi)), out, [n.iv, oy, ox, c.iv])


def _max_rule(lb: LoopBuilder, m: SSAValue, v: SSAValue) -> SSAValue:
    """PyTorch's CPU max step: take v if v > max or v is NaN."""
    return lb.select(lb.or_(lb.cmpf(v, m, "ogt"), lb.cmpf(v, v, "uno")), v, m)


def lower_max_pool2d(lowerer: Lowerer, op: bnn.MaxPool2dOp, args: list[SSAValue], out: SSAValue) -> None:
    """PyTorch's CPU rule, tap by tap in window order from -inf over the
    in-bounds taps: take v if v > max or v is NaN (NaN propagates; of equal
    values, -0.0 and 0.0 included, the first is kept). Ceil-mode windows past
    the bottom/right edge simply have fewer in-bounds taps.
    That rule's result is the last NaN of the window if it has one, else its
    first maximum, so it is computed as two cheaper chains: `v > m ? v : m`
    (one max instruction: ties and NaNs keep m) and the last NaN seen
    (`v is NaN ? v : nan`), chosen at the end."""
    lb = lowerer.lb

    def reduce(values: list[SSAValue], *_) -> SSAValue:
        if not values:
            return lb.f32(float("-inf"))
        m = nan = values[0]  # taking the first tap from -inf gives its bits (-inf stays -inf)
        for v in values[1:]:
            m = lb.select(lb.cmpf(v, m, "ogt"), v, m)
            nan = lb.select(lb.cmpf(v, v, "uno"), v, nan)
        return lb.select(lb.cmpf(nan, nan, "uno"), nan, m) if len(values) > 1 else m

    _pool(lowerer, op, args[0], out, reduce)


def _avg_divisors(op: bnn.AvgPool2dOp, h: int, w: int, oh: int, ow: int) -> np.ndarray:
    """PyTorch's avg_pool2d divisor for every output pixel: the window clipped
    to the padded input (so a ceil-mode window past the padding counts only
    the part inside it), or to the input itself without count_include_pad."""
    (sh, sw), (ph, pw), _ = op.window()
    kh, kw = op.kernel.get_values()
    include_pad = bool(op.count_include_pad.value.data)
    div = np.empty((oh, ow), np.float32)
    for y in range(oh):
        for x in range(ow):
            y0, x0 = y * sh - ph, x * sw - pw
            y1, x1 = min(y0 + kh, h + ph), min(x0 + kw, w + pw)
            size = (y1 - y0) * (x1 - x0)
            if not include_pad:
                size = (min(y1, h) - max(y0, 0)) * (min(x1, w) - max(x0, 0))
            div[y, x] = size
    if op.divisor_override is not None:
        div[:] = op.divisor_override.value.data
    return div


def lower_avg_pool2d(lowerer: Lowerer, op: bnn.AvgPool2dOp, args: list[SSAValue], out: SSAValue) -> None:
    """(0 + taps in window order) / divisor; the divisor is one constant per
    border position and one for the interior (checked against the table)."""
    lb, x = lowerer.lb, args[0]
    _, _, h, w = op.nchw(op.input)
    _, _, oh, ow = op.nchw(op.result)
    divisors = _avg_divisors(op, h, w, oh, ow)

    def reduce(values: list[SSAValue], ys: tuple[int, int], xs: tuple[int, int]) -> SSAValue:
        block = np.unique(divisors[ys[0] : ys[1], xs[0] : xs[1]])
        assert block.size == 1, "avg_pool2d divisor varies inside a segment"
        acc = lb.f32(0.0)  # 0.0 + taps: out-of-bounds taps, which add 0.0, change nothing
        for v in values:
            acc = lb.addf(acc, v)
        return lb.divf(acc, lb.f32(float(block[0])))

    _pool(lowerer, op, x, out, reduce)


def adaptive_bins(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling bins along one axis: [floor(i*size/out), ceil((i+1)*size/out))."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def _adaptive(
    lowerer: Lowerer,
    x: SSAValue,
    out: SSAValue,
    init: float,
    step: Callable[[LoopBuilder, SSAValue, SSAValue], SSAValue],
    finish: Callable[[LoopBuilder, SSAValue, int, int], SSAValue],
) -> None:
    """out[n, c, oy, ox] = finish(fold of `step` from `init` over the bin in
    row-major order). Threads split the N x C planes; each bin is a static
    2-D loop (a bin spanning a whole row runs as one flat loop)."""
    lb = lowerer.lb
    n_, c_, h, w = memref_shape(x)
    _, _, oh, ow = memref_shape(out)
    with _planes(lowerer, n_, c_) as (n, c):
        for oy, (y0, y1) in enumerate(adaptive_bins(h, oh)):
            for ox, (x0, x1) in enumerate(adaptive_bins(w, ow)):
                with lb.reduction([y1 - y0, x1 - x0], [lb.f32(init)]) as red:
                    iy, ix = lb.addi(red.ivs[0], y0), lb.addi(red.ivs[1], x0)
                    red.next = [step(lb, red.carried[0], lb.load(x, [n, c, iy, ix]))]
                lb.store(finish(lb, red.results[0], y1 - y0, x1 - x0), out, [n, c, oy, ox])


def lower_adaptive_avg_pool2d(lowerer: Lowerer, op: bnn.AdaptiveAvgPool2dOp, args: list[SSAValue], out: SSAValue) -> None:
    """PyTorch's CPU kernel: sum = 0 + bin in row-major order, then
    sum / bin_height / bin_width (two roundings, as PyTorch divides)."""

    def finish(lb: LoopBuilder, total: SSAValue, kh: int, kw: int) -> SSAValue:
        return lb.divf(lb.divf(total, lb.f32(float(kh))), lb.f32(float(kw)))

    _adaptive(lowerer, args[0], out, 0.0, LoopBuilder.addf, finish)


def lower_adaptive_max_pool2d(lowerer: Lowerer, op: bnn.AdaptiveMaxPool2dOp, args: list[SSAValue], out: SSAValue) -> None:
    """PyTorch's CPU kernel: from -inf, take v if v > max or v is NaN."""
    _adaptive(lowerer, args[0], out, float("-inf"), _max_rule, lambda lb, m, kh, kw: m)


def lower_mean(lowerer: Lowerer, op: bnn.MeanOp, args: list[SSAValue], out: SSAValue) -> None:
    """Each output is its elements' sum in index order, divided by their count.
    Threads split the first output axis longer than 1 (XNOR-Net's channel
    mean |x| of every pixel: 10% of its time, on one thread before); each
    output's sum is unchanged, so the bits are too."""
    lb, x = lowerer.lb, args[0]
    shape, out_shape = memref_shape(x), memref_shape(out)
    dims = list(op.dims.get_values())
    count = lb.f32(float(pymath.prod(shape[d] for d in dims)))
    axis = next((i for i, size in enumerate(out_shape) if size > 1), 0)
    first, last = lowerer.row_range(out_shape[axis])
    with lb.loops(out_shape[:axis]) as outer, lb.loop(last, first) as split, lb.loops(out_shape[axis + 1 :]) as inner:
        ivs = [*outer, split.iv, *inner]
        with lb.reduction([shape[d] for d in dims], [lb.f32(0.0)]) as red:
            idx = list(ivs)
            for d, iv in zip(dims, red.ivs):
                idx[d] = iv
            red.next = [lb.addf(red.carried[0], lb.load(x, idx))]
        lb.store(lb.divf(red.results[0], count), out, ivs)


FLOAT_LOWERINGS: dict[type[Operation], Lowering] = {
    bnn.SignOp: lower_sign,
    bnn.ReluOp: lower_relu,
    bnn.AbsOp: lower_abs,
    bnn.HardtanhOp: lower_hardtanh,
    bnn.PReluOp: lower_prelu,
    bnn.AddOp: binary_elementwise(LoopBuilder.addf),
    bnn.SubOp: binary_elementwise(LoopBuilder.subf),
    bnn.MulOp: binary_elementwise(LoopBuilder.mulf),
    bnn.DivOp: binary_elementwise(LoopBuilder.divf),
    bnn.BatchNormOp: lower_batch_norm,
    bnn.CatOp: lower_cat,
    bnn.ReshapeOp: lower_reshape,
    bnn.PadOp: lower_pad,
    bnn.MaxPool2dOp: lower_max_pool2d,
    bnn.AvgPool2dOp: lower_avg_pool2d,
    bnn.AdaptiveAvgPool2dOp: lower_adaptive_avg_pool2d,
    bnn.AdaptiveMaxPool2dOp: lower_adaptive_max_pool2d,
    bnn.MeanOp: lower_mean,
}


def _numel(value: SSAValue) -> int:
    return pymath.prod(value.type.get_shape())


def _window_work(op: Operation) -> int:
    """Elements a pooling kernel touches: output elements x window taps."""
    kh, kw = op.kernel.get_values()
    return _numel(op.results[0]) * kh * kw


def _mean_work(op: Operation) -> int:
    """A mean reads its input one strided scalar at a time: XNOR-Net's
    channel mean of 128 x 28 x 28 takes 45 us on one thread, what a
    vectorised elementwise op touching ~4x as many elements takes."""
    return 4 * _numel(op.operands[0])


def _elementwise_work(op: Operation) -> int:
    """Elements an elementwise kernel touches: its output and its operands."""
    return sum(_numel(v) for v in (*op.operands, op.results[0]))


# Memory-bound ops split their N x C planes (or outer rows) between threads;
# their work is the number of elements they touch.
FLOAT_THREADED: dict[type[Operation], WorkOf] = {
    bnn.MaxPool2dOp: _window_work,
    bnn.AvgPool2dOp: _window_work,
    bnn.AdaptiveAvgPool2dOp: lambda op: _numel(op.operands[0]),
    bnn.AdaptiveMaxPool2dOp: lambda op: _numel(op.operands[0]),
    bnn.MeanOp: _mean_work,
    **{
        kind: _elementwise_work
        for kind in (
            bnn.SignOp,
            bnn.ReluOp,
            bnn.AbsOp,
            bnn.HardtanhOp,
            bnn.PReluOp,
            bnn.AddOp,
            bnn.SubOp,
            bnn.MulOp,
            bnn.DivOp,
            bnn.BatchNormOp,
            bnn.CatOp,
        )
    },
}
