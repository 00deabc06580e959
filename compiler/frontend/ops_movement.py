"""Handlers of data movement: identity copies, reshapes, cat, tuple results,
padding, and every op that only moves elements (translated into dialects/bnn.py
and dialects/bnn_movement.py).

Pure movement ops (permute, slice, select, split, expand, repeat, flip, the
padding modes, nearest upsampling, pixel shuffles, indexing with constant
indices, ...) become one `bnn.gather` each. Its index tensor is computed here
by running the very same ATen op on the *provenance* of its input: a float64
tensor holding, for every element, its position in the inputs (float64 holds
integers exactly up to 2**53 and every one of these ops accepts it). The
result is PyTorch's semantics by construction, for every argument form torch
accepts. Chains of movement ops (pixel_shuffle is view -> permute -> view)
compose into one gather, since a provenance can itself be gathered.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.fx import Node
from xdsl.dialects.builtin import TensorType, f32
from xdsl.ir import SSAValue

from bnnc.dialects import bnn

from .fx_helpers import IDENTITY_OPS, RESHAPES, arg, op_name, strip, unsupported
from .registry import Plan, handles
from .torch_import import Importer

aten = torch.ops.aten


# ------------------------------------------------------------- reshape, cat


@handles(*IDENTITY_OPS, aten._to_copy.default)
def _identity(imp: Importer, node: Node) -> Plan:
    src = node.args[0]
    imp.result_type(node)
    if node.target is aten._to_copy.default:
        extra = set(node.kwargs) - {"dtype", "memory_format", "layout", "device"}
        if extra:
            raise unsupported(node, f"{op_name(node)} with {sorted(extra)}", "remove the copy")
    return Plan(imp.node_deps([src]), lambda: imp.value(src))


@handles(*RESHAPES)
def _reshape(imp: Importer, node: Node) -> Plan:
    """A row-major reshape: bnn.reshape, or part of the gather it reshapes
    (pixel_shuffle's final view), so that no separate copy is made."""
    src = node.args[0]
    typ = imp.result_type(node)
    if _is_movement(strip(src)):
        return _gather_plan(imp, node, _provenance(imp, node), typ)

    def emit():
        v = imp.value(src)
        if tuple(v.type.get_shape()) == tuple(typ.get_shape()):
            return v
        return imp.add(bnn.ReshapeOp(v, typ)).result

    return Plan(imp.node_deps([src]), emit)


@handles(aten.cat.default)
def _cat(imp: Importer, node: Node) -> Plan:
    inputs = list(node.args[0])
    typ = imp.result_type(node)
    rank = len(typ.get_shape())
    axis = arg(node, 1, "dim", 0)
    axis = axis + rank if axis < 0 else axis
    return Plan(imp.node_deps(inputs), lambda: imp.add(bnn.CatOp([imp.value(i) for i in inputs], axis, typ)).result)


# ---------------------------------------------------------------- gathers


def _ops(*names: str) -> list[Any]:
    """The ATen overloads `packet.overload` that this torch build has."""
    found = []
    for name in names:
        packet, overload = name.split(".")
        op = getattr(getattr(aten, packet, None), overload, None)
        if op is not None:
            found.append(op)
    return found


# Ops whose every output element is a copy of an input element (or a constant
# fill), with the argument positions holding the tensors whose elements move;
# every other tensor argument (indices) must be a constant.
_GATHER_OPS: dict[Any, tuple[int, ...]] = {
    op: (0,)
    for op in _ops(
        "permute.default",
        "transpose.int",
        "t.default",
        "numpy_T.default",
        "movedim.int",
        "slice.Tensor",
        "narrow.default",
        "select.int",
        "expand.default",
        "expand_copy.default",
        "permute_copy.default",
        "slice_copy.Tensor",
        "select_copy.int",
        "repeat.default",
        "flip.default",
        "roll.default",
        "rot90.default",
        "diagonal.default",
        "unfold.default",
        "as_strided.default",
        "index.Tensor",
        "_unsafe_index.Tensor",
        "index_select.default",
        "gather.default",
        "take_along_dim.default",
        "constant_pad_nd.default",
        "reflection_pad1d.default",
        "reflection_pad2d.default",
        "reflection_pad3d.default",
        "replication_pad1d.default",
        "replication_pad2d.default",
        "replication_pad3d.default",
        "upsample_nearest1d.vec",
        "upsample_nearest1d.default",
        "upsample_nearest2d.vec",
        "upsample_nearest2d.default",
        "upsample_nearest3d.vec",
        "upsample_nearest3d.default",
        "_upsample_nearest_exact1d.vec",
        "_upsample_nearest_exact1d.default",
        "_upsample_nearest_exact2d.vec",
        "_upsample_nearest_exact2d.default",
        "_upsample_nearest_exact3d.vec",
        "_upsample_nearest_exact3d.default",
        "pixel_shuffle.default",
        "pixel_unshuffle.default",
        "channel_shuffle.default",
        "native_channel_shuffle.default",
    )
}
# Ops writing one tensor into (a part of) another: both move.
_GATHER_OPS.update({op: (0, 1) for op in _ops("slice_scatter.default", "select_scatter.default", "copy.default")})
# Ops returning several tensors, each a gather (taken apart by operator.getitem).
_MULTI_GATHER_OPS: dict[Any, tuple[int, ...]] = {
    op: (0,)
    for op in _ops(
        "split_with_sizes.default",
        "split.Tensor",
        "split.sizes",
        "unbind.int",
        "chunk.default",
        "tensor_split.sections",
        "tensor_split.indices",
        "unsafe_split.Tensor",
        "unsafe_split_with_sizes.default",
    )
}

_META = "bnnc.gathered"


@dataclass
class Gathered:
    """A tensor as a copy of elements of `sources`, read as one row-major
    sequence (source 0 first): index[i] is the position output element i
    copies, or -1 where it is the constant `fill`."""

    sources: list[Node]
    index: torch.Tensor  # int64, the tensor's shape
    fill: float | None


def _shape(node: Node) -> tuple[int, ...]:
    val = node.meta.get("val")
    if not isinstance(val, torch.Tensor):
        raise unsupported(node, f"{op_name(node)} does not produce a tensor", "bnnc compiles tensor programs")
    return tuple(int(d) for d in val.shape)


def _is_movement(node: Any) -> bool:
    """Whether `node` is a movement op this module turns into a gather."""
    if not isinstance(node, Node) or node.op != "call_function":
        return False
    if node.target in _GATHER_OPS:
        return True
    src = node.args[0] if node.args else None
    return node.target is operator.getitem and isinstance(src, Node) and src.target in _MULTI_GATHER_OPS


def _leaf(node: Node) -> Gathered:
    shape = _shape(node)
    return Gathered([node], torch.arange(math.prod(shape), dtype=torch.int64).reshape(shape), None)


def _provenance(imp: Importer, node: Node) -> Gathered:
    """`node` as a gather of the nearest values that are not movement: looks
    through identities, reshapes and the movement ops handled here."""
    if node in imp.consts:
        return _leaf(node)
    src = strip(node)
    if src is not node:
        return _provenance(imp, src)
    if node.op == "call_function" and node.target in RESHAPES:
        g = _provenance(imp, node.args[0])
        return Gathered(g.sources, g.index.reshape(_shape(node)), g.fill)
    if node.op == "call_function" and node.target in _GATHER_OPS:
        return _gathered(imp, node)
    if (
        node.op == "call_function"
        and node.target is operator.getitem
        and isinstance(node.args[0], Node)
        and node.args[0].target in _MULTI_GATHER_OPS
    ):
        return _gathered(imp, node.args[0])[node.args[1]]
    return _leaf(node)


def _merge(parts: list[Gathered]) -> tuple[list[Node], list[torch.Tensor]]:
    """The union of the parts' sources, and each part's index into it."""
    sources: list[Node] = []
    for g in parts:
        for s in g.sources:
            if s not in sources:
                sources.append(s)
    offsets, at = {}, 0
    for s in sources:
        offsets[s] = at
        at += math.prod(_shape(s))
    indices = []
    for g in parts:
        out = torch.full_like(g.index, -1)
        lo = 0
        for s in g.sources:
            n = math.prod(_shape(s))
            inside = (g.index >= lo) & (g.index < lo + n)
            out = torch.where(inside, g.index - lo + offsets[s], out)
            lo += n
        indices.append(out)
    return sources, indices


def _compact(g: Gathered) -> Gathered:
    """`g` without the sources none of its elements read."""
    kept: list[Node] = []
    index = torch.full_like(g.index, -1)
    lo = at = 0
    for s in g.sources:
        n = math.prod(_shape(s))
        inside = (g.index >= lo) & (g.index < lo + n)
        if bool(inside.any()):
            kept.append(s)
            index = torch.where(inside, g.index - lo + at, index)
            at += n
        lo += n
    return Gathered(kept, index, g.fill)


def _gathered(imp: Importer, node: Node) -> Any:
    """The Gathered (or, for split-like ops, the list of them) of a movement op, memoised."""
    if _META in node.meta:
        return node.meta[_META]
    table = _GATHER_OPS if node.target in _GATHER_OPS else _MULTI_GATHER_OPS
    data = [p for p in table[node.target] if p < len(node.args) and isinstance(node.args[p], Node)]
    own_fill = None
    if node.target is aten.constant_pad_nd.default:
        own_fill = float(arg(node, 2, "value", 0.0))
    parts = [_provenance(imp, node.args[p]) for p in data]
    # One fill value per gather: an input filled with another value stays a value.
    fills = [g.fill for g in parts if g.fill is not None]
    fill = own_fill if own_fill is not None else (fills[0] if fills else None)
    parts = [g if g.fill is None or g.fill == fill else _leaf(node.args[p]) for g, p in zip(parts, data)]
    sources, indices = _merge(parts)

    def operand(n: Node) -> Any:
        if n in data_nodes:
            return data_nodes[n]
        if n in imp.consts:
            return imp.consts[n]
        raise unsupported(
            node,
            f"{op_name(node)} with a computed index or size operand `{n.name}`",
            "index with constant tensors (computed from parameters, buffers or constants only)",
        )

    data_nodes = {node.args[p]: idx.to(torch.float64) for p, idx in zip(data, indices)}
    args = list(node.args)
    for p, idx in zip(data, indices):
        args[p] = idx.to(torch.float64)
    args = [a if i in data else torch.fx.node.map_arg(a, operand) for i, a in enumerate(args)]
    kwargs = dict(torch.fx.node.map_arg(node.kwargs, operand))
    if own_fill is not None:
        if len(args) > 2:
            args[2] = -1.0
        else:
            kwargs["value"] = -1.0
    try:
        with torch.no_grad():
            out = node.target(*args, **kwargs)
    except Exception as exc:  # torch raises many exception types for bad arguments
        raise unsupported(node, f"{op_name(node)} with these arguments ({exc})", "check the op's arguments") from exc

    def as_gathered(t: torch.Tensor) -> Gathered:
        index = t.round().to(torch.int64)
        if not torch.equal(index.to(torch.float64), t):
            raise unsupported(node, f"{op_name(node)} mixes elements", "bnnc moves elements only in this op")
        return _compact(Gathered(sources, index, fill))

    result = [as_gathered(t) for t in out] if isinstance(out, (list, tuple)) else as_gathered(out)
    node.meta[_META] = result
    return result


def _emit_gather(imp: Importer, node: Node, g: Gathered, typ) -> SSAValue:
    """The gather `g` as IR: a reshape (or nothing) when it copies one input in
    order, a constant when it only fills, else one bnn.gather."""
    numel = g.index.numel()
    if not g.sources:
        return imp.const_tensor(torch.full(tuple(typ.get_shape()), g.fill if g.fill is not None else 0.0))
    if (
        len(g.sources) == 1
        and g.fill is None
        and math.prod(_shape(g.sources[0])) == numel
        and torch.equal(g.index.flatten(), torch.arange(numel))
    ):
        v = imp.value(g.sources[0])
        if tuple(v.type.get_shape()) == tuple(typ.get_shape()):
            return v
        return imp.add(bnn.ReshapeOp(v, typ)).result
    sources = [imp.value(s) for s in g.sources]
    if g.index.dim() == 0:  # constants are at least 1-D: gather one element, then drop the axis
        one = TensorType(f32, [1])
        index = imp.const_tensor(g.index.reshape(1).numpy(), "i64")
        v = imp.add(bnn.GatherOp(sources, index, one, g.fill)).result
        return imp.add(bnn.ReshapeOp(v, typ)).result
    index = imp.const_tensor(g.index.numpy(), "i64")
    return imp.add(bnn.GatherOp(sources, index, typ, g.fill)).result


def _gather_plan(imp: Importer, node: Node, g: Gathered, typ) -> Plan:
    return Plan([s for s in g.sources if s not in imp.consts], lambda: _emit_gather(imp, node, g, typ))


@handles(*[op for op in _GATHER_OPS if op is not aten.constant_pad_nd.default])
def _gather(imp: Importer, node: Node) -> Plan:
    typ = imp.result_type(node)
    return _gather_plan(imp, node, _gathered(imp, node), typ)


@handles(*_MULTI_GATHER_OPS)
def _multi_gather(imp: Importer, node: Node) -> Plan:
    def emit():
        raise unsupported(node, f"the list result of {op_name(node)}", "take its elements with [i]")

    return Plan([], emit)


@handles(operator.getitem)
def _getitem(imp: Importer, node: Node) -> Plan:
    src, idx = node.args[0], node.args[1]
    if isinstance(src, Node) and src.target in _MULTI_GATHER_OPS:
        typ = imp.result_type(node)
        return _gather_plan(imp, node, _gathered(imp, src)[idx], typ)
    multi = (
        aten._native_batch_norm_legit_no_training.default,
        aten.native_batch_norm.default,
        aten.max_pool2d_with_indices.default,
        aten.adaptive_max_pool2d.default,
        aten.native_layer_norm.default,
        aten.native_group_norm.default,
        aten._native_batch_norm_legit.no_stats,
        aten.max.dim,
        aten.min.dim,
    )
    if not (isinstance(src, Node) and src.target in multi):
        raise unsupported(node, f"indexing the result of {op_name(src) if isinstance(src, Node) else src}", "")
    if idx != 0:
        raise unsupported(
            node,
            f"result {idx} of {op_name(src)} (only the main result is supported)",
            "do not use pooling indices or batch statistics",
        )
    imp.result_type(node)
    return Plan([src], lambda: imp.values[src][0])


# ---------------------------------------------------------------- padding


def _spatial_pads(node: Node, pad: Sequence[int]) -> tuple[int, int, int, int] | None:
    """(left, right, top, bottom) when a constant_pad_nd pads only H and W of
    an NCHW tensor by non-negative amounts (bnn.pad), else None."""
    pad = [int(p) for p in pad]
    rank = len(node.args[0].meta["val"].shape) if isinstance(node.args[0], Node) else 0
    if rank != 4 or len(pad) % 2 or len(pad) > 4 and any(pad[4:]) or min(pad, default=0) < 0:
        return None
    pad = (pad + [0, 0, 0, 0])[:4]
    return pad[0], pad[1], pad[2], pad[3]


def _pad_amounts(node: Node, pad: Sequence[int]) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) of a constant_pad_nd on an NCHW tensor
    (the form binary convs fold into their padding)."""
    pads = _spatial_pads(node, pad)
    if pads is None:
        rank = len(node.args[0].meta["val"].shape) if isinstance(node.args[0], Node) else 0
        raise unsupported(
            node,
            f"aten.constant_pad_nd.default with pad {list(pad)} on a rank-{rank} tensor",
            "pad only the two spatial dimensions of an NCHW tensor, by non-negative amounts",
        )
    return pads


@handles(aten.constant_pad_nd.default)
def _pad(imp: Importer, node: Node) -> Plan:
    """Spatial NCHW padding stays bnn.pad (the binary passes fold it into
    convs); any other constant padding, cropping included, is a gather."""
    x = node.args[0]
    typ = imp.result_type(node)
    pads = _spatial_pads(node, node.args[1])
    if pads is None or not isinstance(x, Node):
        return _gather_plan(imp, node, _gathered(imp, node), typ)
    value = float(arg(node, 2, "value", 0.0))
    return Plan(imp.node_deps([x]), lambda: imp.add(bnn.PadOp(imp.value(x), pads, value, typ)).result)


# ------------------------------------------------------------- resampling


@handles(*_ops("upsample_bilinear2d.vec", "upsample_bilinear2d.default"))
def _upsample_bilinear(imp: Importer, node: Node) -> Plan:
    x = node.args[0]
    typ = imp.result_type(node)
    align = bool(arg(node, 2, "align_corners", False))
    if node.target is aten.upsample_bilinear2d.vec:
        factors = arg(node, 3, "scale_factors", None)
        scales = None if factors is None else (float(factors[0]), float(factors[1]))
    else:
        sh, sw = arg(node, 3, "scales_h", None), arg(node, 4, "scales_w", None)
        scales = None if sh is None and sw is None else (float(sh or 0.0), float(sw or 0.0))
    if len(typ.get_shape()) != 4:
        raise unsupported(node, f"{op_name(node)} of a rank-{len(typ.get_shape())} tensor", "resize NCHW tensors")
    return Plan(
        imp.node_deps([x]), lambda: imp.add(bnn.UpsampleBilinear2dOp(imp.value(x), typ, align, scales)).result
    )
