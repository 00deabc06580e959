"""fold-weight-binarization: float convs and linear layers whose input is
binarised and whose (constant-folded) weight is +-alpha per output channel
become binary ops with bit-packed weights.

Why a pass and not the importer: the importer stays faithful to the PyTorch
graph (a `bnn.conv2d` of a `bnn.sign` with the float weight PyTorch computed),
so every spelling of weight binarisation (sign(W) * mean|W|, weight STEs,
weights overwritten with +-alpha) reaches this one place as a constant, and
the decision "binary or float" is visible and testable as an IR rewrite.

  conv2d(sign(x), W)                  -> bconv2d(sign(x), bits(W)) multiplier alpha, bias
  conv2d(pad(sign(x), v), W)          -> the pad folds into padding / pad_value (v in -1, 0, +1)
  conv2d(sign(pad(x, v)), W)          -> the same with pad_value = binarize(v)
  conv2d(mul(sign(x), -1), W)         -> bconv2d(sign(x), bits(-W))   (where(x > 0, 1, -1) = -sign(-x))
  linear(sign(x), W)                  -> bdense(sign(x), bits(W)) multiplier alpha, bias
  conv2d(pad(x, 0), W)                -> conv2d(x, W) with the zero pad in its padding (any x)

W is binary when every output channel holds one magnitude alpha_c > 0, up to
a relative 1e-5 (weight STEs leave 1-ulp noise); alpha_c is the channel's most
frequent |w|, so the folded multiplier is the exact scale. The multiplier is
omitted when every alpha_c is 1. Non-binary W, or an input that is not
binarised, stays a float op (binary-weight networks on real activations).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Operation, SSAValue
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
from bnnc.dialects.bitpack import pack_bits, pack_conv_weight
from bnnc.passes._graph import const_array, erase_dead, insert_const, replace, shape_of

REL_TOL = 1e-5


# ------------------------------------------------------------ weight analysis


@dataclass
class BinaryWeight:
    """W = alpha[c] * (1 - 2 * negative)."""

    negative: np.ndarray  # bool, W's shape
    alpha: np.ndarray  # f32, (Cout,)


def detect_binary(w: np.ndarray) -> BinaryWeight | None:
    """The binary decomposition of a float weight (Cout x ...), or None."""
    if w.dtype != np.float32 or w.ndim < 2 or w.size == 0 or not np.all(np.isfinite(w)):
        return None
    mag = np.abs(w.reshape(w.shape[0], -1))
    alphas = np.empty(w.shape[0], dtype=np.float32)
    for c in range(w.shape[0]):
        values, counts = np.unique(mag[c], return_counts=True)
        alpha = values[np.argmax(counts)]
        if not alpha > 0 or np.any(np.abs(mag[c] - alpha) > REL_TOL * alpha):
            return None
        alphas[c] = alpha
    return BinaryWeight(negative=w < 0, alpha=alphas)


# ------------------------------------------------------------- input analysis


@dataclass(frozen=True)
class BinarySource:
    """A value that is N * binarize(x) inside and `pad_value` on `pads`
    (left, right, top, bottom) around it, with N = -1 when `negate`."""

    sign: SSAValue | None  # an existing bnn.sign of x, if there is one
    x: SSAValue
    negate: bool = False
    pads: tuple[int, int, int, int] | None = None
    pad_value: float = 0.0


def _is_minus_one(value: SSAValue, other: SSAValue) -> bool:
    arr = const_array(value)
    return arr is not None and arr.size >= 1 and bool(np.all(arr == -1.0)) and arr.size <= int(np.prod(shape_of(other)))


def binary_source(value: SSAValue) -> BinarySource | None:
    op = value.owner
    if isinstance(op, bnn.SignOp):
        inner = op.input.owner
        if isinstance(inner, bnn.PadOp):
            v = inner.value.value.data
            return BinarySource(None, inner.input, pads=tuple(inner.padding.get_values()), pad_value=1.0 if v >= 0 else -1.0)
        return BinarySource(value, op.input)
    if isinstance(op, bnn.MulOp) and shape_of(op.result) in (shape_of(op.lhs), shape_of(op.rhs)):
        for a, b in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
            if _is_minus_one(b, a) and shape_of(a) == shape_of(op.result):
                src = binary_source(a)
                if src is not None:
                    return dataclasses.replace(src, negate=not src.negate, pad_value=-src.pad_value)
        return None
    if isinstance(op, bnn.PadOp):
        src = binary_source(op.input)
        if src is not None and src.pads is None:
            return dataclasses.replace(src, pads=tuple(op.padding.get_values()), pad_value=op.value.value.data)
    return None


def _sign_of(rewriter: PatternRewriter, src: BinarySource, before) -> SSAValue:
    if src.sign is not None:
        return src.sign
    sign = bnn.SignOp(src.x)
    sign.location = before.location
    rewriter.insert(sign, InsertPoint.before(before))
    return sign.result


# ----------------------------------------------------------------- patterns

BINARIZED_ATTR = "bnnc.binarized"


def _explain(new: Operation, old: Operation, bw: BinaryWeight) -> None:
    """Say on the binary op why it is binary (shown by --emit=bnn)."""
    why = old.attributes.get(BINARIZED_ATTR)
    first = why.data if isinstance(why, StringAttr) else "input {-1, +1}"
    alpha = "1" if np.all(bw.alpha == 1.0) else "alpha_c"
    new.attributes[BINARIZED_ATTR] = StringAttr(f"{first}; weights +-{alpha} per output channel, bit-packed")


class ConvToBinaryConv(RewritePattern):
    """conv2d of a binarised input with +-alpha_c weights -> bconv2d."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: bnn.Conv2dOp, rewriter: PatternRewriter) -> None:
        if op.has_fused_epilogue():  # a fused epilogue (fuse-conv-bn, -relu, -maxpool) is not carried over
            return
        src = binary_source(op.input)
        w = const_array(op.weight)
        if src is None or w is None:
            return
        bw = detect_binary(w)
        if bw is None:
            return
        (sh, sw), (ph, pw), (dh, dw) = op.window()
        negative = bw.negative
        if src.pads is None:
            folded, padding, pad_value = True, (ph, pw), 0
        else:
            l, r, t, b = src.pads
            pv = src.pad_value
            symmetric = l == r and t == b
            if symmetric and pv in (-1.0, 0.0, 1.0) and (pv == 0.0 or (ph, pw) == (0, 0)):
                folded, padding = True, (ph + t, pw + l)
                pad_value = int(-pv if src.negate else pv)
            elif pv in (-1.0, 1.0):
                # the padded tensor is +-1 everywhere: binarise it as it is
                folded, padding, pad_value = False, (ph, pw), 0
            else:
                return
        if folded:
            x = _sign_of(rewriter, src, op)
            if src.negate:
                negative = ~negative
        else:
            x = op.input
        weight = insert_const(rewriter, pack_conv_weight(negative), op)
        mult = None if np.all(bw.alpha == 1.0) else insert_const(rewriter, bw.alpha, op)
        new = bnn.BConv2dOp(
            x,
            weight,
            op.result.type,
            strides=(sh, sw),
            padding=padding,
            dilations=(dh, dw),
            groups=op.groups.value.data,
            pad_value=pad_value,
            multiplier=mult,
            bias=op.bias,
        )
        _explain(new, op, bw)
        old = list(op.operands)
        replace(rewriter, op, new)
        erase_dead(rewriter, old)


