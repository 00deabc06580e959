"""convert-bnn-to-loops: bufferize a tensor-level bnn function and lower every
bnn op to scf loop nests over memrefs.

The function `@f(tensors...) -> (tensors...)` becomes `@f(inputs..., outputs...)`
over static memrefs (destination-passing style: the caller owns the result
buffers). Constant tensors become private `memref.global`s; intermediates are
`memref.alloc`ed and freed after their last use.

Binary ops pack their input's signs into i64 words along channels (bit 1 = -1),
then accumulate popcount(x xor w) per tap: dot = Cin - 2 * disagreements. Padded
taps read the pad word (+1 = 0, -1 = all valid bits) or, for zero padding, are
skipped. These are the correct reference kernels; fast kernels come from
later tiling/vectorisation passes.
"""

from __future__ import annotations

import math as pymath
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import arith, func, memref
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    FunctionType,
    MemRefType,
    ModuleOp,
    StringAttr,
    TensorType,
    UnitAttr,
    f32,
    i64,
)
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException

from bnnc.dense import from_numpy, to_numpy
from bnnc.dialects import bnn
from bnnc.passes._loop_builder import LoopBuilder, memref_shape

Lowering = Callable[["_Lowerer", Operation, list[SSAValue], SSAValue], None]


def _memref_of(typ: TensorType) -> MemRefType:
    return MemRefType(typ.element_type, list(typ.get_shape()))


def _window(op: bnn._WindowOp) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    return op.window()


# --------------------------------------------------------------- elementwise


def _broadcast_indices(lb: LoopBuilder, operand: SSAValue, out_ivs: list[SSAValue]) -> list[SSAValue | int]:
    shape = memref_shape(operand)
    offset = len(out_ivs) - len(shape)
    return [0 if d == 1 else out_ivs[offset + i] for i, d in enumerate(shape)]


def _elementwise(
    lb: LoopBuilder,
    out: SSAValue,
    operands: Sequence[SSAValue],
    body: Callable[[LoopBuilder, list[SSAValue], list[SSAValue]], SSAValue],
) -> None:
    """out[ivs] = body(operands broadcast-loaded at ivs)."""
    with lb.loops(memref_shape(out)) as ivs:
        values = [lb.load(v, _broadcast_indices(lb, v, ivs)) for v in operands]
        lb.store(body(lb, values, ivs), out, ivs)


def _channel_view(lb: LoopBuilder, vector: SSAValue, rank: int, ivs: list[SSAValue]) -> SSAValue:
    """vector[c] at the channel (axis 1) of ivs; a 1-element vector broadcasts."""
    return lb.load(vector, [0 if memref_shape(vector)[0] == 1 else ivs[1]])


def lower_sign(L: _Lowerer, op: bnn.SignOp, args: list[SSAValue], out: SSAValue) -> None:
    def body(lb: LoopBuilder, v: list[SSAValue], _: list[SSAValue]) -> SSAValue:
        # binarize(x) = +1 unless x < 0 (so -0.0 and NaN give +1)
        return lb.select(lb.cmpf(v[0], 0.0, "olt"), lb.f32(-1.0), lb.f32(1.0))

    _elementwise(L.lb, out, args, body)


def lower_relu(L: _Lowerer, op: bnn.ReluOp, args: list[SSAValue], out: SSAValue) -> None:
    # x < 0 ? 0 : x keeps NaN, as torch.relu does
    _elementwise(L.lb, out, args, lambda lb, v, _: lb.select(lb.cmpf(v[0], 0.0, "olt"), lb.f32(0.0), v[0]))


def lower_abs(L: _Lowerer, op: bnn.AbsOp, args: list[SSAValue], out: SSAValue) -> None:
    _elementwise(L.lb, out, args, lambda lb, v, _: lb.absf(v[0]))


