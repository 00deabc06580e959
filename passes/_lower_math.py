"""Lowerings of the bnn math ops (dialects/bnn_math.py) to loop nests.

Every op is an elementwise loop (flattened trailing axes, threads split the
outer rows) whose body repeats PyTorch's CPU formula operation by operation
in f32, so the only differences from PyTorch are those of the elementary
functions themselves (exp, tanh, erf, log1p, pow: the `math` ops, which
convert-math-to-llvm turns into LLVM intrinsics or libm calls). Comparisons
are written so NaN takes the branch PyTorch's kernel gives it."""

from __future__ import annotations

import math as pymath
from collections.abc import Callable

import numpy as np
from xdsl.dialects import arith, math
from xdsl.ir import Operation, SSAValue

from bnnc.dialects import bnn
from bnnc.passes._loop_builder import LoopBuilder
from bnnc.passes._lowering import Lowerer, Lowering, WorkOf, elementwise

Body = Callable[[LoopBuilder, SSAValue], SSAValue]


def _m(lb: LoopBuilder, kind: type[Operation], *operands: SSAValue) -> SSAValue:
    return lb.emit(kind(*operands))


def _neg(lb: LoopBuilder, x: SSAValue) -> SSAValue:
    return lb.emit(arith.NegfOp(x))


def _f32(v: float) -> float:
    """`v` rounded to f32, as PyTorch's kernels hold their constants."""
    return float(np.float32(v))


def _sigmoid(lb: LoopBuilder, x: SSAValue) -> SSAValue:
    return lb.divf(lb.f32(1.0), lb.addf(lb.f32(1.0), _m(lb, math.ExpOp, _neg(lb, x))))


def _gelu(lb: LoopBuilder, x: SSAValue) -> SSAValue:
    erf = _m(lb, math.ErfOp, lb.mulf(x, lb.f32(_f32(pymath.sqrt(0.5)))))
    return lb.mulf(lb.mulf(x, lb.f32(0.5)), lb.addf(lb.f32(1.0), erf))


def _gelu_tanh(lb: LoopBuilder, x: SSAValue) -> SSAValue:
    beta, kappa = _f32(pymath.sqrt(2.0) * (2.0 / pymath.sqrt(pymath.pi)) * 0.5), _f32(0.044715)
    cube = lb.mulf(lb.mulf(x, x), x)
    inner = lb.mulf(lb.f32(beta), lb.addf(x, lb.mulf(lb.f32(kappa), cube)))
    return lb.mulf(lb.mulf(lb.f32(0.5), x), lb.addf(lb.f32(1.0), _m(lb, math.TanhOp, inner)))


UNARY_BODIES: dict[str, Body] = {
    "tanh": lambda lb, x: _m(lb, math.TanhOp, x),
    "sigmoid": _sigmoid,
    "gelu": _gelu,
    "gelu_tanh": _gelu_tanh,
    "sqrt": lambda lb, x: _m(lb, math.SqrtOp, x),
    "rsqrt": lambda lb, x: _m(lb, math.RsqrtOp, x),
    "reciprocal": lambda lb, x: lb.divf(lb.f32(1.0), x),
    "exp": lambda lb, x: _m(lb, math.ExpOp, x),
    "expm1": lambda lb, x: _m(lb, math.ExpM1Op, x),
    "log": lambda lb, x: _m(lb, math.LogOp, x),
    "log1p": lambda lb, x: _m(lb, math.Log1pOp, x),
    "erf": lambda lb, x: _m(lb, math.ErfOp, x),
    "round": lambda lb, x: _m(lb, math.RoundEvenOp, x),
    "floor": lambda lb, x: _m(lb, math.FloorOp, x),
    "ceil": lambda lb, x: _m(lb, math.CeilOp, x),
    "trunc": lambda lb, x: _m(lb, math.TruncOp, x),
}
# Functions that are a libm call or a polynomial rather than an instruction:
# they cost far more per element than a memory-bound op.
_EXPENSIVE = {"tanh", "sigmoid", "gelu", "gelu_tanh", "exp", "expm1", "log", "log1p", "erf"}
_CALL_COST = 8


def _unary(body: Body) -> Callable[[Lowerer, Operation, list[SSAValue], SSAValue], None]:
    def lower(lowerer: Lowerer, op: Operation, args: list[SSAValue], out: SSAValue) -> None:
        elementwise(lowerer, out, args, lambda lb, v, _: body(lb, v[0]))

    return lower


