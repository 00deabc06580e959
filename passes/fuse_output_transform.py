"""fuse-output-transform: the float ops that follow a binary conv or dense
layer (per-channel scale, bias, inference batch norm, ReLU, PReLU, hardtanh /
clamp) become that op's output transform, so the float result is written
once instead of once per op.

The transform is, in this order (bnn._OutputTransformOp):
    v = fma(dot, multiplier, bias)  ->  PReLU(slope)  ->  clamp(clamp_min, clamp_max)
so a rewrite is only done when the op keeps that order:
  - mul / div / add / sub by a per-channel constant and batch_norm fold into
    multiplier and bias, but only while there is no slope and no clamp yet (an
    affine op after a PReLU or clamp is not foldable and is left alone);
  - prelu folds only while there is no slope and no clamp;
  - relu and hardtanh fold into the clamp while there is no post affine: a
    clamp after a clamp intersects the bounds,
    clamp(clamp(v, a, b), c, d) = clamp(v, min(max(a, c), d), min(max(b, c), d));
  - after a PReLU or clamp, one mul by a per-channel constant and then one add
    (or sub) of one become the post-activation affine (post_multiplier,
    post_bias: an inference batch norm after the activation, as TFLite's
    QuickNet has), applied as that same mul and add, so bit-identical.
The intermediate value must have a single use (the op that folds).

Folded parameters are computed in float32 as PyTorch computes them (batch
norm: bnn.batch_norm_affine, applied as one fma like PyTorch's kernel); folding
a bias into a later scale changes rounding only within float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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
from bnnc.passes._graph import (
    channel_vector,
    const_array,
    erase_dead,
    insert_const,
    replace,
    single_user,
)


@dataclass
class Transform:
    """An output transform being built (None = absent)."""

    channels: int
    multiplier: np.ndarray | None
    bias: np.ndarray | None
    slope: np.ndarray | None
    lo: float | None
    hi: float | None
    post_multiplier: np.ndarray | None = None
    post_bias: np.ndarray | None = None

    @property
    def affine_only(self) -> bool:
        return self.slope is None and self.lo is None and self.hi is None

    @property
    def has_post(self) -> bool:
        return self.post_multiplier is not None or self.post_bias is not None

    def scale(self, c: np.ndarray) -> None:
        self.multiplier = c.copy() if self.multiplier is None else (self.multiplier * c).astype(np.float32)
        if self.bias is not None:
            self.bias = (self.bias * c).astype(np.float32)

    def shift(self, c: np.ndarray) -> None:
        self.bias = c.copy() if self.bias is None else (self.bias + c).astype(np.float32)

    def clamp(self, c: float | None, d: float | None) -> None:
        inf = float("inf")
        a = -inf if self.lo is None else self.lo
        b = inf if self.hi is None else self.hi
        c = -inf if c is None else c
        d = inf if d is None else d
        lo, hi = min(max(a, c), d), min(max(b, c), d)
        self.lo = None if lo == -inf else lo
        self.hi = None if hi == inf else hi


def _transform_of(op: bnn.BConv2dOp | bnn.BDenseOp, channels: int) -> Transform | None:
    operands = (op.multiplier, op.bias, op.slope, op.post_multiplier, op.post_bias)
    arrays = [const_array(v) if v is not None else None for v in operands]
    if any(v is not None and a is None for v, a in zip(operands, arrays)):
        return None  # non-constant transform operands: leave the op alone
    m, b, s, pm, pb = arrays
    return Transform(channels, m, b, s, *op.clamp_bounds(), post_multiplier=pm, post_bias=pb)


def _fold_post(user: Operation, lhs_is_r: bool, c: np.ndarray, t: Transform) -> bool:
    """A mul, then an add or sub, by a per-channel constant after the
    activation: the post affine, in the graph's own operations."""
    if isinstance(user, bnn.MulOp) and not t.has_post:
        t.post_multiplier = c
        return True
    if isinstance(user, bnn.AddOp) and t.post_bias is None:
        t.post_bias = c
        return True
    if isinstance(user, bnn.SubOp) and lhs_is_r and t.post_bias is None:
        t.post_bias = (-c).astype(np.float32)  # v - c is v + (-c) exactly
        return True
    return False