def lower_hardtanh(L: _Lowerer, op: bnn.HardtanhOp, args: list[SSAValue], out: SSAValue) -> None:
    lo, hi = op.min_val.value.data, op.max_val.value.data

    def body(lb: LoopBuilder, v: list[SSAValue], _: list[SSAValue]) -> SSAValue:
        x = v[0]
        x = lb.select(lb.cmpf(x, lo, "olt"), lb.f32(lo), x)
        return lb.select(lb.cmpf(x, hi, "ogt"), lb.f32(hi), x)

    _elementwise(L.lb, out, args, body)


def lower_prelu(L: _Lowerer, op: bnn.PReluOp, args: list[SSAValue], out: SSAValue) -> None:
    x, slope = args

    def body(lb: LoopBuilder, v: list[SSAValue], ivs: list[SSAValue]) -> SSAValue:
        a = _channel_view(lb, slope, len(ivs), ivs)
        return lb.select(lb.cmpf(v[0], 0.0, "ogt"), v[0], lb.mulf(a, v[0]))

    _elementwise(L.lb, out, [x], body)


def _binary(fn: Callable[[LoopBuilder, SSAValue, SSAValue], SSAValue]) -> Lowering:
    def lower(L: _Lowerer, op: Operation, args: list[SSAValue], out: SSAValue) -> None:
        _elementwise(L.lb, out, args, lambda lb, v, _: fn(lb, v[0], v[1]))

    return lower


def lower_batch_norm(L: _Lowerer, op: bnn.BatchNormOp, args: list[SSAValue], out: SSAValue) -> None:
    """y = x * scale[c] + shift[c], scale = gamma / sqrt(var + eps), shift =
    beta - mean * scale, computed in f32 at compile time as PyTorch's CPU kernel does."""
    x = args[0]
    mean, var, gamma, beta = (L.constant_value(v, op) for v in op.operands[1:])
    eps = np.float32(op.epsilon.value.data)
    invstd = np.float32(1.0) / np.sqrt(var.astype(np.float32) + eps)
    scale = (invstd * gamma).astype(np.float32)
    shift = (beta - mean * scale).astype(np.float32)
    scale_buf, shift_buf = L.global_buffer(scale), L.global_buffer(shift)

    def body(lb: LoopBuilder, v: list[SSAValue], ivs: list[SSAValue]) -> SSAValue:
        return lb.addf(lb.mulf(v[0], lb.load(scale_buf, [ivs[1]])), lb.load(shift_buf, [ivs[1]]))

    _elementwise(L.lb, out, [x], body)


# ------------------------------------------------------------- data movement


def lower_cat(L: _Lowerer, op: bnn.CatOp, args: list[SSAValue], out: SSAValue) -> None:
    lb, axis, offset = L.lb, op.axis.value.data, 0
    for src in args:
        with lb.loops(memref_shape(src)) as ivs:
            dst = list(ivs)
            dst[axis] = lb.addi(ivs[axis], offset)
            lb.store(lb.load(src, ivs), out, dst)
        offset += memref_shape(src)[axis]


def _unravel(lb: LoopBuilder, linear: SSAValue, shape: Sequence[int]) -> list[SSAValue]:
    indices: list[SSAValue] = []
    for i, d in enumerate(shape):
        stride = pymath.prod(shape[i + 1 :])
        q = lb.divui(linear, stride) if stride != 1 else linear
        indices.append(lb.remui(q, d) if i else q)
    return indices


def lower_reshape(L: _Lowerer, op: bnn.ReshapeOp, args: list[SSAValue], out: SSAValue) -> None:
    lb, src = L.lb, args[0]
    with lb.loop(pymath.prod(memref_shape(out))) as loop:
        value = lb.load(src, _unravel(lb, loop.iv, memref_shape(src)))
        lb.store(value, out, _unravel(lb, loop.iv, memref_shape(out)))


# ------------------------------------------------------------------ pooling


