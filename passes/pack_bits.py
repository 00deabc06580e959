"""pack-bits: binary convs read their input as packed bits, packed once.

    sign(x) -> bconv2d(s)      becomes   pack(x, groups) -> bconv2d(s) (packed input, in_channels)

bnn.pack binarizes while it packs (bit 1 = x < 0), so it reads x itself and
the sign dies unless float ops also use it (they keep it). There is one pack
per (value, groups), shared by every binary conv of that value, so the
channel-packed layout is chosen once and no conversions sit between binary
layers. A bconv2d on any other f32 value (e.g. a +-1 bnn.pad) gets a pack of
that value. Dense layers keep their f32 input (bnn.bdense has no packed form).
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
from bnnc.passes._graph import erase_dead, find_or_make_pack, replace


class PackConvInput(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: bnn.BConv2dOp, rewriter: PatternRewriter) -> None:
        if op.input_is_packed:
            return
        x = op.input
        source = x.owner.input if isinstance(x.owner, bnn.SignOp) else x
        packed = find_or_make_pack(rewriter, source, op.groups.value.data, op)
        replace(rewriter, op, op.clone_with(input=packed, in_channels=op.channels_in))
        erase_dead(rewriter, [x])


@dataclass(frozen=True)
class PackBitsPass(ModulePass):
    name = "pack-bits"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([PackConvInput()])).rewrite_module(op)
