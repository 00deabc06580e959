"""ONNX elementwise ops: arithmetic, comparisons and logic (booleans are f32
masks), Where, Cast, activation functions, Clip, rounding.

Each translates to the bnn op with the same semantics; where ONNX's op has
none of its own (Neg, Not, HardSigmoid, Round, ...) it becomes the float ops
that compute exactly ONNX's values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xdsl.dialects.builtin import TensorType, f32
from xdsl.ir import SSAValue

from bnnc.dialects import bnn

from .onnx_import import OnnxImporter
from .onnx_registry import ONNX_DOMAIN, Mask, handles


def conform(imp: OnnxImporter, node: Any, v: SSAValue, i: int = 0) -> SSAValue:
    """`v` reshaped to ONNX's shape of output i where they differ only in
    layout (a scalar constant is held as a 1-element tensor)."""
    want = imp.out_shape(node, i)
    if tuple(v.type.get_shape()) == tuple(want):
        return v
    return imp.add(bnn.ReshapeOp(v, TensorType(f32, list(want)))).result


def binary(imp: OnnxImporter, node: Any, cls: type, a: SSAValue, b: SSAValue, **kw: Any) -> SSAValue:
    """An elementwise bnn op with NumPy broadcasting, shaped as ONNX's output."""
    shape = bnn.broadcast_shape(a.type.get_shape(), b.type.get_shape())
    if shape is None:
        raise imp.unsupported(node, f"{node.op_type} of shapes that do not broadcast", "check the model")
    typ = TensorType(f32, list(shape))
    op = cls(a, b, kw["predicate"], typ) if "predicate" in kw else cls(a, b, typ)
    return imp.add(op).result


def const(imp: OnnxImporter, value: float) -> SSAValue:
    return imp.const_tensor(np.full([1], value, dtype=np.float32))


def scalar(imp: OnnxImporter, node: Any, i: int, what: str) -> float | None:
    """Input i as one number if it is a constant holding one value, else None."""
    if not imp.has_input(node, i) or not imp.is_const(node, i):
        return None
    arr = np.asarray(imp.consts[node.input[i]])
    if arr.size == 0:
        return None
    flat = arr.reshape(-1)
    if not np.all(flat == flat[0]) and not np.all(np.isnan(flat)):
        return None
    return float(flat[0])


# ------------------------------------------------------------- arithmetic

_ARITH = {"Add": bnn.AddOp, "Sub": bnn.SubOp, "Mul": bnn.MulOp, "Div": bnn.DivOp}


@handles(ONNX_DOMAIN, *_ARITH)
def _arith(imp: OnnxImporter, node: Any) -> list[Any]:
    v = binary(imp, node, _ARITH[node.op_type], imp.value(node, 0), imp.value(node, 1))
    return [conform(imp, node, v)]


@handles(ONNX_DOMAIN, "Pow")
def _pow(imp: OnnxImporter, node: Any) -> list[Any]:
    e = scalar(imp, node, 1, "exponent")
    if e is None or node.input[0] in imp.consts:
        raise imp.unsupported(node, "Pow with a computed or non-uniform exponent", "use one constant exponent")
    return [conform(imp, node, imp.add(bnn.PowOp(imp.value(node, 0), e)).result)]


def _fold_variadic(imp: OnnxImporter, node: Any, cls: type) -> SSAValue:
    acc = imp.value(node, 0)
    for i in range(1, len(node.input)):
        acc = binary(imp, node, cls, acc, imp.value(node, i))
    return acc


@handles(ONNX_DOMAIN, "Min", "Max")
def _minmax(imp: OnnxImporter, node: Any) -> list[Any]:
    cls = bnn.MinimumOp if node.op_type == "Min" else bnn.MaximumOp
    return [conform(imp, node, _fold_variadic(imp, node, cls))]


@handles(ONNX_DOMAIN, "Sum", "Mean")
def _sum(imp: OnnxImporter, node: Any) -> list[Any]:
    acc = _fold_variadic(imp, node, bnn.AddOp)
    if node.op_type == "Mean":
        acc = binary(imp, node, bnn.DivOp, acc, const(imp, float(len(node.input))))
    return [conform(imp, node, acc)]


@handles(ONNX_DOMAIN, "Neg")
def _neg(imp: OnnxImporter, node: Any) -> list[Any]:
    # x * -1 flips the sign of zeros too, as negation does (0 - x would not)
    return [conform(imp, node, binary(imp, node, bnn.MulOp, imp.value(node, 0), const(imp, -1.0)))]


