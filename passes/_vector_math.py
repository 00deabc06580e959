"""exp, log, log1p, expm1, tanh and erf on f32 (scalars or vectors) as plain
llvm-dialect arithmetic, for convert-math-to-llvm.

Why: LLVM has no vector math library here, so `llvm.exp.v16f32` becomes 16
calls of libm's `expf`, and a loop calling `tanhf` / `erff` never vectorises.
These expansions are branch-free (both sides of every case are computed and
selected), so the same code serves a scalar loop LLVM vectorises and an
explicit vector; they use no target intrinsic beyond `llvm.fmuladd`,
`llvm.fabs` and `llvm.copysign`, so x86_64 and AArch64 compile the same IR.

Each function is range reduction + a polynomial + reconstruction:
  exp    x = n ln2 + r (Cody-Waite: ln2 split so n * hi is exact), |r| <= ln2/2,
         e^r = 1 + r + r^2 Q(r); 2^n built in the exponent bits in two halves
         (so 2^-150 .. 2^128 need no special case, denormals round once).
  log    x = m 2^e with m in [sqrt(1/2), sqrt(2)) from the bits (denormals
         scaled by 2^23 first); log(m) = f - f^2/2 + f^3 P(f), f = m - 1 (exact).
  log1p  the same on u = 1 + x, plus the rounding error of u (exact by
         Fast2Sum) scaled by 2^-e: f' = f + c 2^-e, which is x itself when e = 0.
  expm1  as exp, then 2^n (expm1(r) + 1) - 1 = 2 (2^(n-1) expm1(r) + (2^(n-1) - 1/2)),
         expm1(r) itself when n = 0 (no cancellation near 0).
  tanh   on |x| (sign restored by copysign, so -0 stays -0): |x| < atanh(1/2):
         x + x^3 P(x^2); else 1 - 2 / (exp(2|x|) + 1) (>= 1/2, no cancellation).
  erf    on |x|: below 1, x + x Q(x^2); from 1, 1 - exp(H(x)) with H a fit of
         log(erfc(x)) on [1, 3.93] (|x| clamped to 3.93, where erf rounds to 1).
The coefficients are fitted by `fit_coefficients` below (weighted least squares
iterated towards minimax, each coefficient rounded to f32 and the rest refitted);
`python -m bnnc.passes._vector_math` prints them. The Horner steps use
`llvm.fmuladd` (fused where the target has FMA, mul + add elsewhere): the
error bounds do not rely on fusion. Measured against float64 over millions of
random f32 bit patterns (test_float_math.py): at most 1-3 ulp, NaN, +-inf,
+-0, denormals and overflow/underflow as C99 specifies.

xDSL 0.74's `llvm.fcmp` and `llvm.select` accept scalars only (an i1
result / condition); VectorFCmpOp and VectorSelectOp below are the same ops
on vectors (MLIR's names, text and semantics: a vector<N x i1> mask). They
subclass xDSL's, so the llvmlite translation handles them unchanged.
"""

from __future__ import annotations