class LinearToBinaryDense(RewritePattern):
    """linear of a binarised input with +-alpha_m weights -> bdense."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: bnn.LinearOp, rewriter: PatternRewriter) -> None:
        src = binary_source(op.input)
        w = const_array(op.weight)
        if src is None or src.pads is not None or w is None:
            return
        bw = detect_binary(w)
        if bw is None:
            return
        negative = ~bw.negative if src.negate else bw.negative
        x = _sign_of(rewriter, src, op)
        weight = insert_const(rewriter, pack_bits(negative), op)
        mult = None if np.all(bw.alpha == 1.0) else insert_const(rewriter, bw.alpha, op)
        old = list(op.operands)
        new = bnn.BDenseOp(x, weight, op.result.type, multiplier=mult, bias=op.bias)
        _explain(new, op, bw)
        replace(rewriter, op, new)
        erase_dead(rewriter, old)


class FoldZeroPadIntoConv(RewritePattern):
    """conv2d(pad(x, 0) symmetric) -> conv2d(x) with the pad in its own zero padding."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: bnn.Conv2dOp, rewriter: PatternRewriter) -> None:
        pad = op.input.owner
        if op.has_fused_epilogue() or not isinstance(pad, bnn.PadOp) or pad.value.value.data != 0.0:
            return
        l, r, t, b = pad.padding.get_values()
        if l != r or t != b:
            return
        (sh, sw), (ph, pw), (dh, dw) = op.window()
        new = bnn.Conv2dOp(
            pad.input,
            op.weight,
            op.result.type,
            strides=(sh, sw),
            padding=(ph + t, pw + l),
            dilations=(dh, dw),
            groups=op.groups.value.data,
            bias=op.bias,
        )
        replace(rewriter, op, new)
        erase_dead(rewriter, [pad.result])


@dataclass(frozen=True)
class FoldWeightBinarizationPass(ModulePass):
    name = "fold-weight-binarization"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(
            GreedyRewritePatternApplier([ConvToBinaryConv(), LinearToBinaryDense(), FoldZeroPadIntoConv()]),
            apply_recursively=True,
        ).rewrite_module(op)
