"""ONNX data movement: reshapes, Transpose, Slice, Gather, Split, Expand,
Tile, Pad, nearest Resize, Depth/SpaceToDepth (one bnn.gather each),
Concat, bilinear Resize, and Shape/Size (constants, since shapes are static).

A movement op's bnn.gather index is computed by running the ONNX op itself
(onnx.reference) on the *provenance* of its data inputs: an int64 tensor of
the same shape holding each element's position. The index is ONNX's
semantics by construction, for every attribute and opset form; an identity
index (Reshape, Flatten, Squeeze, ...) becomes a bnn.reshape instead.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from xdsl.dialects.builtin import TensorType, f32
from xdsl.ir import SSAValue

from bnnc.dialects import bnn

from .onnx_import import OnnxImporter
from .onnx_registry import ONNX_DOMAIN, Mask, handles

# op -> the input positions whose elements move (every other input is a constant).
_MOVES: dict[str, tuple[int, ...]] = {
    "Reshape": (0,),
    "Flatten": (0,),
    "Squeeze": (0,),
    "Unsqueeze": (0,),
    "Transpose": (0,),
    "Slice": (0,),
    "Gather": (0,),
    "GatherElements": (0,),
    "GatherND": (0,),
    "Expand": (0,),
    "Tile": (0,),
    "Split": (0,),
    "DepthToSpace": (0,),
    "SpaceToDepth": (0,),
    "Compress": (0,),
    "ReverseSequence": (0,),
    "Pad": (0,),
    "Resize": (0,),
}


def _typed(value: Any, mask: bool) -> Any:
    return Mask(value) if mask else value


def gather(imp: OnnxImporter, node: Any, fill: float | None = None, feeds: dict[str, np.ndarray] | None = None) -> list[Any]:
    """Translate a movement node into one bnn.gather (or reshape) per output.
    `feeds` overrides constant inputs (Pad's fill value becomes the -1 marker)."""
    data = [p for p in _MOVES[node.op_type] if imp.has_input(node, p)]
    names = list(dict.fromkeys(node.input[p] for p in data))
    offsets, at = {}, 0
    for name in names:
        offsets[name] = at
        at += int(np.prod(_shape_of(imp, name), dtype=np.int64))
    provenance = {
        name: (np.arange(math.prod(_shape_of(imp, name)), dtype=np.int64) + offsets[name]).reshape(_shape_of(imp, name))
        for name in names
    }
    args: dict[str, np.ndarray] = {}
    for i, name in enumerate(node.input):
        if not name:
            continue
        if name in provenance:
            args[name] = provenance[name]
        elif feeds is not None and name in feeds:
            args[name] = feeds[name]
        else:
            args[name] = imp.const(node, i, f"index or size operand `{name}`")
    outs = imp.run_reference(node, args)
    mask = all(imp.is_mask(node, p) for p in data)
    sources = [imp.consts[n] if n in imp.consts else imp.values[n] for n in names]
    return [_typed(_emit(imp, node, names, sources, np.asarray(o, dtype=np.int64), fill), mask) for o in outs]


def _shape_of(imp: OnnxImporter, name: str) -> tuple[int, ...]:
    if name in imp.consts:
        return tuple(imp.consts[name].shape)
    return tuple(imp.values[name].type.get_shape())


def _emit(imp: OnnxImporter, node: Any, names: list[str], sources: list[Any], index: np.ndarray, fill: float | None) -> SSAValue:
    typ = TensorType(f32, list(index.shape))
    if index.size and int(index.min()) < 0 and fill is None:
        raise imp.unsupported(node, f"{node.op_type} producing elements from no input", "check the model")
    sizes = [math.prod(_shape_of(imp, n)) for n in names]
    # keep only the sources the index reads, renumbered
    kept, new_index, lo, at = [], np.full_like(index, -1), 0, 0
    for src, n in zip(sources, sizes):
        inside = (index >= lo) & (index < lo + n)
        if inside.any():
            kept.append(src)
            new_index = np.where(inside, index - lo + at, new_index)
            at += n
        lo += n
    values = [imp.const_tensor(imp.float_const(node, s)) if isinstance(s, np.ndarray) else s for s in kept]
    if not values:
        return imp.const_tensor(np.full(index.shape, fill if fill is not None else 0.0, dtype=np.float32))
    if len(values) == 1 and (fill is None or new_index.min(initial=0) >= 0):
        v = values[0]
        if new_index.size == math.prod(v.type.get_shape()) and np.array_equal(new_index.reshape(-1), np.arange(new_index.size)):
            if tuple(v.type.get_shape()) == tuple(index.shape):
                return v
            return imp.add(bnn.ReshapeOp(v, typ)).result
    if index.ndim == 0:  # constants are at least 1-D: gather one element, then drop the axis
        one = TensorType(f32, [1])
        v = imp.add(bnn.GatherOp(values, imp.const_tensor(new_index.reshape(1), "i64"), one, fill)).result
        return imp.add(bnn.ReshapeOp(v, typ)).result
    has_fill = fill if new_index.size and int(new_index.min()) < 0 else None
    return imp.add(bnn.GatherOp(values, imp.const_tensor(new_index, "i64"), typ, has_fill)).result


@handles(ONNX_DOMAIN, *[op for op in _MOVES if op not in ("Pad", "Resize")])
def _movement(imp: OnnxImporter, node: Any) -> list[Any]:
    return gather(imp, node)


# ------------------------------------------------------------------ pad


def _pad_amounts(imp: OnnxImporter, node: Any, rank: int) -> list[tuple[int, int]]:
    """(begin, end) per axis from Pad's pads (and axes) inputs."""
    pads = [int(p) for p in np.asarray(imp.const(node, 1, "pads")).reshape(-1)]
    axes = list(range(rank))
    if imp.has_input(node, 3):
        axes = [int(a) % rank for a in np.asarray(imp.const(node, 3, "axes")).reshape(-1)]
    if len(pads) != 2 * len(axes):
        raise imp.unsupported(node, f"Pad with {len(pads)} pads for {len(axes)} axes", "check the model")
    out = [(0, 0)] * rank
    for k, a in enumerate(axes):
        out[a] = (pads[k], pads[k + len(axes)])
    return out


@handles(ONNX_DOMAIN, "Pad")
def _pad(imp: OnnxImporter, node: Any) -> list[Any]:
    """Constant padding of H and W of an NCHW tensor by non-negative amounts is
    bnn.pad (binary convs fold it into their padding); other axes, negative
    amounts and the reflect/edge/wrap modes are a gather."""
    mode = imp.attr(node, "mode", "constant")
    shape = imp.shape(node, 0)
    pads = _pad_amounts(imp, node, len(shape))
    value = 0.0
    if imp.has_input(node, 2):
        arr = np.asarray(imp.const(node, 2, "constant_value")).reshape(-1)
        value = float(arr[0]) if arr.size else 0.0
    if mode == "constant":
        spatial = len(shape) == 4 and pads[0] == pads[1] == (0, 0) and min(min(p) for p in pads) >= 0
        if spatial and node.input[0] not in imp.consts:
            (top, bottom), (left, right) = pads[2], pads[3]
            typ = TensorType(f32, [shape[0], shape[1], shape[2] + top + bottom, shape[3] + left + right])
            v = imp.add(bnn.PadOp(imp.values[node.input[0]], (left, right, top, bottom), value, typ)).result
            return [_typed(v, imp.is_mask(node, 0))]
        feeds = {node.input[2]: np.array(-1, dtype=np.int64)} if imp.has_input(node, 2) else None
        if feeds is None:  # no constant_value input: zeros, marked through an explicit -1
            return _pad_with_marker(imp, node, value)
        return gather(imp, node, fill=value, feeds=feeds)
    if mode in ("reflect", "edge", "wrap"):
        return gather(imp, node)
    raise imp.unsupported(node, f"Pad mode {mode}", "use constant, reflect, edge or wrap")


def _pad_with_marker(imp: OnnxImporter, node: Any, value: float) -> list[Any]:
    """A constant Pad without a constant_value input: rebuild it with -1 as the
    fill so padded positions are visible in the provenance."""
    from onnx import helper

    marker = f"{node.output[0]}__bnnc_fill"
    inputs = list(node.input) + [""] * (3 - len(node.input))
    inputs[2] = marker
    clone = helper.make_node("Pad", inputs, list(node.output), name=node.name, mode="constant")
    imp.consts[marker] = np.array(-1, dtype=np.int64)
    try:
        return gather(imp, clone, fill=value)
    finally:
        del imp.consts[marker]


# ------------------------------------------------------------------ concat


@handles(ONNX_DOMAIN, "Concat")
def _concat(imp: OnnxImporter, node: Any) -> list[Any]:
    rank = len(imp.out_shape(node))
    axis = int(imp.attr(node, "axis", 0)) % rank
    parts = [i for i in range(len(node.input)) if imp.has_input(node, i) and imp.shape(node, i)[axis] > 0]
    values = [imp.value(node, i) for i in parts]
    typ = imp.out_type(node)
    v = values[0] if len(values) == 1 else imp.add(bnn.CatOp(values, axis, typ)).result
    return [_typed(v, all(imp.is_mask(node, i) for i in parts))]


# ------------------------------------------------------------------ shapes


@handles(ONNX_DOMAIN, "Shape")
def _shape(imp: OnnxImporter, node: Any) -> list[Any]:
    shape = np.array(imp.shape(node, 0), dtype=np.int64)
    rank = len(shape)
    start = int(imp.attr(node, "start", 0))
    end = imp.attr(node, "end", None)
    start = max(0, min(rank, start + rank if start < 0 else start))
    stop = rank if end is None else max(0, min(rank, int(end) + rank if int(end) < 0 else int(end)))
    return [shape[start:stop]]


@handles(ONNX_DOMAIN, "Size")
def _size(imp: OnnxImporter, node: Any) -> list[Any]:
    return [np.array(math.prod(imp.shape(node, 0)), dtype=np.int64)]


# ------------------------------------------------------------------ resize


@handles(ONNX_DOMAIN, "Resize", "Upsample")
def _resize(imp: OnnxImporter, node: Any) -> list[Any]:
    """Nearest modes are a gather (ONNX's own index arithmetic); linear on
    NCHW with the half-pixel or align-corners coordinates of PyTorch's
    bilinear upsampling is bnn.upsample_bilinear2d."""
    mode = imp.attr(node, "mode", "nearest")
    if node.op_type == "Upsample":
        raise imp.unsupported(node, "Upsample (deprecated)", "export with Resize")
    if int(imp.attr(node, "antialias", 0)):
        raise imp.unsupported(node, "Resize with antialias", "resize without antialiasing")
    if mode == "nearest":
        return gather(imp, node)
    if mode != "linear":
        raise imp.unsupported(node, f"Resize mode {mode}", "use nearest or linear")
    shape = imp.shape(node, 0)
    out = imp.out_shape(node)
    coord = imp.attr(node, "coordinate_transformation_mode", "half_pixel")
    if len(shape) != 4 or tuple(out[:2]) != tuple(shape[:2]):
        raise imp.unsupported(node, "linear Resize that is not a 2-D resize of an NCHW tensor", "resize H and W only")
    if coord not in ("half_pixel", "pytorch_half_pixel", "align_corners") or (
        coord == "pytorch_half_pixel" and min(out[2:]) == 1
    ):
        raise imp.unsupported(
            node,
            f"linear Resize with coordinate_transformation_mode={coord}",
            "use half_pixel or align_corners (PyTorch's bilinear interpolation)",
        )
    scales = None
    if coord != "align_corners" and imp.has_input(node, 2) and np.asarray(imp.const(node, 2, "scales")).size:
        s = np.asarray(imp.const(node, 2, "scales"), dtype=np.float64).reshape(-1)
        scales = (float(s[-2]), float(s[-1]))
    op = bnn.UpsampleBilinear2dOp(imp.value(node, 0), imp.out_type(node), coord == "align_corners", scales)
    return [imp.add(op).result]
