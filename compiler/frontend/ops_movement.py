"""Handlers of data movement: identity copies, reshapes, cat, tuple results and constant padding
(translated into dialects/bnn.py and dialects/bnn_movement.py)."""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch
from torch.fx import Node

from bnnc.dialects import bnn

from .fx_helpers import IDENTITY_OPS, RESHAPES, arg, op_name, unsupported
from .registry import Plan, handles
from .torch_import import Importer

aten = torch.ops.aten


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
    src = node.args[0]
    typ = imp.result_type(node)

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


@handles(operator.getitem)
def _getitem(imp: Importer, node: Node) -> Plan:
    src, idx = node.args[0], node.args[1]
    multi = (
        aten._native_batch_norm_legit_no_training.default,
        aten.native_batch_norm.default,
        aten.max_pool2d_with_indices.default,
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


def _pad_amounts(node: Node, pad: Sequence[int]) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) of a constant_pad_nd on an NCHW tensor."""
    pad = [int(p) for p in pad]
    rank = len(node.args[0].meta["val"].shape) if isinstance(node.args[0], Node) else 0
    if rank != 4 or len(pad) % 2 or len(pad) > 4 and any(pad[4:]) or min(pad) < 0:
        raise unsupported(
            node,
            f"aten.constant_pad_nd.default with pad {pad} on a rank-{rank} tensor",
            "pad only the two spatial dimensions of an NCHW tensor, by non-negative amounts",
        )
    pad = (pad + [0, 0, 0, 0])[:4]
    return pad[0], pad[1], pad[2], pad[3]


@handles(aten.constant_pad_nd.default)
def _pad(imp: Importer, node: Node) -> Plan:
    x = node.args[0]
    pads = _pad_amounts(node, node.args[1])
    value = float(arg(node, 2, "value", 0.0))
    typ = imp.result_type(node)
    return Plan(imp.node_deps([x]), lambda: imp.add(bnn.PadOp(imp.value(x), pads, value, typ)).result)
