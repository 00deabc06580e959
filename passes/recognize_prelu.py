"""recognize-prelu: where(x > 0, x, x * a) with a constant slope a (one value,
or one per channel) becomes bnn.prelu(x, a).

PyTorch's core ATen spells nn.PReLU (and RPReLU blocks) this way; as one
bnn.prelu, fuse-output-transform can put it in a binary conv's epilogue.
bnn.prelu computes exactly `x > 0 ? x : a * x`, so the rewrite changes no bit
(`x >= 0` spellings differ at -0.0 and are left alone).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from bnnc.dialects import bnn
from bnnc.passes._graph import channel_vector, const_array, erase_dead, insert_const, replace, shape_of


def _slope(mul: SSAValue, x: SSAValue) -> np.ndarray | None:
    """If `mul` is x * a (either order) with a constant per-channel or scalar a, a as a vector."""
    op = mul.owner
    if not isinstance(op, bnn.MulOp) or shape_of(op.result) != shape_of(x):
        return None
    for v, a in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
        if v is x:
            arr = const_array(a)
            if arr is not None and arr.size == 1:
                return arr.reshape(1).astype(np.float32)
            return channel_vector(a, x)
    return None


class WhereToPRelu(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: bnn.WhereOp, rewriter: PatternRewriter) -> None:
        cond = op.cond.owner
        if not isinstance(cond, bnn.CompareOp) or cond.predicate.data != "gt":
            return
        x = cond.lhs
        zero = const_array(cond.rhs)
        if op.lhs is not x or zero is None or not np.all(zero == 0.0) or shape_of(op.result) != shape_of(x):
            return
        slope = _slope(op.rhs, x)
        if slope is None:
            return
        old = list(op.operands)
        replace(rewriter, op, bnn.PReluOp(x, insert_const(rewriter, slope, op)))
        erase_dead(rewriter, old)


@dataclass(frozen=True)
class RecognizePReluPass(ModulePass):
    name = "recognize-prelu"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([WhereToPRelu()]), apply_recursively=False).rewrite_module(op)
