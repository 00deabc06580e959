"""The ONNX frontend's table of op handlers: `(domain, op_type)` -> a
function `(importer, node) -> list of outputs`, registered with
`@handles(domain, "OpType", ...)` in one of the `onnx_ops_*` modules.

An output is an SSA value (an f32 tensor), a `Mask` (an f32 tensor holding a
boolean as 0.0/1.0, see dialects/bnn_compare.py) or a numpy array (a constant,
folded at import)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xdsl.ir import SSAValue

if TYPE_CHECKING:
    from onnx import NodeProto

    from .onnx_import import OnnxImporter

# The standard operator set, and the domains QONNX custom ops come in.
ONNX_DOMAIN = ""
QONNX_DOMAIN = "qonnx"
QONNX_DOMAIN_NAMES = ("qonnx.custom_op.general", "onnx.brevitas", "finn.custom_op.general")


def canonical_domain(domain: str) -> str:
    """'' and 'ai.onnx' are the standard set; the QONNX spellings are one domain."""
    if domain in ("", "ai.onnx"):
        return ONNX_DOMAIN
    if domain in QONNX_DOMAIN_NAMES:
        return QONNX_DOMAIN
    return domain


@dataclass(frozen=True)
class Mask:
    """A boolean tensor, held as an f32 0.0/1.0 mask."""

    value: SSAValue


Handler = Callable[["OnnxImporter", "NodeProto"], list[Any]]
HANDLERS: dict[tuple[str, str], Handler] = {}


def handles(domain: str, *op_types: str):
    """Register the decorated function as the handler of `op_types` in `domain`."""

    def deco(fn: Handler) -> Handler:
        for t in op_types:
            HANDLERS[(domain, t)] = fn
        return fn

    return deco
