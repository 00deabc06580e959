"""Lowerings of the bnn movement ops (dialects/bnn_movement.py) to loop nests.

A `bnn.gather` index is a compile-time constant, so its lowering looks at it:
almost every movement op's index is *separable*, a sum of one small table per
output axis (permute, slice, select, expand, flip: affine tables; repeat,
reflection/replication padding, nearest upsampling, pixel shuffle: tables),
and a constant fill where any axis table says so (constant padding and
cropping). Adjacent axes whose combined table is affine merge into one flat
axis, affine tables become index arithmetic and the rest small i64 globals,
so a contiguous copy is one plain loop LLVM vectorises. Only indices that are
not separable (indexing with constant multi-dimensional index tensors, copies
from several inputs) read the full index table, one entry per element.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import arith
from xdsl.dialects.builtin import AnyFloat, IndexType, IntegerType, VectorType
from xdsl.ir import Attribute, Operation, SSAValue

from bnnc.dialects import bnn
from bnnc.passes._loop_builder import IndexLike, LoopBuilder, memref_element, memref_shape
from bnnc.passes._lowering import Lowerer, Lowering, WorkOf, collapse_trailing

# An axis-table entry meaning "this output element is the fill value": far
# below any sum of valid entries, so a sum holding it stays negative.
_FILL = -(1 << 40)


@dataclass
class Axis:
    """One (possibly merged) output axis: its size and the input offset each
    position adds (affine tables are emitted as arithmetic)."""

    size: int
    table: np.ndarray

    def affine(self) -> tuple[int, int] | None:
        """(start, stride) when table[k] == start + stride * k with no fill entries."""
        t = self.table
        if (t <= _FILL // 2).any():
            return None
        stride = int(t[1] - t[0]) if t.size > 1 else 0
        if np.array_equal(t, t[0] + stride * np.arange(t.size, dtype=np.int64)):
            return int(t[0]), stride
        return None


def separable(index: np.ndarray) -> tuple[int, list[Axis]] | None:
    """index == base + sum_j table_j[i_j] on its valid (>= 0) elements, and the
    fill (-1) elements are exactly those where some axis table is _FILL; or None."""
    if index.ndim == 0:
        return None
    valid = index >= 0
    if not valid.any():
        return None
    rank = index.ndim
    masks = [valid.any(axis=tuple(k for k in range(rank) if k != j)) for j in range(rank)]
    product = np.ones(index.shape, dtype=bool)
    for j, m in enumerate(masks):
        product = product & m.reshape([-1 if k == j else 1 for k in range(rank)])
    if not np.array_equal(product, valid):
        return None
    point = tuple(int(p) for p in np.argwhere(valid)[0])
    base = int(index[point])
    axes, total = [], np.full(index.shape, base, dtype=np.int64)
    for j in range(rank):
        line = list(point)
        line[j] = slice(None)
        table = np.where(masks[j], index[tuple(line)] - base, 0).astype(np.int64)
        total = total + table.reshape([-1 if k == j else 1 for k in range(rank)])
        axes.append(Axis(index.shape[j], np.where(masks[j], table, _FILL)))
    if not np.array_equal(total[valid], index[valid]):
        return None
    return base, axes


def merge_axes(axes: list[Axis]) -> list[Axis]:
    """Drop unit axes and merge neighbours whose combined table is affine
    (row-major contiguous runs, whatever their stride)."""
    merged: list[Axis] = []
    for axis in axes:
        if axis.size == 1 and axis.table[0] == 0:
            continue
        if merged and merged[-1].affine() is not None and axis.affine() is not None:
            prev = merged[-1]
            both = Axis(prev.size * axis.size, (prev.table[:, None] + axis.table[None, :]).ravel())
            if both.affine() is not None:
                merged[-1] = both
                continue
        merged.append(axis)
    return merged or [Axis(1, np.zeros(1, dtype=np.int64))]


def _flat(lb: LoopBuilder, buffer: SSAValue) -> SSAValue | None:
    """A 1-D view of a buffer (the same pointer), or None for a rank-0 buffer."""
    shape = memref_shape(buffer)
    if not shape:
        return None
    return collapse_trailing(lb, buffer, len(shape), 0)


def _load(lb: LoopBuilder, buffer: SSAValue, flat: SSAValue | None, offset: SSAValue) -> SSAValue:
    return lb.load(buffer, []) if flat is None else lb.load(flat, [offset])


def _to_index(lb: LoopBuilder, value: SSAValue) -> SSAValue:
    return lb.emit(arith.IndexCastOp(value, IndexType()))


def _outer_offset(
    lb: LoopBuilder, outer: list[Axis], flat: SSAValue, start: int, term: Callable[[Axis, SSAValue], SSAValue]
) -> SSAValue:
    """start plus each outer axis's term at its index within `flat`, the
    row-major position over the outer axes."""
    offset: SSAValue = lb.index(start)
    for k, axis in enumerate(outer):
        stride = math.prod(a.size for a in outer[k + 1 :])
        iv = lb.divui(flat, stride) if stride != 1 else flat
        if k:
            iv = lb.remui(iv, axis.size)
        offset = lb.addi(offset, term(axis, iv))
    return offset


def _lower_separable(
    lowerer: Lowerer, op: bnn.GatherOp, src: SSAValue, out: SSAValue, base: int, axes: list[Axis]
) -> None:
    """Loops over the merged output axes; the input offset is base plus each
    axis's term. Threads split the rows (all axes but the innermost)."""
    lb, fill = lowerer.lb, op.fill_value()
    src_flat, out_flat = _flat(lb, src), _flat(lb, out)

    # the tables, as globals fetched once at the kernel's entry
    tables = {id(a): lowerer.global_buffer(a.table) for a in axes if a.affine() is None}

    def term(axis: Axis, iv: SSAValue) -> SSAValue:
        aff = axis.affine()
        if aff is not None:
            return lb.affine([(iv, aff[1])], aff[0])
        return _to_index(lb, lb.load(tables[id(axis)], [iv]))

    outer, inner = axes[:-1], axes[-1]
    rows = math.prod(a.size for a in outer)
    begin, end = lowerer.row_range(rows if outer else inner.size)

    def body(partial: SSAValue, iv: SSAValue, pos: SSAValue) -> None:
        offset = lb.addi(partial, term(inner, iv))
        if fill is None:
            value = _load(lb, src, src_flat, offset)
        else:
            inside = lb.cmpi(offset, 0, "sge")
            safe = lb.emit(arith.MaxSIOp(offset, lb.index(0)))
            value = lb.select(inside, _load(lb, src, src_flat, safe), lb.f32(fill))
        if out_flat is None:
            lb.store(value, out, [])
        else:
            lb.store(value, out_flat, [pos])

    if not outer:
        with lb.loop(end, begin) as loop:
            body(lb.index(base), loop.iv, loop.iv)
        return
    with lb.loop(end, begin) as row:
        partial = _outer_offset(lb, outer, row.iv, base, term)
        row_start = lb.muli(row.iv, inner.size)
        with lb.loop(inner.size) as loop:
            body(partial, loop.iv, lb.addi(row_start, loop.iv))


