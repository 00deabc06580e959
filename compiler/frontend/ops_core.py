"""Handlers of the core ops: identity and reshape, elementwise arithmetic and
activations, batch norm, pooling, mean, cat, pad, convolution and linear."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.fx import Node
from xdsl.ir import SSAValue

from bnnc.dialects import bnn

from .fx_helpers import arg, op_name, pair, strip, unsupported
from .registry import HANDLERS, Plan, handles
from .torch_import import Importer

aten = torch.ops.aten


def _unary(ctor):
    def handler(imp: Importer, node: Node) -> Plan:
        src = node.args[0]
        imp.result_type(node)
        return Plan(imp.node_deps([src]), lambda: imp.add(ctor(imp.value(src))).result)

    return handler


HANDLERS[aten.relu.default] = _unary(bnn.ReluOp)
HANDLERS[aten.abs.default] = _unary(bnn.AbsOp)


def _prelu_plan(imp: Importer, node: Node, x: Node, slope: Any) -> Plan:
    s = strip(slope)
    if not (isinstance(s, Node) and s in imp.consts and isinstance(imp.consts[s], torch.Tensor)):
        raise unsupported(node, "PReLU with a non-constant slope", "use a constant slope")
    w = imp.consts[s].detach().to(torch.float32)
    xshape = list(x.meta["val"].shape)
    # the slope broadcasts against x: one value, or one per channel (axis 1)
    aligned = [1] * (len(xshape) - w.dim()) + list(w.shape)
    if w.numel() == 1:
        flat = w.reshape(1)
    elif (
        len(xshape) >= 2
        and len(aligned) == len(xshape)
        and aligned[1] == xshape[1]
        and all(d == 1 for i, d in enumerate(aligned) if i != 1)
    ):
        flat = w.reshape(-1)
    elif w.dim() == 1 and len(xshape) >= 2 and w.numel() == xshape[1]:
        flat = w  # prelu.default / _prelu_kernel spell the per-channel slope as [C]
    else:
        raise unsupported(node, f"PReLU slope of shape {tuple(w.shape)}", "use one slope or one per channel")
    imp.result_type(node)
    return Plan(imp.node_deps([x]), lambda: imp.add(bnn.PReluOp(imp.value(x), imp.const_tensor(flat))).result)


@handles(aten._prelu_kernel.default, aten.prelu.default)
def _prelu(imp: Importer, node: Node) -> Plan:
    x, w = node.args[0], node.args[1]
    return _prelu_plan(imp, node, x, w)


_ELEMENTWISE = {
    aten.add.Tensor: bnn.AddOp,
    aten.add.Scalar: bnn.AddOp,
    aten.sub.Tensor: bnn.SubOp,
    aten.sub.Scalar: bnn.SubOp,
    aten.mul.Tensor: bnn.MulOp,
    aten.mul.Scalar: bnn.MulOp,
    aten.div.Tensor: bnn.DivOp,
    aten.div.Scalar: bnn.DivOp,
    aten.rsub.Scalar: "rsub",
    aten.rsub.Tensor: "rsub",
}


@handles(*_ELEMENTWISE)
def _elementwise(imp: Importer, node: Node) -> Plan:
    ctor = _ELEMENTWISE[node.target]
    alpha = node.kwargs.get("alpha", 1)
    if alpha != 1:
        raise unsupported(node, f"{op_name(node)} with alpha={alpha}", "write the scaling as a separate multiplication")
    a, b = node.args[0], node.args[1]
    if ctor == "rsub":
        a, b, ctor = b, a, bnn.SubOp
    typ = imp.result_type(node)
    rank = len(typ.get_shape())

    def operand(v: Any) -> SSAValue:
        if isinstance(v, Node) and v not in imp.consts:
            return imp.value(v)
        return imp.const_float(node, v, rank)

    return Plan(imp.node_deps([a, b]), lambda: imp.add(ctor(operand(a), operand(b), typ)).result)


@handles(aten.neg.default)
def _neg(imp: Importer, node: Node) -> Plan:
    src = node.args[0]
    typ = imp.result_type(node)
    rank = len(typ.get_shape())
    return Plan(
        imp.node_deps([src]),
        lambda: imp.add(bnn.MulOp(imp.value(src), imp.const_float(node, -1.0, rank), typ)).result,
    )


@handles(aten._native_batch_norm_legit_no_training.default, aten.native_batch_norm.default)
def _batch_norm(imp: Importer, node: Node) -> Plan:
    if node.target is aten.native_batch_norm.default:
        x, w, b, mean, var, training, _momentum, eps = node.args[:8]
        if training:
            raise unsupported(node, "batch norm in training mode", "call model.eval() before exporting")
    else:
        x, w, b, mean, var, _momentum, eps = node.args[:7]
    for p, what in ((w, "weight"), (b, "bias"), (mean, "running_mean"), (var, "running_var")):
        if p is not None and p not in imp.consts:
            raise unsupported(node, f"batch norm with a non-constant {what}", "use nn.BatchNorm2d in eval mode")
    if mean is None or var is None:
        raise unsupported(node, "batch norm without running statistics", "use track_running_stats=True")
    c = imp.consts[mean].numel()

    def vec(p: Any, fill: float) -> SSAValue:
        if p is None:
            return imp.const_tensor(np.full([c], fill, dtype=np.float32))
        return imp.const_tensor(imp.consts[p].detach().to(torch.float32).reshape(-1))

    def emit():
        op = bnn.BatchNormOp(imp.value(x), vec(mean, 0), vec(var, 1), vec(w, 1), vec(b, 0), float(eps))
        return (imp.add(op).result, None, None)

    return Plan(imp.node_deps([x]), emit)


# ---------------------------------------------------------- conv and dense


@handles(aten.convolution.default)
def _convolution(imp: Importer, node: Node) -> Plan:
    """A float bnn.conv2d with the constant-folded weight; recognize-binarization and
    fold-weight-binarization turn it into a bnn.bconv2d when the input is
    two-valued and W is +-alpha_c."""
    inp, w, bias, stride, padding, dilation, transposed, _out_pad, groups = node.args[:9]
    if transposed:
        from .ops_linalg import transposed_convolution

        return transposed_convolution(imp, node)
    if len(stride) != 2:
        raise unsupported(node, f"{len(stride)}-D convolution (aten.convolution.default)", "bnnc supports conv2d only")
    if w not in imp.consts:
        raise unsupported(
            node,
            "convolution with a weight computed from the input (aten.convolution.default)",
            "the weights must be parameters or computed from parameters only",
        )
    if bias is not None and bias not in imp.consts:
        raise unsupported(node, "convolution with a non-constant bias", "use a parameter bias")
    W = imp.consts[w].detach().to(torch.float32)
    bias_t = imp.consts[bias].detach().to(torch.float32).reshape(-1) if bias is not None else None
    typ = imp.result_type(node)
    stride, padding, dilation = pair(stride), pair(padding), pair(dilation)

    def conv(x: SSAValue) -> SSAValue:
        return imp.add(
            bnn.Conv2dOp(
                x,
                imp.const_tensor(W),
                typ,
                strides=stride,
                padding=padding,
                dilations=dilation,
                groups=int(groups),
                bias=imp.const_tensor(bias_t) if bias_t is not None else None,
            )
        ).result

    return Plan(imp.node_deps([inp]), lambda: conv(imp.value(inp)))


def _dense_plan(imp: Importer, node: Node, inp: Node, W: torch.Tensor, bias_t: torch.Tensor | None) -> Plan:
    """A float bnn.linear; fold-weight-binarization makes it a bnn.bdense."""
    typ = imp.result_type(node)
    if len(inp.meta["val"].shape) != 2:
        raise unsupported(node, f"{op_name(node)} on a rank-{len(inp.meta['val'].shape)} input", "flatten to 2-D first")

    def linear(x: SSAValue) -> SSAValue:
        b = imp.const_tensor(bias_t) if bias_t is not None else None
        return imp.add(bnn.LinearOp(x, imp.const_tensor(W), typ, b)).result

    return Plan(imp.node_deps([inp]), lambda: linear(imp.value(inp)))


def _const_or_fail(imp: Importer, node: Node, arg: Any, what: str) -> torch.Tensor:
    if not (isinstance(arg, Node) and arg in imp.consts and isinstance(imp.consts[arg], torch.Tensor)):
        raise unsupported(
            node,
            f"{op_name(node)} with a {what} computed from the input (matrix products between activations are not supported)",
            "the weights must be parameters or computed from parameters only",
        )
    return imp.consts[arg].detach().to(torch.float32)


@handles(aten.addmm.default, aten.mm.default, aten.linear.default)
def _dense(imp: Importer, node: Node) -> Plan:
    m = imp.result_type(node).get_shape()[-1]
    if node.target is aten.addmm.default:
        bias, inp, wt = node.args[:3]
        if node.kwargs.get("beta", 1) != 1 or node.kwargs.get("alpha", 1) != 1:
            raise unsupported(node, "aten.addmm.default with alpha/beta != 1", "use nn.Linear")
        W = _const_or_fail(imp, node, wt, "weight").t()
        b = _const_or_fail(imp, node, bias, "bias")
        if b.numel() == m:
            b = b.reshape(-1)
        else:
            raise unsupported(node, f"aten.addmm.default with a bias of shape {tuple(b.shape)}", "use nn.Linear")
    elif node.target is aten.mm.default:
        inp, wt = node.args[:2]
        if not (isinstance(wt, Node) and wt in imp.consts):
            from .ops_linalg import activation_matmul

            return activation_matmul(imp, node)
        W, b = _const_or_fail(imp, node, wt, "weight").t(), None
    else:
        inp, w = node.args[:2]
        bias = arg(node, 2, "bias")
        W = _const_or_fail(imp, node, w, "weight")
        b = _const_or_fail(imp, node, bias, "bias").reshape(-1) if bias is not None else None
    if not isinstance(inp, Node) or inp in imp.consts:
        raise unsupported(node, f"{op_name(node)} of a constant", "")
    return _dense_plan(imp, node, inp, W.contiguous(), b)
