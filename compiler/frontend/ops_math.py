"""Handlers of elementwise float math (translated into dialects/bnn.py and
dialects/bnn_math.py), each one to one from its core-ATen op.

What torch.export's decompositions leave to handle: silu becomes
sigmoid * x, softplus and mish become exp / log1p / div / gt / where,
selu becomes elu, relu6 becomes hardtanh; clamp with tensor bounds stays
aten.clamp.Tensor, which PyTorch computes as minimum(maximum(x, min), max)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.fx import Node
from xdsl.dialects.builtin import TensorType
from xdsl.ir import SSAValue

from bnnc.dialects import bnn

from .fx_helpers import arg, op_name, unsupported
from .registry import Plan, handles
from .torch_import import Importer

aten = torch.ops.aten

_UNARY = {
    aten.tanh.default: "tanh",
    aten.sigmoid.default: "sigmoid",
    aten.sqrt.default: "sqrt",
    aten.rsqrt.default: "rsqrt",
    aten.reciprocal.default: "reciprocal",
    aten.exp.default: "exp",
    aten.expm1.default: "expm1",
    aten.log.default: "log",
    aten.log1p.default: "log1p",
    aten.erf.default: "erf",
    aten.round.default: "round",
    aten.floor.default: "floor",
    aten.ceil.default: "ceil",
    aten.trunc.default: "trunc",
}


def _number(node: Node, value: Any, what: str) -> float:
    if isinstance(value, Node) or not isinstance(value, (bool, int, float)):
        raise unsupported(node, f"{op_name(node)} with a tensor {what}", f"give {what} as a number")
    return float(value)


def _unary_plan(imp: Importer, node: Node, make) -> Plan:
    src = node.args[0]
    imp.result_type(node)
    return Plan(imp.node_deps([src]), lambda: imp.add(make(imp.value(src))).result)


@handles(*_UNARY)
def _unary(imp: Importer, node: Node) -> Plan:
    fn = _UNARY[node.target]
    return _unary_plan(imp, node, lambda x: bnn.UnaryMathOp(x, fn))


@handles(aten.gelu.default)
def _gelu(imp: Importer, node: Node) -> Plan:
    approximate = arg(node, 1, "approximate", "none")
    fn = {"none": "gelu", "tanh": "gelu_tanh"}.get(approximate)
    if fn is None:
        raise unsupported(node, f"gelu with approximate={approximate!r}", "use approximate='none' or 'tanh'")
    return _unary_plan(imp, node, lambda x: bnn.UnaryMathOp(x, fn))


@handles(aten.elu.default)
def _elu(imp: Importer, node: Node) -> Plan:
    alpha = _number(node, arg(node, 1, "alpha", 1.0), "alpha")
    scale = _number(node, arg(node, 2, "scale", 1.0), "scale")
    input_scale = _number(node, arg(node, 3, "input_scale", 1.0), "input_scale")
    return _unary_plan(imp, node, lambda x: bnn.EluOp(x, alpha, scale, input_scale))


@handles(aten.leaky_relu.default)
def _leaky_relu(imp: Importer, node: Node) -> Plan:
    slope = _number(node, arg(node, 1, "negative_slope", 0.01), "negative_slope")
    return _unary_plan(imp, node, lambda x: bnn.LeakyReluOp(x, slope))


@handles(aten.pow.Tensor_Scalar)
def _pow(imp: Importer, node: Node) -> Plan:
    exponent = _number(node, node.args[1], "exponent")
    if math.isnan(exponent):
        raise unsupported(node, "pow with a NaN exponent", "use a number exponent")
    return _unary_plan(imp, node, lambda x: bnn.PowOp(x, exponent))


def _operand(imp: Importer, node: Node, v: Any, rank: int) -> SSAValue:
    if isinstance(v, Node) and v not in imp.consts:
        return imp.value(v)
    return imp.const_float(node, v, rank)


def _extremum_plan(imp: Importer, node: Node, x: Any, lo: Any, hi: Any) -> Plan:
    """maximum(x, lo) then minimum(., hi), skipping an absent bound: what
    PyTorch computes for minimum, maximum and clamp with tensor bounds."""
    typ = imp.result_type(node)
    rank = len(typ.get_shape())

    def emit() -> SSAValue:
        v = _operand(imp, node, x, rank)
        for bound, kind in ((lo, bnn.MaximumOp), (hi, bnn.MinimumOp)):
            if bound is None:
                continue
            b = _operand(imp, node, bound, rank)
            shape = bnn.broadcast_shape(v.type.get_shape(), b.type.get_shape())
            v = imp.add(kind(v, b, TensorType(typ.element_type, list(shape)))).result
        return v

    return Plan(imp.node_deps([x, lo, hi]), emit)


@handles(aten.minimum.default, aten.maximum.default)
def _min_max(imp: Importer, node: Node) -> Plan:
    a, b = node.args[:2]
    if node.target is aten.maximum.default:
        return _extremum_plan(imp, node, a, b, None)
    return _extremum_plan(imp, node, a, None, b)


@handles(aten.clamp.Tensor, aten.clamp_min.Tensor, aten.clamp_max.Tensor)
def _clamp_tensor(imp: Importer, node: Node) -> Plan:
    x = node.args[0]
    if node.target is aten.clamp.Tensor:
        lo, hi = arg(node, 1, "min"), arg(node, 2, "max")
    elif node.target is aten.clamp_min.Tensor:
        lo, hi = arg(node, 1, "min"), None
    else:
        lo, hi = None, arg(node, 1, "max")
    if lo is None and hi is None:
        raise unsupported(node, f"{op_name(node)} without bounds", "give min or max")
    return _extremum_plan(imp, node, x, lo, hi)


@handles(aten.hardtanh.default, aten.clamp.default, aten.clamp_min.default, aten.clamp_max.default)
def _clamp(imp: Importer, node: Node) -> Plan:
    """Number bounds: bnn.hardtanh (an absent bound is an infinite one, which
    changes no value), or bnn.relu for clamp(min=0)."""
    src = node.args[0]
    imp.result_type(node)
    if node.target is aten.hardtanh.default:
        lo, hi = arg(node, 1, "min_val", -1.0), arg(node, 2, "max_val", 1.0)
    elif node.target is aten.clamp.default:
        lo, hi = arg(node, 1, "min"), arg(node, 2, "max")
    elif node.target is aten.clamp_min.default:
        lo, hi = arg(node, 1, "min"), None
    else:
        lo, hi = None, arg(node, 1, "max")
    if isinstance(lo, Node) or isinstance(hi, Node):
        raise unsupported(node, f"{op_name(node)} with tensor bounds", "use number bounds or torch.clamp with tensors")
    if lo is None and hi is None:
        raise unsupported(node, f"{op_name(node)} without bounds", "give min or max")
    if (lo is not None and math.isnan(lo)) or (hi is not None and math.isnan(hi)):
        raise unsupported(node, f"{op_name(node)} with a NaN bound", "use number bounds")
    if lo is not None and hi is None and float(lo) == 0.0:
        return Plan(imp.node_deps([src]), lambda: imp.add(bnn.ReluOp(imp.value(src))).result)
    low = -math.inf if lo is None else float(lo)
    high = math.inf if hi is None else float(hi)
    # PyTorch's clamp is min(max(x, lo), hi): with lo > hi every number becomes hi
    low = min(low, high)
    return Plan(imp.node_deps([src]), lambda: imp.add(bnn.HardtanhOp(imp.value(src), low, high)).result)
