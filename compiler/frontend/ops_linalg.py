"""Handlers of transposed convolution and of matrix products between two
activations (translated into dialects/bnn_linalg.py)."""

from __future__ import annotations

import torch
from torch.fx import Node

from .fx_helpers import op_name, unsupported
from .registry import Plan
from .torch_import import Importer

aten = torch.ops.aten


def transposed_convolution(imp: Importer, node: Node) -> Plan:
    """aten.convolution with transposed=True (ops_core hands these over)."""
    raise unsupported(node, "transposed convolution (aten.convolution.default, transposed=True)", "use conv2d")


def activation_matmul(imp: Importer, node: Node) -> Plan:
    """aten.mm whose second operand is computed from the input (ops_core hands these over)."""
    raise unsupported(
        node,
        f"{op_name(node)} with a weight computed from the input (matrix products between activations are not supported)",
        "the weights must be parameters or computed from parameters only",
    )
