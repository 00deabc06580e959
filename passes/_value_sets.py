"""Value-set analysis: for each tensor of a bnn function, which values it can
take as a function of one source tensor's sign.

Every tensor t gets a `Piecewise` view over a source s (s itself when nothing
better is known): the value of t where s < 0, where s == 0 and where s > 0,
each either a known constant (per channel, broadcastable to t) or just a set
of possible signs. The transfer functions are exact float32 arithmetic on the
constants, so `where(x >= 0, 1., -1.)`, `(x > 0).float() * 2 - 1`,
`torch.sign(relu(x))`, a Brevitas-style clamp written with `where` followed by
a sign times a scale, or an STE `h + (B - h)` all come out as "two values,
chosen by a predicate on s" (`TwoValued`), which recognize-binarization turns
into bnn.sign and binary convs.

Zero at the source is either *by construction* (a ReLU, zero padding, the
integer accumulator of a bias-free binary conv: exact zeros on many inputs)
or *by accident* (a float value that rounds to exactly 0). Only the second
may be treated like the positive side under bnnc's binarize contract.

NaN is outside the analysis: a NaN source lands in none of the three regions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import func
from xdsl.ir import Operation, SSAValue

from bnnc.dialects import bnn
from bnnc.passes._graph import const_array

Signs = frozenset[int]
ANY: Signs = frozenset({-1, 0, 1})


@dataclass(frozen=True, eq=False)
class Region:
    """What a tensor holds on one region of its source: a known f32 value
    (broadcastable to the tensor), or only the set of its possible signs."""

    value: np.ndarray | None
    signs: Signs

    @staticmethod
    def const(value: np.ndarray) -> Region:
        v = np.asarray(value, dtype=np.float32)
        if np.any(np.isnan(v)):
            return Region(v, ANY)
        return Region(v, frozenset(int(s) for s in np.unique(np.sign(v))))

    @staticmethod
    def of_signs(signs: Iterable[int]) -> Region:
        s = frozenset(signs)
        return Region.const(np.float32(0.0)) if s == {0} else Region(None, s)


@dataclass(frozen=True, eq=False)
class Piecewise:
    """t = regions[0] where src < 0, regions[1] where src == 0, regions[2] where src > 0.

    src is None for constants (all three regions hold the same value)."""

    src: SSAValue | None
    regions: tuple[Region, Region, Region]
    zero_by_construction: bool = False


@dataclass(frozen=True, eq=False)
class TwoValued:
    """t = hi where pred(src) else lo, pred = (src > 0) if strict else (src >= 0).

    by_contract: PyTorch's value at src == 0 is a third one (torch.sign's 0),
    which bnnc's binarize contract replaces by hi (src is 0 only by rounding)."""

    src: SSAValue
    strict: bool
    lo: np.ndarray
    hi: np.ndarray
    by_contract: bool = False

    def is_unit_bipolar(self) -> bool:
        return bool(np.all(self.lo == -1.0) and np.all(self.hi == 1.0))

    def describe(self) -> str:
        def v(a: np.ndarray) -> str:
            u = np.unique(a)
            return f"{u[0]:g}" if u.size == 1 else "per-channel"

        pred = ">" if self.strict else ">="
        note = " (torch.sign's 0 taken as +1: the input is 0 only by rounding)" if self.by_contract else ""
        return f"{{{v(self.lo)}, {v(self.hi)}}}: x {pred} 0 ? {v(self.hi)} : {v(self.lo)}{note}"


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    try:
        x, y = np.broadcast_arrays(a, b)
    except ValueError:
        return False
    return bool(np.array_equal(x, y))


def two_valued(p: Piecewise | None) -> TwoValued | None:
    """The two-valued form of `p`, if its three regions hold known values that are two."""
    if p is None or p.src is None or any(r.value is None for r in p.regions):
        return None
    neg, zero, pos = (r.value for r in p.regions)
    if _same(neg, pos):
        return None
    if _same(zero, pos):
        return TwoValued(p.src, False, neg, pos)
    if _same(zero, neg):
        return TwoValued(p.src, True, neg, pos)
    if not p.zero_by_construction and np.all(zero == 0.0):
        return TwoValued(p.src, False, neg, pos, by_contract=True)
    return None


# ----------------------------------------------------------------- transfer


def _map_region(r: Region, on_value: Callable[[np.ndarray], np.ndarray], on_sign: Callable[[int], Iterable[int]]) -> Region:
    if r.value is not None:
        with np.errstate(all="ignore"):
            return Region.const(on_value(r.value))
    out: set[int] = set()
    for s in r.signs:
        out.update(on_sign(s))
    return Region.of_signs(out)


def _join(a: Region, b: Region) -> Region:
    if a.value is not None and b.value is not None and _same(a.value, b.value):
        return a
    return Region.of_signs(a.signs | b.signs)


