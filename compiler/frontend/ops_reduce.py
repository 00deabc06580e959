"""Handlers of reductions over tensor axes and the normalisations built on
them (translated into dialects/bnn.py's bnn.mean and dialects/bnn_reduce.py).

Core ATen after run_decompositions: sum, amax/amin, max/min (whole tensor or
`.dim`, values only), var.correction (std is var then sqrt), _softmax /
_log_softmax, native_layer_norm, native_group_norm, and instance norm as
_native_batch_norm_legit.no_stats on an (1, N*C, ...) view (with running
statistics it is the eval batch norm of ops_core). The multi-result ops
produce a tuple whose first element is the only one computed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.fx import Node
from xdsl.dialects.builtin import TensorType, f32
from xdsl.ir import SSAValue

from bnnc.dialects import bnn

from .fx_helpers import arg, op_name, unsupported
from .registry import Plan, handles
from .torch_import import Importer

aten = torch.ops.aten


def _input_shape(node: Node) -> list[int]:
    """The static shape of the reduced input (rank >= 1)."""
    x = node.args[0]
    shape = list(x.meta["val"].shape)
    if not shape:
        raise unsupported(node, f"{op_name(node)} of a 0-d tensor", "reduce a tensor with at least one axis")
    return shape


def _dims(node: Node, dims: Any, rank: int) -> list[int]:
    """Normalised reduction axes; None or [] mean every axis (PyTorch's rule)."""
    if dims is None:
        return list(range(rank))
    if isinstance(dims, int):
        dims = [dims]
    if len(dims) == 0:
        return list(range(rank))
    return sorted({d + rank if d < 0 else d for d in dims})


def _check_dtype(node: Node) -> None:
    dtype = node.kwargs.get("dtype")
    if dtype not in (None, torch.float32):
        raise unsupported(node, f"{op_name(node)} with dtype={dtype}", "compute in float32")


def _drop_kept(imp: Importer, value: SSAValue, typ: TensorType) -> SSAValue:
    """Reshape a keepdim result to the node's result type when they differ."""
    if tuple(value.type.get_shape()) != tuple(typ.get_shape()):
        return imp.add(bnn.ReshapeOp(value, typ)).result
    return value


def _reduction(
    imp: Importer, node: Node, kind: str, dims: list[int], correction: float | None = None, index: int | None = None
) -> Plan:
    """bnn.reduce over `dims` then a reshape to the node's type (or its
    result `index` when the node returns values and indices)."""
    x = node.args[0]
    shape = _input_shape(node)
    typ = imp.result_type(node, index)
    kept = TensorType(f32, [1 if i in dims else s for i, s in enumerate(shape)])

    def emit() -> Any:
        v = imp.add(bnn.ReduceOp(imp.value(x), kind, dims, kept, correction)).result
        v = _drop_kept(imp, v, typ)
        return v if index is None else (v, None)

    return Plan(imp.node_deps([x]), emit)


@handles(aten.mean.dim, aten.mean.default)
def _mean(imp: Importer, node: Node) -> Plan:
    x = node.args[0]
    rank = len(x.meta["val"].shape)
    if node.target is aten.mean.default:
        dims, keepdim = list(range(rank)), False
    else:
        dims = _dims(node, arg(node, 1, "dim", None), rank)
        keepdim = arg(node, 2, "keepdim", False)
    _check_dtype(node)
    typ = imp.result_type(node)
    in_shape = list(x.meta["val"].shape)
    kept = TensorType(f32, [1 if i in dims else s for i, s in enumerate(in_shape)])

    def emit():
        v = imp.add(bnn.MeanOp(imp.value(x), dims, kept)).result
        if not keepdim:
            v = _drop_kept(imp, v, typ)
        return v

    return Plan(imp.node_deps([x]), emit)


@handles(aten.sum.dim_IntList, aten.sum.default)
def _sum(imp: Importer, node: Node) -> Plan:
    _check_dtype(node)
    rank = len(_input_shape(node))
    dims = None if node.target is aten.sum.default else arg(node, 1, "dim", None)
    return _reduction(imp, node, "sum", _dims(node, dims, rank))


@handles(aten.amax.default, aten.amin.default)
def _amax(imp: Importer, node: Node) -> Plan:
    rank = len(_input_shape(node))
    kind = "max" if node.target is aten.amax.default else "min"
    return _reduction(imp, node, kind, _dims(node, arg(node, 1, "dim", None), rank))


@handles(aten.max.default, aten.min.default)
def _max_all(imp: Importer, node: Node) -> Plan:
    rank = len(_input_shape(node))
    return _reduction(imp, node, "max" if node.target is aten.max.default else "min", list(range(rank)))


@handles(aten.max.dim, aten.min.dim)
def _max_dim(imp: Importer, node: Node) -> Plan:
    """(values, indices): the values are a bnn.reduce; the indices (int64) are not computed."""
    rank = len(_input_shape(node))
    kind = "max" if node.target is aten.max.dim else "min"
    return _reduction(imp, node, kind, _dims(node, [node.args[1]], rank), index=0)


@handles(aten.var.correction, aten.std.correction)
def _var(imp: Importer, node: Node) -> Plan:
    rank = len(_input_shape(node))
    correction = node.kwargs.get("correction")
    correction = 1.0 if correction is None else float(correction)
    kind = "var" if node.target is aten.var.correction else "std"
    return _reduction(imp, node, kind, _dims(node, arg(node, 1, "dim", None), rank), correction)


@handles(aten._softmax.default, aten._log_softmax.default)
def _softmax(imp: Importer, node: Node) -> Plan:
    x, dim, half_to_float = node.args[:3]
    rank = len(_input_shape(node))
    if half_to_float:
        raise unsupported(node, f"{op_name(node)} with half_to_float", "compute in float32")
    imp.result_type(node)
    dim = dim + rank if dim < 0 else dim
    log = node.target is aten._log_softmax.default
    return Plan(imp.node_deps([x]), lambda: imp.add(bnn.SoftmaxOp(imp.value(x), dim, log)).result)


def _affine(imp: Importer, node: Node, p: Any, shape: Sequence[int]) -> SSAValue | None:
    """A norm's weight or bias as a tensor of `shape` (the input's rank)."""
    if p is None:
        return None
    if p in imp.consts:
        t = imp.consts[p]
        if t.dtype != torch.float32:
            raise unsupported(node, f"{op_name(node)} with a {t.dtype} weight or bias", "use float32 parameters")
        return imp.const_tensor(t.detach().reshape(list(shape)))
    v = imp.value(p)
    if tuple(v.type.get_shape()) == tuple(shape):
        return v
    return imp.add(bnn.ReshapeOp(v, TensorType(f32, list(shape)))).result


@handles(aten.native_layer_norm.default)
def _layer_norm(imp: Importer, node: Node) -> Plan:
    """Normalised over the trailing len(normalized_shape) axes; affine per element of them."""
    x, normalized, w, b, eps = node.args[:5]
    shape = _input_shape(node)
    typ = imp.result_type(node, 0)
    k = len(normalized)
    dims = list(range(len(shape) - k, len(shape)))
    pshape = [1] * (len(shape) - k) + list(normalized)

    def emit() -> tuple:
        op = bnn.NormalizeOp(
            imp.value(x), dims, float(eps), _affine(imp, node, w, pshape), _affine(imp, node, b, pshape)
        )
        return (imp.add(op).result, None, None)

    if list(typ.get_shape()) != shape:
        raise unsupported(node, f"{op_name(node)} changing the shape", "use nn.LayerNorm")
    return Plan(imp.node_deps([x, w, b]), emit)


@handles(aten.native_group_norm.default)
def _group_norm(imp: Importer, node: Node) -> Plan:
    """x viewed as (N, G, C/G, HxW), normalised over the last two axes; the
    per-channel affine is (1, G, C/G, 1) on that view."""
    x, w, b, n, c, hw, groups, eps = node.args[:8]
    shape = _input_shape(node)
    typ = imp.result_type(node, 0)
    view = TensorType(f32, [n, groups, c // groups, hw])
    pshape = [1, groups, c // groups, 1]

    def emit() -> tuple:
        v = imp.add(bnn.ReshapeOp(imp.value(x), view)).result
        v = imp.add(
            bnn.NormalizeOp(v, [2, 3], float(eps), _affine(imp, node, w, pshape), _affine(imp, node, b, pshape))
        ).result
        return (imp.add(bnn.ReshapeOp(v, typ)).result, None, None)

    if n * c * hw != math.prod(shape) or c % groups:
        raise unsupported(node, f"{op_name(node)} with inconsistent sizes", "use nn.GroupNorm")
    return Plan(imp.node_deps([x, w, b]), emit)


@handles(aten._native_batch_norm_legit.no_stats)
def _batch_norm_batch_stats(imp: Importer, node: Node) -> Plan:
    """Batch norm from the input's own statistics over every axis but 1: what
    instance norm without running statistics becomes (on an (1, N*C, ...) view),
    and batch norm with track_running_stats=False."""
    x, w, b = node.args[:3]
    eps = node.args[5]
    shape = _input_shape(node)
    if len(shape) < 2:
        raise unsupported(node, f"{op_name(node)} of a tensor without a channel axis", "use an (N, C, ...) input")
    imp.result_type(node, 0)
    dims = [d for d in range(len(shape)) if d != 1]
    pshape = [1, shape[1]] + [1] * (len(shape) - 2)

    def emit() -> tuple:
        op = bnn.NormalizeOp(
            imp.value(x), dims, float(eps), _affine(imp, node, w, pshape), _affine(imp, node, b, pshape)
        )
        return (imp.add(op).result, None, None)

    return Plan(imp.node_deps([x, w, b]), emit)