def _fold(user: Operation, producer: Operation, t: Transform) -> bool:
    """Fold `user` (whose operand is the producer's result) into `t`; False if it does not fold."""
    r = producer.results[0]
    if len(user.results) != 1 or user.results[0].type != r.type:
        return False
    if isinstance(user, (bnn.MulOp, bnn.AddOp, bnn.SubOp, bnn.DivOp)):
        lhs_is_r = user.lhs == r
        other = user.rhs if lhs_is_r else user.lhs
        if other == r:
            return False
        c = channel_vector(other, r)
        if c is None:
            return False
        if not t.affine_only:
            return _fold_post(user, lhs_is_r, c, t)
        if isinstance(user, bnn.MulOp):
            t.scale(c)
        elif isinstance(user, bnn.AddOp):
            t.shift(c)
        elif isinstance(user, bnn.SubOp):
            if lhs_is_r:
                t.shift(-c)
            else:  # c - v
                t.scale(np.full(t.channels, -1.0, np.float32))
                t.shift(c)
        else:
            if not lhs_is_r:
                return False  # c / v is not affine
            t.multiplier = (np.float32(1.0) / c).astype(np.float32) if t.multiplier is None else (t.multiplier / c).astype(np.float32)
            if t.bias is not None:
                t.bias = (t.bias / c).astype(np.float32)
        return True
    if isinstance(user, bnn.BatchNormOp):
        if not t.affine_only or user.input != r:
            return False
        params = [const_array(v) for v in (user.mean, user.var, user.gamma, user.beta)]
        if any(p is None for p in params):
            return False
        scale, shift = bnn.batch_norm_affine(*params, user.epsilon.value.data)
        t.scale(scale)
        t.shift(shift)
        return True
    if isinstance(user, bnn.ReluOp) and not t.has_post:
        t.clamp(0.0, None)
        return True
    if isinstance(user, bnn.HardtanhOp) and not t.has_post:
        t.clamp(user.min_val.value.data, user.max_val.value.data)
        return True
    if isinstance(user, bnn.PReluOp):
        if not t.affine_only or user.input != r:
            return False
        s = const_array(user.slope)
        if s is None:
            return False
        t.slope = np.broadcast_to(s.reshape(-1).astype(np.float32), (t.channels,)).copy()
        return True
    return False


class FuseIntoBinaryOp(RewritePattern):
    """A bconv2d / bdense with a float result and a single, foldable user absorbs it."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, (bnn.BConv2dOp, bnn.BDenseOp)) or op.threshold is not None:
            return
        if isinstance(op, bnn.BConv2dOp) and op.residual is not None:
            return  # the transform comes before the residual add (fuse-residual-add)
        user = single_user(op.result)
        if user is None:
            return
        channels = op.out_channels if isinstance(op, bnn.BConv2dOp) else op.result.type.get_shape()[1]
        t = _transform_of(op, channels)
        if t is None or not _fold(user, op, t):
            return
        operands = {
            "multiplier": None if t.multiplier is None else insert_const(rewriter, t.multiplier.astype(np.float32), op),
            "bias": None if t.bias is None else insert_const(rewriter, t.bias.astype(np.float32), op),
            "slope": None if t.slope is None else insert_const(rewriter, t.slope, op),
            "clamp_min": t.lo,
            "clamp_max": t.hi,
            "post_multiplier": None if t.post_multiplier is None else insert_const(rewriter, t.post_multiplier.astype(np.float32), op),
            "post_bias": None if t.post_bias is None else insert_const(rewriter, t.post_bias.astype(np.float32), op),
        }
        new = op.clone_with(**operands)
        old_operands = list(op.operands) + list(user.operands)
        new.location = op.location
        replace(rewriter, user, new)
        new.location = op.location
        rewriter.erase(op)
        erase_dead(rewriter, [v for v in old_operands if v is not op.result])


@dataclass(frozen=True)
class FuseOutputTransformPass(ModulePass):
    name = "fuse-output-transform"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([FuseIntoBinaryOp()]), apply_recursively=True).rewrite_module(op)