# ------------------------------------------------------------ activations

_UNARY_FN = {
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Erf": "erf",
    "Exp": "exp",
    "Log": "log",
    "Sqrt": "sqrt",
    "Reciprocal": "reciprocal",
}


@handles(ONNX_DOMAIN, *_UNARY_FN)
def _unary_math(imp: OnnxImporter, node: Any) -> list[Any]:
    return [imp.add(bnn.UnaryMathOp(imp.value(node, 0), _UNARY_FN[node.op_type])).result]


@handles(ONNX_DOMAIN, "Abs", "Relu", "Sign")
def _unary(imp: OnnxImporter, node: Any) -> list[Any]:
    cls = {"Abs": bnn.AbsOp, "Relu": bnn.ReluOp, "Sign": bnn.SignumOp}[node.op_type]
    return [imp.add(cls(imp.value(node, 0))).result]


@handles(ONNX_DOMAIN, "Gelu")
def _gelu(imp: OnnxImporter, node: Any) -> list[Any]:
    fn = "gelu_tanh" if imp.attr(node, "approximate", "none") == "tanh" else "gelu"
    return [imp.add(bnn.UnaryMathOp(imp.value(node, 0), fn)).result]


@handles(ONNX_DOMAIN, "LeakyRelu")
def _leaky_relu(imp: OnnxImporter, node: Any) -> list[Any]:
    return [imp.add(bnn.LeakyReluOp(imp.value(node, 0), float(imp.attr(node, "alpha", 0.01)))).result]


@handles(ONNX_DOMAIN, "Elu", "Selu")
def _elu(imp: OnnxImporter, node: Any) -> list[Any]:
    if node.op_type == "Elu":
        op = bnn.EluOp(imp.value(node, 0), alpha=float(imp.attr(node, "alpha", 1.0)))
    else:
        alpha = float(imp.attr(node, "alpha", 1.67326319217681884765625))
        gamma = float(imp.attr(node, "gamma", 1.05070102214813232421875))
        op = bnn.EluOp(imp.value(node, 0), alpha=alpha, scale=gamma)
    return [imp.add(op).result]


@handles(ONNX_DOMAIN, "HardSigmoid", "HardSwish")
def _hard_sigmoid(imp: OnnxImporter, node: Any) -> list[Any]:
    """max(0, min(1, alpha * x + beta)); HardSwish is x times it (alpha 1/6, beta 1/2)."""
    x = imp.value(node, 0)
    if node.op_type == "HardSigmoid":
        alpha, beta = float(imp.attr(node, "alpha", 0.2)), float(imp.attr(node, "beta", 0.5))
    else:
        alpha, beta = 1.0 / 6.0, 0.5
    y = binary(imp, node, bnn.MulOp, x, const(imp, alpha))
    y = binary(imp, node, bnn.AddOp, y, const(imp, beta))
    y = imp.add(bnn.HardtanhOp(y, 0.0, 1.0)).result
    if node.op_type == "HardSwish":
        y = binary(imp, node, bnn.MulOp, x, y)
    return [y]


@handles(ONNX_DOMAIN, "Softsign", "Softplus")
def _soft(imp: OnnxImporter, node: Any) -> list[Any]:
    x = imp.value(node, 0)
    if node.op_type == "Softsign":  # x / (1 + |x|)
        den = binary(imp, node, bnn.AddOp, imp.add(bnn.AbsOp(x)).result, const(imp, 1.0))
        return [binary(imp, node, bnn.DivOp, x, den)]
    e = imp.add(bnn.UnaryMathOp(x, "exp")).result  # log(exp(x) + 1)
    return [imp.add(bnn.UnaryMathOp(binary(imp, node, bnn.AddOp, e, const(imp, 1.0)), "log")).result]


