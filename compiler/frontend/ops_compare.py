"""Handlers of torch.sign, comparisons, logical ops and where: translated one
to one into dialects/bnn_compare.py (bool tensors as f32 masks), so that
recognize-binarization sees exactly what PyTorch computes."""

from __future__ import annotations

from typing import Any

import torch
from torch.fx import Node
from xdsl.dialects.builtin import TensorType
from xdsl.ir import SSAValue

from bnnc.dialects import bnn

from .registry import Plan, handles
from .torch_import import Importer

aten = torch.ops.aten

_COMPARISONS = {
    **{getattr(aten, p).Scalar: p for p in ("ge", "gt", "le", "lt", "eq", "ne")},
    **{getattr(aten, p).Tensor: p for p in ("ge", "gt", "le", "lt", "eq", "ne")},
}


def _operand(imp: Importer, node: Node, v: Any, rank: int) -> SSAValue:
    """A live tensor's value, or a number / constant tensor as an f32 constant."""
    if isinstance(v, Node) and v not in imp.consts:
        return imp.value(v)
    return imp.const_float(node, v, rank)


@handles(aten.sign.default)
def _sign(imp: Importer, node: Node) -> Plan:
    src = node.args[0]
    imp.result_type(node)
    return Plan(imp.node_deps([src]), lambda: imp.add(bnn.SignumOp(imp.value(src))).result)


@handles(*_COMPARISONS)
def _compare(imp: Importer, node: Node) -> Plan:
    a, b = node.args[0], node.args[1]
    typ = imp.result_type(node)
    rank = len(typ.get_shape())
    pred = _COMPARISONS[node.target]
    return Plan(
        imp.node_deps([a, b]),
        lambda: imp.add(bnn.CompareOp(_operand(imp, node, a, rank), _operand(imp, node, b, rank), pred, typ)).result,
    )


@handles(aten.where.self)
def _where(imp: Importer, node: Node) -> Plan:
    cond, a, b = node.args[:3]
    typ = imp.result_type(node)
    rank = len(typ.get_shape())

    def emit() -> SSAValue:
        c, x, y = (_operand(imp, node, v, rank) for v in (cond, a, b))
        return imp.add(bnn.WhereOp(c, x, y, typ)).result

    return Plan(imp.node_deps([cond, a, b]), emit)


def _truth(imp: Importer, node: Node, v: Any, rank: int) -> SSAValue:
    """v != 0 as a mask (a bool mask is its own truth value)."""
    x = _operand(imp, node, v, rank)
    val = v.meta.get("val") if isinstance(v, Node) else None
    if isinstance(val, torch.Tensor) and val.dtype == torch.bool:
        return x
    zero = imp.const_float(node, 0.0, rank)
    return imp.add(bnn.CompareOp(x, zero, "ne", TensorType(x.type.element_type, x.type.get_shape()))).result


@handles(aten.logical_not.default, aten.bitwise_not.default)
def _logical_not(imp: Importer, node: Node) -> Plan:
    src = node.args[0]
    typ = imp.result_type(node)
    rank = len(typ.get_shape())
    return Plan(
        imp.node_deps([src]),
        lambda: imp.add(bnn.CompareOp(_operand(imp, node, src, rank), imp.const_float(node, 0.0, rank), "eq", typ)).result,
    )


@handles(
    aten.logical_and.default,
    aten.logical_or.default,
    aten.logical_xor.default,
    aten.bitwise_and.Tensor,
    aten.bitwise_or.Tensor,
    aten.bitwise_xor.Tensor,
)
def _logical(imp: Importer, node: Node) -> Plan:
    a, b = node.args[0], node.args[1]
    typ = imp.result_type(node)
    rank = len(typ.get_shape())
    kind = node.target._schema.name.split("_")[-1]  # and / or / xor

    def emit() -> SSAValue:
        x, y = _truth(imp, node, a, rank), _truth(imp, node, b, rank)
        if kind == "and":
            return imp.add(bnn.MulOp(x, y, typ)).result
        zero = imp.const_float(node, 0.0, rank)
        if kind == "or":
            return imp.add(bnn.CompareOp(imp.add(bnn.AddOp(x, y, typ)).result, zero, "ne", typ)).result
        return imp.add(bnn.CompareOp(x, y, "ne", typ)).result

    return Plan(imp.node_deps([a, b]), emit)
