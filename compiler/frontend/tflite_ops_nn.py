"""TFLite handlers for windowed and dense float layers: CONV_2D,
DEPTHWISE_CONV_2D, FULLY_CONNECTED, MAX_POOL_2D, AVERAGE_POOL_2D.

TFLite's SAME padding puts the odd pixel after (bottom/right); bnn windows
pad symmetrically, so an asymmetric SAME conv becomes an explicit bnn.pad
(zeros) and a VALID window. A pool whose extra pixel is after is a
ceil-mode max pool (its taps past the edge never win, as TFLite's padding
never does); another asymmetric pool pads explicitly (-inf for max; an
average then divides by the count of real pixels, as TFLite's does)."""

from __future__ import annotations

from typing import Any

import numpy as np
from xdsl.dialects.builtin import TensorType, f32

from bnnc.dialects import bnn

from .tflite_import import TFLiteImporter, handles
from .tflite_reader import TFLOp

SAME, VALID = 0, 1


def window_padding(
    im: TFLiteImporter, size: int, kernel: int, stride: int, dilation: int, padding: int
) -> tuple[int, int, int]:
    """TFLite's (pad_before, pad_after, output size) along one axis."""
    if stride < 1 or dilation < 1 or kernel < 1:
        raise im.malformed(f"window of size {kernel}, stride {stride}, dilation {dilation}")
    effective = (kernel - 1) * dilation + 1
    if padding == VALID:
        out = (size - effective) // stride + 1
        if out < 1:
            raise im.malformed(f"a VALID window of {effective} does not fit an input of {size}")
        return 0, 0, out
    if padding != SAME:
        raise im.malformed(f"unknown padding {padding}")
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2, out


def options(im: TFLiteImporter, op: TFLOp) -> Any:
    if op.options is None:
        raise im.malformed("the op has no options")
    return op.options


def spatial_padding(im: TFLiteImporter, in_shape, kh, kw, sh, sw, dh, dw, padding, out_shape):
    """((top, bottom), (left, right)) of a window, checking the output size against the file's."""
    top, bottom, oh = window_padding(im, in_shape[1], kh, sh, dh, padding)
    left, right, ow = window_padding(im, in_shape[2], kw, sw, dw, padding)
    if (oh, ow) != tuple(out_shape[1:3]):
        raise im.malformed(f"output size {list(out_shape[1:3])} does not match the window's {[oh, ow]}")
    return (top, bottom), (left, right)


def pad_explicitly(im: TFLiteImporter, x, in_shape, pads, value: float):
    """x (bnn layout) padded by ((top, bottom), (left, right)) with `value`."""
    (top, bottom), (left, right) = pads
    n, h, w, c = in_shape
    typ = TensorType(f32, [n, c, h + top + bottom, w + left + right])
    return im.emit(bnn.PadOp(x, (left, right, top, bottom), value, typ))


