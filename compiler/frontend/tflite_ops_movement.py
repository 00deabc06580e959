"""TFLite handlers whose meaning depends on the NHWC layout: RESHAPE,
SQUEEZE, EXPAND_DIMS, TRANSPOSE, CONCATENATION, PAD, PADV2, MEAN, SUM.
Axes map to bnn's NCHW; reshapes and transposes are computed on element
positions of the TFLite view (TFLiteImporter.move)."""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import TensorType, f32

from bnnc.dialects import bnn
from bnnc.dialects.bnn_reduce import ReduceOp

from .tflite_import import TFLiteImporter, handles, nhwc_axis, to_internal
from .tflite_reader import TFLOp


def _not_packed(im: TFLiteImporter, op: TFLOp) -> None:
    for i in op.inputs:
        if i in im.packed:
            raise im.unsupported(f"{op.name} of a bitpacked tensor `{im.tensor(i).name}`")


@handles("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
def reshape(im: TFLiteImporter, op: TFLOp) -> None:
    """The target shape is the output tensor's (static shapes only)."""
    _not_packed(im, op)
    x, out = im.input(op, 0), op.outputs[0]
    shape, out_shape = im.shape(x), im.shape(out)
    if int(np.prod(shape)) != int(np.prod(out_shape)):
        raise im.malformed(f"cannot reshape {list(shape)} to {list(out_shape)}")
    im.define(out, im.move(im.value(x), shape, lambda a: a.reshape(out_shape)))


@handles("TRANSPOSE")
def transpose(im: TFLiteImporter, op: TFLOp) -> None:
    _not_packed(im, op)
    x, out = im.input(op, 0), op.outputs[0]
    shape = im.shape(x)
    perm = [int(p) for p in im.require_const(im.input(op, 1), "permutation").reshape(-1)]
    if sorted(p % max(len(shape), 1) for p in perm) != list(range(len(shape))):
        raise im.malformed(f"permutation {perm} of a rank-{len(shape)} tensor")
    im.define(out, im.move(im.value(x), shape, lambda a: a.transpose(perm), im.shape(out)))


@handles("CONCATENATION")
def concatenation(im: TFLiteImporter, op: TFLOp) -> None:
    _not_packed(im, op)
    out = op.outputs[0]
    rank = len(im.shape(out))
    axis = nhwc_axis(op.options.Axis() if op.options is not None else 0, rank)
    values = [im.value(i) for i in op.inputs if i >= 0]
    y = im.emit(bnn.CatOp(values, axis, im.float_type(out)))
    code = op.options.FusedActivationFunction() if op.options is not None else 0
    im.define(out, im.activation(y, code))


@handles("PAD", "PADV2")
def pad(im: TFLiteImporter, op: TFLOp) -> None:
    """Constant padding of H and W (rank 4)."""
    _not_packed(im, op)
    x, out = im.input(op, 0), op.outputs[0]
    shape = im.shape(x)
    pads = im.require_const(im.input(op, 1), "paddings").astype(np.int64)
    if pads.shape != (len(shape), 2) or np.any(pads < 0):
        raise im.malformed(f"paddings {pads.tolist()} for a rank-{len(shape)} tensor")
    value = 0.0
    if op.name == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        value = float(im.require_const(op.inputs[2], "padding value").reshape(-1)[0])
    if len(shape) != 4 or np.any(pads[0]) or np.any(pads[3]):
        raise im.unsupported("PAD of other axes than height and width", "pad NHWC tensors along H and W only")
    (top, bottom), (left, right) = pads[1], pads[2]
    n, h, w, c = shape
    typ = TensorType(f32, [n, c, h + int(top + bottom), w + int(left + right)])
    im.define(out, im.emit(bnn.PadOp(im.value(x), (int(left), int(right), int(top), int(bottom)), value, typ)))


@handles("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN")
def reduce(im: TFLiteImporter, op: TFLOp) -> None:
    _not_packed(im, op)
    x, out = im.input(op, 0), op.outputs[0]
    shape = im.shape(x)
    rank = len(shape)
    axes = sorted({int(a) % rank for a in im.require_const(im.input(op, 1), "axes").reshape(-1)}) if rank else []
    if not axes:
        raise im.unsupported(f"{op.name} over no axes")
    dims = sorted(nhwc_axis(a, rank) for a in axes)
    kept = tuple(1 if i in axes else s for i, s in enumerate(shape))
    typ = TensorType(f32, list(to_internal(kept)))
    kind = {"MEAN": "mean", "SUM": "sum", "REDUCE_MAX": "max", "REDUCE_MIN": "min"}[op.name]
    y = im.emit(ReduceOp(im.value(x), kind, dims, typ))
    out_shape = im.shape(out)
    if int(np.prod(out_shape)) != int(np.prod(kept)):
        raise im.malformed(f"output {list(out_shape)} does not match the reduction's {list(kept)}")
    im.define(out, im.move(y, kept, lambda a: a.reshape(out_shape)))
