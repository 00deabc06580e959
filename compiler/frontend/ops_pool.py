"""Handlers of pooling: max, average and adaptive average pooling over NCHW tensors."""

from __future__ import annotations


import torch
from torch.fx import Node

from bnnc.dialects import bnn

from .fx_helpers import arg, op_name, pair, unsupported
from .registry import Plan, handles
from .torch_import import Importer

aten = torch.ops.aten


def _pool_args(node: Node, kernel_i: int = 1):
    kernel = pair(arg(node, 1, "kernel_size"))
    stride = pair(arg(node, 2, "stride", []), kernel)
    padding = pair(arg(node, 3, "padding", 0))
    return kernel, stride, padding


@handles(aten.max_pool2d_with_indices.default, aten.max_pool2d.default)
def _max_pool(imp: Importer, node: Node) -> Plan:
    x = node.args[0]
    kernel, stride, padding = _pool_args(node)
    dilation = pair(arg(node, 4, "dilation", 1))
    ceil_mode = arg(node, 5, "ceil_mode", False)
    typ = imp.result_type(node, 0)
    _check_ceil(node, x, typ, kernel, stride, padding, dilation, ceil_mode)
    tuple_result = node.target is aten.max_pool2d_with_indices.default

    def emit():
        op = imp.add(bnn.MaxPool2dOp(imp.value(x), typ, kernel=kernel, strides=stride, padding=padding, dilations=dilation))
        return (op.result, None) if tuple_result else op.result

    return Plan(imp.node_deps([x]), emit)


def _check_ceil(node, x, typ, kernel, stride, padding, dilation, ceil_mode) -> None:
    if not ceil_mode:
        return
    h, w = list(x.meta["val"].shape)[2:]
    floor = (
        bnn.conv_output_size(h, kernel[0], stride[0], padding[0], dilation[0]),
        bnn.conv_output_size(w, kernel[1], stride[1], padding[1], dilation[1]),
    )
    if tuple(typ.get_shape()[2:]) != floor:
        raise unsupported(node, f"{op_name(node)} with ceil_mode=True", "use ceil_mode=False (pad the input instead)")


@handles(aten.avg_pool2d.default)
def _avg_pool(imp: Importer, node: Node) -> Plan:
    x = node.args[0]
    kernel, stride, padding = _pool_args(node)
    ceil_mode = arg(node, 4, "ceil_mode", False)
    count_include_pad = arg(node, 5, "count_include_pad", True)
    divisor = arg(node, 6, "divisor_override", None)
    typ = imp.result_type(node)
    _check_ceil(node, x, typ, kernel, stride, padding, (1, 1), ceil_mode)
    return Plan(
        imp.node_deps([x]),
        lambda: imp.add(
            bnn.AvgPool2dOp(
                imp.value(x),
                typ,
                kernel=kernel,
                strides=stride,
                padding=padding,
                count_include_pad=bool(count_include_pad),
                divisor_override=divisor,
            )
        ).result,
    )


@handles(aten._adaptive_avg_pool2d.default, aten.adaptive_avg_pool2d.default)
def _adaptive(imp: Importer, node: Node) -> Plan:
    x = node.args[0]
    typ = imp.result_type(node)
    if len(typ.get_shape()) != 4:
        raise unsupported(node, f"{op_name(node)} on a rank-{len(typ.get_shape())} tensor", "use NCHW inputs")
    return Plan(imp.node_deps([x]), lambda: imp.add(bnn.AdaptiveAvgPool2dOp(imp.value(x), typ)).result)