def _conv(im: TFLiteImporter, op: TFLOp, depthwise: bool) -> None:
    o = options(im, op)
    x_idx, w_idx, out = im.input(op, 0), im.input(op, 1), op.outputs[0]
    in_shape, out_shape = im.shape(x_idx), im.shape(out)
    if len(in_shape) != 4 or len(out_shape) != 4:
        raise im.malformed("a 2-D convolution needs rank-4 input and output")
    w = im.require_const(w_idx, "filter")
    wt = im.tensor(w_idx)
    w = im.float_data(wt)  # OHWI -> OIHW (bnn layout of rank 4)
    if w.ndim != 4:
        raise im.malformed(f"filter of shape {list(wt.shape)}")
    cin = in_shape[3]
    if depthwise:
        # filter 1 x KH x KW x (Cin * multiplier) -> (Cin * multiplier) x 1 x KH x KW
        cout = w.shape[1]
        w = np.ascontiguousarray(w.transpose(1, 0, 2, 3))
        groups = cin
        if cout % cin or cout != out_shape[3]:
            raise im.malformed(f"depthwise filter {list(wt.shape)} does not fit {cin} input channels")
    else:
        cout, cin_g = w.shape[0], w.shape[1]
        if cin_g < 1 or cin % cin_g or cout != out_shape[3] or cout % (cin // cin_g):
            raise im.malformed(f"filter {list(wt.shape)} does not fit input {list(in_shape)} and output {list(out_shape)}")
        groups = cin // cin_g
    kh, kw = w.shape[2], w.shape[3]
    sh, sw = o.StrideH(), o.StrideW()
    dh, dw = o.DilationHFactor(), o.DilationWFactor()
    pads = spatial_padding(im, in_shape, kh, kw, sh, sw, dh, dw, o.Padding(), out_shape)
    x = im.value(x_idx)
    (top, bottom), (left, right) = pads
    if top != bottom or left != right:
        x = pad_explicitly(im, x, in_shape, pads, 0.0)
        top = left = 0
    bias = im.value(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    y = im.emit(
        bnn.Conv2dOp(
            x, im.f32_const(w), im.float_type(out),
            strides=(sh, sw), padding=(top, left), dilations=(dh, dw), groups=groups, bias=bias,
        )
    )
    im.define(out, im.activation(y, o.FusedActivationFunction()))


@handles("CONV_2D")
def conv_2d(im: TFLiteImporter, op: TFLOp) -> None:
    _conv(im, op, depthwise=False)


@handles("DEPTHWISE_CONV_2D")
def depthwise_conv_2d(im: TFLiteImporter, op: TFLOp) -> None:
    _conv(im, op, depthwise=True)


@handles("FULLY_CONNECTED")
def fully_connected(im: TFLiteImporter, op: TFLOp) -> None:
    o = options(im, op)
    if o.WeightsFormat() != 0:
        raise im.unsupported("FULLY_CONNECTED with shuffled weights", "convert without weight shuffling")
    x_idx, w_idx, out = im.input(op, 0), im.input(op, 1), op.outputs[0]
    w = im.float_data(im.tensor(w_idx)) if im.const(w_idx) is not None else None
    if w is None:
        raise im.unsupported("FULLY_CONNECTED with non-constant weights")
    if w.ndim != 2:
        raise im.malformed(f"weights of shape {list(w.shape)}")
    m, k = w.shape
    in_shape = im.shape(x_idx)
    total = int(np.prod(in_shape))
    if total % k:
        raise im.malformed(f"input {list(in_shape)} does not flatten to rows of {k}")
    rows = total // k
    x = im.move(im.value(x_idx), in_shape, lambda a: a.reshape(rows, k))
    bias = im.value(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    y = im.emit(bnn.LinearOp(x, im.f32_const(w), TensorType(f32, [rows, m]), bias))
    y = im.activation(y, o.FusedActivationFunction())
    out_shape = im.shape(out)
    if int(np.prod(out_shape)) != rows * m:
        raise im.malformed(f"output {list(out_shape)} does not hold {rows} x {m} values")
    if tuple(out_shape) != (rows, m):
        y = im.move(y, (rows, m), lambda a: a.reshape(out_shape))
    im.define(out, y)


def _pool(im: TFLiteImporter, op: TFLOp, kind: str) -> None:
    o = options(im, op)
    x_idx, out = im.input(op, 0), op.outputs[0]
    in_shape, out_shape = im.shape(x_idx), im.shape(out)
    if len(in_shape) != 4 or len(out_shape) != 4 or in_shape[3] != out_shape[3]:
        raise im.malformed("a 2-D pool needs rank-4 input and output with the same channels")
    kh, kw, sh, sw = o.FilterHeight(), o.FilterWidth(), o.StrideH(), o.StrideW()
    pads = spatial_padding(im, in_shape, kh, kw, sh, sw, 1, 1, o.Padding(), out_shape)
    y = pool(im, im.value(x_idx), in_shape, im.float_type(out), (kh, kw), (sh, sw), pads, kind)
    im.define(out, im.activation(y, o.FusedActivationFunction()))


def pool(im: TFLiteImporter, x, in_shape, typ: TensorType, kernel, strides, pads, kind: str, pad_value: float = float("-inf")):
    """A TFLite max or average pool (padded taps never count) of x in bnn layout."""
    (top, bottom), (left, right) = pads
    if kind == "max" and _ceil_windows(in_shape, kernel, strides, pads, typ):
        # SAME's extra pixel after: PyTorch's ceil-mode windows with the
        # leading padding are TFLite's, and their taps past the bottom/right
        # edge never count (no padded copy of the input)
        return im.emit(bnn.MaxPool2dOp(x, typ, kernel=kernel, strides=strides, padding=(top, left), ceil_mode=True))
    if top == bottom and left == right:
        if kind == "max":
            return im.emit(bnn.MaxPool2dOp(x, typ, kernel=kernel, strides=strides, padding=(top, left)))
        return im.emit(
            bnn.AvgPool2dOp(x, typ, kernel=kernel, strides=strides, padding=(top, left), count_include_pad=False)
        )
    if kind == "max":
        padded = pad_explicitly(im, x, in_shape, pads, pad_value)
        return im.emit(bnn.MaxPool2dOp(padded, typ, kernel=kernel, strides=strides, padding=(0, 0)))
    # average over the real pixels only: a sum over the zero-padded window / the count of real pixels
    padded = pad_explicitly(im, x, in_shape, pads, 0.0)
    total = im.emit(bnn.AvgPool2dOp(padded, typ, kernel=kernel, strides=strides, padding=(0, 0), divisor_override=1))
    _, h, w, _ = in_shape
    oh, ow = typ.get_shape()[2:]
    rows = _counts(h, kernel[0], strides[0], top, oh)
    cols = _counts(w, kernel[1], strides[1], left, ow)
    count = np.outer(rows, cols).astype(np.float32).reshape(1, 1, oh, ow)
    return im.emit(bnn.DivOp(total, im.f32_const(count), typ))


def _ceil_windows(in_shape, kernel, strides, pads, typ: TensorType) -> bool:
    """Whether ceil-mode windows with padding (top, left) are exactly these
    asymmetric ones: at most one more padded row/column after than before on
    each axis, one more on some axis, and the ceil-mode output size the file's."""
    _, h, w, _ = in_shape
    oh, ow = typ.get_shape()[2:]
    fits = []
    for size, k, s, (before, after), out in zip((h, w), kernel, strides, pads, (oh, ow)):
        fits.append(after - before in (0, 1) and bnn.pool_output_size(size, k, s, before, 1, True) == out)
    return all(fits) and pads[0][1] + pads[1][1] > pads[0][0] + pads[1][0]


def _counts(size: int, kernel: int, stride: int, before: int, out: int) -> np.ndarray:
    """How many real pixels each window along one axis covers."""
    starts = np.arange(out) * stride - before
    return np.minimum(starts + kernel, size) - np.maximum(starts, 0)


@handles("MAX_POOL_2D")
def max_pool_2d(im: TFLiteImporter, op: TFLOp) -> None:
    _pool(im, op, "max")


@handles("AVERAGE_POOL_2D")
def average_pool_2d(im: TFLiteImporter, op: TFLOp) -> None:
    _pool(im, op, "avg")
