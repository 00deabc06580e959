"""Handlers of elementwise float math (translated into dialects/bnn.py and dialects/bnn_math.py)."""

from __future__ import annotations

import torch
from torch.fx import Node

from bnnc.dialects import bnn

from .fx_helpers import arg, op_name, unsupported
from .registry import Plan, handles
from .torch_import import Importer

aten = torch.ops.aten


@handles(aten.hardtanh.default, aten.clamp.default, aten.clamp_min.default)
def _clamp(imp: Importer, node: Node) -> Plan:
    src = node.args[0]
    imp.result_type(node)
    if node.target is aten.hardtanh.default:
        lo, hi = arg(node, 1, "min_val", -1.0), arg(node, 2, "max_val", 1.0)
    elif node.target is aten.clamp.default:
        lo, hi = arg(node, 1, "min"), arg(node, 2, "max")
    else:
        lo, hi = arg(node, 1, "min"), None
    if isinstance(lo, Node) or isinstance(hi, Node):
        raise unsupported(node, f"{op_name(node)} with tensor bounds", "use number bounds")
    if lo is not None and hi is not None:
        return Plan(imp.node_deps([src]), lambda: imp.add(bnn.HardtanhOp(imp.value(src), float(lo), float(hi))).result)
    if lo is not None and hi is None and float(lo) == 0.0:
        return Plan(imp.node_deps([src]), lambda: imp.add(bnn.ReluOp(imp.value(src))).result)
    raise unsupported(
        node,
        f"{op_name(node)} with min={lo}, max={hi}",
        "bnnc supports clamp/hardtanh with both bounds and clamp(min=0) (relu)",
    )


