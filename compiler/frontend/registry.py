"""The PyTorch frontend's table of op handlers: each ATen op (or family) has a
handler `(importer, node) -> Plan` registered with `@handles(...)` in one of
the `ops_*` modules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch.fx import Node

if TYPE_CHECKING:
    from .torch_import import Importer


@dataclass
class Plan:
    """What a node needs (its live operand nodes) and how to emit it once they are emitted."""

    deps: list[Node]
    emit: Callable[[], Any]


HANDLERS: dict[Any, Callable[["Importer", Node], Plan]] = {}


def handles(*targets: Any):
    """Register the decorated function as the handler of `targets`."""

    def deco(fn):
        for t in targets:
            HANDLERS[t] = fn
        return fn

    return deco