def lower_unary(lowerer: Lowerer, op: bnn.UnaryMathOp, args: list[SSAValue], out: SSAValue) -> None:
    _unary(UNARY_BODIES[op.fn.data])(lowerer, op, args, out)


def lower_elu(lowerer: Lowerer, op: bnn.EluOp, args: list[SSAValue], out: SSAValue) -> None:
    alpha, scale = np.float32(op.alpha.value.data), np.float32(op.scale.value.data)
    negcoef, poscoef, inscale = float(alpha * scale), float(scale), float(np.float32(op.input_scale.value.data))

    def body(lb: LoopBuilder, x: SSAValue) -> SSAValue:
        # x <= 0 is false for NaN, whose x * scale is NaN as PyTorch's
        em1 = lb.subf(_m(lb, math.ExpOp, lb.mulf(x, lb.f32(inscale))), lb.f32(1.0))
        return lb.select(lb.cmpf(x, 0.0, "ole"), lb.mulf(em1, lb.f32(negcoef)), lb.mulf(x, lb.f32(poscoef)))

    _unary(body)(lowerer, op, args, out)


def lower_leaky_relu(lowerer: Lowerer, op: bnn.LeakyReluOp, args: list[SSAValue], out: SSAValue) -> None:
    slope = float(np.float32(op.negative_slope.value.data))
    _unary(lambda lb, x: lb.select(lb.cmpf(x, 0.0, "ogt"), x, lb.mulf(x, lb.f32(slope))))(lowerer, op, args, out)


def _pow_body(e: float) -> Body:
    special: dict[float, Body] = {
        0.0: lambda lb, x: lb.f32(1.0),
        1.0: lambda lb, x: x,
        2.0: lambda lb, x: lb.mulf(x, x),
        3.0: lambda lb, x: lb.mulf(lb.mulf(x, x), x),
        -1.0: lambda lb, x: lb.divf(lb.f32(1.0), x),
        -2.0: lambda lb, x: lb.divf(lb.f32(1.0), lb.mulf(x, x)),
        0.5: lambda lb, x: _m(lb, math.SqrtOp, x),
        -0.5: lambda lb, x: _m(lb, math.RsqrtOp, x),
    }
    return special.get(e, lambda lb, x: _m(lb, math.PowFOp, x, lb.f32(e)))


def lower_pow(lowerer: Lowerer, op: bnn.PowOp, args: list[SSAValue], out: SSAValue) -> None:
    _unary(_pow_body(float(np.float32(op.exponent.value.data))))(lowerer, op, args, out)


def _extremum(pred: str) -> Lowering:
    """NaN if either operand is NaN, else (a `pred` b) ? a : b: PyTorch's
    vectorised minimum/maximum (of equal values it returns b)."""

    def lower(lowerer: Lowerer, op: Operation, args: list[SSAValue], out: SSAValue) -> None:
        def body(lb: LoopBuilder, v: list[SSAValue], _: list[SSAValue]) -> SSAValue:
            a, b = v
            pick = lb.select(lb.cmpf(a, b, pred), a, b)
            return lb.select(lb.cmpf(a, b, "uno"), lb.f32(float("nan")), pick)

        elementwise(lowerer, out, args, body)

    return lower


MATH_LOWERINGS: dict[type[Operation], Lowering] = {
    bnn.UnaryMathOp: lower_unary,
    bnn.EluOp: lower_elu,
    bnn.LeakyReluOp: lower_leaky_relu,
    bnn.PowOp: lower_pow,
    bnn.MinimumOp: _extremum("olt"),
    bnn.MaximumOp: _extremum("ogt"),
}


def _touched(op: Operation) -> int:
    """Elements an elementwise kernel touches: its output and its operands."""
    return sum(pymath.prod(v.type.get_shape()) for v in (*op.operands, op.results[0]))


def _math_work(op: Operation) -> int:
    """Elements touched, weighted by the cost of a libm call where there is one."""
    if isinstance(op, bnn.UnaryMathOp):
        expensive = op.fn.data in _EXPENSIVE
    elif isinstance(op, bnn.PowOp):
        expensive = float(np.float32(op.exponent.value.data)) not in bnn.POW_SPECIAL
    else:
        expensive = isinstance(op, bnn.EluOp)
    return _touched(op) * (_CALL_COST if expensive else 1)


# Ops whose kernels split their work between threads, with how much work each is.
MATH_THREADED: dict[type[Operation], WorkOf] = {kind: _math_work for kind in MATH_LOWERINGS}