def _taps(lb: LoopBuilder, oy: SSAValue, ox: SSAValue, ky: SSAValue, kx: SSAValue, window, hw) -> tuple:
    """Input coordinates of a window tap, whether it is in bounds, and the
    coordinates clamped into bounds (safe to load; the select discards them)."""
    (sh, sw), (ph, pw), (dh, dw) = window
    iy = lb.affine([(oy, sh), (ky, dh)], -ph)
    ix = lb.affine([(ox, sw), (kx, dw)], -pw)
    inb = lb.and_(lb.in_range(iy, hw[0]), lb.in_range(ix, hw[1]))
    return inb, lb.clamp_index(iy, hw[0] - 1), lb.clamp_index(ix, hw[1] - 1)


def lower_max_pool2d(L: _Lowerer, op: bnn.MaxPool2dOp, args: list[SSAValue], out: SSAValue) -> None:
    lb, x = L.lb, args[0]
    _, _, h, w = memref_shape(x)
    kh, kw = op.kernel.get_values()
    with lb.loops(memref_shape(out)) as (n, c, oy, ox):
        with lb.reduction([kh, kw], [lb.f32(float("-inf"))]) as red:
            ky, kx = red.ivs
            inb, iy, ix = _taps(lb, oy, ox, ky, kx, _window(op), (h, w))
            v = lb.load(x, [n, c, iy, ix])
            take = lb.and_(inb, lb.cmpf(v, red.carried[0], "ugt"))
            red.next = [lb.select(take, v, red.carried[0])]
        lb.store(red.results[0], out, [n, c, oy, ox])


def _avg_divisors(op: bnn.AvgPool2dOp, h: int, w: int, oh: int, ow: int) -> np.ndarray:
    """PyTorch's avg_pool2d divisor for every output pixel (floor mode)."""
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


def lower_avg_pool2d(L: _Lowerer, op: bnn.AvgPool2dOp, args: list[SSAValue], out: SSAValue) -> None:
    lb, x = L.lb, args[0]
    _, _, h, w = memref_shape(x)
    _, _, oh, ow = memref_shape(out)
    kh, kw = op.kernel.get_values()
    divisors = L.global_buffer(_avg_divisors(op, h, w, oh, ow))
    with lb.loops(memref_shape(out)) as (n, c, oy, ox):
        with lb.reduction([kh, kw], [lb.f32(0.0)]) as red:
            ky, kx = red.ivs
            inb, iy, ix = _taps(lb, oy, ox, ky, kx, _window(op), (h, w))
            v = lb.select(inb, lb.load(x, [n, c, iy, ix]), lb.f32(0.0))
            red.next = [lb.addf(red.carried[0], v)]
        lb.store(lb.divf(red.results[0], lb.load(divisors, [oy, ox])), out, [n, c, oy, ox])


def lower_adaptive_avg_pool2d(L: _Lowerer, op: bnn.AdaptiveAvgPool2dOp, args: list[SSAValue], out: SSAValue) -> None:
    """PyTorch's bins: [floor(i*H/OH), ceil((i+1)*H/OH)); one static nest per bin."""
    lb, x = L.lb, args[0]
    n_, c_, h, w = memref_shape(x)
    _, _, oh, ow = memref_shape(out)
    for y in range(oh):
        y0, y1 = (y * h) // oh, -((-(y + 1) * h) // oh)
        for xx in range(ow):
            x0, x1 = (xx * w) // ow, -((-(xx + 1) * w) // ow)
            with lb.loops([n_, c_]) as (n, c):
                with lb.reduction([y1 - y0, x1 - x0], [lb.f32(0.0)]) as red:
                    iy, ix = lb.addi(red.ivs[0], y0), lb.addi(red.ivs[1], x0)
                    red.next = [lb.addf(red.carried[0], lb.load(x, [n, c, iy, ix]))]
                count = lb.f32(float((y1 - y0) * (x1 - x0)))
                lb.store(lb.divf(red.results[0], count), out, [n, c, y, xx])


