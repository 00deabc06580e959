"""fuse-bn-pack: an inference batch norm whose result is packed (batch norm ->
sign -> binary convs, after pack-bits) becomes per-channel thresholds of the
pack, which reads the batch norm's input:

    pack(batch_norm(x))      becomes   pack(x) threshold t direction d
    bit[c] = fma(x, scale[c], shift[c]) < 0     bit[c] = x * d[c] < t[c]

The batch norm must be read only by packs (BinaryDenseNet's layers: a
batch norm after a concat, then sign and a binary conv); then its float
tensor is never written. One with a float reader too (XNOR-Net's, whose
scaling factor averages |batch norm|) stays as it is.

Exact, with the batch norm's float semantics (bnn.batch_norm_affine, one
fused multiply-add rounded to f32): the rounded value is negative exactly
when the exact x * scale + shift is below -2^-150 (above it rounds to a zero),
which is monotone in x, so for scale > 0 the set of x giving bit 1 is all x
below some f32 t (found by bisection over the f32 values in order, each step
decided exactly: the product is exact in f64 and TwoSum gives the sum's
error); scale < 0 is the same for -x (direction -1). x = +-inf follows (the
fma is +-inf) and NaN gives 0 on both sides. A channel with scale 0 and a
negative shift (bit 1 for every finite x, 0 for infinities) or a non-finite
scale or shift has no threshold: then the batch norm stays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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
from bnnc.passes._graph import const_array, erase_dead, insert_const, replace

# An f32 rounding of v is negative iff v < this (above it, v rounds to -0.0 or more).
ROUNDS_NEGATIVE_BELOW = -(2.0**-150)


def _keys(values: np.ndarray) -> np.ndarray:
    """Integers in the order of the f32 `values` (-0.0 just below +0.0)."""
    bits = values.astype(np.float32).view(np.uint32).astype(np.int64)
    return np.where(bits < 2**31, bits, -(bits & 0x7FFFFFFF) - 1)


def _values(keys: np.ndarray) -> np.ndarray:
    bits = np.where(keys >= 0, keys, (-(keys + 1)) | 0x80000000).astype(np.uint32)
    return bits.view(np.float32)


def _fma_below_zero(x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Whether f32(x * scale + shift), rounded once, is < 0, for f32 x, scale,
    shift (finite scale and shift; x may be infinite)."""
    p = x.astype(np.float64) * scale.astype(np.float64)  # exact: 24 + 24 bits
    b = shift.astype(np.float64)
    with np.errstate(invalid="ignore"):
        r = p + b
        bb = r - p
        e = (p - (r - bb)) + (b - bb)  # TwoSum: r + e = p + b exactly
    return (r < ROUNDS_NEGATIVE_BELOW) | ((r == ROUNDS_NEGATIVE_BELOW) & (e < 0))


def pack_thresholds(scale: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(threshold, direction), f32 per channel, with f32(fma(x, scale, shift))
    < 0 iff x * direction < threshold for every f32 x (NaN: neither); None
    if some channel has none."""
    scale, shift = scale.astype(np.float32), shift.astype(np.float32)
    if not (np.isfinite(scale).all() and np.isfinite(shift).all()):
        return None
    if ((scale == 0) & (shift < 0)).any():
        return None
    direction = np.where(scale < 0, np.float32(-1), np.float32(1))
    positive = np.abs(scale)
    # bit(x) for scale < 0 is bit(-x) for -scale: find, per channel, the first
    # x in f32 order whose bit is 0 (-inf has bit 1 unless scale is 0, +inf has 0)
    lo = np.full(scale.shape, _keys(np.array([-np.inf]))[0])
    hi = np.full(scale.shape, _keys(np.array([np.inf]))[0])
    zero = positive == 0  # shift >= 0: bit 0 everywhere, threshold -inf
    while True:
        open_ = (hi - lo > 1) & ~zero
        if not open_.any():
            break
        mid = (lo + hi) // 2
        below = _fma_below_zero(_values(mid), positive, shift)
        lo = np.where(open_ & below, mid, lo)
        hi = np.where(open_ & ~below, mid, hi)
    threshold = np.where(zero, np.float32(-np.inf), _values(hi))
    return threshold.astype(np.float32), direction


class PackReadsBatchNormInput(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: bnn.PackOp, rewriter: PatternRewriter) -> None:
        bn = op.input.owner
        if op.threshold is not None or not isinstance(bn, bnn.BatchNormOp):
            return
        if (bn.channels_last is None) != (op.channels_last is None):
            return
        if not all(isinstance(use.operation, bnn.PackOp) for use in bn.result.uses):
            return  # (a float reader keeps the batch norm: the pack would save nothing)
        params = [const_array(v) for v in (bn.mean, bn.var, bn.gamma, bn.beta)]
        if any(p is None for p in params):
            return
        scale, shift = bnn.batch_norm_affine(*params, bn.epsilon.value.data)
        found = pack_thresholds(scale.reshape(-1), shift.reshape(-1))
        if found is None:
            return
        threshold, direction = (insert_const(rewriter, a, op) for a in found)
        pack = bnn.PackOp(bn.input, op.groups.value.data, op.channels_last is not None, threshold, direction)
        replace(rewriter, op, pack)
        erase_dead(rewriter, [bn.result])


@dataclass(frozen=True)
class FuseBnPackPass(ModulePass):
    name = "fuse-bn-pack"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([PackReadsBatchNormInput()])).rewrite_module(op)
