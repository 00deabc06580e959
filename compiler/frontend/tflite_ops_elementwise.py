"""TFLite handlers for elementwise float ops: ADD, SUB, MUL, DIV, MAXIMUM,
MINIMUM (NHWC broadcasting, fused activations), RELU, RELU6, RELU_N1_TO_1,
PRELU, TANH, LOGISTIC, ABS, and DEQUANTIZE/QUANTIZE of float data (float16
constants become float32 constants; integer quantization is refused)."""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import TensorType, f32

from bnnc.dialects import bnn, bnn_compare, bnn_math

from .tflite_import import FLOAT32, TFLiteImporter, handles, nhwc_axis
from .tflite_reader import TFLOp

_BINARY = {
    "ADD": bnn.AddOp,
    "SUB": bnn.SubOp,
    "MUL": bnn.MulOp,
    "DIV": bnn.DivOp,
    "MAXIMUM": bnn_math.MaximumOp,
    "MINIMUM": bnn_math.MinimumOp,
}


def _float_inputs(im: TFLiteImporter, op: TFLOp) -> None:
    for i in op.inputs:
        if i >= 0 and (i in im.packed or im.tensor(i).type != FLOAT32):
            t = im.tensor(i)
            raise im.unsupported(f"{op.name} of a {t.type_name} tensor `{t.name}`", "bnnc compiles float32 models")


@handles(*_BINARY)
def binary(im: TFLiteImporter, op: TFLOp) -> None:
    _float_inputs(im, op)
    out = op.outputs[0]
    rank = len(im.shape(out))
    a, b = (im.operand(im.input(op, i), rank) for i in (0, 1))
    y = im.emit(_BINARY[op.name](a, b, im.float_type(out)))
    code = op.options.FusedActivationFunction() if op.options is not None and hasattr(op.options, "FusedActivationFunction") else 0
    im.define(out, im.activation(y, code))


_ACTIVATION_CODES = {"RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3, "TANH": 4}


@handles(*_ACTIVATION_CODES)
def activation(im: TFLiteImporter, op: TFLOp) -> None:
    _float_inputs(im, op)
    im.define(op.outputs[0], im.activation(im.value(im.input(op, 0)), _ACTIVATION_CODES[op.name]))


@handles("LOGISTIC")
def logistic(im: TFLiteImporter, op: TFLOp) -> None:
    _float_inputs(im, op)
    im.define(op.outputs[0], im.emit(bnn_math.UnaryMathOp(im.value(im.input(op, 0)), "sigmoid")))


@handles("ABS")
def abs_(im: TFLiteImporter, op: TFLOp) -> None:
    _float_inputs(im, op)
    im.define(op.outputs[0], im.emit(bnn.AbsOp(im.value(im.input(op, 0)))))


@handles("PRELU")
def prelu(im: TFLiteImporter, op: TFLOp) -> None:
    """x >= 0 ? x : alpha * x; a per-channel constant alpha is bnn.prelu's slope."""
    _float_inputs(im, op)
    x_idx, a_idx, out = im.input(op, 0), im.input(op, 1), op.outputs[0]
    shape = im.shape(out)
    x = im.value(x_idx)
    alpha = im.const(a_idx)
    if alpha is not None and len(shape) >= 2:
        full = np.broadcast_to(alpha.astype(np.float32), shape)
        per_channel = full.reshape(-1, shape[-1])
        if np.all(per_channel == per_channel[:1]):
            slope = np.ascontiguousarray(per_channel[0])
            if len(shape) == 2 or len(shape) == 4:
                im.define(out, im.emit(bnn.PReluOp(x, im.f32_const(slope))))
                return
    typ = im.float_type(out)
    a = im.operand(a_idx, len(shape))
    mask = im.emit(bnn_compare.CompareOp(x, im.f32_const(np.zeros([1] * len(shape), np.float32)), "ge", typ))
    scaled = im.emit(bnn.MulOp(x, a, typ))
    im.define(out, im.emit(bnn_compare.WhereOp(mask, x, scaled, typ)))


@handles("DEQUANTIZE")
def dequantize(im: TFLiteImporter, op: TFLOp) -> None:
    """float16 constants (a float16-converted model's weights) become float32 constants."""
    x, out = im.input(op, 0), op.outputs[0]
    t = im.tensor(x)
    if t.quantized or t.type not in (FLOAT32, 1):
        raise im.unsupported(f"DEQUANTIZE of {t.type_name} data", "int8-quantized models are not supported: convert a float32 model")
    if t.data is not None and x not in im.values:
        im.tensor(out).data = t.data.astype(np.float32)
        im.tensor(out).type = FLOAT32
        return
    if t.type != FLOAT32:
        raise im.unsupported(f"DEQUANTIZE of a computed {t.type_name} tensor")
    im.define(out, im.value(x))


@handles("QUANTIZE")
def quantize(im: TFLiteImporter, op: TFLOp) -> None:
    x, out = im.input(op, 0), op.outputs[0]
    if im.tensor(out).type != FLOAT32 or im.tensor(out).quantized:
        raise im.unsupported(f"QUANTIZE to {im.tensor(out).type_name}", "int8-quantized models are not supported: convert a float32 model")
    _float_inputs(im, op)
    im.define(out, im.value(x))


@handles("SOFTMAX", "LOG_SOFTMAX")
def softmax(im: TFLiteImporter, op: TFLOp) -> None:
    _float_inputs(im, op)
    x, out = im.input(op, 0), op.outputs[0]
    v = im.value(x)
    rank = len(im.shape(x))
    beta = op.options.Beta() if op.name == "SOFTMAX" and op.options is not None else 1.0
    if beta != 1.0:
        typ = TensorType(f32, list(v.type.get_shape()))  # type: ignore[union-attr]
        v = im.emit(bnn.MulOp(v, im.f32_const(np.full([1] * rank, beta, np.float32)), typ))
    im.define(out, im.emit(bnn_reduce_softmax(v, nhwc_axis(-1, rank), op.name == "LOG_SOFTMAX")))


def bnn_reduce_softmax(v, dim: int, log: bool):
    from bnnc.dialects.bnn_reduce import SoftmaxOp

    return SoftmaxOp(v, dim, log)
