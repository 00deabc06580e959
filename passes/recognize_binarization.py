"""recognize-binarization: tensors that can take only two values, chosen by
the sign of another tensor, become bnn.sign; convs and linear layers fed by
them are rewritten so fold-weight-binarization can make them binary.

Frontends translate faithfully (torch.sign is the three-valued bnn.signum,
comparisons and where are bnn.compare / bnn.where, STEs are arithmetic), so
this pass is where every spelling of a binariser is recognised, for every
frontend alike. It reads the value-set analysis (_value_sets.py):

  two values {-1, +1}, chosen by x >= 0   -> bnn.sign(x)
  two values {-1, +1}, chosen by x > 0    -> -bnn.sign(-x)   (0 goes to -1)
  conv/linear of {-a_c, +a_c}             -> conv/linear of bnn.sign(x) with W * a_c
                                             (exact: each product is the same float)
  conv/linear of {0, a_c} (unipolar)      -> 0.5 * (conv of bnn.sign(x) padded with -1, with W * a_c)
                                             + 0.5 * sum(W * a_c): the popcount form of a
                                             {0,1} input, when W * a_c is +-alpha per channel

A comparison with a threshold, x `pred` t for a finite nonzero constant t
(scalar or per channel), is first read as (x - t) `pred` 0, which is the same
predicate in IEEE float32: x - t rounds to 0 only when x == t (gradual
underflow), keeps the sign of the exact difference otherwise, and is NaN only
when x is. So where(x >= t, 1, -1) is bnn.sign(x - t). A comparison that
does not become a binariser gets its operands back; one the analysis reads
as it is (a clamp's) is never shifted.

torch.sign of a float is compiled as binarize (its 0 taken as +1) only where
its result reaches a conv or linear layer and its input is not exactly 0 by
construction; elsewhere it stays bnn.signum. A torch.sign of a value that is
exactly 0 by construction on some inputs (a bias-free binary conv's integer
accumulator, zero padding) is three-valued and stays a float op, which
computes PyTorch's result exactly. What the pass decided is written on each
rewritten conv/linear as the `bnnc.binarized` attribute.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from xdsl.context import Context
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import BytesAttr, DenseIntOrFPElementsAttr, ModuleOp, StringAttr, TensorType, f32
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from bnnc.dialects import bnn
from bnnc.passes._graph import const_array, shape_of
from bnnc.passes._value_sets import Piecewise, TwoValued, ValueSets, two_valued
from bnnc.passes.fold_weight_binarization import detect_binary

# Users through which a binarised tensor reaches a conv or linear layer.
_BINARY_BOUND = (bnn.Conv2dOp, bnn.LinearOp, bnn.PadOp, bnn.ReshapeOp, bnn.MaxPool2dOp, bnn.CatOp)
RECOGNIZED_ATTR = "bnnc.binarized"  # read by fold-weight-binarization


class _Builder:
    """Inserts new ops before one op, with the location of the op they replace."""

    def __init__(self, before: Operation, replaced: Operation | None = None):
        self.before = before
        self.location = (replaced or before).location

    def add(self, op: Operation) -> SSAValue:
        op.location = self.location
        Rewriter.insert_op(op, InsertPoint.before(self.before))
        return op.results[0]

    def const(self, array: np.ndarray) -> SSAValue:
        arr = np.ascontiguousarray(array, dtype="<f4")
        typ = TensorType(f32, list(arr.shape) or [1])
        return self.add(arith.ConstantOp(DenseIntOrFPElementsAttr(typ, BytesAttr(arr.tobytes()))))


def _canonical_sign(b: _Builder, tv: TwoValued) -> SSAValue:
    """The {-1, +1} tensor hi/lo of `tv` chooses between: sign(x), or -sign(-x) when strict."""
    x = tv.src
    if not tv.strict:
        return b.add(bnn.SignOp(x))
    rank = len(shape_of(x))
    minus = b.const(np.full([1] * rank, -1.0, dtype=np.float32))
    neg = b.add(bnn.MulOp(x, minus, x.type))
    return b.add(bnn.MulOp(b.add(bnn.SignOp(neg)), minus, x.type))


def _live(tv: TwoValued | None, replaced: dict[SSAValue, SSAValue]) -> TwoValued | None:
    """tv with its source redirected to the rewrite of a layer this pass already
    replaced (the value sets were computed before it; its old result is erased)."""
    if tv is None or tv.src not in replaced:
        return tv
    return replace(tv, src=replaced[tv.src])


def _feeds_binary(v: SSAValue) -> bool:
    return any(isinstance(u.operation, _BINARY_BOUND) for u in v.uses)


def _is_canonical(v: SSAValue) -> bool:
    op = v.owner
    if isinstance(op, bnn.SignOp):
        return True
    return (
        isinstance(op, bnn.MulOp)
        and isinstance(op.lhs.owner, bnn.SignOp)
        and (c := const_array(op.rhs)) is not None
        and bool(np.all(c == -1.0))
    )


def _per_channel(a: np.ndarray, shape: tuple[int, ...], axis: int = 1) -> np.ndarray | None:
    """`a` as one value per channel (axis `axis`) of a tensor of `shape`, if it is constant across the other axes."""
    try:
        full = np.broadcast_to(a, shape)
    except ValueError:
        return None
    moved = np.moveaxis(full, axis, 0).reshape(shape[axis], -1)
    if not np.all(moved == moved[:, :1]):
        return None
    return moved[:, 0].astype(np.float32)


def _input_scale(weight: np.ndarray, per_in: np.ndarray, groups: int) -> np.ndarray:
    """weight * a[input channel of each weight element] (conv: Cout x Cin/g x kh x kw; linear: Cout x Cin)."""
    cout, cin_g = weight.shape[0], weight.shape[1]
    group = np.arange(cout) // (cout // groups)
    channel = group[:, None] * cin_g + np.arange(cin_g)[None, :]  # Cout x Cin/g
    scale = per_in[channel].reshape(cout, cin_g, *([1] * (weight.ndim - 2)))
    return np.multiply(weight, scale, dtype=np.float32)


@dataclass
class _Layer:
    """A conv2d or linear op and the facts about it this pass uses."""

    op: bnn.Conv2dOp | bnn.LinearOp

    @property
    def is_conv(self) -> bool:
        return isinstance(self.op, bnn.Conv2dOp)

    def rebuild(self, b: _Builder, x: SSAValue, weight: np.ndarray, bias: SSAValue | None, padding=None) -> SSAValue:
        op = self.op
        w = b.const(weight)
        if isinstance(op, bnn.Conv2dOp):
            (sh, sw), pad, (dh, dw) = op.window()
            new = bnn.Conv2dOp(
                x,
                w,
                op.result.type,
                strides=(sh, sw),
                padding=pad if padding is None else padding,
                dilations=(dh, dw),
                groups=op.groups.value.data,
                bias=bias,
            )
        else:
            new = bnn.LinearOp(x, w, op.result.type, bias)
        return b.add(new)


def _rewrite_layer(op: bnn.Conv2dOp | bnn.LinearOp, vs: ValueSets, replaced: dict[SSAValue, SSAValue]) -> bool:
    """Rewrite a conv/linear whose input is {-a, +a} or {0, a} per channel; True if
    done (`replaced` then maps its old result to the new one)."""
    if isinstance(op, bnn.Conv2dOp) and op.has_fused_epilogue():
        return False
    tv = _live(vs.two_valued(op.input), replaced)
    weight = const_array(op.weight)
    if tv is None or weight is None or tv.is_unit_bipolar():
        return False
    if tv.by_contract and not _feeds_binary(op.input):
        return False
    shape = shape_of(op.input)
    lo, hi = _per_channel(tv.lo, shape), _per_channel(tv.hi, shape)
    if lo is None or hi is None:
        return False
    groups = op.groups.value.data if isinstance(op, bnn.Conv2dOp) else 1
    layer = _Layer(op)
    b = _Builder(op)
    if np.array_equal(lo, -hi) and np.all(hi > 0):
        # {-a_c, +a_c}: (a_c * s) * w == s * (a_c * w) for s = +-1, term by term
        x = _canonical_sign(b, tv)
        out = layer.rebuild(b, x, _input_scale(weight, hi, groups), op.bias)
        kind = "{-a, +a} (scale folded into the weights)"
    elif np.all(lo == 0.0) and np.all(hi > 0):
        w = _input_scale(weight, hi, groups)
        binary = detect_binary(w)
        if binary is None:
            return False  # a {0, a} input on float weights stays a float layer
        # u in {0, 1} is (1 + s) / 2 with s = +-1; zero-padded taps are s = -1
        s = _canonical_sign(b, tv)
        padding = None
        if layer.is_conv:
            (_, _), (ph, pw), _ = op.window()
            if ph or pw:
                padded = TensorType(f32, [shape[0], shape[1], shape[2] + 2 * ph, shape[3] + 2 * pw])
                s = b.add(bnn.PadOp(s, (pw, pw, ph, ph), -1.0, padded))
                padding = (0, 0)
        dot = layer.rebuild(b, s, w, None, padding)
        rank = len(shape_of(op.result))
        cshape = [1, -1] + [1] * (rank - 2)
        # sum W of the weights fold-weight-binarization will use, +-alpha_c (a weight
        # within REL_TOL of alpha, as an STE's a - c + c leaves it, is alpha there):
        # alpha_c * S_c is exact in float64, so the bias is f32(0.5 * alpha_c * S_c)
        # and the epilogue's integer offset S_c (bitpack.epilogue_offsets) is found
        negative = binary.negative.reshape(w.shape[0], -1)
        total = binary.alpha.astype(np.float64) * (negative.shape[1] - 2 * negative.sum(axis=1))
        shift = 0.5 * total
        bias = const_array(op.bias) if op.bias is not None else None
        if bias is not None:
            shift = shift + bias.astype(np.float64)
        half = b.add(bnn.MulOp(dot, b.const(np.full([1] * rank, 0.5, np.float32)), op.result.type))
        out = b.add(bnn.AddOp(half, b.const(shift.astype(np.float32).reshape(cshape)), op.result.type))
        kind = "{0, a} unipolar (popcount form: 0.5 * dot + 0.5 * sum W)"
    else:
        return False
    new_layer = out.owner if kind.startswith("{-a") else dot.owner
    new_layer.attributes[RECOGNIZED_ATTR] = StringAttr(f"input {tv.describe()}; {kind}")
    op.result.replace_all_uses_with(out)
    replaced[op.result] = out
    Rewriter.erase_op(op)
    return True


def _erase_dead(fn: func.FuncOp) -> None:
    changed = True
    while changed:
        changed = False
        for op in reversed(list(fn.body.walk())):
            if op.results and all(not r.uses for r in op.results) and not isinstance(op, func.ReturnOp):
                Rewriter.erase_op(op)
                changed = True


@dataclass
class _ShiftedCompare:
    """A compare rewritten from x `pred` t to (x - t) `pred` 0, and its operands before."""

    compare: bnn.CompareOp
    sub: bnn.SubOp
    lhs: SSAValue
    rhs: SSAValue


def _shift_thresholds(fn: func.FuncOp) -> list[_ShiftedCompare]:
    """x `pred` t (or t `pred` x) with a finite nonzero constant t of x's shape
    or broadcastable to it -> (x - t) `pred'` 0 (module docstring)."""
    shifted: list[_ShiftedCompare] = []
    for op in list(fn.body.walk()):
        if not isinstance(op, bnn.CompareOp):
            continue
        lhs, rhs, pred = op.lhs, op.rhs, op.predicate.data
        x, t = lhs, const_array(rhs)
        if t is None:
            x, t, pred = rhs, const_array(lhs), _SWAPPED.get(pred, pred)
        if (
            t is None or const_array(x) is not None or t.dtype != np.float32 or not np.all(np.isfinite(t))
            or not np.any(t != 0.0) or shape_of(x) != shape_of(op.result)
        ):
            continue
        b = _Builder(op)
        sub = b.add(bnn.SubOp(x, lhs if x is rhs else rhs, x.type)).owner
        assert isinstance(sub, bnn.SubOp)
        zero = b.const(np.zeros([1] * len(shape_of(x)), np.float32))
        op.operands = [sub.result, zero]
        op.predicate = StringAttr(pred)
        shifted.append(_ShiftedCompare(op, sub, lhs, rhs))
    return shifted


def _restore_thresholds(shifted: list[_ShiftedCompare], predicates: dict[bnn.CompareOp, str]) -> None:
    """Compares still in the function (not binarisers) read x and t again."""
    for s in shifted:
        if s.compare.parent is None:
            continue
        zero = s.compare.rhs
        s.compare.operands = [s.lhs, s.rhs]
        s.compare.predicate = StringAttr(predicates[s.compare])
        for dead in (s.sub, zero.owner):
            if dead.parent is not None and not dead.results[0].uses:
                Rewriter.erase_op(dead)


_SWAPPED = {"ge": "le", "le": "ge", "gt": "lt", "lt": "gt"}


def recognize(fn: func.FuncOp) -> None:
    """Recognise the binarisers of `fn`; then, on what is left, those written
    as a comparison with a threshold (shifted only now, so that a compare the
    first round reads in place, as in a clamp, keeps its form)."""
    _recognize_round(fn)
    predicates = {op: op.predicate.data for op in fn.body.walk() if isinstance(op, bnn.CompareOp)}
    shifted = _shift_thresholds(fn)
    if shifted:
        _recognize_round(fn)
        _restore_thresholds(shifted, predicates)


def _recognize_round(fn: func.FuncOp) -> None:
    vs = ValueSets(fn)
    replaced: dict[SSAValue, SSAValue] = {}  # rewritten layers' old results -> new
    for op in list(fn.body.walk()):
        if op.parent is None:
            continue
        if isinstance(op, (bnn.Conv2dOp, bnn.LinearOp)) and _rewrite_layer(op, vs, replaced):
            continue
        for r in op.results:
            if _is_canonical(r) or not r.uses:
                continue
            tv, pad_value = vs.two_valued(r), None
            if tv is None:
                tv, pad_value = _through_pad(vs, r) or (None, None)
            tv = _live(tv, replaced)
            if tv is None or not tv.is_unit_bipolar():
                continue
            if tv.by_contract and not _feeds_binary(r):
                continue  # torch.sign feeding float ops keeps PyTorch's 0
            b = _Builder(_after(op), op)
            s = _canonical_sign(b, tv)
            if pad_value is not None:
                pad = r.owner if isinstance(r.owner, bnn.PadOp) else vs.of(r).src.owner
                s = b.add(bnn.PadOp(s, tuple(pad.padding.get_values()), pad_value, r.type))
            vs.alias(s, r)
            r.replace_all_uses_with(s)
    _sink_signs_through_moves(fn)
    _erase_dead(fn)


def _sign_parts(v: SSAValue) -> tuple[SSAValue, bool] | None:
    """(x, strict) if v is the canonical sign(x) (strict False) or -sign(-x) (True)."""
    op = v.owner
    if isinstance(op, bnn.SignOp):
        inner = op.input.owner
        if isinstance(inner, bnn.MulOp) and (c := const_array(inner.rhs)) is not None and bool(np.all(c == -1.0)):
            return None  # the inner half of -sign(-x)
        return op.input, False
    if _is_canonical(v):
        neg = op.lhs.owner.input.owner
        if isinstance(neg, bnn.MulOp) and (c := const_array(neg.rhs)) is not None and bool(np.all(c == -1.0)):
            return neg.lhs, True
    return None


# Ops that commute with every non-decreasing function (sign(x), -sign(-x)):
# they copy elements (or fill +-1), or take maxima of them.
_MOVES = (bnn.ReshapeOp, bnn.GatherOp, bnn.MaxPool2dOp, bnn.AdaptiveMaxPool2dOp)


def _sink_signs_through_moves(fn: func.FuncOp) -> None:
    """M(sign(x)) -> sign(M(x)) for reshapes, gathers and max pools: the
    binariser lands next to the conv or linear layer that reads it, where
    fold-weight-binarization looks for it. Exact: M only copies elements or
    takes their maximum, and both binariser forms are non-decreasing."""
    for op in list(fn.body.walk()):
        if op.parent is None or not isinstance(op, _MOVES):
            continue
        data = [v for v in op.operands if not (isinstance(op, bnn.GatherOp) and v is op.index)]
        parts = [_sign_parts(v) for v in data]
        if any(p is None for p in parts) or len({p[1] for p in parts}) != 1:
            continue
        fill = op.fill_value() if isinstance(op, bnn.GatherOp) else None
        if fill is not None and fill not in (-1.0, 1.0):
            continue
        if not any(isinstance(u.operation, (bnn.Conv2dOp, bnn.LinearOp, bnn.PadOp) + _MOVES) for u in op.results[0].uses):
            continue
        moved_op = op.clone()
        moved_op.operands = [parts[data.index(v)][0] if v in data else v for v in op.operands]
        b = _Builder(op)
        moved = b.add(moved_op)
        tv = TwoValued(moved, parts[0][1], np.float32(-1.0), np.float32(1.0))
        op.results[0].replace_all_uses_with(_canonical_sign(b, tv))
        Rewriter.erase_op(op)


def _through_pad(vs: ValueSets, r: SSAValue) -> tuple[TwoValued, float] | None:
    """f(pad(x, v)) for a pointwise f is pad(f(x), f(v)): the form of a sign of
    a zero-padded tensor (torch.sign is 0 on the pad, exactly PyTorch's zero
    padding of a binary conv), if f(x) is two-valued and f(v) a known number."""
    p = vs.of(r)
    pad = p.src.owner if p.src is not None else None
    if not isinstance(pad, bnn.PadOp):
        return None
    inner = Piecewise(pad.input, p.regions, vs.has_exact_zeros(pad.input))
    tv = two_valued(inner)
    v = pad.value.value.data
    at_pad = p.regions[0 if v < 0 else 1 if v == 0 else 2].value
    if tv is None or at_pad is None or np.unique(at_pad).size != 1:
        return None
    return tv, float(np.unique(at_pad)[0])


def _after(op: Operation) -> Operation:
    nxt = op.next_op
    assert nxt is not None  # a value-producing op is never a block's terminator
    return nxt


@dataclass(frozen=True)
class RecognizeBinarizationPass(ModulePass):
    name = "recognize-binarization"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for fn in op.walk():
            if isinstance(fn, func.FuncOp) and fn.body.blocks:
                recognize(fn)
