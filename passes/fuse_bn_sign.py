"""fuse-bn-sign: a binary conv whose float result is only binarised again
(conv -> transform -> sign -> binary convs) writes packed bits directly,
through one integer threshold per output channel. Larq Compute Engine calls
this writing bitpacked output; it removes the float activation tensor, the
sign and the pack between two binary layers.

    bit[o] = dot[o] < threshold[o]        (bit 1 = -1)

The threshold is derived from the output transform
v(dot) = clamp(prelu(fma(dot, m, b))) so that the bit equals binarize(v) as
PyTorch computes v in float32 (its BN is one fused multiply-add): dot is an
integer in [-K, K] (K = KH*KW*Cin/groups), so v is evaluated at every integer of
that range (exact in float64, rounded once to float32, then the same PReLU and
clamp as the float epilogue) and the bit pattern is read off:
  - v < 0 exactly for dot < t (m > 0, or slope > 0 below zero): threshold t;
  - v < 0 exactly for dot >= s (m < 0): that channel's weight bits are flipped
    (dot' = -dot; its correction row is negated), threshold 1 - s;
  - never / always negative (m = 0, PReLU slope <= 0, a clamp that never
    crosses 0): threshold -K / K + 1, a constant bit.
A channel that is neither (impossible for this transform) leaves the op alone.

The producer's float result must be used only by bnn.sign ops (or bnn.pack)
whose every use reads bits: a bnn.bconv2d input or a bnn.pack. All of them
must agree on the channel groups, which become the producer's `out_groups`;
the consumers take the packed value (`in_channels` set).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType, i64
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from bnnc.dialects import bnn
from bnnc.dialects.bitpack import binarized_description, epilogue_offsets, packed_words, valid_bit_mask
from bnnc.passes._graph import (
    binary_consumers,
    const_array,
    erase_dead,
    feed_packed,
    insert_const,
)


def sign_thresholds(
    k: int,
    multiplier: np.ndarray,
    bias: np.ndarray,
    slope: np.ndarray | None,
    lo: float | None,
    hi: float | None,
    description: str | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(threshold i64[C], flip bool[C]) with binarize(v(dot)) = -1 iff dot' < threshold,
    dot' = -dot where flip; None if some channel is not monotone. `description`
    (the layer's bnnc.binarized text) selects the popcount form's exact offsets."""
    dots = np.arange(-k, k + 1, dtype=np.float64)  # exact: k < 2**24
    # fma(dot, m, b): the product is exact in float64 (24 + 24 bits), so only the sum rounds;
    # a bias f32(m * j) is the integer offset (dot + j) * m instead, as the lowering computes it
    m64 = multiplier[:, None].astype(np.float64)
    v = (dots[None, :] * m64 + bias[:, None].astype(np.float64)).astype(np.float32)
    offsets = epilogue_offsets(multiplier, bias, description)
    if offsets is not None:
        exact = ((dots[None, :] + offsets[:, None]) * m64).astype(np.float32)
        v = np.where((offsets != 0)[:, None], exact, v)
    if slope is not None:
        v = np.where(v > 0, v, slope[:, None].astype(np.float32) * v)
    if lo is not None:
        v = np.where(v < np.float32(lo), np.float32(lo), v)
    if hi is not None:
        v = np.where(v > np.float32(hi), np.float32(hi), v)
    negative = v < 0  # binarize(v) = -1; NaN compares false (+1), as bnn.sign
    n = 2 * k + 1
    thresholds = np.empty(len(multiplier), dtype=np.int64)
    flips = np.zeros(len(multiplier), dtype=bool)
    for o, row in enumerate(negative):
        count = int(row.sum())
        if count == 0 or row[:count].all():  # prefix: dot < -k + count
            thresholds[o] = -k + count
        elif row[n - count :].all():  # suffix: dot >= s  <=>  -dot < 1 - s
            s = -k + (n - count)
            thresholds[o] = 1 - s
            flips[o] = True
        else:
            return None
    return thresholds, flips


class BinaryConvWritesBits(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: bnn.BConv2dOp, rewriter: PatternRewriter) -> None:
        if op.threshold is not None or op.residual is not None:
            return  # (a residual's sum is not a function of the dot alone)
        if op.post_multiplier is not None or op.post_bias is not None:
            return  # thresholds are derived for fma -> PReLU -> clamp only
        # users: signs (each read only as bits) and packs
        signs: list[Operation] = []
        consumers: list[Operation] = []
        groups: set[int] = set()
        for use in op.result.uses:
            user = use.operation
            if isinstance(user, bnn.SignOp):
                found = binary_consumers(user.result)
                if found is None:
                    return
                signs.append(user)
                consumers.append((user, found[0]))
                groups.add(found[1])
            elif isinstance(user, bnn.PackOp) and user.threshold is None:
                consumers.append((None, [user]))
                groups.add(user.groups.value.data)
            else:
                return
        if len(groups) != 1:
            return
        out_groups = groups.pop()
        co = op.out_channels
        if co % out_groups:
            return
        kh, kw = op.kernel_size
        cg = op.channels_in // op.groups.value.data
        k = kh * kw * cg
        arrays = {name: (const_array(v) if v is not None else None) for name, v in (("m", op.multiplier), ("b", op.bias), ("s", op.slope))}
        if any(v is not None and arrays[name] is None for name, v in (("m", op.multiplier), ("b", op.bias), ("s", op.slope))):
            return
        weight = const_array(op.weight)
        correction = const_array(op.correction) if op.correction is not None else None
        if weight is None or (op.correction is not None and correction is None):
            return
        m = arrays["m"] if arrays["m"] is not None else np.ones(co, np.float32)
        b = arrays["b"] if arrays["b"] is not None else np.zeros(co, np.float32)
        found = sign_thresholds(k, m, b, arrays["s"], *op.clamp_bounds(), binarized_description(op))
        if found is None:
            return
        thresholds, flips = found
        if flips.any():
            weight = weight.copy()
            weight[flips] ^= valid_bit_mask(cg)
            if correction is not None:
                correction = correction.copy()
                correction[flips] = -correction[flips]
        n, _, oh, ow = op.result.type.get_shape()
        result_type = TensorType(i64, [n, packed_words(co, out_groups), oh, ow])
        new = op.clone_with(
            result_type=result_type,
            weight=insert_const(rewriter, weight, op) if flips.any() else op.weight,
            correction=(insert_const(rewriter, correction, op) if flips.any() else op.correction) if correction is not None else None,
            threshold=insert_const(rewriter, thresholds, op),
            multiplier=None,
            bias=None,
            slope=None,
            clamp_min=None,
            clamp_max=None,
            out_groups=out_groups,
        )
        new.location = op.location
        old = list(op.operands)
        rewriter.insert(new, _after(op))
        for sign, users in consumers:
            feed_packed(rewriter, users, new.result, co)
            if sign is not None and not sign.result.uses:
                rewriter.erase(sign)
        rewriter.erase(op)
        erase_dead(rewriter, old)


def _after(op: Operation):
    from xdsl.rewriter import InsertPoint

    return InsertPoint.after(op)


@dataclass(frozen=True)
class FuseBnSignPass(ModulePass):
    name = "fuse-bn-sign"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([BinaryConvWritesBits()])).rewrite_module(op)