def lower_mean(L: _Lowerer, op: bnn.MeanOp, args: list[SSAValue], out: SSAValue) -> None:
    lb, x = L.lb, args[0]
    shape = memref_shape(x)
    dims = list(op.dims.get_values())
    count = lb.f32(float(pymath.prod(shape[d] for d in dims)))
    with lb.loops(memref_shape(out)) as ivs:
        with lb.reduction([shape[d] for d in dims], [lb.f32(0.0)]) as red:
            idx = list(ivs)
            for d, iv in zip(dims, red.ivs):
                idx[d] = iv
            red.next = [lb.addf(red.carried[0], lb.load(x, idx))]
        lb.store(lb.divf(red.results[0], count), out, ivs)


# -------------------------------------------------------------- float convs


def lower_conv2d(L: _Lowerer, op: bnn.Conv2dOp, args: list[SSAValue], out: SSAValue) -> None:
    lb = L.lb
    x, w = args[0], args[1]
    bias = args[2] if op.bias is not None else None
    _, c, h, wd = memref_shape(x)
    co, cg, kh, kw = memref_shape(w)
    cog = co // op.groups.value.data
    with lb.loops(memref_shape(out)) as (n, oc, oy, ox):
        g = lb.divui(oc, cog)
        init = lb.load(bias, [oc]) if bias is not None else lb.f32(0.0)
        with lb.reduction([cg, kh, kw], [init]) as red:
            ic, ky, kx = red.ivs
            inb, iy, ix = _taps(lb, oy, ox, ky, kx, _window(op), (h, wd))
            ch = lb.affine([(g, cg), (ic, 1)])
            v = lb.select(inb, lb.load(x, [n, ch, iy, ix]), lb.f32(0.0))
            red.next = [lb.addf(red.carried[0], lb.mulf(v, lb.load(w, [oc, ic, ky, kx])))]
        lb.store(red.results[0], out, [n, oc, oy, ox])


def lower_linear(L: _Lowerer, op: bnn.LinearOp, args: list[SSAValue], out: SSAValue) -> None:
    lb = L.lb
    x, w = args[0], args[1]
    bias = args[2] if op.bias is not None else None
    k = memref_shape(x)[1]
    with lb.loops(memref_shape(out)) as (n, m):
        with lb.reduction([k], [lb.f32(0.0)]) as red:
            (i,) = red.ivs
            red.next = [lb.addf(red.carried[0], lb.mulf(lb.load(x, [n, i]), lb.load(w, [m, i])))]
        acc = red.results[0]
        if bias is not None:
            acc = lb.addf(acc, lb.load(bias, [m]))
        lb.store(acc, out, [n, m])


# ------------------------------------------------------------- binary convs


def _pack_channels(lb: LoopBuilder, x: SSAValue, groups: int) -> SSAValue:
    """Sign bits of x (N x C x H x W f32) packed along channels per group:
    P[n, h, w, g * words + j] bit i = (x[n, g*Cg + 64j + i, h, w] < 0)."""
    shape = memref_shape(x)
    n_, c, spatial = shape[0], shape[1], shape[2:]
    cg = c // groups
    words = bnn.words_for(cg)
    packed = lb.alloc([n_, *spatial, groups * words], i64)
    with lb.loops([n_, *spatial, groups, words]) as ivs:
        n, pos, g, j = ivs[0], ivs[1:-2], ivs[-2], ivs[-1]
        first = lb.affine([(g, cg), (j, bnn.WORD_BITS)])
        # bits in this word: min(64, Cg - 64 j)
        left = lb.subi(lb.index(cg), lb.muli(j, bnn.WORD_BITS))
        nbits = lb.emit(arith.MinSIOp(left, lb.index(bnn.WORD_BITS)))
        with lb.loop(nbits, carried=[lb.i64(0)]) as bit:
            v = lb.load(x, [n, lb.addi(first, bit.iv), *pos])
            negative = lb.bool_to_i64(lb.cmpf(v, 0.0, "olt"))
            shifted = lb.emit(arith.ShLIOp(negative, lb.index_to_i64(bit.iv)))
            bit.next = [lb.emit(arith.OrIOp(bit.carried[0], shifted))]
        lb.store(bit.results[0], packed, [n, *pos, lb.affine([(g, words), (j, 1)])])
    return packed