import math as pymath
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np
from xdsl.dialects import llvm
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    VectorType,
    f32,
    i1,
    i64,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.irdl import (
    AnyAttr,
    IRDLOperation,
    VarConstraint,
    base,
    irdl_op_definition,
    operand_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure

i32 = IntegerType(32)

# ---------------------------------------------------------------- constants
# Coefficients from fit_coefficients() (lowest power first).
EXP_Q = (0.4999999403953552, 0.16666516661643982, 0.04166828468441963, 0.00836925022304058, 0.0013820468448102474)
EXPM1_Q = (0.1666666567325592, 0.041666485369205475, 0.0083335405215621, 0.0013933228328824043, 0.00019767750927712768)
LOG1P_P = (
    0.3333333134651184,
    -0.2500081956386566,
    0.2000124305486679,
    -0.1662341058254242,
    0.14201539754867554,
    -0.13159550726413727,
    0.12762485444545746,
    -0.07636940479278564,
)
TANH_P = (-0.33333316445350647, 0.13332544267177582, -0.0538475476205349, 0.02105071395635605, -0.0062428489327430725)
ERF_Q = (
    0.12837916612625122,
    -0.3761262595653534,
    0.11283578723669052,
    -0.026853347197175026,
    0.005187162198126316,
    -0.0007997853099368513,
    7.806903158780187e-05,
)
LOG_ERFC_H = (
    0.00020435964688658714,
    -1.129661202430725,
    -0.6330394148826599,
    -0.10863935202360153,
    0.025373894721269608,
    -0.004282568581402302,
    0.00046384596498683095,
    -2.532417420297861e-05,
    2.5191903318955156e-07,
)
TANH_SMALL = float(np.float32(pymath.atanh(0.5)))
ERF_SMALL = 1.0
ERF_ONE = 3.93  # erfc(3.93) < 2^-25: erf rounds to 1 from here on
EXP_LO, EXP_HI = -104.0, 89.0  # exp(-104) < 2^-150 rounds to 0, exp(89) > FLT_MAX
EXPM1_LO, EXPM1_HI = -18.0, 88.75  # expm1(-18) rounds to -1, expm1(88.75) overflows
MAGIC = 1.5 * 2.0**23  # adding it rounds |v| < 2^22 to an integer in the low mantissa bits
LOG2E = float(np.float32(1.0 / pymath.log(2.0)))


def _split(value: float, bits: int) -> tuple[float, float]:
    """value = hi + lo with hi a multiple of 2^-bits (so n * hi is exact for
    |n| < 2^(24 - bits - 1)) and lo its f32 remainder."""
    hi = round(value * 2.0**bits) / 2.0**bits
    return hi, float(np.float32(value - hi))


LN2_HI, LN2_LO = _split(pymath.log(2.0), 9)  # n * LN2_HI exact for |n| < 2^14
SQRT_HALF_BITS = int(np.array(pymath.sqrt(0.5), np.float32).view(np.int32))


# ------------------------------------------------------- vector fcmp/select
@irdl_op_definition
class VectorFCmpOp(llvm.FCmpOp):
    """`llvm.fcmp` of two float vectors: a vector<N x i1> mask."""

    name = "llvm.fcmp"
    T: ClassVar = VarConstraint("T", base(VectorType))
    lhs = operand_def(T)
    rhs = operand_def(T)
    res = result_def(base(VectorType))
    predicate = prop_def(IntegerAttr[i64])
    fastmathFlags = prop_def(llvm.FastMathAttr, default_value=llvm.FastMathAttr(None))
    traits = traits_def(Pure())

    def __init__(self, lhs: SSAValue, rhs: SSAValue, predicate: str):
        typ = lhs.type
        assert isinstance(typ, VectorType)
        IRDLOperation.__init__(
            self,
            operands=[lhs, rhs],
            result_types=[VectorType(i1, typ.get_shape())],
            properties={"predicate": IntegerAttr(llvm.FCmpPredicateFlag(predicate).to_int(), i64)},
        )

    def verify_(self) -> None:
        """(xDSL's FCmpOp.verify_ checks its own scalar-only definition.)"""


@irdl_op_definition
class VectorSelectOp(llvm.SelectOp):
    """`llvm.select` lane by lane on a vector<N x i1> mask."""

    name = "llvm.select"
    T: ClassVar = VarConstraint("T", AnyAttr())
    cond = operand_def(base(VectorType))
    lhs = operand_def(T)
    rhs = operand_def(T)
    res = result_def(T)
    fastmathFlags = prop_def(llvm.FastMathAttr, default_value=llvm.FastMathAttr(None))
    traits = traits_def(Pure())
    assembly_format = None  # the inherited printer and parser: `%c, %a, %b : vector<4xi1>, vector<4xf32>`

    def verify_(self) -> None:
        """(xDSL's SelectOp.verify_ checks its own i1-only definition.)"""


# ------------------------------------------------------------------ emitter
class Emitter:
    """Builds llvm-dialect ops of one type (f32 or vector<N x f32>) into `ops`;
    integer bit manipulation uses the matching i32 type."""

    def __init__(self, typ: Attribute):
        self.ft = typ
        self.lanes = typ.get_shape()[0] if isinstance(typ, VectorType) else None
        self.it = VectorType(i32, [self.lanes]) if self.lanes else i32
        self.ops: list[Operation] = []
        self._consts: dict[tuple[str, float | int], SSAValue] = {}

    def op(self, op: Operation) -> SSAValue:
        self.ops.append(op)
        return op.results[0]

    def _const(self, value: float | int, typ: Attribute, element: Attribute) -> SSAValue:
        key = (str(typ), value)
        if key not in self._consts:
            if self.lanes:
                attr = DenseIntOrFPElementsAttr.from_list(typ, [value] * self.lanes)
            else:
                attr = FloatAttr(float(value), element) if element == f32 else IntegerAttr(int(value), element)
            self._consts[key] = self.op(llvm.ConstantOp(attr, typ))
        return self._consts[key]

    def c(self, value: float) -> SSAValue:
        return self._const(float(value), self.ft, f32)

    def ci(self, value: int) -> SSAValue:
        return self._const(int(value), self.it, i32)

    def _intrinsic(self, name: str, *args: SSAValue) -> SSAValue:
        suffix = f"v{self.lanes}f32" if self.lanes else "f32"
        return self.op(llvm.CallIntrinsicOp(f"llvm.{name}.{suffix}", list(args), [self.ft]))

    # floats
    def add(self, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.op(llvm.FAddOp(a, b))

    def sub(self, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.op(llvm.FSubOp(a, b))

    def mul(self, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.op(llvm.FMulOp(a, b))

    def div(self, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.op(llvm.FDivOp(a, b))

    def fma(self, a: SSAValue, b: SSAValue, c: SSAValue) -> SSAValue:
        """a * b + c, fused where the target has FMA."""
        return self._intrinsic("fmuladd", a, b, c)

    def abs(self, a: SSAValue) -> SSAValue:
        return self._intrinsic("fabs", a)

    def copysign(self, a: SSAValue, sign: SSAValue) -> SSAValue:
        return self._intrinsic("copysign", a, sign)

    def cmp(self, a: SSAValue, b: SSAValue | float, pred: str) -> SSAValue:
        b = self.c(b) if isinstance(b, float | int) else b
        return self.op(VectorFCmpOp(a, b, pred) if self.lanes else llvm.FCmpOp(a, b, pred))

    def select(self, cond: SSAValue, a: SSAValue | float, b: SSAValue | float) -> SSAValue:
        a = self.c(a) if isinstance(a, float | int) else a
        b = self.c(b) if isinstance(b, float | int) else b
        return self._select(cond, a, b)

    def _select(self, cond: SSAValue, a: SSAValue, b: SSAValue) -> SSAValue:
        if self.lanes:
            return self.op(VectorSelectOp.create(operands=[cond, a, b], result_types=[a.type]))
        return self.op(llvm.SelectOp(cond, a, b))

    def poly(self, x: SSAValue, coeffs: Sequence[float]) -> SSAValue:
        """Horner: coeffs[0] + x (coeffs[1] + x (...))."""
        acc = self.c(coeffs[-1])
        for k in reversed(coeffs[:-1]):
            acc = self.fma(acc, x, self.c(k))
        return acc

    # bits
    def bits(self, a: SSAValue) -> SSAValue:
        return self.op(llvm.BitcastOp(a, self.it))

    def float(self, a: SSAValue) -> SSAValue:
        return self.op(llvm.BitcastOp(a, self.ft))

    def iadd(self, a: SSAValue, b: SSAValue | int) -> SSAValue:
        return self.op(llvm.AddOp(a, self.ci(b) if isinstance(b, int) else b))

    def isub(self, a: SSAValue, b: SSAValue | int) -> SSAValue:
        return self.op(llvm.SubOp(a, self.ci(b) if isinstance(b, int) else b))

    def shl(self, a: SSAValue, n: int) -> SSAValue:
        return self.op(llvm.ShlOp(a, self.ci(n)))

    def ashr(self, a: SSAValue, n: int) -> SSAValue:
        return self.op(llvm.AShrOp(a, self.ci(n)))

    def iand(self, a: SSAValue, mask: int) -> SSAValue:
        return self.op(llvm.AndOp(a, self.ci(mask)))

    def isel(self, cond: SSAValue, a: int, b: int) -> SSAValue:
        return self._select(cond, self.ci(a), self.ci(b))

    def pow2(self, n: SSAValue) -> SSAValue:
        """2^n for integer n in [-126, 127], from the exponent bits."""
        return self.float(self.shl(self.iadd(n, 127), 23))

    def sitofp(self, n: SSAValue) -> SSAValue:
        return self.op(llvm.SIToFPOp(n, self.ft))


# ---------------------------------------------------------------- functions
def _round_log2e(e: Emitter, x: SSAValue) -> tuple[SSAValue, SSAValue]:
    """n = round(x / ln2) as a float and as an integer (the magic-number
    rounding: no float-to-int conversion, defined for NaN)."""
    t = e.fma(x, e.c(LOG2E), e.c(MAGIC))
    nf = e.sub(t, e.c(MAGIC))
    n = e.isub(e.bits(t), int(np.array(MAGIC, np.float32).view(np.int32)))
    return nf, n


def _reduce_ln2(e: Emitter, x: SSAValue, nf: SSAValue) -> SSAValue:
    """r = x - n ln2: x - n * LN2_HI is exact, so r carries only LN2_LO's rounding."""
    r = e.fma(nf, e.c(-LN2_HI), x)
    return e.fma(nf, e.c(-LN2_LO), r)


def exp(e: Emitter, x: SSAValue) -> SSAValue:
    xc = e.select(e.cmp(x, EXP_HI, "ogt"), EXP_HI, e.select(e.cmp(x, EXP_LO, "olt"), EXP_LO, x))  # NaN stays NaN
    nf, n = _round_log2e(e, xc)
    r = _reduce_ln2(e, xc, nf)
    p = e.add(e.fma(e.mul(r, r), e.poly(r, EXP_Q), r), e.c(1.0))
    half = e.ashr(n, 1)  # n in [-150, 128]: two factors in [-75, 64]
    return e.mul(e.mul(p, e.pow2(half)), e.pow2(e.isub(n, half)))


def _log1p_reduced(e: Emitter, f: SSAValue) -> SSAValue:
    """log(1 + f) for f in about [sqrt(1/2) - 1, sqrt(2) - 1]."""
    f2 = e.mul(f, f)
    q = e.fma(f, e.poly(f, LOG1P_P), e.c(-0.5))
    return e.fma(f2, q, f)


def _mantissa(e: Emitter, u: SSAValue) -> tuple[SSAValue, SSAValue]:
    """u = m 2^k, m in [sqrt(1/2), sqrt(2)), for positive normal u: (m - 1, k) with m - 1 exact."""
    shifted = e.isub(e.bits(u), SQRT_HALF_BITS)
    k = e.ashr(shifted, 23)
    m = e.float(e.iadd(e.iand(shifted, 0x7FFFFF), SQRT_HALF_BITS))
    return e.sub(m, e.c(1.0)), k


def _plus_k_ln2(e: Emitter, y: SSAValue, k: SSAValue) -> SSAValue:
    kf = e.sitofp(k)
    return e.fma(kf, e.c(LN2_HI), e.fma(kf, e.c(LN2_LO), y))


def log(e: Emitter, x: SSAValue) -> SSAValue:
    denormal = e.cmp(x, 2.0**-126, "olt")
    xs = e.select(denormal, e.mul(x, e.c(2.0**23)), x)
    f, k = _mantissa(e, xs)
    k = e.iadd(k, e.isel(denormal, -23, 0))
    y = _plus_k_ln2(e, _log1p_reduced(e, f), k)
    y = e.select(e.cmp(x, pymath.inf, "oeq"), pymath.inf, y)
    y = e.select(e.cmp(x, 0.0, "oeq"), -pymath.inf, y)
    return e.select(e.cmp(x, 0.0, "ult"), pymath.nan, y)  # negative or NaN


def log1p(e: Emitter, x: SSAValue) -> SSAValue:
    one = e.c(1.0)
    u = e.add(one, x)
    # the rounding error of u, exactly (Fast2Sum, larger operand first)
    err = e.select(e.cmp(x, 1.0, "ogt"), e.sub(one, e.sub(u, x)), e.sub(x, e.sub(u, one)))
    f, k = _mantissa(e, u)
    # beyond 2^24 the error term is below an ulp of k ln2 (and 2^-k may not exist)
    scale = e.select(e.cmp(x, 2.0**24, "ogt"), 0.0, e.pow2(e.isub(e.ci(0), k)))
    f = e.fma(err, scale, f)
    y = _plus_k_ln2(e, _log1p_reduced(e, f), k)
    y = e.select(e.cmp(x, pymath.inf, "oeq"), pymath.inf, y)
    y = e.select(e.cmp(x, -1.0, "oeq"), -pymath.inf, y)
    y = e.select(e.cmp(x, 0.0, "oeq"), x, y)  # keeps -0
    return e.select(e.cmp(x, -1.0, "ult"), pymath.nan, y)  # below -1 or NaN


def expm1(e: Emitter, x: SSAValue) -> SSAValue:
    xc = e.select(e.cmp(x, EXPM1_HI, "ogt"), EXPM1_HI, e.select(e.cmp(x, EXPM1_LO, "olt"), EXPM1_LO, x))
    nf, n = _round_log2e(e, xc)
    r = _reduce_ln2(e, xc, nf)
    p = e.fma(e.mul(r, r), e.fma(r, e.poly(r, EXPM1_Q), e.c(0.5)), r)  # expm1(r)
    half_scale = e.pow2(e.isub(n, 1))  # 2^(n-1), n in [-26, 128]
    y = e.mul(e.fma(half_scale, p, e.sub(half_scale, e.c(0.5))), e.c(2.0))
    y = e.select(e.cmp(nf, 0.0, "oeq"), p, y)
    return e.select(e.cmp(x, 0.0, "oeq"), x, y)  # keeps -0


def tanh(e: Emitter, x: SSAValue) -> SSAValue:
    a = e.abs(x)
    a2 = e.mul(a, a)
    small = e.fma(e.mul(a2, a), e.poly(a2, TANH_P), a)
    big = e.sub(e.c(1.0), e.div(e.c(2.0), e.add(exp(e, e.add(a, a)), e.c(1.0))))
    return e.copysign(e.select(e.cmp(a, TANH_SMALL, "olt"), small, big), x)


def erf(e: Emitter, x: SSAValue) -> SSAValue:
    a = e.abs(x)
    small = e.fma(a, e.poly(e.mul(a, a), ERF_Q), a)
    ac = e.select(e.cmp(a, ERF_ONE, "ogt"), ERF_ONE, a)
    big = e.sub(e.c(1.0), exp(e, e.poly(ac, LOG_ERFC_H)))
    return e.copysign(e.select(e.cmp(a, ERF_SMALL, "olt"), small, big), x)


FUNCTIONS: dict[str, Callable[[Emitter, SSAValue], SSAValue]] = {
    "exp": exp,
    "log": log,
    "log1p": log1p,
    "expm1": expm1,
    "tanh": tanh,
    "erf": erf,
}


# ------------------------------------------------------------------ fitting
def _fit(
    g: Callable[[np.ndarray], np.ndarray],
    interval: tuple[float, float],
    powers: Sequence[int],
    weight: Callable[[np.ndarray], np.ndarray],
    known: Callable[[np.ndarray], np.ndarray] = lambda x: 0.0 * x,
) -> tuple[list[float], float]:
    """Coefficients c of sum c_k x^powers[k] ~ g - known on `interval`,
    minimising max |weight * error| (Lawson's iteration of weighted least
    squares); each coefficient is rounded to f32 in turn and the remaining
    ones refitted to absorb its rounding. Returns them and the max weighted error."""
    a, b = interval
    x = (a + b) / 2 + (b - a) / 2 * np.cos(np.linspace(0.0, np.pi, 20000))
    target, w = g(x) - known(x), weight(x)
    coeffs: list[float] = []
    for start in range(len(powers)):
        basis = np.stack([x**p for p in powers[start:]], 1)
        lw = np.full_like(x, 1.0 / len(x))
        for _ in range(60):
            sw = np.sqrt(lw) * w
            c = np.linalg.lstsq(basis * sw[:, None], target * sw, rcond=None)[0]
            lw = lw * np.abs((basis @ c - target) * w)
            lw /= lw.sum()
        coeffs.append(float(np.float32(c[0])))
        target = target - coeffs[-1] * x ** powers[start]
    return coeffs, float(np.max(np.abs(target * w)))


def fit_coefficients() -> dict[str, tuple[list[float], float]]:
    """Refit every table above (needs torch for a float64 erf / erfc)."""
    import torch

    def erf64(x: np.ndarray) -> np.ndarray:
        return torch.erf(torch.from_numpy(x)).numpy()

    def erfc64(x: np.ndarray) -> np.ndarray:
        return torch.erfc(torch.from_numpy(x)).numpy()

    def rel(f: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
        return lambda x: 1.0 / np.maximum(np.abs(f(x)), 1e-300)

    r = pymath.log(2.0) / 2 * 1.01
    sq = (pymath.sqrt(0.5) - 1, pymath.sqrt(2.0) - 1)
    return {
        "EXP_Q": _fit(np.exp, (-r, r), range(2, 7), rel(np.exp), lambda x: 1 + x),
        "EXPM1_Q": _fit(np.expm1, (-r, r), range(3, 8), rel(np.expm1), lambda x: x + x * x / 2),
        "LOG1P_P": _fit(np.log1p, sq, range(3, 11), rel(np.log1p), lambda x: x - x * x / 2),
        "TANH_P": _fit(np.tanh, (0.0, TANH_SMALL), range(3, 12, 2), rel(np.tanh), lambda x: x),
        "ERF_Q": _fit(erf64, (0.0, ERF_SMALL), range(1, 14, 2), rel(erf64), lambda x: x),
        "LOG_ERFC_H": _fit(lambda x: np.log(erfc64(x)), (ERF_SMALL, ERF_ONE), range(9), erfc64),
    }


if __name__ == "__main__":
    for name, (coeffs, err) in fit_coefficients().items():
        print(f"{name} = {tuple(coeffs)}  # max weighted error 2^{np.log2(err):.1f}")
