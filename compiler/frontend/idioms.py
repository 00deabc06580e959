"""Recognisers of activation binarisation idioms on a core-ATen FX graph.

Every recogniser answers "does this node compute a binarisation of some
source value, and with which semantics at 0?".  The importer replaces each
recognised node by one `bnn.sign` of the source (so STE helpers, Bi-Real's
polynomial and the comparison/select spellings die), and only fails for the
ones whose value PyTorch computes differently from bnnc's binarize.

Recognised (x is any value; 1/-1/0 are Python scalars or constant tensors
whose elements all hold that value):

  aten.sign(x)                                  torch.sign: 0 -> 0
  where(x >= 0, 1, -1), where(x < 0, -1, 1)     exact binarize(x)
  where(x > 0, 1, -1), where(x <= 0, -1, 1)     0 -> -1: -binarize(-x)
  where(sign(x) == 0, 1, sign(x)),
  where(sign(x) != 0, sign(x), 1)               exact binarize(x)
  (x >= 0).to(f32) * 2 - 1   (or + -1)          exact binarize(x)
  (x > 0).to(f32) * 2 - 1                       -binarize(-x)
  h + (B - h), (B - h) + h  (detach = alias)    B (STE, Bi-Real ApproxSign)
  alias/detach/clone of any of these            the same
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch.fx import Node

from .fx_helpers import RESHAPES, strip

aten = torch.ops.aten

@dataclass(frozen=True)
class Binarized:
    """The node's value is binarize(src) (flip=False) or -binarize(-src) (flip=True).

    torch_sign: the value comes from aten.sign, which maps an exact 0 to 0
    (bnn.sign maps it to +1).
    """

    src: Node
    flip: bool = False
    torch_sign: bool = False
    at: Node | None = field(default=None, compare=False)  # the outermost node of the idiom


def const_equals(arg: Any, consts: dict[Node, Any], value: float) -> bool:
    """True if `arg` is the scalar `value` or a constant tensor whose elements all equal it."""
    if isinstance(arg, bool):
        return False
    if isinstance(arg, (int, float)):
        return float(arg) == value
    arg = strip(arg)
    if isinstance(arg, Node) and arg in consts:
        t = consts[arg]
        if isinstance(t, torch.Tensor) and t.numel() > 0:
            return bool(torch.all(t == value))
        if isinstance(t, (int, float)) and not isinstance(t, bool):
            return float(t) == value
    return False


def same_value(a: Any, b: Any, depth: int = 8) -> bool:
    """Structural equality of two FX values (same node, or same op on the same inputs)."""
    a, b = strip(a), strip(b)
    if a is b:
        return True
    if isinstance(a, Node) and isinstance(b, Node):
        if depth == 0 or a.op != "call_function" or b.op != "call_function" or a.target != b.target:
            return False
        if len(a.args) != len(b.args) or a.kwargs != b.kwargs:
            return False
        return all(same_value(x, y, depth - 1) for x, y in zip(a.args, b.args))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y, depth) for x, y in zip(a, b))
    if isinstance(a, Node) or isinstance(b, Node):
        return False
    return a == b


_CMP = {
    aten.ge.Scalar: "ge",
    aten.ge.Tensor: "ge",
    aten.gt.Scalar: "gt",
    aten.gt.Tensor: "gt",
    aten.le.Scalar: "le",
    aten.le.Tensor: "le",
    aten.lt.Scalar: "lt",
    aten.lt.Tensor: "lt",
    aten.eq.Scalar: "eq",
    aten.eq.Tensor: "eq",
    aten.ne.Scalar: "ne",
    aten.ne.Tensor: "ne",
}
_SWAP = {"ge": "le", "le": "ge", "gt": "lt", "lt": "gt", "eq": "eq", "ne": "ne"}


def match_compare_zero(node: Any, consts: dict[Node, Any]) -> tuple[str, Node] | None:
    """cmp(x, 0) or cmp(0, x) -> (cmp as if written x `cmp` 0, x)."""
    node = strip(node)
    if not isinstance(node, Node) or node.op != "call_function" or node.target not in _CMP:
        return None
    kind = _CMP[node.target]
    a, b = node.args[0], node.args[1]
    if isinstance(a, Node) and a not in consts and const_equals(b, consts, 0.0):
        return kind, a
    if isinstance(b, Node) and b not in consts and const_equals(a, consts, 0.0):
        return _SWAP[kind], b
    return None


class BinarizeMatcher:
    """Memoised recogniser of binarisation idioms over one FX graph."""

    def __init__(self, consts: dict[Node, Any]):
        self.consts = consts
        self.memo: dict[Node, Binarized | None] = {}

    def __call__(self, node: Any) -> Binarized | None:
        node = strip(node)
        if not isinstance(node, Node) or node.op != "call_function" or node in self.consts:
            return None
        if node not in self.memo:
            self.memo[node] = None  # guards against cycles through malformed graphs
            b = self._match(node)
            self.memo[node] = replace(b, at=node) if b is not None else None
        return self.memo[node]

    def _match(self, node: Node) -> Binarized | None:
        t = node.target
        if t is aten.sign.default:
            return Binarized(node.args[0], torch_sign=True)
        if t is aten.where.self:
            return self._match_where(node)
        if t in (aten.add.Tensor, aten.sub.Tensor) and node.kwargs.get("alpha", 1) == 1:
            ste = self._match_ste(node) if t is aten.add.Tensor else None
            if ste is not None:
                return ste
            return self._match_affine(node)
        return None

    def _match_where(self, node: Node) -> Binarized | None:
        cond, a, b = node.args[:3]
        consts = self.consts
        cmp = match_compare_zero(cond, consts)
        if cmp is None:
            return None
        kind, x = cmp
        pos_neg = const_equals(a, consts, 1.0) and const_equals(b, consts, -1.0)
        neg_pos = const_equals(a, consts, -1.0) and const_equals(b, consts, 1.0)
        if (kind == "ge" and pos_neg) or (kind == "lt" and neg_pos):
            return Binarized(x)
        if (kind == "gt" and pos_neg) or (kind == "le" and neg_pos):
            return Binarized(x, flip=True)
        # where(sign(x) == 0, 1, sign(x)) and where(sign(x) != 0, sign(x), 1)
        inner = self(x)
        if inner is not None and inner.torch_sign and not inner.flip:
            if kind == "eq" and const_equals(a, consts, 1.0) and same_value(b, x):
                return Binarized(inner.src)
            if kind == "ne" and const_equals(b, consts, 1.0) and same_value(a, x):
                return Binarized(inner.src)
        return None

    def _match_ste(self, node: Node) -> Binarized | None:
        """h + (B - h) or (B - h) + h with B a binarisation: the value is B."""
        p, q = node.args[0], node.args[1]
        for s, h in ((strip(q), p), (strip(p), q)):
            if (
                isinstance(s, Node)
                and s.op == "call_function"
                and s.target is aten.sub.Tensor
                and s.kwargs.get("alpha", 1) == 1
                and same_value(s.args[1], h)
            ):
                inner = self(s.args[0])
                if inner is not None:
                    return inner
        return None

    def _match_affine(self, node: Node) -> Binarized | None:
        """cmp(x, 0).to(f32) * 2 - 1  (or + -1)."""
        consts = self.consts
        m, c = node.args[0], node.args[1]
        want = 1.0 if node.target is aten.sub.Tensor else -1.0
        if node.target is aten.add.Tensor and const_equals(m, consts, -1.0):
            m, c = c, m
        if not const_equals(c, consts, want):
            return None
        m = strip(m)
        if not (isinstance(m, Node) and m.op == "call_function" and m.target is aten.mul.Tensor):
            return None
        f, two = m.args[0], m.args[1]
        if const_equals(f, consts, 2.0):
            f, two = two, f
        if not const_equals(two, consts, 2.0):
            return None
        f = strip(f)
        if not (
            isinstance(f, Node)
            and f.op == "call_function"
            and f.target in (aten._to_copy.default, torch.ops.prims.convert_element_type.default)
        ):
            return None
        val = f.meta.get("val")
        if not isinstance(val, torch.Tensor) or val.dtype != torch.float32:
            return None
        cmp = match_compare_zero(f.args[0], consts)
        if cmp is None:
            return None
        kind, x = cmp
        if kind == "ge":
            return Binarized(x)
        if kind == "gt":
            return Binarized(x, flip=True)
        return None


_ZERO_PRESERVING = {
    aten.max_pool2d_with_indices.default,
    aten.avg_pool2d.default,
    aten._adaptive_avg_pool2d.default,
    aten.adaptive_avg_pool2d.default,
    aten.mean.dim,
    aten.mean.default,
    *RESHAPES,
    aten.cat.default,
    operator.getitem,
}


def _integer_accumulator(node: Node, is_binarized: Callable[[Any], bool] | None) -> bool:
    """A bias-free conv/matmul of binarised activations: a sum of +-w terms that
    cancels to exactly 0 on many inputs (always possible for binary weights)."""
    t = node.target
    if is_binarized is None:
        return False
    if t is aten.convolution.default:
        x, bias = node.args[0], node.args[2]
        x = strip(x)
        if isinstance(x, Node) and x.target is aten.constant_pad_nd.default:
            x = x.args[0]
        return bias is None and is_binarized(x)
    if t is aten.mm.default:
        return is_binarized(node.args[0])
    return False


def may_be_exact_zero(
    node: Any,
    consts: dict[Node, Any],
    depth: int = 16,
    is_binarized: Callable[[Any], bool] | None = None,
) -> Node | None:
    """If `node` is exactly 0 by construction on some inputs (relu, clamp at 0,
    a bias-free binary conv's accumulator, pools of those, ...), return the node
    that makes it so; else None. `is_binarized` tells binarised values apart."""
    node = strip(node)
    if not isinstance(node, Node) or node.op != "call_function" or depth == 0:
        return None
    t = node.target
    args = node.args
    if t is aten.relu.default or _integer_accumulator(node, is_binarized):
        return node
    if t in (aten.hardtanh.default, aten.clamp.default, aten.clamp_min.default):
        lo = args[1] if len(args) > 1 else node.kwargs.get("min", -1.0 if t is aten.hardtanh.default else None)
        if lo is not None and not isinstance(lo, Node) and float(lo) == 0.0:
            return node
        return None
    if t is aten.constant_pad_nd.default:
        value = args[2] if len(args) > 2 else node.kwargs.get("value", 0.0)
        if float(value) == 0.0 and any(p != 0 for p in args[1]):
            return node
        return may_be_exact_zero(args[0], consts, depth - 1, is_binarized)
    if t in (aten.mul.Tensor,):
        for a in args[:2]:
            hit = may_be_exact_zero(a, consts, depth - 1, is_binarized)
            if hit is not None:
                return hit
        return None
    if t is aten.cat.default:
        for a in args[0]:
            hit = may_be_exact_zero(a, consts, depth - 1, is_binarized)
            if hit is not None:
                return hit
        return None
    if t in _ZERO_PRESERVING:
        return may_be_exact_zero(args[0], consts, depth - 1, is_binarized)
    return None
