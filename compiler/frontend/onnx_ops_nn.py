"""ONNX layers: Conv (1-D and 2-D, groups, asymmetric pads via bnn.pad),
ConvTranspose, Gemm, MatMul, the normalisations, pooling, reductions and
softmax.

Conv and Gemm keep their weights as operands (constants after folding), so
fold-weight-binarization sees a binary layer exactly as it sees one from the
PyTorch frontend."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from xdsl.dialects.builtin import TensorType, f32
from xdsl.ir import SSAValue

from bnnc.dialects import bnn
from bnnc.dialects.bnn import pool_output_size

from .onnx_import import OnnxImporter
from .onnx_ops_elementwise import binary, const
from .onnx_registry import ONNX_DOMAIN, Mask, handles


def _reshape(imp: OnnxImporter, v: SSAValue, shape: tuple[int, ...] | list[int]) -> SSAValue:
    if tuple(v.type.get_shape()) == tuple(shape):
        return v
    return imp.add(bnn.ReshapeOp(v, TensorType(f32, list(shape)))).result


def _window(imp: OnnxImporter, node: Any, spatial: tuple[int, ...], kernel: tuple[int, ...], transposed: bool = False):
    """(strides, dilations, [(begin, end)] pads) of a conv/pool node, auto_pad resolved."""
    n = len(spatial)
    strides = tuple(int(s) for s in imp.attr(node, "strides", [1] * n))
    dilations = tuple(int(d) for d in imp.attr(node, "dilations", [1] * n))
    pads = [int(p) for p in imp.attr(node, "pads", [0] * (2 * n))]
    auto = imp.attr(node, "auto_pad", "NOTSET")
    if auto == "VALID":
        pads = [0] * (2 * n)
    elif auto in ("SAME_UPPER", "SAME_LOWER") and not transposed:
        pads = [0] * (2 * n)
        for i in range(n):
            out = -(-spatial[i] // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - spatial[i])
            small = total // 2
            pads[i], pads[i + n] = (small, total - small) if auto == "SAME_UPPER" else (total - small, small)
    elif auto not in ("NOTSET", "SAME_UPPER", "SAME_LOWER"):
        raise imp.unsupported(node, f"auto_pad={auto}", "use NOTSET, VALID, SAME_UPPER or SAME_LOWER")
    return strides, dilations, [(pads[i], pads[i + n]) for i in range(n)]


def _as_2d(shape: tuple[int, ...]) -> bool:
    """Whether a rank-3 (N, C, L) tensor is handled as (N, C, 1, L)."""
    return len(shape) == 3


# ------------------------------------------------------------------ conv


@handles(ONNX_DOMAIN, "Conv")
def _conv(imp: OnnxImporter, node: Any) -> list[Any]:
    shape = imp.shape(node, 0)
    wshape = imp.shape(node, 1)
    if len(shape) not in (3, 4):
        raise imp.unsupported(node, f"{len(shape) - 2}-D Conv", "bnnc compiles 1-D and 2-D convolutions")
    one_d = _as_2d(shape)
    kernel = tuple(wshape[2:])
    strides, dilations, pads = _window(imp, node, tuple(shape[2:]), kernel)
    x, w = imp.value(node, 0), imp.value(node, 1)
    if one_d:
        x = _reshape(imp, x, (shape[0], shape[1], 1, shape[2]))
        w = _reshape(imp, w, (wshape[0], wshape[1], 1, wshape[2]))
        strides, dilations, pads = (1, *strides), (1, *dilations), [(0, 0), *pads]
    bias = imp.value(node, 2) if imp.has_input(node, 2) else None
    (top, bottom), (left, right) = pads
    n, c, h, wd = x.type.get_shape()
    if top == bottom and left == right:
        padding = (top, left)
    else:  # asymmetric: pad explicitly (zeros, as the conv's own padding would)
        padded = TensorType(f32, [n, c, h + top + bottom, wd + left + right])
        x = imp.add(bnn.PadOp(x, (left, right, top, bottom), 0.0, padded)).result
        padding = (0, 0)
    out = imp.out_shape(node)
    typ = TensorType(f32, [out[0], out[1], 1, out[2]] if one_d else list(out))
    groups = int(imp.attr(node, "group", 1))
    conv = bnn.Conv2dOp(x, w, typ, strides=strides, padding=padding, dilations=dilations, groups=groups, bias=bias)
    return [_reshape(imp, imp.add(conv).result, out)]


@handles(ONNX_DOMAIN, "ConvTranspose")
def _conv_transpose(imp: OnnxImporter, node: Any) -> list[Any]:
    """The transposed conv as bnn.zero_insert (stride-1 zeros between pixels,
    dilation*(k-1) - pad around, output_padding at the end) and a stride-1
    bnn.conv2d with the kernel flipped and in/out channels swapped per group:
    the same sums, the inserted zeros adding exact 0 products."""
    shape = imp.shape(node, 0)
    if len(shape) != 4:
        raise imp.unsupported(node, f"{len(shape) - 2}-D ConvTranspose", "bnnc compiles 2-D transposed convolutions")
    W = imp.float_const(node, imp.const(node, 1, "weight"))
    cin, cog, kh, kw = W.shape
    groups = int(imp.attr(node, "group", 1))
    strides, dilations, pads = _window(imp, node, tuple(shape[2:]), (kh, kw), transposed=True)
    out_pad = [int(p) for p in imp.attr(node, "output_padding", [0, 0])]
    out_shape = imp.attr(node, "output_shape", None)
    if out_shape is not None or imp.attr(node, "auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"):
        target = list(out_shape)[-2:] if out_shape is not None else [shape[2 + i] * strides[i] for i in range(2)]
        upper = imp.attr(node, "auto_pad", "NOTSET") == "SAME_UPPER"
        pads = []
        for i, k in enumerate((kh, kw)):
            total = strides[i] * (shape[2 + i] - 1) + out_pad[i] + (k - 1) * dilations[i] + 1 - int(target[i])
            pads.append((total // 2, total - total // 2) if upper else (total - total // 2, total // 2))
    cig = cin // groups
    flipped = W.reshape(groups, cig, cog, kh, kw).transpose(0, 2, 1, 3, 4)[:, :, :, ::-1, ::-1]
    flipped = np.ascontiguousarray(flipped.reshape(groups * cog, cig, kh, kw))
    around = [(d * (k - 1) - b, d * (k - 1) - e + op) for k, (b, e), d, op in zip((kh, kw), pads, dilations, out_pad)]
    x = imp.value(node, 0)
    n, _, h, wd = shape
    (top, bottom), (left, right) = around
    stuffed = TensorType(f32, [n, cin, (h - 1) * strides[0] + 1 + top + bottom, (wd - 1) * strides[1] + 1 + left + right])
    x = imp.add(bnn.ZeroInsertOp(x, strides, (left, right, top, bottom), stuffed)).result
    bias = None
    if imp.has_input(node, 2):
        bias = imp.const_tensor(imp.float_const(node, imp.const(node, 2, "bias")).reshape(-1))
    conv = bnn.Conv2dOp(
        x, imp.const_tensor(flipped), imp.out_type(node), strides=(1, 1), padding=(0, 0), dilations=dilations,
        groups=groups, bias=bias,
    )
    return [imp.add(conv).result]


# ------------------------------------------------------------ gemm, matmul


def _matmul(imp: OnnxImporter, node: Any, a: SSAValue, b: SSAValue, ta: bool, tb: bool, out: tuple[int, ...]) -> SSAValue:
    """bnn.matmul on rank-2 or rank-3 operands (leading batch axes flattened)."""
    sa, sb = tuple(a.type.get_shape()), tuple(b.type.get_shape())
    if len(sa) != len(sb) or len(sa) < 2 or sa[:-2] != sb[:-2]:
        raise imp.unsupported(node, f"{node.op_type} of shapes {sa} and {sb}", "use equal batch dimensions")
    if len(sa) > 3:
        batch = math.prod(sa[:-2])
        a = _reshape(imp, a, (batch, *sa[-2:]))
        b = _reshape(imp, b, (batch, *sb[-2:]))
    m = a.type.get_shape()[-1] if ta else a.type.get_shape()[-2]
    nn = b.type.get_shape()[-2] if tb else b.type.get_shape()[-1]
    shape = [*a.type.get_shape()[:-2], m, nn]
    v = imp.add(bnn.MatmulOp(a, b, TensorType(f32, shape), transpose_lhs=ta, transpose_rhs=tb)).result
    return _reshape(imp, v, out)


@handles(ONNX_DOMAIN, "Gemm")
def _gemm(imp: OnnxImporter, node: Any) -> list[Any]:
    """alpha * A' @ B' + beta * C: bnn.linear when B is a constant (C as its
    bias when alpha = beta = 1 and C is one row), else bnn.matmul."""
    alpha, beta = float(imp.attr(node, "alpha", 1.0)), float(imp.attr(node, "beta", 1.0))
    ta, tb = bool(imp.attr(node, "transA", 0)), bool(imp.attr(node, "transB", 0))
    out = imp.out_shape(node)
    has_c = imp.has_input(node, 2)
    bias = None
    if has_c and imp.is_const(node, 2) and alpha == 1.0 and beta == 1.0:
        c = imp.float_const(node, imp.consts[node.input[2]])
        if c.size == out[1] and (c.ndim == 1 or (c.ndim == 2 and c.shape[0] == 1)):
            bias = imp.const_tensor(c.reshape(-1))
    if imp.is_const(node, 1) and not ta:
        B = imp.float_const(node, imp.consts[node.input[1]])
        weight = imp.const_tensor(np.ascontiguousarray(B if tb else B.T))
        y = imp.add(bnn.LinearOp(imp.value(node, 0), weight, TensorType(f32, list(out)), bias)).result
    else:
        y = _matmul(imp, node, imp.value(node, 0), imp.value(node, 1), ta, tb, out)
    if alpha != 1.0:
        y = binary(imp, node, bnn.MulOp, y, const(imp, alpha))
    if has_c and bias is None:
        if imp.is_const(node, 2):
            c = (np.float32(beta) * imp.float_const(node, imp.consts[node.input[2]])).astype(np.float32)
            y = binary(imp, node, bnn.AddOp, y, imp.const_tensor(c.reshape(c.shape or (1,))))
        else:
            c = imp.value(node, 2)
            if beta != 1.0:
                c = binary(imp, node, bnn.MulOp, c, const(imp, beta))
            y = binary(imp, node, bnn.AddOp, y, c)
    return [_reshape(imp, y, out)]


@handles(ONNX_DOMAIN, "MatMul")
def _matmul_op(imp: OnnxImporter, node: Any) -> list[Any]:
    sa, sb = imp.shape(node, 0), imp.shape(node, 1)
    out = imp.out_shape(node)
    if len(sa) < 2 or len(sb) < 2:
        raise imp.unsupported(node, "MatMul with a vector operand", "reshape the vector to a matrix")
    if imp.is_const(node, 1) and len(sb) == 2 and node.input[0] not in imp.consts:
        B = imp.float_const(node, imp.consts[node.input[1]])
        rows = math.prod(sa[:-1])
        x = _reshape(imp, imp.value(node, 0), (rows, sa[-1]))
        y = imp.add(bnn.LinearOp(x, imp.const_tensor(np.ascontiguousarray(B.T)), TensorType(f32, [rows, sb[1]]))).result
        return [_reshape(imp, y, out)]
    return [_matmul(imp, node, imp.value(node, 0), imp.value(node, 1), False, False, out)]


# --------------------------------------------------------- normalisations


@handles(ONNX_DOMAIN, "BatchNormalization")
def _batch_norm(imp: OnnxImporter, node: Any) -> list[Any]:
    if int(imp.attr(node, "training_mode", 0)):
        raise imp.unsupported(node, "BatchNormalization in training mode", "export the model in eval mode")
    eps = float(imp.attr(node, "epsilon", 1e-5))
    x = imp.value(node, 0)
    gamma, beta, mean, var = (imp.value(node, i) for i in (1, 2, 3, 4))
    return [imp.add(bnn.BatchNormOp(x, mean, var, gamma, beta, eps)).result]


def _affine(imp: OnnxImporter, node: Any, i: int, shape: tuple[int, ...], at: int | None) -> SSAValue | None:
    """Input i (a scale or bias) at the input's rank: one value per channel
    (at=None: InstanceNormalization), or the trailing axes from `at` on
    (LayerNormalization, whose scale has the normalised axes' shape)."""
    if not imp.has_input(node, i):
        return None
    v = imp.value(node, i)
    s = tuple(v.type.get_shape())
    if at is None:  # per channel
        target = (1, s[0] if s else 1) + (1,) * (len(shape) - 2)
    else:
        tail = (1,) * (len(shape) - at - len(s)) + s
        target = (1,) * at + tail
    return _reshape(imp, v, target)


@handles(ONNX_DOMAIN, "InstanceNormalization")
def _instance_norm(imp: OnnxImporter, node: Any) -> list[Any]:
    shape = imp.shape(node, 0)
    eps = float(imp.attr(node, "epsilon", 1e-5))
    w, b = _affine(imp, node, 1, shape, None), _affine(imp, node, 2, shape, None)
    return [imp.add(bnn.NormalizeOp(imp.value(node, 0), list(range(2, len(shape))), eps, w, b)).result]


@handles(ONNX_DOMAIN, "LayerNormalization")
def _layer_norm(imp: OnnxImporter, node: Any) -> list[Any]:
    shape = imp.shape(node, 0)
    axis = int(imp.attr(node, "axis", -1)) % len(shape)
    eps = float(imp.attr(node, "epsilon", 1e-5))
    w, b = _affine(imp, node, 1, shape, axis), _affine(imp, node, 2, shape, axis)
    y = imp.add(bnn.NormalizeOp(imp.value(node, 0), list(range(axis, len(shape))), eps, w, b)).result
    return [y, None, None]


# ------------------------------------------------------------------ pooling


def _pool_window(imp: OnnxImporter, node: Any, shape: tuple[int, ...]):
    kernel = tuple(int(k) for k in imp.attr(node, "kernel_shape"))
    strides, dilations, pads = _window(imp, node, tuple(shape[2:]), kernel)
    if any(b != e for b, e in pads):
        raise imp.unsupported(
            node, f"{node.op_type} with asymmetric pads {pads}", "use symmetric padding (or pad explicitly first)"
        )
    padding = tuple(b for b, _ in pads)
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise imp.unsupported(node, f"{node.op_type} with pads {padding} over half the kernel {kernel}", "pad less")
    return kernel, strides, dilations, padding


@handles(ONNX_DOMAIN, "MaxPool", "AveragePool")
def _pool(imp: OnnxImporter, node: Any) -> list[Any]:
    shape = imp.shape(node, 0)
    if len(shape) not in (3, 4):
        raise imp.unsupported(node, f"{len(shape) - 2}-D {node.op_type}", "bnnc pools 1-D and 2-D tensors")
    one_d = _as_2d(shape)
    kernel, strides, dilations, padding = _pool_window(imp, node, shape)
    x = imp.value(node, 0)
    if one_d:
        x = _reshape(imp, x, (shape[0], shape[1], 1, shape[2]))
        kernel, strides, dilations, padding = (1, *kernel), (1, *strides), (1, *dilations), (0, *padding)
    ceil = bool(imp.attr(node, "ceil_mode", 0))
    out = imp.out_shape(node)
    in_hw = x.type.get_shape()[2:]
    mine = tuple(pool_output_size(in_hw[i], kernel[i], strides[i], padding[i], dilations[i], ceil) for i in range(2))
    if mine[-len(shape) + 2 :] != tuple(out[2:]):
        raise imp.unsupported(
            node, f"{node.op_type} whose ceil-mode output size {tuple(out[2:])} differs from PyTorch's {mine}",
            "avoid ceil_mode windows that start in the padding",
        )
    typ = TensorType(f32, [out[0], out[1], 1, out[2]] if one_d else list(out))
    if node.op_type == "MaxPool":
        if len(node.output) > 1 and node.output[1]:
            imp.unavailable[node.output[1]] = "MaxPool's Indices output"
        if int(imp.attr(node, "storage_order", 0)):
            raise imp.unsupported(node, "MaxPool with storage_order=1", "use the default row-major order")
        op = bnn.MaxPool2dOp(x, typ, kernel=kernel, strides=strides, padding=padding, dilations=dilations, ceil_mode=ceil)
    else:
        if any(d != 1 for d in dilations):
            raise imp.unsupported(node, "AveragePool with dilations", "use dilation 1")
        include = bool(imp.attr(node, "count_include_pad", 0))
        op = bnn.AvgPool2dOp(x, typ, kernel=kernel, strides=strides, padding=padding, count_include_pad=include, ceil_mode=ceil)
    y = imp.add(op).result
    return [_reshape(imp, y, out)]


@handles(ONNX_DOMAIN, "GlobalAveragePool", "GlobalMaxPool")
def _global_pool(imp: OnnxImporter, node: Any) -> list[Any]:
    shape = imp.shape(node, 0)
    kind = "mean" if node.op_type == "GlobalAveragePool" else "max"
    dims = list(range(2, len(shape)))
    typ = TensorType(f32, [*shape[:2], *([1] * len(dims))])
    return [imp.add(bnn.ReduceOp(imp.value(node, 0), kind, dims, typ)).result]


# --------------------------------------------------------------- reductions

_REDUCE_KIND = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "max", "ReduceMin": "min"}
_REDUCE_OTHER = ("ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp")
# Ops whose axes became an input in opset 18 (ReduceSum in opset 13).
_AXES_INPUT_SINCE = 18