def _pad_word(lb: LoopBuilder, pad_value: int, cg: int, j: SSAValue) -> SSAValue:
    """The packed word of a padded tap: +1 is all zeros, -1 sets the valid bits of word j."""
    if pad_value >= 0:
        return lb.i64(0)
    left = lb.index_to_i64(lb.subi(lb.index(cg), lb.muli(j, bnn.WORD_BITS)))
    full = lb.cmpi(left, bnn.WORD_BITS, "sge")
    partial = lb.subi(lb.emit(arith.ShLIOp(lb.i64(1), left)), lb.i64(1))
    return lb.select(full, lb.i64(-1), partial)


def _epilogue(lb: LoopBuilder, dot: SSAValue, mult: SSAValue | None, bias: SSAValue | None, ch: SSAValue) -> SSAValue:
    value = lb.sitofp(dot)
    if mult is not None:
        value = lb.mulf(value, lb.load(mult, [ch]))
    if bias is not None:
        value = lb.addf(value, lb.load(bias, [ch]))
    return value


def _optional_operands(op: Operation, args: list[SSAValue]) -> tuple[SSAValue | None, SSAValue | None]:
    by_value = dict(zip(op.operands, args))
    mult = by_value[op.multiplier] if op.multiplier is not None else None
    bias = by_value[op.bias] if op.bias is not None else None
    return mult, bias


def lower_bconv2d(L: _Lowerer, op: bnn.BConv2dOp, args: list[SSAValue], out: SSAValue) -> None:
    lb = L.lb
    x, w = args[0], args[1]
    mult, bias = _optional_operands(op, args)
    groups = op.groups.value.data
    pad_value = op.pad_value.value.data
    _, c, h, wd = memref_shape(x)
    co, kh, kw, words = memref_shape(w)
    cg, cog = c // groups, co // groups
    packed = _pack_channels(lb, x, groups)
    with lb.loops(memref_shape(out)) as (n, oc, oy, ox):
        g = lb.divui(oc, cog)
        with lb.reduction([kh, kw], [lb.i64(0)]) as taps:
            ky, kx = taps.ivs
            inb, iy, ix = _taps(lb, oy, ox, ky, kx, _window(op), (h, wd))
            with lb.reduction([words], [lb.i64(0)]) as red:
                (j,) = red.ivs
                xw = lb.load(packed, [n, iy, ix, lb.affine([(g, words), (j, 1)])])
                if pad_value != 0:
                    xw = lb.select(inb, xw, _pad_word(lb, pad_value, cg, j))
                diff = lb.ctpop(lb.emit(arith.XOrIOp(xw, lb.load(w, [oc, ky, kx, j]))))
                red.next = [lb.emit(arith.AddiOp(red.carried[0], diff))]
            tap = lb.subi(lb.i64(cg), lb.emit(arith.ShLIOp(red.results[0], lb.i64(1))))
            if pad_value == 0:
                tap = lb.select(inb, tap, lb.i64(0))
            taps.next = [lb.emit(arith.AddiOp(taps.carried[0], tap))]
        lb.store(_epilogue(lb, taps.results[0], mult, bias, oc), out, [n, oc, oy, ox])
    lb.dealloc(packed)


def lower_bdense(L: _Lowerer, op: bnn.BDenseOp, args: list[SSAValue], out: SSAValue) -> None:
    lb = L.lb
    x, w = args[0], args[1]
    mult, bias = _optional_operands(op, args)
    k = memref_shape(x)[1]
    m_, words = memref_shape(w)
    packed = _pack_channels(lb, x, 1)
    with lb.loops(memref_shape(out)) as (n, m):
        with lb.reduction([words], [lb.i64(0)]) as red:
            (j,) = red.ivs
            diff = lb.ctpop(lb.emit(arith.XOrIOp(lb.load(packed, [n, j]), lb.load(w, [m, j]))))
            red.next = [lb.emit(arith.AddiOp(red.carried[0], diff))]
        dot = lb.subi(lb.i64(k), lb.emit(arith.ShLIOp(red.results[0], lb.i64(1))))
        lb.store(_epilogue(lb, dot, mult, bias, m), out, [n, m])
    lb.dealloc(packed)


