"""The register-blocked micro-kernel shared by binary and float convolutions.

Vectorised over output channels: each step loads `vectors` weight vectors
(`lanes` output channels each, contiguous in a K-major weight layout),
broadcasts one input element per output pixel, and combines them into a
`pixels x vectors` tile of vector accumulators carried in registers through the
K loops (no horizontal sums). `tiled_conv_loops` walks the output in such
tiles.
`choose_column_tile` sizes the other shape float convs use, vectorised over
output columns (see _lower_float_conv).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import prod

from xdsl.dialects import arith, vector
from xdsl.dialects.builtin import IntegerType, VectorType
from xdsl.ir import SSAValue

from bnnc.passes._loop_builder import IndexLike, LoopBuilder


@dataclass(frozen=True)
class RegisterTile:
    """How many output pixels and channel vectors one tile keeps in registers."""

    lanes: int
    vectors: int
    pixels: int

    @property
    def channels(self) -> int:
        return self.lanes * self.vectors


def choose_tile(vector_bits: int, element_bits: int, registers: int, channels: int) -> RegisterTile:
    """A small cost model: fill the register file with accumulators
    (pixels x vectors), keeping one register per weight vector and two spare;
    at most 4 vectors (the weights of a K step stay in registers) and 6 pixels."""
    lanes = max(1, vector_bits // element_bits)
    vectors = max(1, min(4, -(-channels // lanes)))
    pixels = max(1, min(6, (registers - vectors - 2) // vectors))
    return RegisterTile(lanes, vectors, pixels)


def choose_popcount_tile(vector_bits: int, registers: int, channels: int, acc_bits: int = 64) -> RegisterTile:
    """The binary kernels' tile. With 64-bit accumulators (x86) `choose_tile`:
    the broadcast activation word is a memory operand there (`{1to8}`) and
    the popcount result goes straight into a non-destructive add.

    With narrow accumulators (NEON) every live vector is counted: pixels x
    vectors accumulators, one register per weight vector, one per pixel's
    broadcast (`ld1r`, loaded together at the top of a step), and two per
    weight vector for the `eor`/`cnt` results in flight before the
    destructive `uadalp`: P V + V + P + 2 V <= registers. A broadcast also
    takes a SIMD issue slot, so a step costs 3 P V + P slots for 128 P V
    bit-MACs: more vectors per broadcast is better, at most 4 (the weights
    of a step). On 32 registers this is 4 x 4 (26 live; 5 x 4 and 6 x 4
    spilled in LLVM's schedule). On 16 registers (Armv7 NEON) 4 vectors
    leave no room for a pixel, so the vectors shrink until at least two
    pixels share each weight load: 3 x 2 (15 live)."""
    if acc_bits >= 64:
        return choose_tile(vector_bits, 64, registers, channels)
    lanes = max(1, vector_bits // 64)
    vectors = max(1, min(4, -(-channels // lanes)))
    while vectors > 1 and (registers - 3 * vectors) // (vectors + 1) < 2:
        vectors -= 1
    pixels = max(1, min(6, (registers - 3 * vectors) // (vectors + 1)))
    return RegisterTile(lanes, vectors, pixels)


@dataclass(frozen=True)
class ColumnTile:
    """The column-vectorised tile: `channels` output channels x `vectors`
    vectors of `lanes` consecutive output columns, all accumulators."""

    lanes: int
    channels: int
    vectors: int


def choose_column_tile(vector_bits: int, element_bits: int, registers: int, channels: int) -> ColumnTile:
    """A small cost model. A K step of a c x v tile keeps v input vectors and
    one broadcast weight live besides the c * v accumulators (at most 3/4 of
    the registers: a 9 x 3 tile on 32 registers measured 20% slower than
    8 x 3), and costs about
    max(c * v FMAs, c + 2 v loads (unaligned vectors span two cache lines),
    8 (FMAs in flight to hide their latency)) issue slots (two per cycle).
    Pick the tile with the fewest slots per output column over all channel
    tiles (the last one may be partial); ties go to fewer loads per FMA, then
    to more channels. On 32 registers and 64 channels this is 8 x 3."""
    lanes = max(1, vector_bits // element_bits)

    def step(c: int, v: int) -> int:
        return max(c * v, c + 2 * v, 8)

    best: tuple | None = None
    for c in range(1, min(16, channels) + 1):
        for v in range(1, 9):
            if c * v + v + 1 > registers or 4 * c * v > 3 * registers:
                continue
            full, rest = divmod(channels, c)
            slots = (full * step(c, v) + (step(rest, v) if rest else 0)) / v
            score = (slots, (c + 2 * v) / (c * v), -c)
            if best is None or score < best[0]:
                best = (score, c, v)
    assert best is not None
    return ColumnTile(lanes, best[1], best[2])


def ceil_to(n: int, m: int) -> int:
    return -(-n // m) * m


Combine = Callable[[LoopBuilder, SSAValue, SSAValue, SSAValue], SSAValue]


def accumulate(
    lb: LoopBuilder,
    vty: VectorType,
    pixels: int,
    vectors: int,
    k_bounds: Sequence[int],
    weight_vector: Callable[[list[SSAValue], int], SSAValue],
    input_element: Callable[[list[SSAValue], int], SSAValue],
    combine: Combine,
) -> list[list[SSAValue]]:
    """acc[t][v] = fold over the K loops of combine(acc, broadcast(x_t), w_v)."""
    zero = lb.splat(0 if not _is_float(vty) else 0.0, vty)
    with lb.reduction(list(k_bounds), [zero] * (pixels * vectors)) as red:
        ks = red.ivs
        ws = [weight_vector(ks, v) for v in range(vectors)]
        nxt = []
        for t in range(pixels):
            a = lb.broadcast(input_element(ks, t), vty)
            for v in range(vectors):
                nxt.append(combine(lb, red.carried[t * vectors + v], a, ws[v]))
        red.next = nxt
    accs = red.results
    return [accs[t * vectors : (t + 1) * vectors] for t in range(pixels)]


def popcount_xor(lb: LoopBuilder, acc: SSAValue, a: SSAValue, w: SSAValue) -> SSAValue:
    """acc + popcount(a ^ w), lane by lane in the operands' element type."""
    return lb.iadd(acc, lb.ctpop(lb.xor(a, w)))


def popcount_chunk_steps(acc_bits: int) -> int:
    """How many K steps an accumulator of `acc_bits`-bit lanes takes before it
    may overflow: a step adds at most acc_bits (the popcount of one lane)."""
    return ((1 << acc_bits) - 1) // acc_bits


def widen_popcounts(lb: LoopBuilder, acc: SSAValue, wide: VectorType) -> SSAValue:
    """The narrow lanes of `acc` summed into the i64 lanes of `wide` that hold
    the same bits: pairwise adds of halves under masks (outside the hot loop)."""
    narrow = acc.type
    assert isinstance(narrow, VectorType)
    bits = narrow.element_type.bitwidth
    v = lb.emit(vector.BitcastOp(acc, wide))
    while bits < 64:
        mask = lb.splat(sum(((1 << bits) - 1) << i for i in range(0, 64, 2 * bits)), wide)
        high = lb.emit(arith.ShRUIOp(v, lb.splat(bits, wide)))
        v = lb.iadd(lb.and_(v, mask), lb.and_(high, mask))
        bits *= 2
    return v


def accumulate_popcount(
    lb: LoopBuilder,
    vty: VectorType,
    pixels: int,
    vectors: int,
    k_bounds: Sequence[int],
    weight_vector: Callable[[list[SSAValue], int], SSAValue],
    input_element: Callable[[list[SSAValue], int], SSAValue],
    acc_bits: int = 64,
) -> list[list[SSAValue]]:
    """acc[t][v] = sum over the K loops of popcount(broadcast(x_t) ^ w_v), per
    i64 lane of `vty` (the binary kernels' accumulate).

    With acc_bits = 64 this is `accumulate` with popcount_xor: one 64-bit
    popcount per word (x86: VPOPCNTQ, popcnt). With narrower lanes (aarch64:
    16) the popcount is of acc_bits-bit lanes and adds into acc_bits-bit
    accumulators, which LLVM turns into `cnt v.16b` + `uadalp v.8h` (3 SIMD
    ops per 128 bit-MACs with the `eor`, instead of widening every step). A
    narrow accumulator overflows after popcount_chunk_steps(acc_bits) steps
    (4095 for 16 bits), so K is cut into chunks of at most that many steps:
    the outer K loops carry i64 accumulators, the inner ones narrow ones, and
    each chunk is widened into the i64 ones when it ends. The K loops of
    a 3x3 conv of up to 29k channels are one chunk, widened once per tile."""
    if acc_bits >= 64:
        return accumulate(lb, vty, pixels, vectors, k_bounds, weight_vector, input_element, popcount_xor)
    count = pixels * vectors
    nty = VectorType(IntegerType(acc_bits), [vty.get_shape()[0] * 64 // acc_bits])
    limit = popcount_chunk_steps(acc_bits)
    # K loops of one iteration are left out (index 0): LLVM's LICM sinks the
    # adds of such a loop below all its popcounts (every partial count live
    # at once: spills on NEON's 32 registers).
    kept = [i for i, n in enumerate(k_bounds) if n != 1] or [len(k_bounds) - 1]
    bounds = [k_bounds[i] for i in kept]

    def chunk(ubs: list[int], index: Callable[[list[SSAValue]], list[SSAValue]]) -> list[SSAValue]:
        """One chunk of narrow accumulation over loops `ubs`, widened to i64 lanes."""
        with lb.reduction(ubs, [lb.splat(0, nty)] * count) as red:
            ks = _expand(lb, index(red.ivs), kept, len(k_bounds))
            ws = [lb.emit(vector.BitcastOp(weight_vector(ks, v), nty)) for v in range(vectors)]
            nxt = []
            for t in range(pixels):
                a = lb.emit(vector.BitcastOp(lb.broadcast(input_element(ks, t), vty), nty))
                for v in range(vectors):
                    nxt.append(popcount_xor(lb, red.carried[t * vectors + v], a, ws[v]))
            red.next = nxt
        return [widen_popcounts(lb, acc, vty) for acc in red.results]

    def add_all(a: list[SSAValue], b: list[SSAValue]) -> list[SSAValue]:
        return [lb.iadd(x, y) for x, y in zip(a, b)]

    def outer(ubs: list[int], body: Callable[[list[SSAValue]], list[SSAValue]]) -> list[SSAValue]:
        """i64 accumulators carried through loops `ubs` around `body(ivs)`."""
        if not ubs:
            return body([])
        with lb.reduction(ubs, [lb.splat(0, vty)] * count) as red:
            red.next = add_all(red.carried, body(red.ivs))
        return red.results

    split = next(i for i in range(len(bounds) + 1) if prod(bounds[i:]) <= limit)
    if split < len(bounds):
        accs = outer(bounds[:split], lambda pre: chunk(bounds[split:], lambda ivs: [*pre, *ivs]))
    else:
        # the innermost K loop alone is longer than a chunk: full chunks, then the rest
        q, r = divmod(bounds[-1], limit)

        def row(pre: list[SSAValue]) -> list[SSAValue]:
            def full(o: list[SSAValue]) -> list[SSAValue]:
                base = lb.muli(o[0], limit)
                return chunk([limit], lambda ivs: [*pre, lb.addi(base, ivs[0])])

            sums = outer([q], full)
            if r:
                sums = add_all(sums, chunk([r], lambda ivs: [*pre, lb.addi(ivs[0], q * limit)]))
            return sums

        accs = outer(bounds[:-1], row)
    return [accs[t * vectors : (t + 1) * vectors] for t in range(pixels)]


def _expand(lb: LoopBuilder, ivs: list[SSAValue], kept: list[int], count: int) -> list[SSAValue]:
    """Indices of all `count` K loops from those of the `kept` ones (0 elsewhere)."""
    full = [lb.index(0)] * count
    for i, iv in zip(kept, ivs):
        full[i] = iv
    return full


def _is_float(vty: VectorType) -> bool:
    from xdsl.dialects.builtin import AnyFloat

    return isinstance(vty.element_type, AnyFloat)


def interior_range(out_size: int, stride: int, pad: int, dilation: int, kernel: int, in_size: int) -> tuple[int, int]:
    """Output indices [lo, hi) whose window lies entirely inside the input."""
    lo = min(out_size, -(-pad // stride))
    hi = max(lo, min(out_size, (in_size - 1 + pad - (kernel - 1) * dilation) // stride + 1))
    return lo, hi


def tap_position(
    lb: LoopBuilder,
    oy: IndexLike,
    ox0: IndexLike,
    t: int,
    ky: SSAValue,
    kx: SSAValue,
    strides: tuple[int, int],
    dilations: tuple[int, int],
) -> tuple[SSAValue, SSAValue]:
    """Where tap (ky, kx) of output pixel (oy, ox0 + t) reads a padded input."""
    iy = lb.affine([(oy, strides[0]), (ky, dilations[0])])
    ix = lb.affine([(lb.addi(ox0, t), strides[1]), (kx, dilations[1])])
    return iy, ix


# emit(n, g, oc0, vectors, valid_channels, oy, ox0, pixels)
EmitTile = Callable[[SSAValue, SSAValue, IndexLike, int, int, IndexLike, IndexLike, int], None]
# after_row(n, g, oc0, valid_channels, oy): once a row of a channel tile is done
AfterRow = Callable[[SSAValue, SSAValue, IndexLike, int, SSAValue], None]


def tiled_conv_loops(
    lb: LoopBuilder,
    tile: RegisterTile,
    *,
    batch: int,
    groups: int,
    channels_per_group: int,
    out_hw: tuple[int, int],
    emit: EmitTile,
    rows: tuple[IndexLike, IndexLike] | None = None,
    after_row: AfterRow | None = None,
) -> None:
    """n, group, output-channel tile (weights stay in L1), row, column tile;
    each row in full tiles, then its last columns in one narrower tile.
    Every pixel runs the same code (a binary conv's border pixels subtract
    their class's correction, which is 0 inside: one copy of the unrolled
    tile, not one per border). `rows` restricts the output rows (a thread's
    share); `after_row` is emitted after each row of a channel tile (e.g. to
    store a row buffer)."""
    oh, ow = out_hw
    full = ow // tile.pixels * tile.pixels

    def channel_tile(n, g, oc0, vectors, valid) -> None:
        lo, hi = (0, oh) if rows is None else rows
        with lb.loop(hi, lb.index(lo)) as r:
            if full:
                with lb.loop(full, step=tile.pixels) as px:
                    emit(n, g, oc0, vectors, valid, r.iv, px.iv, tile.pixels)
            if ow > full:  # one narrower tile, not pixel by pixel: a 1-pixel
                # tile loads as many weight vectors as it does popcounts
                emit(n, g, oc0, vectors, valid, r.iv, full, ow - full)
            if after_row is not None:
                after_row(n, g, oc0, valid, r.iv)

    full_tiles, rest = divmod(channels_per_group, tile.channels)
    with lb.loops([batch, groups]) as (n, g):
        if full_tiles:
            with lb.loop(full_tiles) as octile:
                channel_tile(n, g, lb.muli(octile.iv, tile.channels), tile.vectors, tile.channels)
        if rest:
            channel_tile(n, g, full_tiles * tile.channels, -(-rest // tile.lanes), rest)