@handles(ONNX_DOMAIN, *_REDUCE_KIND, *_REDUCE_OTHER)
def _reduce(imp: OnnxImporter, node: Any) -> list[Any]:
    shape = imp.shape(node, 0)
    rank = len(shape)
    since = 13 if node.op_type == "ReduceSum" else _AXES_INPUT_SINCE
    if imp.opset() >= since:
        axes = [int(a) for a in np.asarray(imp.const(node, 1, "axes")).reshape(-1)] if imp.has_input(node, 1) else []
    else:
        axes = [int(a) for a in imp.attr(node, "axes", [])]
    x = imp.value(node, 0)
    if not axes:
        if int(imp.attr(node, "noop_with_empty_axes", 0)):
            return [x]
        axes = list(range(rank))
    dims = sorted({a % rank for a in axes})
    kept = TensorType(f32, [1 if i in dims else s for i, s in enumerate(shape)])
    op = node.op_type
    if op in _REDUCE_KIND:
        y = imp.add(bnn.ReduceOp(x, _REDUCE_KIND[op], dims, kept)).result
    else:
        if op == "ReduceL1":
            x = imp.add(bnn.AbsOp(x)).result
        elif op in ("ReduceL2", "ReduceSumSquare"):
            x = binary(imp, node, bnn.MulOp, x, x)
        elif op == "ReduceLogSumExp":
            x = imp.add(bnn.UnaryMathOp(x, "exp")).result
        y = imp.add(bnn.ReduceOp(x, "sum", dims, kept)).result
        if op == "ReduceL2":
            y = imp.add(bnn.UnaryMathOp(y, "sqrt")).result
        elif op in ("ReduceLogSum", "ReduceLogSumExp"):
            y = imp.add(bnn.UnaryMathOp(y, "log")).result
    y = _reshape(imp, y, imp.out_shape(node))
    return [Mask(y) if op in ("ReduceMax", "ReduceMin") and imp.is_mask(node, 0) else y]


@handles(ONNX_DOMAIN, "Softmax", "LogSoftmax")
def _softmax(imp: OnnxImporter, node: Any) -> list[Any]:
    rank = len(imp.shape(node, 0))
    axis = int(imp.attr(node, "axis", -1)) % rank
    return [imp.add(bnn.SoftmaxOp(imp.value(node, 0), axis, log=node.op_type == "LogSoftmax")).result]
