"""fold-negation: `bnn.mul(conv, -1)` becomes the conv itself with a negated
output transform, so the negation costs nothing at run time.

A user's example pass (see docs/writing-a-pass.md), loaded with
`--load-pass-plugin=examples/passes/fold_negation.py`; it imports only xDSL,
NumPy and bnnc's public modules, as a pass outside this repository would.

A binary conv with a float result computes v = fma(dot, multiplier, bias)
(multiplier 1 and bias 0 when absent), so
    -v = fma(dot, -multiplier, -bias)
exactly: negation is exact in floating point and commutes with the single
rounding of the fma. That is only true of the affine part of the transform, so
the rewrite is done only when:
  - the other operand of the mul is an `arith.constant` whose every element is
    -1.0, of any shape that broadcasts to the conv's result without changing
    its shape (tensor<f32>, tensor<1xf32>, a per-channel tensor<1xCx1x1xf32>...);
  - the conv has a float result (no threshold), no slope (PReLU) and no clamp:
    -PReLU(v) and -clamp(v) are not affine in v;
  - its multiplier and bias, when present, are constants (they are negated
    here, into new constants, since other ops may share them);
  - the mul is the conv result's only use (otherwise the conv would have to
    be kept as well, and nothing would be saved).
Everything else is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import arith
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, ModuleOp, f32
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
from bnnc.dialects.dense import from_numpy, to_numpy


def constant_array(value: SSAValue) -> np.ndarray | None:
    """The value of a dense `arith.constant` as a NumPy array, else None."""
    op = value.owner
    if isinstance(op, arith.ConstantOp) and isinstance(op.value, DenseIntOrFPElementsAttr):
        return to_numpy(op.value)
    return None


def is_minus_one(value: SSAValue) -> bool:
    array = constant_array(value)
    return array is not None and array.dtype == np.float32 and array.size > 0 and bool(np.all(array == -1.0))


def negated(value: SSAValue | None, channels: int, rewriter: PatternRewriter, before: bnn.BConv2dOp) -> SSAValue:
    """A new constant holding -value (-1 per channel when value is None)."""
    array = np.full(channels, -1.0, np.float32) if value is None else -constant_array(value)
    const = arith.ConstantOp(from_numpy(array.astype(np.float32), f32))
    rewriter.insert_op(const, InsertPoint.before(before))
    return const.result


class FoldNegationIntoConv(RewritePattern):
    """bnn.mul(%conv, -1) or bnn.mul(-1, %conv) -> %conv' with a negated transform."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, mul: bnn.MulOp, rewriter: PatternRewriter) -> None:
        for conv_value, other in ((mul.lhs, mul.rhs), (mul.rhs, mul.lhs)):
            conv = conv_value.owner
            if isinstance(conv, bnn.BConv2dOp) and is_minus_one(other):
                break
        else:
            return
        if mul.result.type != conv.result.type:
            return  # the constant broadcasts the conv's result to a larger shape
        if conv.threshold is not None or conv.slope is not None:
            return
        if conv.clamp_min is not None or conv.clamp_max is not None:
            return
        if not conv.result.has_one_use():
            return
        if any(v is not None and constant_array(v) is None for v in (conv.multiplier, conv.bias)):
            return  # a computed multiplier or bias: not ours to negate

        channels = conv.out_channels
        multiplier = negated(conv.multiplier, channels, rewriter, conv)
        bias = None if conv.bias is None else negated(conv.bias, channels, rewriter, conv)
        # the same conv (window, padding, attributes, location) with the negated transform
        new_conv = conv.clone_with(multiplier=multiplier, bias=bias)
        rewriter.insert_op(new_conv, InsertPoint.before(conv))
        rewriter.replace_op(mul, [], [new_conv.result])
        rewriter.erase_op(conv)
        # The old multiplier / bias / -1 constants may now be dead: `dce` or
        # `canonicalize` (both in bnnc's graph pipeline) remove them.


@dataclass(frozen=True)
class FoldNegationPass(ModulePass):
    name = "fold-negation"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([FoldNegationIntoConv()]), apply_recursively=True).rewrite_module(op)