# Rows of a transpose copied per block: each column step then reads one
# 64-byte line and writes into TRANSPOSE_BLOCK lines that stay in L1.
TRANSPOSE_BLOCK = 16


def transposed_pair(axes: list[Axis]) -> bool:
    """Whether the gather swaps its two innermost axes: the inner output axis
    is strided in the input, the one before it contiguous (e.g. NCHW <->
    NHWC), so the separable loops would read one element per cache line."""
    if len(axes) < 2 or any(a.affine() is None for a in axes):
        return False
    inner, before = axes[-1].affine(), axes[-2].affine()
    assert inner is not None and before is not None
    return inner[1] not in (0, 1) and before[1] == 1 and axes[-1].size > 1


def transpose_lanes(vector_bits: int, element: Attribute) -> int:
    """Lanes of the square register blocks a transpose of `element`s moves
    (0: none, scalar copies): 32- and 64-bit elements, at least 4 lanes."""
    bits = element.bitwidth if isinstance(element, IntegerType | AnyFloat) else 0
    lanes = vector_bits // bits if bits in (32, 64) else 0
    return lanes if lanes >= 4 else 0


def _lower_transpose(lowerer: Lowerer, src: SSAValue, out: SSAValue, base: int, axes: list[Axis]) -> None:
    """A separable gather swapping its two innermost axes (element (r, c) at
    src[r + c * stride], out[r * cols + c]). Square blocks of L x L elements
    go through registers: L vector loads along r, an in-register transpose
    (lb.transpose), L vector stores along c. Blocks of 4L rows outside the
    column loop, so the lines a block reads and writes stay in L1. What the
    blocks leave (rows and columns past a multiple of L) is the scalar
    blocked copy: for a block of TRANSPOSE_BLOCK rows, the column loop
    outside and the row loop inside (contiguous loads). Threads split the
    rows."""
    lb = lowerer.lb
    src_flat, out_flat = _flat(lb, src), _flat(lb, out)
    assert src_flat is not None and out_flat is not None
    outer, rows_axis, cols_axis = axes[:-2], axes[-2], axes[-1]
    (r0, _), (c0, col_stride) = rows_axis.affine(), cols_axis.affine()  # type: ignore[misc]
    rows, cols = rows_axis.size, cols_axis.size
    begin, end = lowerer.row_range(rows)
    lanes = transpose_lanes(lowerer.vector_bits, memref_element(out))
    full_cols = cols // lanes * lanes if lanes else 0
    blocked = bool(full_cols) and rows >= lanes
    # rows [begin, vec_end) go through registers, the rest is scalar
    vec_end: IndexLike = begin
    if blocked and isinstance(begin, int) and isinstance(end, int):
        vec_end = begin + (end - begin) // lanes * lanes
    elif blocked:
        vec_end = lb.addi(begin, lb.muli(lb.divui(lb.subi(lb.index(end), lb.index(begin)), lanes), lanes))
    vty = VectorType(memref_element(out), [lanes]) if lanes else None

    def scalar(partial: SSAValue, out_base: SSAValue, row_lo: IndexLike, row_hi: IndexLike, col_lo: int) -> None:
        with lb.loop(row_hi, row_lo, TRANSPOSE_BLOCK) as block:
            stop = lb.emit(arith.MinSIOp(lb.addi(block.iv, TRANSPOSE_BLOCK), lb.index(row_hi)))
            with lb.loop(cols, col_lo) as c, lb.loop(stop, block.iv) as r:
                value = lb.load(src_flat, [lb.addi(partial, lb.affine([(r.iv, 1), (c.iv, col_stride)]))])
                lb.store(value, out_flat, [lb.addi(out_base, lb.affine([(r.iv, cols), (c.iv, 1)]))])

    with lb.loop(math.prod(a.size for a in outer)) as o:
        partial = _outer_offset(
            lb, outer, o.iv, base + r0 + c0, lambda axis, iv: lb.affine([(iv, axis.affine()[1])], axis.affine()[0])
        )
        out_base = lb.muli(o.iv, rows * cols)
        if blocked:
            assert vty is not None
            span = 4 * lanes
            with lb.loop(vec_end, begin, span) as block:
                stop = lb.emit(arith.MinSIOp(lb.addi(block.iv, span), lb.index(vec_end)))
                with lb.loop(full_cols, 0, lanes) as c, lb.loop(stop, block.iv, lanes) as r:
                    at = lb.addi(partial, lb.affine([(r.iv, 1), (c.iv, col_stride)]))
                    loaded = [lb.vload(src_flat, [lb.addi(at, j * col_stride)], vty) for j in range(lanes)]
                    for i, v in enumerate(lb.transpose(loaded)):
                        lb.vstore(v, out_flat, [lb.addi(out_base, lb.affine([(r.iv, cols), (c.iv, 1)], i * cols))])
            if full_cols < cols:
                scalar(partial, out_base, begin, vec_end, full_cols)
        scalar(partial, out_base, vec_end, end, 0)


