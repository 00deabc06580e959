"""fuse-conv-bn: an inference batch norm after a float conv becomes the
conv's epilogue, y = fma(conv, post_scale[o], post_shift[o]).

The scale and shift are bnn.batch_norm_affine's, the values the unfused
bnn.batch_norm lowering applies, and the fma is applied to the same conv
value, so the fused result equals the unfused one bit for bit (a following
binarize depends on every bit). The BN is never folded into the weights.
Fused only when the conv's result has no other user, the conv has no
epilogue yet, and the BN's parameters are constants.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from bnnc.dialects import bnn
from bnnc.passes._graph import const_array, erase_dead, insert_const, replace, single_user


class FuseBatchNormIntoConv(RewritePattern):
    """batch_norm(conv2d(x)) -> conv2d(x) post_scale post_shift."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: bnn.BatchNormOp, rewriter: PatternRewriter) -> None:
        conv = op.input.owner
        if not isinstance(conv, bnn.Conv2dOp) or conv.has_fused_epilogue() or single_user(conv.result) is not op:
            return
        params = [const_array(v) for v in (op.mean, op.var, op.gamma, op.beta)]
        if any(p is None for p in params):
            return
        scale, shift = bnn.batch_norm_affine(*params, op.epsilon.value.data)
        (sh, sw), (ph, pw), (dh, dw) = conv.window()
        new = bnn.Conv2dOp(
            conv.input,
            conv.weight,
            op.result.type,
            strides=(sh, sw),
            padding=(ph, pw),
            dilations=(dh, dw),
            groups=conv.groups.value.data,
            bias=conv.bias,
            post_scale=insert_const(rewriter, scale, conv),
            post_shift=insert_const(rewriter, shift, conv),
        )
        old = list(op.operands[1:])
        replace(rewriter, op, new)
        new.location = conv.location  # the conv's module path names the layer
        rewriter.erase(conv)
        erase_dead(rewriter, old)


@dataclass(frozen=True)
class FuseConvBnPass(ModulePass):
    name = "fuse-conv-bn"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(
            GreedyRewritePatternApplier([FuseBatchNormIntoConv()]), apply_recursively=True
        ).rewrite_module(op)
