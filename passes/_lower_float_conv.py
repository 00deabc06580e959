"""Lowerings of the float convolution and linear layers (a BNN's fp32 first
conv, downsampling convs and classifier) to the register-blocked micro-kernel:
vectorised over output channels with FMA, weights laid out K-major at compile
time, zero padding by a padded copy of the input."""

from __future__ import annotations

import numpy as np
from xdsl.dialects import vector
from xdsl.dialects.builtin import VectorType, f32
from xdsl.ir import Operation, SSAValue

from bnnc.dialects import bnn
from bnnc.passes._loop_builder import IndexLike, LoopBuilder, memref_shape
from bnnc.passes._lowering import Lowerer, Lowering, WorkOf, conv_macs
from bnnc.passes._microkernel import accumulate, ceil_to, choose_tile, tap_position, tiled_conv_loops


def _fma(lb: LoopBuilder, acc: SSAValue, a: SSAValue, w: SSAValue) -> SSAValue:
    return lb.emit(vector.FMAOp(a, w, acc))


def _zero_padded(lb: LoopBuilder, x: SSAValue, ph: int, pw: int) -> tuple[SSAValue, bool]:
    if (ph, pw) == (0, 0):
        return x, False
    n_, c, h, w = memref_shape(x)
    dest = lb.alloc([n_, c, h + 2 * ph, w + 2 * pw], f32)
    with lb.loops(memref_shape(dest)) as ivs:
        lb.store(lb.f32(0.0), dest, ivs)
    with lb.loops([n_, c, h, w]) as (n, ch, y, xx):
        lb.store(lb.load(x, [n, ch, y, xx]), dest, [n, ch, lb.addi(y, ph), lb.addi(xx, pw)])
    return dest, True


def _bias_table(L: Lowerer, op: Operation, bias: SSAValue | None, groups: int, cog: int, padded: int) -> SSAValue | None:
    if bias is None:
        return None
    table = np.zeros((groups, padded), dtype=np.float32)
    table[:, :cog] = L.constant_value(bias, op).reshape(groups, cog)
    return L.global_buffer(table)


def lower_conv2d(L: Lowerer, op: bnn.Conv2dOp, args: list[SSAValue], out: SSAValue) -> None:
    lb = L.lb
    groups = op.groups.value.data
    (sh, sw), (ph, pw), (dh, dw) = op.window()
    co, cg, kh, kw = memref_shape(args[1])
    cog = co // groups
    n_, _, oh, ow = memref_shape(out)
    tile = choose_tile(L.vector_bits, 32, L.registers, cog)
    padded = ceil_to(cog, tile.channels)
    vty = VectorType(f32, [tile.lanes])
    weight = L.constant_value(op.weight, op).reshape(groups, cog, cg, kh, kw).transpose(0, 2, 3, 4, 1)
    wt = np.zeros((groups, cg, kh, kw, padded), dtype=np.float32)
    wt[..., :cog] = weight
    weights = L.global_buffer(wt)
    bias = _bias_table(L, op, op.bias, groups, cog, padded)
    source, fresh = _zero_padded(lb, args[0], ph, pw)
    sums = lb.alloca_entry([tile.pixels, tile.channels], f32)

    def emit(n, g, oc0: IndexLike, vectors: int, valid: int, oy: IndexLike, ox0: IndexLike, pixels: int, _: bool):
        def weight_vector(ks: list[SSAValue], v: int) -> SSAValue:
            ic, ky, kx = ks
            return lb.vload(weights, [g, ic, ky, kx, lb.addi(oc0, v * tile.lanes)], vty)

        def input_element(ks: list[SSAValue], t: int) -> SSAValue:
            ic, ky, kx = ks
            iy, ix = tap_position(lb, oy, ox0, t, ky, kx, (sh, sw), (dh, dw))
            return lb.load(source, [n, lb.affine([(g, cg), (ic, 1)]), iy, ix])

        accs = accumulate(lb, vty, pixels, vectors, [cg, kh, kw], weight_vector, input_element, _fma)
        for t in range(pixels):
            for v in range(vectors):
                acc = accs[t][v]
                if bias is not None:
                    acc = lb.addf(acc, lb.vload(bias, [g, lb.addi(oc0, v * tile.lanes)], vty))
                lb.vstore(acc, sums, [t, v * tile.lanes])
        with lb.loops([pixels, valid]) as (t, c):
            channel = lb.affine([(g, cog), (lb.addi(oc0, c), 1)])
            lb.store(lb.load(sums, [t, c]), out, [n, channel, oy, lb.addi(ox0, t)])

    tiled_conv_loops(
        lb,
        tile,
        batch=n_,
        groups=groups,
        channels_per_group=cog,
        out_hw=(oh, ow),
        interior_rows=(0, oh),
        interior_cols=(0, ow),
        split_border=False,
        emit=emit,
        rows=L.row_range(oh),
    )
    if fresh:
        lb.dealloc(source)


def lower_linear(L: Lowerer, op: bnn.LinearOp, args: list[SSAValue], out: SSAValue) -> None:
    lb = L.lb
    x = args[0]
    n_, k = memref_shape(x)
    m_ = memref_shape(args[1])[0]
    tile = choose_tile(L.vector_bits, 32, L.registers, m_)
    padded = ceil_to(m_, tile.channels)
    vty = VectorType(f32, [tile.lanes])
    wt = np.zeros((k, padded), dtype=np.float32)
    wt[:, :m_] = L.constant_value(op.weight, op).T
    weights = L.global_buffer(wt)
    bias = _bias_table(L, op, op.bias, 1, m_, padded)

    def emit(n: SSAValue, m0: IndexLike, vectors: int, valid: int) -> None:
        accs = accumulate(
            lb,
            vty,
            1,
            vectors,
            [k],
            lambda ks, v: lb.vload(weights, [ks[0], lb.addi(m0, v * tile.lanes)], vty),
            lambda ks, t: lb.load(x, [n, ks[0]]),
            _fma,
        )
        for v in range(vectors):
            oc = lb.addi(m0, v * tile.lanes)
            acc = accs[0][v]
            if bias is not None:
                acc = lb.addf(acc, lb.vload(bias, [0, oc], vty))
            for lane in range(min(tile.lanes, valid - v * tile.lanes)):
                lb.store(lb.extract(acc, lane), out, [n, lb.addi(oc, lane)])

    full_tiles, rest = divmod(m_, tile.channels)
    with lb.loops([n_]) as (n,):
        if full_tiles:
            with lb.loop(full_tiles) as mt:
                emit(n, lb.muli(mt.iv, tile.channels), tile.vectors, tile.channels)
        if rest:
            emit(n, full_tiles * tile.channels, -(-rest // tile.lanes), rest)


FLOAT_CONV_LOWERINGS: dict[type[Operation], Lowering] = {
    bnn.Conv2dOp: lower_conv2d,
    bnn.LinearOp: lower_linear,
}

FLOAT_CONV_THREADED: dict[type[Operation], WorkOf] = {bnn.Conv2dOp: conv_macs}
