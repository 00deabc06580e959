"""Helpers over torch.fx nodes shared by the PyTorch frontend's translation and
its per-op-family handlers: locations, names, error messages, argument access."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import torch
from torch.fx import Node
from xdsl.dialects.builtin import FileLineColLoc, IntAttr, NameLoc, StringAttr, UnknownLoc
from xdsl.ir import Attribute

from bnnc.errors import UnsupportedError

aten = torch.ops.aten

# Ops that return their input unchanged (aliases, detach, copies).
IDENTITY_OPS = {
    aten.alias.default,
    aten.detach.default,
    aten.clone.default,
    aten.lift_fresh_copy.default,
}

# ATen ops that only reshape a tensor (translated to bnn.reshape).
RESHAPES = (
    aten.view.default,
    aten._unsafe_view.default,
    aten.reshape.default,
    aten.squeeze.dim,
    aten.squeeze.dims,
    aten.squeeze.default,
    aten.unsqueeze.default,
    aten.flatten.using_ints,
)


def strip(node: Any) -> Any:
    """Follow identity ops (alias, detach, clone) and same-dtype copies back to their source."""
    while isinstance(node, Node) and node.op == "call_function":
        if node.target in IDENTITY_OPS:
            node = node.args[0]
        elif node.target is aten._to_copy.default and _same_dtype_copy(node):
            node = node.args[0]
        else:
            break
    return node


def _same_dtype_copy(node: Node) -> bool:
    src = node.args[0]
    if not isinstance(src, Node):
        return False
    a, b = src.meta.get("val"), node.meta.get("val")
    return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype


def node_module_path(node: Node) -> str:
    stack = node.meta.get("nn_module_stack")
    if stack:
        path, typ = list(stack.values())[-1]
        path = re.sub(r"^L\['self'\]\.?", "", str(path))
        path = re.sub(r"\[['\"]?([^'\"\]]+)['\"]?\]", r".\1", path)  # L['self'].layer1[0] forms
        path = path.replace("._modules.", ".").strip(".")
        if path:
            return path
        name = getattr(typ, "__name__", str(typ))
        return name.rsplit(".", 1)[-1]
    return ""


def node_source(node: Node) -> tuple[str, int] | None:
    trace = node.meta.get("stack_trace")
    if not trace:
        return None
    frames = re.findall(r'File "([^"]+)", line (\d+)', trace)
    if not frames:
        return None
    # the user's frame: the last one outside torch's own sources (nn.functional etc.)
    user = [f for f in frames if not f[0].startswith(_TORCH_DIR)]
    file, line = (user or frames)[-1]
    return file, int(line)


_TORCH_DIR = os.path.dirname(torch.__file__)


def node_location(node: Node) -> Attribute:
    path = node_module_path(node)
    src = node_source(node)
    if src is None and not path:
        return UnknownLoc()
    inner: Attribute = (
        FileLineColLoc(StringAttr(src[0]), IntAttr(src[1]), IntAttr(0)) if src is not None else UnknownLoc()
    )
    return NameLoc(StringAttr(path or node.name), inner)


def op_name(node: Node) -> str:
    t = node.target
    if isinstance(t, torch._ops.OpOverload):
        return f"aten.{t._schema.name.split('::')[-1]}.{t._overloadname}" if t.namespace == "aten" else str(t)
    return getattr(t, "__name__", str(t))


def describe(node: Node) -> str:
    """` in module `a.b` (file.py:12)` for error messages."""
    parts = []
    path = node_module_path(node)
    if path:
        parts.append(f"in module `{path}`")
    src = node_source(node)
    if src is not None:
        parts.append(f"at {src[0]}:{src[1]}")
    return (" " + " ".join(parts)) if parts else ""


def unsupported(node: Node, what: str, hint: str) -> UnsupportedError:
    return UnsupportedError(f"{what}{describe(node)}\n  hint: {hint}")


def pair(v: Any, default: Sequence[int] | None = None) -> tuple[int, int]:
    if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
        assert default is not None
        return tuple(default)  # type: ignore[return-value]
    if isinstance(v, int):
        return (v, v)
    v = list(v)
    if len(v) == 1:
        return (int(v[0]), int(v[0]))
    return (int(v[0]), int(v[1]))


def arg(node: Node, i: int, name: str, default: Any = None) -> Any:
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)
