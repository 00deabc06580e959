"""fuse-conv-maxpool: a max pool reading a channels-last float conv becomes
part of that conv (ResNet-style stems: 7x7/2 conv -> BN -> 3x3/2 max pool).

Why: unfused, the stem conv stores its whole N x OH x OW x C result (3.2 MB
at 224x224, past L2) and the pool reads it back nine times per output.
Fused, each conv tile's epilogue folds its values into the pooled outputs
whose windows hold them, while they are still in registers; the conv's own
output never goes to memory.

Why it is exact: the pool's result for one output is PyTorch's rule applied
tap by tap in row-major window order from -inf (take v if v > max or v is
NaN). The fused kernel starts every pooled output at -inf and applies the
same rule as each conv value is produced; the conv visits its outputs row by
row, left to right, for every channel, which is the window's order. Every
conv value is the same float as unfused (same kernel, same epilogue), so the
result is the unfused bits, NaN payloads and the first of equal values
(-0.0 vs 0.0) included.

Fused only when the conv writes NHWC (`channels_last`, set by channels-last:
the kernel that stores whole channel vectors), the pool is channels-last with
dilation 1, the conv has no fused pool yet, and the pool is the conv's only
reader.
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


class FuseMaxPoolIntoConv(RewritePattern):
    """max_pool2d(conv2d(x)) -> conv2d(x) {pool_kernel, pool_strides, pool_padding}."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: bnn.MaxPool2dOp, rewriter: PatternRewriter) -> None:
        conv = op.input.owner
        if not isinstance(conv, bnn.Conv2dOp) or conv.channels_last is None or conv.max_pool() is not None:
            return
        if not op.is_channels_last() or single_user(conv.result) is not op:
            return
        _, _, (dh, dw) = op.window()
        if (dh, dw) != (1, 1):
            return
        props = dict(conv.properties)
        props["pool_kernel"] = op.kernel
        props["pool_strides"] = op.strides
        props["pool_padding"] = op.padding
        if op.ceil_mode is not None:
            props["pool_ceil_mode"] = UnitAttr()
        new = bnn.Conv2dOp.create(
            operands=list(conv.operands),
            result_types=[op.result.type],
            properties=props,
            attributes=dict(conv.attributes),
        )
        replace(rewriter, op, new)
        new.location = conv.location  # the conv's module path names the layer
        rewriter.erase(conv)


@dataclass(frozen=True)
class FuseConvMaxpoolPass(ModulePass):
    name = "fuse-conv-maxpool"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(
            GreedyRewritePatternApplier([FuseMaxPoolIntoConv()]), apply_recursively=True
        ).rewrite_module(op)
