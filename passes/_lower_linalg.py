"""Lowerings of the bnn linalg ops (dialects/bnn_linalg.py) to loop nests:
a register-blocked, column-vectorised FMA kernel for bnn.matmul and a
zero-fill + scatter for bnn.zero_insert."""

from __future__ import annotations

import math

from xdsl.dialects import vector
from xdsl.dialects.builtin import VectorType, f32
from xdsl.ir import Operation, SSAValue

from bnnc.dialects import bnn
from bnnc.passes._loop_builder import IndexLike, memref_shape
from bnnc.passes._lowering import Lowerer, Lowering, WorkOf

# Rows of a matmul register tile: each k step loads `ROWS` lhs scalars and
# `vectors` rhs vectors for ROWS x vectors FMAs.
ROWS = 4


def _matmul_vectors(registers: int) -> int:
    """rhs vectors per tile: ROWS x vectors accumulators plus the loaded
    vectors must fit the register file (16 on AVX2, 32 on AVX-512/NEON)."""
    return 4 if registers >= 32 else 2


def lower_matmul(lowerer: Lowerer, op: bnn.MatmulOp, args: list[SSAValue], out: SSAValue) -> None:
    """out[b, i, j] = fma chain over k = 0..K-1 from 0.0, the same order for
    every element (vector lanes and the scalar tail columns alike), so the
    result does not depend on tiling or threads. Vectorised over j: a tile of
    ROWS output rows x `vectors` vectors of columns broadcasts lhs[b, i, k]
    against contiguous rhs[b, k, j:j+lanes]. A transposed rhs is first copied
    to [b, k, j] order (K x N per batch, cheap next to the M x N x K product).
    Threads split the (batch, row tile) pairs."""
    lb = lowerer.lb
    lhs, rhs = args
    rank = len(memref_shape(lhs))
    batch, m, k, n = op.dims()
    lanes = max(lowerer.vector_bits // 32, 1)
    vty = VectorType(f32, [lanes])
    vectors = _matmul_vectors(lowerer.registers)

    def at(i: IndexLike, j: IndexLike, b: IndexLike) -> list[IndexLike]:
        return [b, i, j] if rank == 3 else [i, j]

    def lhs_at(b: IndexLike, i: IndexLike, kk: IndexLike) -> SSAValue:
        return lb.load(lhs, at(kk, i, b) if op.transpose_lhs is not None else at(i, kk, b))

    fresh = op.transpose_rhs is not None
    source = _transposed_copy(lowerer, rhs, rank, batch, n, k) if fresh else rhs

    def tile(b: IndexLike, i0: IndexLike, rows: int) -> None:
        full = n // lanes

        def vector_tile(j0: IndexLike, count: int) -> None:
            zero = lb.splat(0.0, vty)
            with lb.reduction([k], [zero] * (rows * count)) as red:
                (kk,) = red.ivs
                bs = [lb.vload(source, at(kk, lb.addi(j0, v * lanes), b), vty) for v in range(count)]
                accs = list(red.carried)
                for r in range(rows):
                    a = lb.broadcast(lhs_at(b, lb.addi(i0, r), kk), vty)
                    for v in range(count):
                        accs[r * count + v] = lb.emit(vector.FMAOp(a, bs[v], accs[r * count + v]))
                red.next = accs
            for r in range(rows):
                for v in range(count):
                    lb.vstore(red.results[r * count + v], out, at(lb.addi(i0, r), lb.addi(j0, v * lanes), b))

        groups = full // vectors
        if groups:
            with lb.loop(groups) as g:
                vector_tile(lb.muli(g.iv, vectors * lanes), vectors)
        if full % vectors:
            with lb.loop(full, groups * vectors) as v:
                vector_tile(lb.muli(v.iv, lanes), 1)
        if n % lanes:
            with lb.loops([rows]) as (r,):
                i = lb.addi(i0, r)
                with lb.loop(n, full * lanes) as j:
                    with lb.reduction([k], [lb.f32(0.0)]) as red:
                        (kk,) = red.ivs
                        red.next = [lb.fma(lhs_at(b, i, kk), lb.load(source, at(kk, j.iv, b)), red.carried[0])]
                    lb.store(red.results[0], out, at(i, j.iv, b))

    full_tiles, rest = divmod(m, ROWS)
    for per_batch, rows, first in ((full_tiles, ROWS, 0), (rest, 1, full_tiles * ROWS)):
        if not per_batch:
            continue
        begin, end = lowerer.row_range(batch * per_batch)
        with lb.loop(end, begin) as unit:
            b = lb.divui(unit.iv, per_batch) if batch > 1 else 0
            local = lb.remui(unit.iv, per_batch) if batch > 1 else unit.iv
            tile(b, lb.affine([(local, rows)], first), rows)
    if fresh:
        lb.dealloc(source)


def _transposed_copy(lowerer: Lowerer, rhs: SSAValue, rank: int, batch: int, n: int, k: int) -> SSAValue:
    """rhs stored [b, j, k] copied to a fresh [b, k, j] buffer."""
    lb = lowerer.lb
    shape = [batch, k, n] if rank == 3 else [k, n]
    dest = lb.alloc(shape, f32)
    with lb.loops(shape) as ivs:
        src = [ivs[0], ivs[2], ivs[1]] if rank == 3 else [ivs[1], ivs[0]]
        lb.store(lb.load(rhs, src), dest, ivs)
    return dest


def _valid(count: int, size: int, offset: int, stride: int) -> tuple[int, int]:
    """The range [lo, hi) of input positions p < count with 0 <= offset + p*stride < size."""
    lo = max(0, -(offset // stride))  # ceil(-offset / stride)
    hi = min(count, (size - 1 - offset) // stride + 1)
    return lo, max(lo, hi)


def lower_zero_insert(lowerer: Lowerer, op: bnn.ZeroInsertOp, args: list[SSAValue], out: SSAValue) -> None:
    """Per N x C plane (threads split the planes): zero the output plane, then
    scatter the input pixels that land inside it (static bounds)."""
    lb, x = lowerer.lb, args[0]
    n_, c_, h, w = memref_shape(x)
    _, _, oh, ow = memref_shape(out)
    sh, sw = op.strides.get_values()
    left, _, top, _ = op.padding.get_values()
    y_lo, y_hi = _valid(h, oh, top, sh)
    x_lo, x_hi = _valid(w, ow, left, sw)
    begin, end = lowerer.row_range(n_ * c_)
    with lb.loop(end, begin) as plane:
        n = lb.divui(plane.iv, c_) if n_ > 1 else 0
        c = lb.remui(plane.iv, c_) if n_ > 1 else plane.iv
        with lb.loops([oh, ow]) as (y, xx):
            lb.store(lb.f32(0.0), out, [n, c, y, xx])
        if y_lo < y_hi and x_lo < x_hi:
            with lb.loop(y_hi, y_lo) as y, lb.loop(x_hi, x_lo) as xx:
                value = lb.load(x, [n, c, y.iv, xx.iv])
                lb.store(value, out, [n, c, lb.affine([(y.iv, sh)], top), lb.affine([(xx.iv, sw)], left)])


LINALG_LOWERINGS: dict[type[Operation], Lowering] = {
    bnn.MatmulOp: lower_matmul,
    bnn.ZeroInsertOp: lower_zero_insert,
}


def _matmul_macs(op: Operation) -> int:
    batch, m, k, n = op.dims()  # type: ignore[attr-defined]
    return batch * m * k * n


# Ops whose kernels split their work between threads, with how much work each is.
LINALG_THREADED: dict[type[Operation], WorkOf] = {
    bnn.MatmulOp: _matmul_macs,
    bnn.ZeroInsertOp: lambda op: math.prod(op.results[0].type.get_shape()),
}