def _mul_region(a: Region, b: Region) -> Region:
    if a.value is not None and b.value is not None:
        return Region.const(np.multiply(a.value, b.value, dtype=np.float32))
    return Region.of_signs({x * y for x in a.signs for y in b.signs})


def _div_region(a: Region, b: Region) -> Region:
    if a.value is not None and b.value is not None:
        with np.errstate(all="ignore"):
            return Region.const(np.divide(a.value, b.value, dtype=np.float32))
    if 0 in b.signs:
        return Region(None, ANY)
    return Region.of_signs({x * y for x in a.signs for y in b.signs})


def _add_region(a: Region, b: Region, sub: bool) -> Region:
    if a.value is not None and b.value is not None:
        f = np.subtract if sub else np.add
        return Region.const(f(a.value, b.value, dtype=np.float32))
    bs = frozenset(-s for s in b.signs) if sub else b.signs
    if b.value is not None and np.all(b.value == 0.0):
        return a
    if a.value is not None and np.all(a.value == 0.0) and not sub:
        return b
    if a.signs <= {0, 1} and bs <= {0, 1}:
        return Region.of_signs(a.signs | bs)
    if a.signs <= {-1, 0} and bs <= {-1, 0}:
        return Region.of_signs(a.signs | bs)
    return Region(None, ANY)


_CMP = {
    "ge": np.greater_equal,
    "gt": np.greater,
    "le": np.less_equal,
    "lt": np.less,
    "eq": np.equal,
    "ne": np.not_equal,
}


def _compare_region(a: Region, b: Region, pred: str) -> Region:
    if a.value is not None and b.value is not None:
        return Region.const(_CMP[pred](a.value, b.value).astype(np.float32))
    if b.value is None or np.unique(b.value).size != 1:
        return Region.of_signs({0, 1})
    t = float(np.unique(b.value)[0])
    # the truth of `x pred t` for every x of each possible sign
    outcomes: set[bool] = set()
    for s in a.signs:
        if s == 0:
            outcomes.add(bool(_CMP[pred](0.0, t)))
        elif (s > 0 and t <= 0) or (s < 0 and t >= 0):
            outcomes.add(bool(_CMP[pred](float(s) * np.inf, t)))  # every x of sign s compares like +-inf
        else:
            return Region.of_signs({0, 1})
    if len(outcomes) == 1:
        return Region.const(np.float32(1.0 if outcomes.pop() else 0.0))
    return Region.of_signs({0, 1})


def _swap(pred: str) -> str:
    return {"ge": "le", "le": "ge", "gt": "lt", "lt": "gt"}.get(pred, pred)


