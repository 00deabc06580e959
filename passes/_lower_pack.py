"""Lowering of bnn.pack: binarize and bit-pack f32 activations along channels
(NCHW, vectorised over pixels; NHWC, vectorised over a word's channels),
with the thresholds fuse-bn-pack gives it."""

from __future__ import annotations

import math
from collections.abc import Callable

from xdsl.dialects import vector
from xdsl.dialects.builtin import VectorType, f32, i32, i64
from xdsl.ir import Operation, SSAValue

from bnnc.dialects import bnn
from bnnc.dialects.bitpack import words_for
from bnnc.passes._loop_builder import IndexLike, LoopBuilder, memref_shape
from bnnc.passes._lower_binary import WORD, _sign_bits
from bnnc.passes._lowering import Lowerer, Lowering, WorkOf, collapse_trailing


def lower_pack(lowerer: Lowerer, op: bnn.PackOp, args: list[SSAValue], out: SSAValue) -> None:
    """Sign bits of x (N x C x H x W f32) into out[n, g*Wg + j, y, x].
    Vectorised over pixels (a word's channels are H*W apart, its pixels
    contiguous): per vector of pixels, a loop over the word's channels, from
    its last to its first, shifts two i32 accumulators (channels 0-31 and
    32-63) left and ORs in each lane's sign; one shuffle interleaves them
    into the i64 words (little-endian targets), stored as one vector. The
    loops stay rolled, so the IR is a few dozen ops whatever the channel
    count. Pixels after the last whole vector take the same loop per pixel
    with scalars. Threads split the rows, so each thread's share is one
    contiguous span of pixels. With thresholds (fuse-bn-pack) the sign is
    that of x * d[c] - t[c], whose f32 rounding is < 0 exactly when
    x * d[c] < t[c] (x * d is exact, a difference of distinct floats is
    never rounded to 0, and inf - inf and NaN give NaN, which is not < 0)."""
    lb = lowerer.lb
    centred = _centred(lb, op, args)
    if op.channels_last is not None:
        _lower_pack_channels_last(lowerer, op, args[0], out, centred)
        return
    groups = op.groups.value.data
    n_, c, h, w = memref_shape(args[0])
    cg = c // groups
    words = words_for(cg)
    src, dest = collapse_trailing(lb, args[0], 4, 2), collapse_trailing(lb, out, 4, 2)
    begin, end = lowerer.row_range(h)
    lo, hi = (lb.muli(v, w) if isinstance(v, SSAValue) else v * w for v in (begin, end))
    lanes = max(2, lowerer.vector_bits // 32)  # f32 pixels per vector
    fty, ity = VectorType(f32, [lanes]), VectorType(i32, [lanes])
    if isinstance(lo, int) and isinstance(hi, int):
        vectors_end: IndexLike = lo + (hi - lo) // lanes * lanes
    else:
        span = lb.subi(lb.index(hi), lb.index(lo))
        vectors_end = lb.addi(lo, lb.muli(lb.divui(span, lanes), lanes))

    def signs(first: SSAValue, bits: int, load: Callable[[SSAValue], SSAValue], zero: SSAValue) -> SSAValue:
        """acc = (acc << 1) | sign over channels first + bits - 1 down to first."""
        last = lb.affine([(first, 1)], bits - 1)
        with lb.loop(bits, carried=[zero]) as k:
            acc = k.carried[0]
            k.next = [lb.or_(lb.iadd(acc, acc), load(lb.subi(last, k.iv)))]
        return k.results[0]

    def pack_word(n: SSAValue, g: SSAValue, j: IndexLike, bits: int) -> None:
        first = lb.affine([(g, cg), (j, WORD)])
        word = lb.affine([(g, words), (j, 1)])
        with lb.loop(vectors_end, lb.index(lo), lanes) as p:

            def flags(channel: SSAValue) -> SSAValue:
                negative = lb.negative_sign_bit(centred(lb.vload(src, [n, channel, p.iv], fty), channel))
                return lb.shrui(negative, lb.splat(31, ity))

            zero = lb.splat(0, ity)
            low = signs(first, min(bits, 32), flags, zero)
            high = signs(lb.addi(first, 32), bits - 32, flags, zero) if bits > 32 else zero
            pairs = lb.shuffle(low, high, [i for lane in range(lanes) for i in (lane, lanes + lane)])
            lb.vstore(lb.emit(vector.BitcastOp(pairs, VectorType(i64, [lanes]))), dest, [n, word, p.iv])
        with lb.loop(lb.index(hi), lb.index(vectors_end)) as p:

            def sign(channel: SSAValue) -> SSAValue:  # bit 1 = -1; -0.0 and NaN give +1
                return lb.bool_to_i64(lb.cmpf(centred(lb.load(src, [n, channel, p.iv]), channel), 0.0, "olt"))

            lb.store(signs(first, bits, sign, lb.i64(0)), dest, [n, word, p.iv])

    # full words share one body in a loop
    full, rest = divmod(cg, WORD)
    with lb.loops([n_, groups]) as (n, g):
        if full == 1:
            pack_word(n, g, 0, WORD)
        elif full:
            with lb.loop(full) as j:
                pack_word(n, g, j.iv, WORD)
        if rest:
            pack_word(n, g, full, rest)


def _centred(lb: LoopBuilder, op: bnn.PackOp, args: list[SSAValue]) -> Callable[[SSAValue, SSAValue], SSAValue]:
    """centred(x, channel): what bnn.pack takes the sign of, x (a scalar or a
    vector of one channel's values), or x * d[c] - t[c] with thresholds."""
    if op.threshold is None:
        return lambda x, channel: x
    threshold, direction = args[1], args[2]

    def centred(x: SSAValue, channel: SSAValue) -> SSAValue:
        d, t = lb.load(direction, [channel]), lb.load(threshold, [channel])
        if isinstance(x.type, VectorType):
            d, t = lb.broadcast(d, x.type), lb.broadcast(t, x.type)
        return lb.subf(lb.mulf(x, d), t)

    return centred


def _lower_pack_channels_last(
    lowerer: Lowerer, op: bnn.PackOp, x: SSAValue, out: SSAValue, centred: Callable[[SSAValue, SSAValue], SSAValue]
) -> None:
    """bnn.pack of an N x H x W x C input: a word's channels are contiguous, so
    each word is an OR-reduction over a loop of its bits (LLVM vectorises it:
    compare, shift and OR a vector of channels at a time). Threads split the rows."""
    lb = lowerer.lb
    groups = op.groups.value.data
    n_, h, w, c = memref_shape(x)
    cg = c // groups
    words = words_for(cg)
    begin, end = lowerer.row_range(h)

    def pack_word(n: SSAValue, y: SSAValue, xx: SSAValue, g: SSAValue, j: IndexLike, bits: int) -> None:
        first = lb.affine([(g, cg), (j, WORD)])
        def element(i: SSAValue) -> SSAValue:
            channel = lb.addi(first, i)
            return centred(lb.load(x, [n, y, xx, channel]), channel)

        word = _sign_bits(lb, bits, element)
        lb.store(word, out, [n, lb.affine([(g, words), (j, 1)]), y, xx])

    full, rest = divmod(cg, WORD)
    with lb.loop(n_) as n, lb.loop(end, begin) as y, lb.loop(w) as xx, lb.loop(groups) as g:
        if full == 1:
            pack_word(n.iv, y.iv, xx.iv, g.iv, 0, WORD)
        elif full:
            with lb.loop(full) as j:
                pack_word(n.iv, y.iv, xx.iv, g.iv, j.iv, WORD)
        if rest:
            pack_word(n.iv, y.iv, xx.iv, g.iv, full, rest)


PACK_LOWERINGS: dict[type[Operation], Lowering] = {bnn.PackOp: lower_pack}
PACK_THREADED: dict[type[Operation], WorkOf] = {bnn.PackOp: lambda op: math.prod(op.operands[0].type.get_shape())}
