"""QONNX's quantizers (Brevitas `export_qonnx`, FINN): BipolarQuant,
Quant/IntQuant and Trunc, in the domains qonnx.custom_op.general,
onnx.brevitas and finn.custom_op.general.

Semantics (QONNX's operator definitions, float32 throughout):
  BipolarQuant(x, s)  = (x >= 0 ? +1 : -1) * s
  Quant(x, s, z, b)   = (round(clamp(x / s + z, lo, hi)) - z) * s, with
                        lo/hi the signed/unsigned (narrow) range of b bits and
                        round the rounding_mode (ROUND = half to even); a
                        signed 1-bit Quant is bipolar: (x / s + z >= 0 ? 1 : -1)
  Trunc(x, s, z, bi, bo)       (v1) = (mode(round(x / s + z) / 2^(bi-bo)) - z) * s
  Trunc(x, s, z, bi, so, bo)   (v2) = (mode(clamp(round(x / s + z) / t)) - z / t) * so,
                        t = 2^round(log2(so / s))

On constants (weight quantizers) they are evaluated with numpy here. On
activations they become float ops computing exactly these values: compare
and where for the bipolar case (recognize-binarization reads them as any
other binariser), a sum of compare masks for ranges of a few levels (so the
value sets stay visible: an unsigned 1-bit Quant is a {0, s} unipolar
tensor), and the exact float rounding of onnx_ops_elementwise for wider ones
(CNV's 8-bit input quantizer).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xdsl.ir import SSAValue

from bnnc.dialects import bnn

from .onnx_import import OnnxImporter
from .onnx_ops_elementwise import ROUND_LIMIT, binary, const, round_integral
from .onnx_registry import QONNX_DOMAIN, handles

_F = np.float32
# A range of at most this many steps is rounded as a sum of compare masks.
_MASK_LEVELS = 3


def int_range(signed: bool, narrow: bool, bits: int) -> tuple[int, int]:
    """(lo, hi) of a b-bit integer, QONNX's min_int/max_int."""
    if signed:
        return -(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1 - int(narrow)


def _np_round(v: np.ndarray, mode: str) -> np.ndarray:
    mode = mode.upper()
    if mode in ("ROUND", "HALF_EVEN"):
        return np.round(v)
    if mode == "FLOOR":
        return np.floor(v)
    if mode == "CEIL":
        return np.ceil(v)
    if mode == "UP":
        return np.sign(v) * np.ceil(np.abs(v))
    if mode == "DOWN":
        return np.trunc(v)
    if mode == "HALF_UP":
        return np.sign(v) * np.floor(np.abs(v) + _F(0.5))
    if mode == "HALF_DOWN":
        return np.sign(v) * np.ceil(np.abs(v) - _F(0.5))
    raise ValueError(mode)


def quant_numpy(x, scale, zeropt, bits: int, signed: bool, narrow: bool, mode: str) -> np.ndarray:
    """QONNX Quant on arrays, in float32."""
    v = (np.asarray(x, _F) / np.asarray(scale, _F)).astype(_F) + np.asarray(zeropt, _F)
    if bits == 1 and signed:
        q = np.where(v >= 0, _F(1), _F(-1))
    else:
        lo, hi = int_range(signed, narrow, bits)
        v = np.where(v > hi, _F(hi), v)
        v = np.where(v < lo, _F(lo), v)
        q = _np_round(v.astype(_F), mode)
    return ((q - np.asarray(zeropt, _F)) * np.asarray(scale, _F)).astype(_F)


def bipolar_numpy(x, scale) -> np.ndarray:
    return (np.where(np.asarray(x, _F) >= 0, _F(1), _F(-1)) * np.asarray(scale, _F)).astype(_F)


def trunc_numpy(x, scale, zeropt, in_bits, *rest, signed=True, narrow=False, mode="FLOOR") -> np.ndarray:
    """QONNX Trunc v1 (rest = out_bits) or v2 (rest = out_scale, out_bits)."""
    scale, zeropt = np.asarray(scale, _F), np.asarray(zeropt, _F)
    v = np.round((np.asarray(x, _F) / scale).astype(_F) + zeropt)
    if len(rest) == 1:
        t = _F(2.0 ** (float(in_bits) - float(rest[0])))
        y = _np_round((v / t).astype(_F), mode)
        return ((y - zeropt) * scale).astype(_F)
    out_scale, out_bits = np.asarray(rest[0], _F), int(np.asarray(rest[1]).reshape(-1)[0])
    t = (_F(2.0) ** np.round(np.log2(out_scale / scale))).astype(_F)
    lo, hi = int_range(signed, narrow, out_bits)
    v = (v / t).astype(_F)
    v = np.where(v > hi, _F(hi), v)
    v = np.where(v < lo, _F(lo), v)
    y = _np_round(v, mode)
    return ((y - zeropt / t) * out_scale).astype(_F)


def _bits(imp: OnnxImporter, node: Any, i: int) -> int:
    b = np.asarray(imp.const(node, i, "bit width")).reshape(-1)
    if b.size != 1 or float(b[0]) != int(b[0]) or int(b[0]) < 1:
        raise imp.unsupported(node, f"{node.op_type} with bit width {b.tolist()}", "use one positive integer bit width")
    return int(b[0])


def _flags(imp: OnnxImporter, node: Any, mode_default: str) -> tuple[bool, bool, str]:
    mode = str(imp.attr(node, "rounding_mode", mode_default)).upper()
    return bool(imp.attr(node, "signed", 1)), bool(imp.attr(node, "narrow", 0)), mode


def fold_qonnx(imp: OnnxImporter, node: Any, args: list[Any]) -> list[np.ndarray] | None:
    """A QONNX op on constants (a weight quantizer), evaluated in numpy."""
    op = node.op_type
    try:
        if op == "BipolarQuant":
            return [bipolar_numpy(args[0], args[1])]
        if op in ("Quant", "IntQuant"):
            signed, narrow, mode = _flags(imp, node, "ROUND")
            return [quant_numpy(args[0], args[1], args[2], _bits(imp, node, 3), signed, narrow, mode)]
        if op == "Trunc":
            signed, narrow, mode = _flags(imp, node, "FLOOR")
            return [trunc_numpy(*args[:6], signed=signed, narrow=narrow, mode=mode)]
    except ValueError:
        raise imp.unsupported(node, f"{op} with rounding mode {imp.attr(node, 'rounding_mode')}", "use ROUND, FLOOR or CEIL") from None
    return None


# --------------------------------------------------------------- at run time


def _scaled(imp: OnnxImporter, node: Any, v: SSAValue, scale: np.ndarray, op: type) -> SSAValue:
    """v op scale, skipped where the scale is all ones (x * 1 and x / 1 are x)."""
    if np.all(scale == 1):
        return v
    return binary(imp, node, op, v, imp.const_tensor(scale.reshape(scale.shape or (1,))))


def _shift(imp: OnnxImporter, node: Any, v: SSAValue, z: np.ndarray, op: type) -> SSAValue:
    """v op z, skipped where the zero point is all zeros."""
    if np.all(z == 0):
        return v
    return binary(imp, node, op, v, imp.const_tensor(z.reshape(z.shape or (1,))))


def _bipolar(imp: OnnxImporter, node: Any, v: SSAValue) -> SSAValue:
    """where(v >= 0, 1, -1)."""
    ge = binary(imp, node, bnn.CompareOp, v, const(imp, 0.0), predicate="ge")
    return imp.add(bnn.WhereOp(ge, const(imp, 1.0), const(imp, -1.0), ge.type)).result


def _threshold(mode: str, k: int) -> tuple[float, bool] | None:
    """Where a value in [k, k+1] rounds up to k+1 under `mode`: (t, inclusive)."""
    half = k + 0.5
    table = {
        "ROUND": (half, (k + 1) % 2 == 0),
        "HALF_EVEN": (half, (k + 1) % 2 == 0),
        "HALF_UP": (half, half > 0),
        "HALF_DOWN": (half, half < 0),
        "FLOOR": (float(k + 1), True),
        "CEIL": (float(k), False),
        "UP": (float(k), False) if k >= 0 else (float(k + 1), True),
        "DOWN": (float(k + 1), True) if k >= 0 else (float(k), False),
    }
    return table.get(mode)


def _round_clamped(imp: OnnxImporter, node: Any, v: SSAValue, lo: int, hi: int, mode: str) -> SSAValue:
    """mode-rounding of v, which the caller clamped to [lo, hi]."""
    if hi - lo <= _MASK_LEVELS:
        acc = None
        for k in range(lo, hi):
            th = _threshold(mode, k)
            if th is None:
                raise imp.unsupported(node, f"rounding mode {mode}", "use ROUND, FLOOR, CEIL, UP, DOWN, HALF_UP or HALF_DOWN")
            m = binary(imp, node, bnn.CompareOp, v, const(imp, th[0]), predicate="ge" if th[1] else "gt")
            acc = m if acc is None else binary(imp, node, bnn.AddOp, acc, m)
        assert acc is not None
        return acc if lo == 0 else binary(imp, node, bnn.AddOp, acc, const(imp, float(lo)))
    if max(abs(lo), abs(hi)) >= ROUND_LIMIT:
        raise imp.unsupported(node, f"{node.op_type} wider than 22 bits", "bnnc rounds exactly up to 22-bit ranges")
    if mode == "HALF_EVEN":
        mode = "ROUND"
    if mode not in ("ROUND", "FLOOR", "CEIL"):
        raise imp.unsupported(
            node, f"{node.op_type} with rounding mode {mode} over {hi - lo + 1} levels", "use ROUND, FLOOR or CEIL"
        )
    return round_integral(imp, node, v, mode, bounded=True)


@handles(QONNX_DOMAIN, "BipolarQuant")
def _bipolar_quant(imp: OnnxImporter, node: Any) -> list[Any]:
    scale = imp.float_const(node, imp.const(node, 1, "scale"))
    q = _bipolar(imp, node, imp.value(node, 0))
    return [_conform(imp, node, _scaled(imp, node, q, scale, bnn.MulOp))]


@handles(QONNX_DOMAIN, "Quant", "IntQuant")
def _quant(imp: OnnxImporter, node: Any) -> list[Any]:
    scale = imp.float_const(node, imp.const(node, 1, "scale"))
    zero = imp.float_const(node, imp.const(node, 2, "zero point"))
    bits = _bits(imp, node, 3)
    signed, narrow, mode = _flags(imp, node, "ROUND")
    v = _scaled(imp, node, imp.value(node, 0), scale, bnn.DivOp)
    v = _shift(imp, node, v, zero, bnn.AddOp)
    if bits == 1 and signed:
        q = _bipolar(imp, node, v)
    else:
        lo, hi = int_range(signed, narrow, bits)
        if lo > hi:
            raise imp.unsupported(node, f"{node.op_type} with an empty range", "check signed/narrow/bit width")
        v = imp.add(bnn.HardtanhOp(v, float(lo), float(hi))).result
        q = _round_clamped(imp, node, v, lo, hi, mode)
    q = _shift(imp, node, q, zero, bnn.SubOp)
    return [_conform(imp, node, _scaled(imp, node, q, scale, bnn.MulOp))]


@handles(QONNX_DOMAIN, "Trunc")
def _trunc(imp: OnnxImporter, node: Any) -> list[Any]:
    scale = imp.float_const(node, imp.const(node, 1, "scale"))
    zero = imp.float_const(node, imp.const(node, 2, "zero point"))
    in_bits = _bits(imp, node, 3)
    signed, narrow, mode = _flags(imp, node, "FLOOR")
    v = _scaled(imp, node, imp.value(node, 0), scale, bnn.DivOp)
    v = round_integral(imp, node, _shift(imp, node, v, zero, bnn.AddOp), "ROUND", bounded=False)
    if len(node.input) < 6:  # v1: shift right by in - out bits
        t = np.array(2.0 ** (in_bits - _bits(imp, node, 4)), dtype=_F)
        y = round_integral(imp, node, _scaled(imp, node, v, t, bnn.DivOp), mode, bounded=False)
        y = _shift(imp, node, y, zero, bnn.SubOp)
        return [_conform(imp, node, _scaled(imp, node, y, scale, bnn.MulOp))]
    out_scale = imp.float_const(node, imp.const(node, 4, "output scale"))
    lo, hi = int_range(signed, narrow, _bits(imp, node, 5))
    t = (_F(2.0) ** np.round(np.log2(out_scale / scale))).astype(_F)
    v = imp.add(bnn.HardtanhOp(_scaled(imp, node, v, t, bnn.DivOp), float(lo), float(hi))).result
    y = _round_clamped(imp, node, v, lo, hi, mode)
    y = _shift(imp, node, y, (zero / t).astype(_F), bnn.SubOp)
    return [_conform(imp, node, _scaled(imp, node, y, out_scale, bnn.MulOp))]


def _conform(imp: OnnxImporter, node: Any, v: SSAValue) -> SSAValue:
    """The result in the input's shape (QONNX's ops are elementwise on X)."""
    from .onnx_ops_nn import _reshape

    shape = imp.shape(node, 0)
    got = tuple(v.type.get_shape())
    if got != shape:
        if int(np.prod(got)) != int(np.prod(shape)):
            raise imp.unsupported(node, f"{node.op_type} whose parameters broadcast X to {got}", "use scalar or per-channel parameters")
        v = _reshape(imp, v, shape)
    imp.inferred.setdefault(node.output[0], (1, shape))
    return v
