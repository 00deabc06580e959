"""binary-maxpool: max pooling between a binarisation and binary convs runs on
packed bits.

binarize is monotone, so binarize(max(window)) = max(binarize(window)), and on
bits (1 = -1) the max of +-1 values is the AND of the words: a bit stays -1
only if every tap is -1. So

    sign(max_pool2d(x)) -> bconvs      becomes  pack(x) -> bmax_pool2d -> packed bconvs
    max_pool2d(sign(x)) -> bconvs      becomes  pack(x) -> bmax_pool2d -> packed bconvs

which reads the activation once as bits instead of pooling floats (64x less
data through the pool). Padded taps never win (PyTorch pads max pooling with
-inf). Only done when every consumer reads bits (a bnn.bconv2d input or a
bnn.pack) and they agree on the channel groups; the pool (first form) must
have no other use.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType, i64
from xdsl.ir import SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint

from bnnc.dialects import bnn
from bnnc.dialects.bitpack import packed_words
from bnnc.passes._graph import binary_consumers, erase_dead, feed_packed, find_or_make_pack, shape_of, single_user


def _packed_pool(rewriter: PatternRewriter, pool: bnn.MaxPool2dOp, source: SSAValue, result: SSAValue) -> bool:
    """Replace the binary consumers of `result` (a binarised pool of `source`)
    by pack(source) -> bmax_pool2d."""
    found = binary_consumers(result)
    if found is None:
        return False
    users, groups = found
    n, c, oh, ow = shape_of(pool.result)
    packed = find_or_make_pack(rewriter, source, groups, pool)
    (sh, sw), (ph, pw), (dh, dw) = pool.window()
    words = packed_words(c, groups)
    bmax = bnn.BMaxPool2dOp(
        packed,
        TensorType(i64, [n, words, oh, ow]),
        kernel=tuple(pool.kernel.get_values()),
        strides=(sh, sw),
        padding=(ph, pw),
        dilations=(dh, dw),
    )
    bmax.location = pool.location
    rewriter.insert(bmax, InsertPoint.before(pool))
    feed_packed(rewriter, users, bmax.result, c)
    return True


class SignOfMaxPool(RewritePattern):
    """sign(max_pool2d(x)) -> binary consumers."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: bnn.SignOp, rewriter: PatternRewriter) -> None:
        pool = op.input.owner
        if not isinstance(pool, bnn.MaxPool2dOp) or single_user(pool.result) is not op:
            return
        if _packed_pool(rewriter, pool, pool.input, op.result):
            erase_dead(rewriter, [op.result])


class MaxPoolOfSign(RewritePattern):
    """max_pool2d(sign(x)) -> binary consumers."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: bnn.MaxPool2dOp, rewriter: PatternRewriter) -> None:
        sign = op.input.owner
        if not isinstance(sign, bnn.SignOp):
            return
        if _packed_pool(rewriter, op, sign.input, op.result):
            erase_dead(rewriter, [op.result])


@dataclass(frozen=True)
class BinaryMaxpoolPass(ModulePass):
    name = "binary-maxpool"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([SignOfMaxPool(), MaxPoolOfSign()])).rewrite_module(op)