LOWERINGS: dict[type[Operation], Lowering] = {
    bnn.SignOp: lower_sign,
    bnn.ReluOp: lower_relu,
    bnn.AbsOp: lower_abs,
    bnn.HardtanhOp: lower_hardtanh,
    bnn.PReluOp: lower_prelu,
    bnn.AddOp: _binary(LoopBuilder.addf),
    bnn.SubOp: _binary(LoopBuilder.subf),
    bnn.MulOp: _binary(LoopBuilder.mulf),
    bnn.DivOp: _binary(LoopBuilder.divf),
    bnn.BatchNormOp: lower_batch_norm,
    bnn.CatOp: lower_cat,
    bnn.ReshapeOp: lower_reshape,
    bnn.MaxPool2dOp: lower_max_pool2d,
    bnn.AvgPool2dOp: lower_avg_pool2d,
    bnn.AdaptiveAvgPool2dOp: lower_adaptive_avg_pool2d,
    bnn.MeanOp: lower_mean,
    bnn.Conv2dOp: lower_conv2d,
    bnn.LinearOp: lower_linear,
    bnn.BConv2dOp: lower_bconv2d,
    bnn.BDenseOp: lower_bdense,
}


# ---------------------------------------------------------------- the pass


@dataclass
class _Lowerer:
    """Bufferizes one function: maps tensor values to memrefs while lowering."""

    module: ModuleOp
    lb: LoopBuilder
    buffers: dict[SSAValue, SSAValue]
    constants: dict[SSAValue, np.ndarray]
    globals_made: list[int]

    def constant_value(self, value: SSAValue, user: Operation) -> np.ndarray:
        if value not in self.constants:
            raise PassFailedException(f"{user.name}: operand must be a constant tensor for this lowering")
        return np.asarray(self.constants[value])

    def global_buffer(self, array: np.ndarray) -> SSAValue:
        element = f32 if array.dtype == np.float32 else i64
        index = len(self.globals_made)
        self.globals_made.append(index)
        name = f"__bnnc_const_{index}"
        typ = MemRefType(element, list(array.shape))
        self.module.body.block.add_op(
            memref.GlobalOp.get(
                StringAttr(name),
                typ,
                from_numpy(array, element, memref=False),
                constant=UnitAttr(),
                alignment=64,
            )
        )
        return self.lb.emit(memref.GetGlobalOp(name, typ))


def _last_uses(ops: list[Operation]) -> dict[Operation, list[SSAValue]]:
    """For each op, the values whose last use it is."""
    last: dict[SSAValue, Operation] = {}
    for op in ops:
        for v in op.operands:
            last[v] = op
    result: dict[Operation, list[SSAValue]] = {}
    for v, op in last.items():
        result.setdefault(op, []).append(v)
    return result


def _kernel(L: _Lowerer, op: Operation, fn_name: str, args: list[SSAValue], out: SSAValue) -> None:
    """Lower `op` into its own private function and call it: functions keep
    each CFG small (cheap to verify and to optimise) and name the layer."""
    arg_types = [a.type for a in args] + [out.type]
    block = Block(arg_types=arg_types)
    saved, L.lb = L.lb, LoopBuilder(block)
    try:
        LOWERINGS[type(op)](L, op, list(block.args[: len(args)]), block.args[-1])
        L.lb.insert(func.ReturnOp())
    finally:
        L.lb = saved
    kernel = func.FuncOp(fn_name, FunctionType.from_lists(arg_types, []), Region(block), visibility="private")
    kernel.location = op.location
    L.module.body.block.add_op(kernel)
    L.lb.insert(func.CallOp(fn_name, [*args, out], []))


