"""Handlers of reductions over tensor axes (mean)."""

from __future__ import annotations


import torch
from torch.fx import Node
from xdsl.dialects.builtin import TensorType, f32

from bnnc.dialects import bnn

from .fx_helpers import arg, op_name, unsupported
from .registry import Plan, handles
from .torch_import import Importer

aten = torch.ops.aten


@handles(aten.mean.dim, aten.mean.default)
def _mean(imp: Importer, node: Node) -> Plan:
    x = node.args[0]
    rank = len(x.meta["val"].shape)
    if node.target is aten.mean.default:
        dims, keepdim = list(range(rank)), False
    else:
        dims = arg(node, 1, "dim", None)
        dims = list(range(rank)) if dims is None or dims == [] else list(dims)
        keepdim = arg(node, 2, "keepdim", False)
    if node.kwargs.get("dtype") not in (None, torch.float32):
        raise unsupported(node, f"{op_name(node)} with dtype={node.kwargs['dtype']}", "compute in float32")
    dims = sorted({d + rank if d < 0 else d for d in dims})
    typ = imp.result_type(node)
    in_shape = list(x.meta["val"].shape)
    kept = TensorType(f32, [1 if i in dims else s for i, s in enumerate(in_shape)])

    def emit():
        v = imp.add(bnn.MeanOp(imp.value(x), dims, kept)).result
        if not keepdim and tuple(kept.get_shape()) != tuple(typ.get_shape()):
            v = imp.add(bnn.ReshapeOp(v, typ)).result
        return v

    return Plan(imp.node_deps([x]), emit)


