"""Larq Compute Engine's custom ops: LceQuantize, LceDequantize, LceBconv2d,
LceBMaxPool2d (semantics from LCE 0.16's reference kernels, see docs/tflite.md).

A bitpacked LCE tensor is represented by the ±1 f32 tensor it encodes
(TFLiteImporter.packed records its channel count): LceQuantize is bnn.sign
(bit 1 iff x < 0, so 0 and -0.0 give +1, as bnn.sign), LceDequantize is that
tensor itself, LceBMaxPool2d (AND of words, padded taps ignored) is a max
pool of ±1 values.

LceBconv2d, with dot = K - 2*popcount = the ±1 convolution (K = KH*KW*Cin/groups):
  float output:     clamp(dot, activation range) * multiplier + bias
  bitpacked output: bit = popcount > threshold  <=>  dot < K - 2*threshold,
                    written here as sign(dot - (K - 2*threshold) + 0.5), exact
                    in f32 since dot and the threshold are small integers.
Padded taps add +1*w (pad_values=1) or nothing (pad_values=0, LCE's zero
padding correction): bnn.bconv2d's pad_value 1 / 0. TFLite's SAME padding is
asymmetric for even sizes with stride 2; bnn windows are symmetric, so the
input is padded explicitly with +1 and, for zero padding, the padded taps'
constant contribution (sum of their weights) is subtracted afterwards.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xdsl.dialects.builtin import TensorType, f32

from bnnc.dialects import bnn
from bnnc.dialects.bitpack import pack_bits

from .tflite_import import FLOAT32, INT32, TFLiteImporter, handles
from .tflite_ops_nn import SAME, VALID, pad_explicitly, pool, spatial_padding
from .tflite_reader import TFLOp

BITS = 32  # LCE's bitpacking word


def _int_option(im: TFLiteImporter, op: TFLOp, key: str) -> int:
    value: Any = op.custom.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise im.malformed(f"custom option `{key}` is missing or not an integer")
    if not -(1 << 31) <= value < (1 << 31):
        raise im.malformed(f"custom option `{key}` = {value} is out of range")
    return value


def _packed_input(im: TFLiteImporter, op: TFLOp) -> tuple[int, int]:
    """(tensor index, channels) of a bitpacked LCE input."""
    idx = im.input(op, 0)
    if idx not in im.packed:
        t = im.tensor(idx)
        raise im.unsupported(
            f"input `{t.name}` ({t.type_name}) is not a bitpacked tensor written by LceQuantize, LceBconv2d or LceBMaxPool2d"
        )
    return idx, im.packed[idx]


def _check_packed_shape(im: TFLiteImporter, idx: int, channels: int, lead: tuple[int, ...]) -> None:
    t = im.tensor(idx)
    expect = (*lead, -(-channels // BITS))
    if t.type != INT32 or t.shape != expect:
        raise im.malformed(f"bitpacked tensor `{t.name}` must be int32 {list(expect)}, got {t.type_name} {list(t.shape)}")


@handles("LceQuantize")
def lce_quantize(im: TFLiteImporter, op: TFLOp) -> None:
    x, out = im.input(op, 0), op.outputs[0]
    shape = im.shape(x)
    if im.tensor(x).type != FLOAT32 or x in im.packed or not shape:
        raise im.unsupported("LceQuantize of a non-float32 tensor", "bnnc compiles float32 models (int8 inputs are refused)")
    _check_packed_shape(im, out, shape[-1], shape[:-1])
    im.define(out, im.emit(bnn.SignOp(im.value(x))))
    im.packed[out] = shape[-1]


@handles("LceDequantize")
def lce_dequantize(im: TFLiteImporter, op: TFLOp) -> None:
    x, channels = _packed_input(im, op)
    out = op.outputs[0]
    t = im.tensor(out)
    if t.type != FLOAT32:
        raise im.unsupported(f"LceDequantize to {t.type_name}", "bnnc compiles float32 models")
    if t.shape != im.shape(x)[:-1] + (channels,):
        raise im.malformed(f"output {list(t.shape)} does not hold the {channels} channels of its input")
    im.define(out, im.values[x])


@handles("LceBMaxPool2d")
def lce_bmaxpool2d(im: TFLiteImporter, op: TFLOp) -> None:
    x, channels = _packed_input(im, op)
    out = op.outputs[0]
    n, h, w, _ = _rank4(im, x)
    kh, kw = _int_option(im, op, "filter_height"), _int_option(im, op, "filter_width")
    sh, sw = _int_option(im, op, "stride_height"), _int_option(im, op, "stride_width")
    in_shape = (n, h, w, channels)
    pads = spatial_padding(im, in_shape, kh, kw, sh, sw, 1, 1, _int_option(im, op, "padding"), _rank4(im, out))
    _check_packed_shape(im, out, channels, im.shape(out)[:3])
    typ = TensorType(f32, [n, channels, *im.shape(out)[1:3]])
    # padded taps never win: -1 is the identity of a max over ±1 values (AND of bits)
    im.define(out, pool(im, im.values[x], in_shape, typ, (kh, kw), (sh, sw), pads, "max", pad_value=-1.0))
    im.packed[out] = channels


def _rank4(im: TFLiteImporter, idx: int) -> tuple[int, ...]:
    shape = im.shape(idx)
    if len(shape) != 4:
        raise im.malformed(f"tensor `{im.tensor(idx).name}` must have rank 4, got {list(shape)}")
    return shape


def _filter_signs(im: TFLiteImporter, idx: int, cin: int, cout_expect: int | None) -> tuple[np.ndarray, int]:
    """(negative bits Cout x KH x KW x Cin/groups, groups) of an OHWI filter, bitpacked or float."""
    t = im.tensor(idx)
    data = im.require_const(idx, "filter")
    if data.ndim != 4:
        raise im.malformed(f"filter `{t.name}` must have rank 4, got {list(data.shape)}")
    if t.type == INT32:
        words = -(-cin // BITS)
        if data.shape[3] < 1 or words % data.shape[3]:
            raise im.malformed(f"bitpacked filter {list(data.shape)} does not fit {cin} input channels")
        groups = words // data.shape[3]
        cin_g = cin // groups
        if groups > 1 and (cin % groups or cin_g % BITS):
            raise im.malformed(f"grouped filter {list(data.shape)}: {cin} channels in {groups} groups are not whole words")
        bits = np.unpackbits(np.ascontiguousarray(data, dtype="<i4").view(np.uint8), axis=-1, bitorder="little")
        negative = bits.reshape(*data.shape[:3], -1)[..., :cin_g].astype(bool)
    elif t.type == FLOAT32:
        cin_g = data.shape[3]
        if cin % cin_g:
            raise im.malformed(f"filter {list(data.shape)} does not fit {cin} input channels")
        groups = cin // cin_g
        negative = data < 0
    else:
        raise im.unsupported(f"LceBconv2d filter of type {t.type_name}")
    if data.shape[0] % groups:
        raise im.malformed(f"{data.shape[0]} output channels do not split into {groups} groups")
    return negative, groups


def _zero_pad_correction(negative: np.ndarray, in_hw, out_hw, strides, dilations, before) -> np.ndarray:
    """1 x Cout x OH x OW: what +1 padding adds over zero padding (the padded taps' weight sums)."""
    cin_g = negative.shape[3]
    wsum = (cin_g - 2 * negative.sum(axis=3)).astype(np.int64)  # Cout x KH x KW
    inside = []
    for axis in range(2):
        k = negative.shape[1 + axis]
        pos = np.arange(out_hw[axis])[:, None] * strides[axis] - before[axis] + np.arange(k)[None, :] * dilations[axis]
        inside.append(((pos >= 0) & (pos < in_hw[axis])).astype(np.int64))
    total = wsum.sum(axis=(1, 2))[:, None, None]
    real = np.einsum("okl,yk,xl->oyx", wsum, inside[0], inside[1])
    return (total - real).astype(np.float32)[None]


@handles("LceBconv2d")
def lce_bconv2d(im: TFLiteImporter, op: TFLOp) -> None:
    if len(op.inputs) != 5:
        raise im.malformed(f"LceBconv2d takes 5 inputs, got {len(op.inputs)}")
    x, channels = _packed_input(im, op)
    cin = _int_option(im, op, "channels_in")
    if cin != channels:
        raise im.malformed(f"channels_in = {cin}, but the input holds {channels} channels")
    n, h, w, _ = _rank4(im, x)
    out = op.outputs[0]
    out_t = im.tensor(out)
    _, oh, ow, oc = _rank4(im, out)
    negative, groups = _filter_signs(im, im.input(op, 1), cin, None)
    cout, kh, kw, cin_g = negative.shape
    sh, sw = _int_option(im, op, "stride_height"), _int_option(im, op, "stride_width")
    dh, dw = _int_option(im, op, "dilation_height_factor"), _int_option(im, op, "dilation_width_factor")
    padding, pad_values = _int_option(im, op, "padding"), _int_option(im, op, "pad_values")
    activation = _int_option(im, op, "fused_activation_function")
    if pad_values not in (0, 1):
        raise im.malformed(f"pad_values must be 0 or 1, got {pad_values}")
    if padding not in (SAME, VALID):
        raise im.malformed(f"unknown padding {padding}")
    pads = spatial_padding(im, (n, h, w, cin), kh, kw, sh, sw, dh, dw, padding, (n, oh, ow))
    (top, bottom), (left, right) = pads
    weight = im.i64_const(pack_bits(negative))
    source = im.values[x]
    correction = None
    if top != bottom or left != right:
        source = pad_explicitly(im, source, (n, h, w, cin), pads, 1.0)
        if pad_values == 0:
            correction = _zero_pad_correction(negative, (h, w), (oh, ow), (sh, sw), (dh, dw), (top, left))
        top = left = 0
    window = dict(strides=(sh, sw), padding=(top, left), dilations=(dh, dw), groups=groups, pad_value=pad_values)
    typ = TensorType(f32, [n, cout, oh, ow])
    k = kh * kw * cin_g

    def dot_minus_correction():
        dot = im.emit(bnn.BConv2dOp(source, weight, typ, **window))
        return dot if correction is None else im.emit(bnn.SubOp(dot, im.f32_const(correction), typ))

    if out_t.type == INT32:  # bitpacked output through thresholds
        _check_packed_shape(im, out, cout, (n, oh, ow))
        t = im.require_const(im.input(op, 4), "output threshold").astype(np.int64).reshape(-1)
        if t.shape != (cout,):
            raise im.malformed(f"output_threshold must have {cout} values")
        bound = np.clip(k - 2 * t, -k, k + 1)  # bit (-1) iff dot < bound
        shift = (0.5 - bound).astype(np.float32)
        if correction is None:
            ones = im.f32_const(np.ones(cout, np.float32))
            v = im.emit(bnn.BConv2dOp(source, weight, typ, multiplier=ones, bias=im.f32_const(shift), **window))
        else:
            v = im.emit(bnn.AddOp(dot_minus_correction(), im.f32_const(shift.reshape(1, cout, 1, 1)), typ))
        im.define(out, im.emit(bnn.SignOp(v)))
        im.packed[out] = cout
        return
    if out_t.type != FLOAT32:
        raise im.unsupported(f"LceBconv2d with {out_t.type_name} output", "bnnc compiles float32 models")
    if oc != cout:
        raise im.malformed(f"output has {oc} channels, the filter {cout}")
    m = _channel_vector(im, op, 2, "post_activation_multiplier", cout)
    b = _channel_vector(im, op, 3, "post_activation_bias", cout)
    if activation not in (0, 1, 2, 3):
        raise im.unsupported(f"LceBconv2d fused activation {activation}", "supported: NONE, RELU, RELU_N1_TO_1, RELU6")
    if correction is None and activation == 0:
        y = im.emit(bnn.BConv2dOp(source, weight, typ, multiplier=im.f32_const(m), bias=im.f32_const(b), **window))
    elif correction is None and np.all(m == 1) and np.all(b == 0):
        lo, hi = {1: (0.0, None), 2: (-1.0, 1.0), 3: (0.0, 6.0)}[activation]
        y = im.emit(bnn.BConv2dOp(source, weight, typ, clamp_min=lo, clamp_max=hi, **window))
    else:  # LCE clamps the accumulator, then scales: clamp(dot) * m + b
        y = im.activation(dot_minus_correction(), activation)
        y = im.emit(bnn.MulOp(y, im.f32_const(m.reshape(1, cout, 1, 1)), typ))
        y = im.emit(bnn.AddOp(y, im.f32_const(b.reshape(1, cout, 1, 1)), typ))
    im.define(out, y)


def _channel_vector(im: TFLiteImporter, op: TFLOp, i: int, what: str, channels: int) -> np.ndarray:
    if i >= len(op.inputs) or op.inputs[i] < 0:
        raise im.malformed(f"LceBconv2d with float output needs {what}")
    t = im.tensor(op.inputs[i])
    data = im.require_const(op.inputs[i], what)
    if t.type != FLOAT32 or data.size != channels:
        raise im.malformed(f"{what} must be float32 [{channels}], got {t.type_name} {list(data.shape)}")
    return np.ascontiguousarray(data.reshape(-1), dtype=np.float32)
