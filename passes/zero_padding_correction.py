"""zero-padding-correction: a binary conv with PyTorch's zero padding
(`pad_value = 0`) becomes one padded with +1 plus a constant `correction`.

Why: a packed bit can only say +1 or -1, so a zero-padded tap would need a
mask in the inner loop. Padding with +1 (all-zero words, the cheapest case)
instead makes an out-of-bounds tap (ky, kx) contribute
    sum_c (+1) * w[o, ky, kx, c] = Cg - 2 * popcount(w[o, ky, kx, :])
which is exactly what must be subtracted to make it 0, so
    correction[o, ky, kx] = Cg - 2 * popcount(weight[o, ky, kx, :])   (Cout x KH x KW, i64)
and the lowering subtracts it for the out-of-bounds taps of border pixels only
(Larq Compute Engine does the same). The result is bit-exact: the accumulator
stays an integer. Unpadded convs, and convs padded with +1 or -1 (F.pad(value=+-1)),
need no correction and are left alone.
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
from bnnc.dialects.bitpack import padding_correction
from bnnc.passes._graph import const_array, insert_const, replace


class ZeroPaddingToCorrection(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: bnn.BConv2dOp, rewriter: PatternRewriter) -> None:
        if op.pad_value.value.data != 0 or op.correction is not None:
            return
        if tuple(op.padding.get_values()) == (0, 0):
            return
        weight = const_array(op.weight)
        if weight is None:
            return
        cg = op.channels_in // op.groups.value.data
        table = insert_const(rewriter, padding_correction(weight, cg), op)
        replace(rewriter, op, op.clone_with(pad_value=1, correction=table))


@dataclass(frozen=True)
class ZeroPaddingCorrectionPass(ModulePass):
    name = "zero-padding-correction"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([ZeroPaddingToCorrection()])).rewrite_module(op)
