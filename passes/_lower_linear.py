"""Lowering of the float linear layer (a BNN's fp32 classifier head) to an
FMA kernel vectorised over output features, with the weights laid out at
compile time in the order the kernel reads them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import arith, vector
from xdsl.dialects.builtin import VectorType, f32
from xdsl.ir import Operation, SSAValue

from bnnc.dialects import bnn
from bnnc.passes._loop_builder import IndexLike, LoopBuilder, memref_shape
from bnnc.passes._lowering import Lowerer, Lowering, WorkOf
from bnnc.passes._microkernel import RegisterTile, accumulate, ceil_to, choose_tile


def _fma(lb: LoopBuilder, acc: SSAValue, a: SSAValue, w: SSAValue) -> SSAValue:
    return lb.emit(vector.FMAOp(a, w, acc))


@dataclass(frozen=True)
class _Segment:
    """`vectors` vectors of output features from m0 (of which `valid`
    exist); read(k, v) loads weight vector v of step k."""

    m0: IndexLike
    vectors: int
    valid: int
    read: Callable[[SSAValue, int], SSAValue]


def lower_linear(lowerer: Lowerer, op: bnn.LinearOp, args: list[SSAValue], out: SSAValue) -> None:
    """y[n, m] = bias[m] + sum over k in order of x[n, k] * w[m, k], one FMA
    per k, vectorised over register tiles of output features x a block of
    batch rows.

    A batch-1 (or small-batch) linear is a matrix-vector product: each weight
    is used once per row, so the layer is bound by reading its weights
    (512 x 1000 floats are 2 MB, the size of a core's L2, and in a network
    the other layers evict them to L3 between calls), not by FMAs. Hence:
    - the weights are stored tile-major ([tile][k][features of the tile]),
      so a tile streams one contiguous block (a K-major matrix read tile by
      tile would stride a whole row per k, a new 4 KB page per load that the
      hardware prefetcher does not follow);
    - at batch 1 the tiles are narrow (2 vectors) and several are computed
      at once (`streams`, 8 on one thread, 4 per thread when threaded: one
      accumulator per vector, the weights FMA memory operands), so the loads
      come from several sequential streams 64 KB apart and the FMA chains
      are independent. On this host (Sapphire Rapids class, 2 MB L2, loaded
      machine) a 2 MB head called over and over ran in 59 us median (32 us
      p10) against 65 (51) with one 4-vector tile at a time; after an L2
      eviction all variants read at the L3's ~22 GB/s (~100 us);
    - the last, partial tile is its own block, only as wide as its vectors
      (1000 features at batch 1: 16 floats per k, not 32; at batch > 1
      48, not 64: only the last vector's padding is read);
    - the batch rows share each weight load: a register tile holds
      `pixels` rows x `vectors` accumulators, so up to `pixels` rows read the
      weights once, and larger batches loop over row blocks inside a tile
      (whose 128 KB stay in L2) rather than over the whole matrix per row.
    Every output is one FMA chain in k order plus the bias, whatever the
    tile, group, batch block or thread count: the same bits in every case."""
    lb = lowerer.lb
    x = args[0]
    n_, k = memref_shape(x)
    m_ = memref_shape(args[1])[0]
    tile = choose_tile(lowerer.vector_bits, 32, lowerer.registers, m_)
    rows = max(1, min(n_, tile.pixels))
    if rows == 1:  # narrower tiles, more of them at once: more streams
        tile = RegisterTile(tile.lanes, min(tile.vectors, 2), 1)
    # Tiles per group: at batch 1 as many as half the registers hold as
    # accumulators (at most 8 on one thread, 4 per thread when threaded);
    # rows > 1 already reuse each weight load.
    streams = 1 if rows > 1 else max(1, min(8 if lowerer.thread is None else 4, lowerer.registers // 2 // tile.vectors))
    vty = VectorType(f32, [tile.lanes])
    full_tiles, rest = divmod(m_, tile.channels)
    rest_vectors = -(-rest // tile.lanes)
    w = lowerer.constant_value(op.weight, op).astype(np.float32)
    weights = None
    if full_tiles:
        body = w[: full_tiles * tile.channels].reshape(full_tiles, tile.channels, k).transpose(0, 2, 1)
        weights = lowerer.global_buffer(np.ascontiguousarray(body))
    last = None
    if rest:
        part = np.zeros((k, rest_vectors * tile.lanes), dtype=np.float32)
        part[:, :rest] = w[full_tiles * tile.channels :].T
        last = lowerer.global_buffer(part)
    bias = None
    if op.bias is not None:
        table = np.zeros((1, ceil_to(m_, tile.lanes)), dtype=np.float32)
        table[0, :m_] = lowerer.constant_value(op.bias, op)
        bias = lowerer.global_buffer(table)

    def full_tile(t: IndexLike) -> _Segment:
        def read(kk: SSAValue, v: int) -> SSAValue:
            return lb.vload(weights, [t, kk, v * tile.lanes], vty)

        return _Segment(lb.muli(t, tile.channels), tile.vectors, tile.channels, read)

    def emit(n0: IndexLike, count: int, segments: list[_Segment]) -> None:
        """`count` batch rows from n0 x the features of `segments`."""
        owner = [(seg, v) for seg in segments for v in range(seg.vectors)]
        accs = accumulate(
            lb,
            vty,
            count,
            len(owner),
            [k],
            lambda ks, i: owner[i][0].read(ks[0], owner[i][1]),
            lambda ks, t: lb.load(x, [lb.addi(n0, t), ks[0]]),
            _fma,
        )
        for t in range(count):
            n = lb.addi(n0, t)
            for i, (seg, v) in enumerate(owner):
                oc = lb.addi(seg.m0, v * tile.lanes)
                acc = accs[t][i]
                if bias is not None:
                    acc = lb.addf(acc, lb.vload(bias, [0, oc], vty))
                lanes = min(tile.lanes, seg.valid - v * tile.lanes)
                if lanes == tile.lanes:
                    lb.vstore(acc, out, [n, oc])
                else:
                    for lane in range(lanes):
                        lb.store(lb.extract(acc, lane), out, [n, lb.addi(oc, lane)])

    def row_blocks(segments: list[_Segment]) -> None:
        """Every batch row, `rows` at a time, for one group of features."""
        blocks, tail = divmod(n_, rows)
        if blocks == 1:
            emit(0, rows, segments)
        elif blocks:
            with lb.loop(blocks) as nb:
                emit(lb.muli(nb.iv, rows), rows, segments)
        if tail:
            emit(blocks * rows, tail, segments)

    # Threads split the groups of `streams` tiles; the leftover full tiles and
    # the partial one make one last group.
    groups, leftover = divmod(full_tiles, streams)
    tail = [full_tile(groups * streams + s) for s in range(leftover)]
    if rest:
        tail.append(
            _Segment(
                full_tiles * tile.channels, rest_vectors, rest, lambda kk, v: lb.vload(last, [kk, v * tile.lanes], vty)
            )
        )
    t0, t1 = lowerer.row_range(groups + (1 if tail else 0))
    if groups:
        with lb.loop(lb.emit(arith.MinSIOp(lb.index(t1), lb.index(groups))), lb.index(t0)) as g:
            first = lb.muli(g.iv, streams)
            row_blocks([full_tile(lb.addi(first, s)) for s in range(streams)])
    if tail:  # runs once, in the thread whose share includes the last group
        bounds = [lb.emit(arith.MaxSIOp(lb.index(t), lb.index(groups))) for t in (t1, t0)]
        with lb.loop(bounds[0], bounds[1]):
            row_blocks(tail)


LINEAR_LOWERINGS: dict[type[Operation], Lowering] = {
    bnn.LinearOp: lower_linear,
}

LINEAR_THREADED: dict[type[Operation], WorkOf] = {
    bnn.LinearOp: lambda op: int(np.prod(op.results[0].type.get_shape())) * op.operands[1].type.get_shape()[1],
}