class ValueSets:
    """The analysis of one function: `of(v)` is v's Piecewise view."""

    def __init__(self, fn: func.FuncOp):
        self.views: dict[SSAValue, Piecewise] = {}
        for op in fn.body.walk():
            for r in op.results:
                view = self._transfer(op, r)
                if view is not None:
                    self.views[r] = view

    def of(self, v: SSAValue) -> Piecewise:
        view = self.views.get(v)
        if view is None:
            view = self.identity(v)
            self.views[v] = view
        return view

    def alias(self, new: SSAValue, old: SSAValue) -> None:
        """`new` holds the same values as `old` (a rewrite replaced one by the other)."""
        self.views[new] = self.of(old)

    def identity(self, v: SSAValue) -> Piecewise:
        arr = const_array(v)
        if arr is not None and arr.dtype == np.float32:
            r = Region.const(arr)
            return Piecewise(None, (r, r, r))
        zero = Region.const(np.float32(0.0))
        return Piecewise(v, (Region(None, frozenset({-1})), zero, Region(None, frozenset({1}))), self._zero_by_construction(v))

    def two_valued(self, v: SSAValue) -> TwoValued | None:
        return two_valued(self.of(v))

    def has_exact_zeros(self, v: SSAValue) -> bool:
        """v is exactly 0 by construction on some inputs."""
        p = self.of(v)
        if p.src is None:
            return False
        neg, zero, pos = p.regions
        return 0 in neg.signs or 0 in pos.signs or (p.zero_by_construction and 0 in zero.signs)

    def _zero_by_construction(self, v: SSAValue) -> bool:
        op = v.owner
        if isinstance(op, (bnn.Conv2dOp, bnn.LinearOp)):
            return op.bias is None and self.two_valued(op.input) is not None
        if isinstance(op, bnn.BConv2dOp) and op.residual is not None:
            return True  # v + residual can be 0 on some inputs
        if isinstance(op, (bnn.BConv2dOp, bnn.BDenseOp)):
            return op.bias is None or op.post_multiplier is not None or op.post_bias is not None
        if isinstance(op, bnn.PadOp):
            return op.value.value.data == 0.0 and any(op.padding.get_values()) or self.has_exact_zeros(op.input)
        if isinstance(op, bnn.GatherOp) and op.fill_value() == 0.0:
            return True
        if isinstance(op, Operation) and _moves_values(op):
            return any(self.has_exact_zeros(o) for o in op.operands)
        return False

    # -- transfer functions

    def _pointwise(self, operands: list[Piecewise], fn: Callable[..., Region], zero_keep: bool = True) -> Piecewise | None:
        srcs = {p.src for p in operands if p.src is not None}
        if len(srcs) > 1:
            return None
        src = srcs.pop() if srcs else None
        if src is None:
            return None  # constants are folded by canonicalize, not here
        regions = tuple(fn(*(p.regions[i] for p in operands)) for i in range(3))
        if any(r.value is None and r.signs == ANY for r in regions):
            return None  # nothing known on a region: the result is better a source of its own
        zbc = any(p.zero_by_construction for p in operands if p.src is not None)
        return Piecewise(src, regions, zbc)  # type: ignore[arg-type]

    def _transfer(self, op: Operation, r: SSAValue) -> Piecewise | None:
        of = self.of
        if isinstance(op, bnn.ReluOp):
            return self._pointwise([of(op.input)], lambda a: _map_region(a, lambda v: np.maximum(v, 0), lambda s: [max(s, 0)]))
        if isinstance(op, bnn.AbsOp):
            return self._pointwise([of(op.input)], lambda a: _map_region(a, np.abs, lambda s: [abs(s)]))
        if isinstance(op, bnn.SignumOp):
            return self._pointwise(
                [of(op.input)],
                lambda a: Region.const(np.sign(a.value)) if a.value is not None else (
                    Region.const(np.float32(next(iter(a.signs)))) if len(a.signs) == 1 else Region.of_signs(a.signs)
                ),
            )
        if isinstance(op, bnn.SignOp):
            def sign(a: Region) -> Region:
                if a.value is not None:
                    return Region.const(np.where(a.value < 0, -1.0, 1.0))
                if a.signs <= {0, 1}:
                    return Region.const(np.float32(1.0))
                if a.signs == {-1}:
                    return Region.const(np.float32(-1.0))
                return Region(None, frozenset({-1, 1}))

            return self._pointwise([of(op.input)], sign)
        if isinstance(op, bnn.HardtanhOp):
            lo, hi = op.min_val.value.data, op.max_val.value.data
            if lo > hi:
                return None
            # a value of sign s lands at a value of sign sign(clip(s, lo, hi)) for
            # any lo <= hi: with lo = 0 (ONNX's Clip(0, 1) for relu(hardtanh(x)))
            # every x <= 0 becomes an exact 0, as under relu
            return self._pointwise(
                [of(op.input)],
                lambda a: _map_region(a, lambda v: np.clip(v, lo, hi), lambda s: [int(np.sign(np.clip(float(s), lo, hi)))]),
            )
        if isinstance(op, bnn.MulOp):
            return self._pointwise([of(op.lhs), of(op.rhs)], _mul_region)
        if isinstance(op, bnn.DivOp):
            return self._pointwise([of(op.lhs), of(op.rhs)], _div_region)
        if isinstance(op, (bnn.AddOp, bnn.SubOp)):
            ste = self._straight_through(op)
            if ste is not None:
                return ste
            sub = isinstance(op, bnn.SubOp)
            return self._pointwise([of(op.lhs), of(op.rhs)], lambda a, b: _add_region(a, b, sub))
        if isinstance(op, bnn.CompareOp):
            pred = op.predicate.data
            a, b = of(op.lhs), of(op.rhs)
            if a.src is None and b.src is not None:
                a, b, pred = b, a, _swap(pred)
            return self._pointwise([a, b], lambda x, y: _compare_region(x, y, pred))
        if isinstance(op, bnn.WhereOp):
            def select(c: Region, a: Region, b: Region) -> Region:
                if c.value is not None and np.all(c.value != 0):
                    return a
                if c.value is not None and np.all(c.value == 0):
                    return b
                return _join(a, b)

            return self._pointwise([of(op.cond), of(op.lhs), of(op.rhs)], select)
        return None

    def _straight_through(self, op: bnn.AddOp | bnn.SubOp) -> Piecewise | None:
        """h + (B - h) and (B - h) + h (detach is an alias after import) hold B's
        values: the straight-through estimator's forward value."""
        if not isinstance(op, bnn.AddOp):
            return None
        for d, h in ((op.rhs, op.lhs), (op.lhs, op.rhs)):
            inner = d.owner
            if isinstance(inner, bnn.SubOp) and inner.rhs is h and d.type == op.result.type:
                b = self.of(inner.lhs)
                if b.src is not None and two_valued(b) is not None:
                    return b
        return None


def _moves_values(op: Operation) -> bool:
    """Ops whose results hold only values of their operands (and pads of 0)."""
    return isinstance(
        op,
        (bnn.ReshapeOp, bnn.GatherOp, bnn.CatOp, bnn.MaxPool2dOp, bnn.AvgPool2dOp, bnn.AdaptiveAvgPool2dOp, bnn.MeanOp),
    )
