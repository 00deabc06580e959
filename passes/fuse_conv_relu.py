"""fuse-conv-relu: a ReLU reading a float conv becomes part of that conv's
epilogue (ResNet-style stems: conv -> BN -> ReLU -> max pool).

Why: unfused, the ReLU reads and writes the conv's whole result (3.2 MB for
a 64x112x112 stem, past L2: ~0.3 ms of BinaryResNetE-18's ~5 ms) while the
conv's epilogue had each value in a register.

Why it is exact: the epilogue computes the same float as the unfused conv
(bias, the fused batch norm's fma), then the ReLU's own rule,
x < 0 ? 0 : x, which keeps NaN and -0.0 as bnn.relu does.

Fused only when the ReLU is the conv's only reader and the conv has no
ReLU or fused max pool yet (a batch norm fused before, by fuse-conv-bn, is
applied first, as in the graph: conv -> BN -> ReLU). Runs after
fuse-conv-bn (which skips a conv with a fused ReLU: BN after a ReLU is not
the conv's affine) and before channels-last and fuse-conv-maxpool (a fused
pool reads the values after the ReLU).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, UnitAttr
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from bnnc.dialects import bnn
from bnnc.passes._graph import replace, single_user


class FuseReluIntoConv(RewritePattern):
    """relu(conv2d(x)) -> conv2d(x) {relu}."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: bnn.ReluOp, rewriter: PatternRewriter) -> None:
        conv = op.input.owner
        if not isinstance(conv, bnn.Conv2dOp) or conv.relu is not None or conv.max_pool() is not None:
            return
        if single_user(conv.result) is not op or op.result.type != conv.result.type:
            return
        new = bnn.Conv2dOp.create(
            operands=list(conv.operands),
            result_types=[op.result.type],
            properties={**conv.properties, "relu": UnitAttr()},
            attributes=dict(conv.attributes),
        )
        replace(rewriter, op, new)
        new.location = conv.location  # the conv's module path names the layer
        rewriter.erase(conv)


@dataclass(frozen=True)
class FuseConvReluPass(ModulePass):
    name = "fuse-conv-relu"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(
            GreedyRewritePatternApplier([FuseReluIntoConv()]), apply_recursively=True
        ).rewrite_module(op)
