"""Elementwise float math of the bnn dialect (activation functions, roots,
exponentials, minimum/maximum): ops upstream xDSL lacks at tensor level.

One parameter-free op, `bnn.unary {fn = "..."}`, covers the functions that
differ only in their formula; the three with parameters (elu, leaky_relu,
pow) are small ops of their own so their parameters are named in the IR.
Each op computes what PyTorch's CPU kernel computes, step by step in f32
(the formulas are in UNARY_FUNCTIONS and the op docstrings); the lowering
(passes/_lower_math.py) follows them operation by operation.
"""

from __future__ import annotations

import math

from xdsl.dialects.builtin import AnyFloat, FloatAttr, StringAttr, f32
from xdsl.ir import Operation, SSAValue
from xdsl.irdl import ParsePropInAttrDict, irdl_op_definition, prop_def
from xdsl.utils.exceptions import VerifyException

from bnnc.dialects.bnn import _BinaryOp, _UnaryOp

# fn -> PyTorch's formula, the one the lowering computes (f32 at every step).
UNARY_FUNCTIONS: dict[str, str] = {
    "tanh": "tanh(x)",
    "sigmoid": "1 / (1 + exp(-x))",
    "gelu": "(x * 0.5) * (1 + erf(x * f32(1/sqrt(2))))",
    "gelu_tanh": "(0.5 * x) * (1 + tanh(f32(sqrt(2/pi)) * (x + f32(0.044715) * ((x * x) * x))))",
    "sqrt": "sqrt(x)",
    "rsqrt": "1 / sqrt(x)",
    "reciprocal": "1 / x",
    "exp": "exp(x)",
    "expm1": "exp(x) - 1 without cancellation (expm1)",
    "log": "log(x)",
    "log1p": "log(1 + x) without cancellation (log1p)",
    "erf": "erf(x)",
    "round": "round half to even (torch.round)",
    "floor": "floor(x)",
    "ceil": "ceil(x)",
    "trunc": "trunc(x)",
}


def _f32(op: Operation, name: str) -> float:
    return op.properties[name].value.data  # type: ignore[union-attr]


@irdl_op_definition
class UnaryMathOp(_UnaryOp):
    """`fn`(x) elementwise, for fn in UNARY_FUNCTIONS."""

    name = "bnn.unary"
    fn = prop_def(StringAttr)
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, input: SSAValue | Operation, fn: str):
        super().__init__(input, {"fn": StringAttr(fn)})

    def verify_(self) -> None:
        super().verify_()
        if self.fn.data not in UNARY_FUNCTIONS:
            raise VerifyException(f"bnn.unary fn must be one of {sorted(UNARY_FUNCTIONS)}, got {self.fn.data!r}")


@irdl_op_definition
class EluOp(_UnaryOp):
    """torch's elu: x <= 0 ? (exp(x * input_scale) - 1) * (alpha * scale) : x * scale,
    with alpha * scale rounded to f32 once (selu is elu with its constants)."""

    name = "bnn.elu"
    alpha = prop_def(FloatAttr[AnyFloat])
    scale = prop_def(FloatAttr[AnyFloat])
    input_scale = prop_def(FloatAttr[AnyFloat])
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, input: SSAValue | Operation, alpha: float = 1.0, scale: float = 1.0, input_scale: float = 1.0):
        props = {k: FloatAttr(v, f32) for k, v in (("alpha", alpha), ("scale", scale), ("input_scale", input_scale))}
        super().__init__(input, props)


@irdl_op_definition
class LeakyReluOp(_UnaryOp):
    """x > 0 ? x : x * negative_slope (so -0.0 stays -0.0 and NaN stays NaN)."""

    name = "bnn.leaky_relu"
    negative_slope = prop_def(FloatAttr[AnyFloat])
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, input: SSAValue | Operation, negative_slope: float = 0.01):
        super().__init__(input, {"negative_slope": FloatAttr(negative_slope, f32)})


# Exponents PyTorch's pow kernel computes with plain arithmetic instead of pow().
POW_SPECIAL: dict[float, str] = {
    0.0: "1 (also for NaN)",
    1.0: "x",
    2.0: "x * x",
    3.0: "(x * x) * x",
    -1.0: "1 / x",
    -2.0: "1 / (x * x)",
    0.5: "sqrt(x)",
    -0.5: "1 / sqrt(x)",
}


@irdl_op_definition
class PowOp(_UnaryOp):
    """x ** exponent for a number exponent: POW_SPECIAL's arithmetic where
    PyTorch uses it, else powf(x, exponent)."""

    name = "bnn.pow"
    exponent = prop_def(FloatAttr[AnyFloat])
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, input: SSAValue | Operation, exponent: float):
        super().__init__(input, {"exponent": FloatAttr(exponent, f32)})

    def verify_(self) -> None:
        super().verify_()
        e = _f32(self, "exponent")
        if math.isnan(e):
            raise VerifyException("bnn.pow exponent must not be NaN")


@irdl_op_definition
class MinimumOp(_BinaryOp):
    """torch.minimum (broadcasting): NaN if either is NaN, else lhs < rhs ? lhs : rhs
    (of equal values, +-0 included, rhs, as PyTorch's vectorised kernel)."""

    name = "bnn.minimum"


@irdl_op_definition
class MaximumOp(_BinaryOp):
    """torch.maximum (broadcasting): NaN if either is NaN, else lhs > rhs ? lhs : rhs."""

    name = "bnn.maximum"


MATH_OPS: list[type[Operation]] = [UnaryMathOp, EluOp, LeakyReluOp, PowOp, MinimumOp, MaximumOp]
__all__ = [
    "POW_SPECIAL",
    "UNARY_FUNCTIONS",
    "EluOp",
    "LeakyReluOp",
    "MaximumOp",
    "MinimumOp",
    "PowOp",
    "UnaryMathOp",
]