def _lower_table(
    lowerer: Lowerer, op: bnn.GatherOp, sources: Sequence[SSAValue], index: SSAValue, out: SSAValue
) -> None:
    """out[i] = the element index[i] names: a select over the inputs' ranges
    (one range, and no select, for a single input without fill)."""
    lb, fill = lowerer.lb, op.fill_value()
    numel = math.prod(memref_shape(out))
    out_flat, index_flat = _flat(lb, out), _flat(lb, index)
    flats = [_flat(lb, s) for s in sources]
    sizes = [math.prod(memref_shape(s)) for s in sources]
    begin, end = lowerer.row_range(numel)
    with lb.loop(end, begin) as loop:
        offset = _to_index(lb, lb.load(index, []) if index_flat is None else lb.load(index_flat, [loop.iv]))
        if len(sources) == 1 and fill is None:
            value = _load(lb, sources[0], flats[0], offset)
        else:
            value, start = lb.f32(0.0 if fill is None else fill), 0
            for src, flat, size in zip(sources, flats, sizes):
                local = lb.affine([(offset, 1)], -start)
                value = lb.select(
                    lb.in_range(local, size), _load(lb, src, flat, lb.clamp_index(local, size - 1)), value
                )
                start += size
        if out_flat is None:
            lb.store(value, out, [])
        else:
            lb.store(value, out_flat, [loop.iv])


def lower_gather(lowerer: Lowerer, op: bnn.GatherOp, args: list[SSAValue], out: SSAValue) -> None:
    sources, index = args[:-1], args[-1]
    table = np.asarray(lowerer.constant_value(op.index, op), dtype=np.int64)
    plan = separable(table) if len(sources) == 1 else None
    if plan is None:
        _lower_table(lowerer, op, sources, index, out)
        return
    base, axes = plan
    axes = merge_axes(axes)
    if op.fill_value() is None and transposed_pair(axes):
        _lower_transpose(lowerer, sources[0], out, base, axes)
        return
    _lower_separable(lowerer, op, sources[0], out, base, axes)