@handles(ONNX_DOMAIN, "PRelu")
def _prelu(imp: OnnxImporter, node: Any) -> list[Any]:
    """x < 0 ? slope * x : x. A slope that varies only along axis 1 (or not at
    all) is bnn.prelu; any other broadcast is where/mul."""
    x = imp.value(node, 0)
    shape = imp.shape(node, 0)
    if imp.is_const(node, 1) and len(shape) >= 1:
        slope = imp.float_const(node, imp.consts[node.input[1]])
        full = np.broadcast_to(slope, shape)
        if full.size and np.all(full == full.reshape(-1)[0]):
            return [imp.add(bnn.PReluOp(x, imp.const_tensor(full.reshape(-1)[:1]))).result]
        if len(shape) >= 2:
            per_c = full.reshape(shape[0], shape[1], -1)[0, :, 0]
            expect = np.broadcast_to(per_c.reshape((1, -1) + (1,) * (len(shape) - 2)), shape)
            if np.array_equal(full, expect):
                return [imp.add(bnn.PReluOp(x, imp.const_tensor(per_c))).result]
    neg = binary(imp, node, bnn.CompareOp, x, const(imp, 0.0), predicate="lt")
    scaled = binary(imp, node, bnn.MulOp, x, imp.value(node, 1))
    out = imp.add(bnn.WhereOp(neg, scaled, x, scaled.type)).result
    return [conform(imp, node, out)]


@handles(ONNX_DOMAIN, "Clip")
def _clip(imp: OnnxImporter, node: Any) -> list[Any]:
    """min(max(x, lo), hi); constant bounds are bnn.hardtanh (both) or a
    maximum/minimum with a constant (one)."""
    x = imp.value(node, 0)
    if imp.opset() < 11:  # pragma: no cover - opsets < 13 are refused earlier
        raise imp.unsupported(node, "Clip before opset 11", "re-export with a newer opset")
    lo = scalar(imp, node, 1, "min")
    hi = scalar(imp, node, 2, "max")
    has_lo, has_hi = imp.has_input(node, 1), imp.has_input(node, 2)
    if has_lo and has_hi and lo is not None and hi is not None and lo <= hi:
        return [imp.add(bnn.HardtanhOp(x, lo, hi)).result]
    y = x
    if has_lo:
        y = binary(imp, node, bnn.MaximumOp, y, imp.value(node, 1))
    if has_hi:
        y = binary(imp, node, bnn.MinimumOp, y, imp.value(node, 2))
    return [conform(imp, node, y)]


# ----------------------------------------------------- comparison, logic

_PREDICATES = {"Less": "lt", "LessOrEqual": "le", "Greater": "gt", "GreaterOrEqual": "ge", "Equal": "eq"}


@handles(ONNX_DOMAIN, *_PREDICATES)
def _compare(imp: OnnxImporter, node: Any) -> list[Any]:
    pred = _PREDICATES[node.op_type]
    v = binary(imp, node, bnn.CompareOp, imp.value(node, 0), imp.value(node, 1), predicate=pred)
    return [Mask(conform(imp, node, v))]


@handles(ONNX_DOMAIN, "Not")
def _not(imp: OnnxImporter, node: Any) -> list[Any]:
    return [Mask(binary(imp, node, bnn.SubOp, const(imp, 1.0), imp.value(node, 0)))]


@handles(ONNX_DOMAIN, "And", "Or", "Xor")
def _logic(imp: OnnxImporter, node: Any) -> list[Any]:
    a, b = imp.value(node, 0), imp.value(node, 1)
    if node.op_type == "And":
        v = binary(imp, node, bnn.MulOp, a, b)
    elif node.op_type == "Or":
        v = binary(imp, node, bnn.MaximumOp, a, b)
    else:
        v = binary(imp, node, bnn.CompareOp, a, b, predicate="ne")
    return [Mask(conform(imp, node, v))]


@handles(ONNX_DOMAIN, "Where")
def _where(imp: OnnxImporter, node: Any) -> list[Any]:
    c, a, b = (imp.value(node, i) for i in range(3))
    shape = bnn.broadcast_shape(c.type.get_shape(), a.type.get_shape())
    shape = bnn.broadcast_shape(shape, b.type.get_shape()) if shape is not None else None
    if shape is None:
        raise imp.unsupported(node, "Where of shapes that do not broadcast", "check the model")
    v = conform(imp, node, imp.add(bnn.WhereOp(c, a, b, TensorType(f32, list(shape)))).result)
    return [Mask(v) if imp.is_mask(node, 1) and imp.is_mask(node, 2) else v]


# ----------------------------------------------------- casts, identities

_FLOAT, _BOOL = 1, 9  # onnx.TensorProto.FLOAT, BOOL


