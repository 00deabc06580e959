"""Lowering of the float linear layer (a BNN's fp32 classifier head) to an
FMA kernel vectorised over output features, with the weights laid out at
compile time in the order the kernel reads them."""

from __future__ import annotations

import numpy as np
from xdsl.dialects import arith
from xdsl.dialects.builtin import VectorType, f32
from xdsl.ir import Operation, SSAValue

from bnnc.dialects import bnn
from bnnc.passes._loop_builder import IndexLike, memref_shape
from bnnc.passes._lower_float_conv import _constant_table, _fma
from bnnc.passes._lowering import Lowerer, Lowering, WorkOf
from bnnc.passes._microkernel import accumulate, ceil_to, choose_tile


def lower_linear(lowerer: Lowerer, op: bnn.LinearOp, args: list[SSAValue], out: SSAValue) -> None:
    """y[n, m] = bias[m] + sum over k in order of x[n, k] * w[m, k], one FMA
    per k, vectorised over a register tile of output features. The weights
    are stored tile-major ([tile][k][features of the tile]), so each tile
    streams one contiguous block: at batch 1 a classifier is bound by
    reading its weights (512 x 1000 floats are 2 MB, out of L2), and a
    K-major matrix read tile by tile would stride a whole row (4 KB) per k,
    a new page per load that the hardware prefetcher does not follow."""
    lb = lowerer.lb
    x = args[0]
    n_, k = memref_shape(x)
    m_ = memref_shape(args[1])[0]
    tile = choose_tile(lowerer.vector_bits, 32, lowerer.registers, m_)
    padded = ceil_to(m_, tile.channels)
    vty = VectorType(f32, [tile.lanes])
    wt = np.zeros((k, padded), dtype=np.float32)
    wt[:, :m_] = lowerer.constant_value(op.weight, op).T
    tiled = np.ascontiguousarray(wt.reshape(k, padded // tile.channels, tile.channels).transpose(1, 0, 2))
    weights = lowerer.global_buffer(tiled)
    bias = _constant_table(lowerer, op, op.bias, 1, m_, padded)

    def emit(n: SSAValue, t: IndexLike, vectors: int, valid: int) -> None:
        m0 = lb.muli(t, tile.channels)
        accs = accumulate(
            lb,
            vty,
            1,
            vectors,
            [k],
            lambda ks, v: lb.vload(weights, [t, ks[0], v * tile.lanes], vty),
            lambda ks, _: lb.load(x, [n, ks[0]]),
            _fma,
        )
        for v in range(vectors):
            oc = lb.addi(m0, v * tile.lanes)
            acc = accs[0][v]
            if bias is not None:
                acc = lb.addf(acc, lb.vload(bias, [0, oc], vty))
            for lane in range(min(tile.lanes, valid - v * tile.lanes)):
                lb.store(lb.extract(acc, lane), out, [n, lb.addi(oc, lane)])

    # Threads split the output-feature tiles (the last, partial one included).
    full_tiles, rest = divmod(m_, tile.channels)
    t0, t1 = lowerer.row_range(full_tiles + (1 if rest else 0))
    with lb.loops([n_]) as (n,):
        if full_tiles:
            with lb.loop(lb.emit(arith.MinSIOp(lb.index(t1), lb.index(full_tiles))), lb.index(t0)) as mt:
                emit(n, mt.iv, tile.vectors, tile.channels)
        if rest:  # runs once, in the thread whose share includes the last tile
            last = [lb.emit(arith.MaxSIOp(lb.index(t), lb.index(full_tiles))) for t in (t1, t0)]
            with lb.loop(last[0], last[1]):
                emit(n, full_tiles, -(-rest // tile.lanes), rest)


LINEAR_LOWERINGS: dict[type[Operation], Lowering] = {
    bnn.LinearOp: lower_linear,
}

LINEAR_THREADED: dict[type[Operation], WorkOf] = {
    bnn.LinearOp: lambda op: int(np.prod(op.results[0].type.get_shape())) * op.operands[1].type.get_shape()[1],
}