# ------------------------------------------------------------------ bilinear


def _f32(x: float) -> np.float32:
    return np.float32(x)


def linear_taps(
    in_size: int, out_size: int, align_corners: bool, scale: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch's CPU source taps of linear resizing along one axis: the two
    input positions of every output position and their weights, in float32
    as PyTorch computes them (the source coordinate as one fused multiply-add,
    which is how its kernels are compiled)."""
    out = np.arange(out_size)
    if in_size == out_size:
        return out, out.copy(), np.ones(out_size, np.float32), np.zeros(out_size, np.float32)
    if align_corners:
        ratio = _f32(_f32(in_size - 1) / _f32(out_size - 1)) if out_size > 1 else _f32(0.0)
    elif scale is not None and scale > 0:
        ratio = _f32(1.0 / scale)
    else:
        ratio = _f32(_f32(in_size) / _f32(out_size))
    i0 = np.empty(out_size, np.int64)
    l1 = np.empty(out_size, np.float32)
    for o in range(out_size):
        if align_corners:
            real = _f32(ratio * _f32(o))
        else:
            real = _f32(float(ratio) * float(_f32(_f32(o) + _f32(0.5))) - 0.5)  # one rounding: an fma
            real = max(real, _f32(0.0))
        i0[o] = min(int(np.floor(real)), in_size - 1)
        l1[o] = min(max(_f32(real - _f32(i0[o])), _f32(0.0)), _f32(1.0))
    i1 = i0 + (i0 < in_size - 1)
    return i0, i1, (np.float32(1.0) - l1).astype(np.float32), l1


def lower_upsample_bilinear2d(
    lowerer: Lowerer, op: bnn.UpsampleBilinear2dOp, args: list[SSAValue], out: SSAValue
) -> None:
    """out = x00*w00 + x01*w01 + x10*w10 + x11*w11 with wij = wy_i * wx_j,
    accumulated with fused multiply-adds in that order (PyTorch's CPU result
    within float rounding). Threads split the N x C planes."""
    lb, x = lowerer.lb, args[0]
    n_, c_, h, w = memref_shape(x)
    _, _, oh, ow = memref_shape(out)
    sh, sw = op.scale_values()
    align = op.align_corners is not None
    ys = [lowerer.global_buffer(t) for t in linear_taps(h, oh, align, sh)]
    xs = [lowerer.global_buffer(t) for t in linear_taps(w, ow, align, sw)]
    begin, end = lowerer.row_range(n_ * c_)
    with lb.loop(end, begin) as plane:
        n, c = (lb.index(0), plane.iv) if n_ == 1 else (lb.divui(plane.iv, c_), lb.remui(plane.iv, c_))
        with lb.loop(oh) as oy:
            y0, y1 = (_to_index(lb, lb.load(t, [oy.iv])) for t in ys[:2])
            wy0, wy1 = (lb.load(t, [oy.iv]) for t in ys[2:])
            with lb.loop(ow) as ox:
                x0, x1 = (_to_index(lb, lb.load(t, [ox.iv])) for t in xs[:2])
                wx0, wx1 = (lb.load(t, [ox.iv]) for t in xs[2:])
                taps = [(y0, x0, wy0, wx0), (y0, x1, wy0, wx1), (y1, x0, wy1, wx0), (y1, x1, wy1, wx1)]
                acc: SSAValue | None = None
                for yy, xx, wy, wx in taps:
                    v, weight = lb.load(x, [n, c, yy, xx]), lb.mulf(wy, wx)
                    acc = lb.mulf(v, weight) if acc is None else lb.fma(v, weight, acc)
                assert acc is not None
                lb.store(acc, out, [n, c, oy.iv, ox.iv])


MOVEMENT_LOWERINGS: dict[type[Operation], Lowering] = {
    bnn.GatherOp: lower_gather,
    bnn.UpsampleBilinear2dOp: lower_upsample_bilinear2d,
}


def _moved(op: Operation) -> int:
    """Elements a movement kernel touches: what it writes and reads (x 2)."""
    return 2 * math.prod(op.results[0].type.get_shape())


# Ops whose kernels split their work between threads, with how much work each is.
MOVEMENT_THREADED: dict[type[Operation], WorkOf] = {
    bnn.GatherOp: _moved,
    bnn.UpsampleBilinear2dOp: lambda op: 8 * math.prod(op.results[0].type.get_shape()),
}