def _cast_to(imp: OnnxImporter, node: Any, to: int) -> list[Any]:
    x = imp.value(node, 0)
    mask = imp.is_mask(node, 0)
    if to == _FLOAT:
        return [x]
    if to == _BOOL:
        return [Mask(x) if mask else Mask(binary(imp, node, bnn.CompareOp, x, const(imp, 0.0), predicate="ne"))]
    from onnx import TensorProto

    name = TensorProto.DataType.Name(to) if to in TensorProto.DataType.values() else str(to)
    raise imp.unsupported(
        node,
        f"Cast of a computed tensor to {name}",
        "bnnc computes in float32 with boolean masks; cast activations to FLOAT or BOOL only",
    )


@handles(ONNX_DOMAIN, "Cast")
def _cast(imp: OnnxImporter, node: Any) -> list[Any]:
    return _cast_to(imp, node, int(imp.attr(node, "to", _FLOAT)))


@handles(ONNX_DOMAIN, "CastLike")
def _cast_like(imp: OnnxImporter, node: Any) -> list[Any]:
    from onnx import helper

    if imp.is_const(node, 1):
        to = helper.np_dtype_to_tensor_dtype(imp.consts[node.input[1]].dtype)
    else:
        to = _BOOL if imp.is_mask(node, 1) else _FLOAT
    return _cast_to(imp, node, to)


@handles(ONNX_DOMAIN, "Identity", "Dropout")
def _identity(imp: OnnxImporter, node: Any) -> list[Any]:
    training = imp.is_const(node, 2) and bool(np.asarray(imp.consts[node.input[2]]).reshape(-1)[0])
    if node.op_type == "Dropout" and training:
        raise imp.unsupported(node, "Dropout in training mode", "export the model in eval mode")
    x = imp.value(node, 0)
    return [Mask(x) if imp.is_mask(node, 0) else x]


# ---------------------------------------------------------------- rounding

# Adding then subtracting 1.5 * 2**23 rounds an f32 |v| < 2**22 to an integer,
# half to even, in two exact-by-IEEE operations (no fast-math anywhere in bnnc);
# 2**23 does it for 0 <= v < 2**23 (and -2**23 for negative v); from 2**23 on
# every f32 is an integer.
ROUND_MAGIC = 12582912.0
ROUND_LIMIT = float(2**22)
_TWO23 = float(2**23)


def round_half_even(imp: OnnxImporter, node: Any, v: SSAValue, bounded: bool) -> SSAValue:
    """Round `v` to the nearest integer, ties to even. `bounded`: the caller
    guarantees |v| < 2**22 (one add and one subtract); otherwise every f32."""
    if bounded:
        m = const(imp, ROUND_MAGIC)
        return binary(imp, node, bnn.SubOp, binary(imp, node, bnn.AddOp, v, m), m)
    big, small = const(imp, _TWO23), const(imp, -_TWO23)
    pos = binary(imp, node, bnn.SubOp, binary(imp, node, bnn.AddOp, v, big), big)
    neg = binary(imp, node, bnn.SubOp, binary(imp, node, bnn.AddOp, v, small), small)
    ge0 = binary(imp, node, bnn.CompareOp, v, const(imp, 0.0), predicate="ge")
    r = imp.add(bnn.WhereOp(ge0, pos, neg, pos.type)).result
    huge = binary(imp, node, bnn.CompareOp, imp.add(bnn.AbsOp(v)).result, big, predicate="ge")
    return imp.add(bnn.WhereOp(huge, v, r, r.type)).result


def round_integral(imp: OnnxImporter, node: Any, v: SSAValue, mode: str, bounded: bool) -> SSAValue:
    """ROUND (half to even), FLOOR or CEIL of `v`, exactly (see round_half_even)."""
    r = round_half_even(imp, node, v, bounded)
    if mode == "ROUND":
        return r
    if mode == "FLOOR":  # r - (r > v)
        return binary(imp, node, bnn.SubOp, r, binary(imp, node, bnn.CompareOp, r, v, predicate="gt"))
    if mode == "CEIL":  # r + (r < v)
        return binary(imp, node, bnn.AddOp, r, binary(imp, node, bnn.CompareOp, r, v, predicate="lt"))
    raise imp.unsupported(node, f"rounding mode {mode}", "use ROUND, FLOOR or CEIL")


@handles(ONNX_DOMAIN, "Round", "Floor", "Ceil")
def _round(imp: OnnxImporter, node: Any) -> list[Any]:
    mode = {"Round": "ROUND", "Floor": "FLOOR", "Ceil": "CEIL"}[node.op_type]
    return [round_integral(imp, node, imp.value(node, 0), mode, bounded=False)]