def _lower_function(module: ModuleOp, fn: func.FuncOp, counter: list[int]) -> None:
    ftype = fn.function_type
    in_types = [_memref_of(t) for t in ftype.inputs.data]
    out_types = [_memref_of(t) for t in ftype.outputs.data]
    block = Block(arg_types=[*in_types, *out_types])
    lb = LoopBuilder(block)
    old_block = fn.body.block
    ret = old_block.last_op
    assert isinstance(ret, func.ReturnOp)
    outs = list(block.args[len(in_types) :])
    L = _Lowerer(module, lb, {}, {}, counter)
    for old, new in zip(old_block.args, block.args):
        L.buffers[old] = new
        new.name_hint = old.name_hint

    # A returned value computed by an op is written straight into its output buffer.
    dest: dict[SSAValue, SSAValue] = {}
    for value, out in zip(ret.arguments, outs):
        if isinstance(value.owner, Operation) and not isinstance(value.owner, arith.ConstantOp) and value not in dest:
            dest[value] = out

    body_ops = [op for op in old_block.ops if op is not ret]
    last_uses = _last_uses(body_ops)
    owned: set[SSAValue] = set()
    for index, op in enumerate(body_ops):
        if isinstance(op, arith.ConstantOp):
            value = op.value
            if not isinstance(value, DenseIntOrFPElementsAttr):
                raise PassFailedException(f"convert-bnn-to-loops: only dense tensor constants are supported, got {value}")
            array = to_numpy(value)
            L.constants[op.result] = array
            L.buffers[op.result] = L.global_buffer(array)
            continue
        if type(op) not in LOWERINGS:
            raise PassFailedException(f"convert-bnn-to-loops: no lowering for {op.name}")
        result = op.results[0]
        out = dest.get(result)
        if out is None:
            out = lb.alloc(result.type.get_shape(), result.type.element_type)
            owned.add(result)
        if result.name_hint:
            out.name_hint = result.name_hint
        kernel_name = f"{fn.sym_name.data}_{index}_{op.name.split('.')[-1]}"
        _kernel(L, op, kernel_name, [L.buffers[v] for v in op.operands], out)
        L.buffers[result] = out
        for dead in last_uses.get(op, []):
            if dead in owned and dead not in ret.arguments:
                lb.dealloc(L.buffers[dead])
    # Outputs not written in place (function arguments, constants, repeats) are copied.
    for value, out in zip(ret.arguments, outs):
        if dest.get(value) is not out:
            src = L.buffers[value]
            with lb.loops(memref_shape(out)) as ivs:
                lb.store(lb.load(src, ivs), out, ivs)
    used = last_uses_values(last_uses)
    for value in owned:
        if value in ret.arguments or value not in used:
            lb.dealloc(L.buffers[value])
    lb.insert(func.ReturnOp())

    new_fn = func.FuncOp(fn.sym_name.data, FunctionType.from_lists([*in_types, *out_types], []), Region(block))
    for name, attr in fn.attributes.items():
        if name not in ("sym_name", "function_type"):
            new_fn.attributes[name] = attr
    new_fn.attributes["bnnc.num_inputs"] = arith.IntegerAttr(len(in_types), i64)
    module.body.block.insert_op_before(new_fn, fn)
    module.body.block.erase_op(fn)


def last_uses_values(last_uses: dict[Operation, list[SSAValue]]) -> set[SSAValue]:
    return {v for values in last_uses.values() for v in values}


class ConvertBnnToLoopsPass(ModulePass):
    name = "convert-bnn-to-loops"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        counter: list[int] = []
        for fn in list(op.ops):
            if isinstance(fn, func.FuncOp) and not fn.is_declaration:
                types = [*fn.function_type.inputs.data, *fn.function_type.outputs.data]
                if any(isinstance(t, TensorType) for t in types):
                    _lower_function(op, fn, counter)
