"""fuse-residual-add: a residual (shortcut) add that follows a binary conv
joins that conv's epilogue, so the sum is written once instead of the conv's
float output being written, read back and written again by a standalone add.

    y = bconv2d(x, w) <epilogue>;  s = add(y, r)     (or add(r, y))
becomes
    s = bconv2d(x, w) <epilogue> residual r           (bnn.BConv2dOp)

The residual is added AFTER the whole existing epilogue (fma -> PReLU ->
clamp), to the rounded f32 epilogue value, in the add's operand order
(`residual_lhs` when r was the add's lhs): exactly the float operations of the
unfused graph, so the result is bit-identical. Done only when
  - the conv writes floats (no threshold) and has no residual yet;
  - the add is the conv result's only user (the unfused value is not needed);
  - the add is elementwise without broadcasting: both operands and the result
    have the conv result's type (a per-channel constant add is
    fuse-output-transform's job, before any PReLU / clamp);
  - the other operand is not the conv result itself.
The new op takes the add's place, where the residual is already defined.
fuse-output-transform leaves a conv with a residual alone (a transform folded
after the residual add would be applied before it), and fuse-bn-sign does too.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
)

from bnnc.dialects import bnn
from bnnc.passes._graph import replace, single_user


class FuseAddIntoBinaryConv(RewritePattern):
    """bconv2d (float result, single user) -> same-shape add: the add becomes the conv's residual."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, bnn.BConv2dOp) or op.threshold is not None or op.residual is not None:
            return
        user = single_user(op.result)
        if not isinstance(user, bnn.AddOp):
            return
        r = op.result
        if not (user.lhs.type == user.rhs.type == user.result.type == r.type):
            return  # broadcasting add: not elementwise on the conv's output
        lhs_is_conv = user.lhs == r
        other = user.rhs if lhs_is_conv else user.lhs
        if other == r:
            return
        new = op.clone_with(residual=other, residual_lhs=not lhs_is_conv)
        replace(rewriter, user, new)
        new.location = op.location
        rewriter.erase(op)


@dataclass(frozen=True)
class FuseResidualAddPass(ModulePass):
    name = "fuse-residual-add"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([FuseAddIntoBinaryConv()]), apply_recursively=True).rewrite_module(op)
