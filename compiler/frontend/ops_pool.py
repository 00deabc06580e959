"""Handlers of pooling: max, average and adaptive (average and max) pooling
over NCHW tensors, ceil_mode included."""

from __future__ import annotations

from typing import Any

import torch
from torch.fx import Node
from xdsl.dialects.builtin import TensorType

from bnnc.dialects import bnn

from .fx_helpers import arg, op_name, pair, unsupported
from .registry import Plan, handles
from .torch_import import Importer

aten = torch.ops.aten


def _pool_args(node: Node) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    kernel = pair(arg(node, 1, "kernel_size"))
    stride = pair(arg(node, 2, "stride", []), kernel)
    padding = pair(arg(node, 3, "padding", 0))
    return kernel, stride, padding


def _check_nchw(node: Node, x: Any) -> None:
    shape = list(x.meta["val"].shape) if isinstance(x, Node) else []
    if len(shape) != 4:
        raise unsupported(
            node, f"{op_name(node)} on a rank-{len(shape)} tensor", "pool NCHW tensors (add the batch axis)"
        )


def _check_ceil(node: Node, x: Node, typ: TensorType, kernel, stride, padding, dilation, ceil_mode: bool) -> None:
    """The result size torch.export recorded must be the one bnn's pool computes."""
    h, w = list(x.meta["val"].shape)[2:]
    expect = tuple(
        bnn.pool_output_size(size, k, s, p, d, bool(ceil_mode))
        for size, k, s, p, d in zip((h, w), kernel, stride, padding, dilation)
    )
    if tuple(typ.get_shape()[2:]) != expect:
        raise unsupported(
            node,
            f"{op_name(node)} whose result size {tuple(typ.get_shape()[2:])} is not PyTorch's {expect}",
            "file a bug",
        )


@handles(aten.max_pool2d_with_indices.default, aten.max_pool2d.default)
def _max_pool(imp: Importer, node: Node) -> Plan:
    x = node.args[0]
    _check_nchw(node, x)
    kernel, stride, padding = _pool_args(node)
    dilation = pair(arg(node, 4, "dilation", 1))
    ceil_mode = bool(arg(node, 5, "ceil_mode", False))
    typ = imp.result_type(node, 0)
    _check_ceil(node, x, typ, kernel, stride, padding, dilation, ceil_mode)
    tuple_result = node.target is aten.max_pool2d_with_indices.default

    def emit():
        op = imp.add(
            bnn.MaxPool2dOp(
                imp.value(x),
                typ,
                kernel=kernel,
                strides=stride,
                padding=padding,
                dilations=dilation,
                ceil_mode=ceil_mode,
            )
        )
        return (op.result, None) if tuple_result else op.result

    return Plan(imp.node_deps([x]), emit)


@handles(aten.avg_pool2d.default)
def _avg_pool(imp: Importer, node: Node) -> Plan:
    x = node.args[0]
    _check_nchw(node, x)
    kernel, stride, padding = _pool_args(node)
    ceil_mode = bool(arg(node, 4, "ceil_mode", False))
    count_include_pad = arg(node, 5, "count_include_pad", True)
    divisor = arg(node, 6, "divisor_override", None)
    typ = imp.result_type(node)
    _check_ceil(node, x, typ, kernel, stride, padding, (1, 1), ceil_mode)
    return Plan(
        imp.node_deps([x]),
        lambda: (
            imp.add(
                bnn.AvgPool2dOp(
                    imp.value(x),
                    typ,
                    kernel=kernel,
                    strides=stride,
                    padding=padding,
                    count_include_pad=bool(count_include_pad),
                    divisor_override=divisor,
                    ceil_mode=ceil_mode,
                )
            ).result
        ),
    )


@handles(aten._adaptive_avg_pool2d.default, aten.adaptive_avg_pool2d.default)
def _adaptive_avg(imp: Importer, node: Node) -> Plan:
    x = node.args[0]
    _check_nchw(node, x)
    typ = imp.result_type(node)
    return Plan(imp.node_deps([x]), lambda: imp.add(bnn.AdaptiveAvgPool2dOp(imp.value(x), typ)).result)


@handles(aten.adaptive_max_pool2d.default)
def _adaptive_max(imp: Importer, node: Node) -> Plan:
    """Returns (values, indices); only the values can be used (see ops_movement's getitem)."""
    x = node.args[0]
    _check_nchw(node, x)
    typ = imp.result_type(node, 0)
    return Plan(imp.node_deps([x]), lambda: (imp.add(bnn.AdaptiveMaxPool2dOp(imp.value(x), typ)).result, None))
