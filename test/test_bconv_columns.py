"""The column-vectorised bconv2d kernel (passes/_bconv_columns.py) for float
NCHW results: bit for bit against PyTorch (dot * multiplier, one f32
rounding, plus a residual) and against the channel-vectorised kernel it
replaces (every output transform it takes), on odd channel counts, rows that
end in a partial vector, zero / +1 / -1 padding of 0-2, dilation, a row
stride, groups, 1 and 3 threads, AVX-512 and AVX2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_kernels import VARIANTS, _t, compile_ir, reference_dot
from xdsl.dialects.builtin import f32, i64

from bnnc.dialects.bitpack import pack_conv_weight
from bnnc.dialects.bnn import conv_output_size
from bnnc.dialects.dense import from_numpy
from bnnc.passes import _bconv_columns

# (cin, cout, h, w, (sh, sw), padding, dilation, pad_value, groups, transform, residual, threads, variant)
CASES = [
    (3, 3, 9, 16, (1, 1), 1, 1, 0, 1, "mul", None, 1, "avx512"),
    (33, 33, 12, 30, (1, 1), 1, 1, 0, 1, "affine", "rhs", 3, "avx512"),  # 30 columns: 3 x 8 + 6
    (65, 65, 6, 47, (1, 1), 2, 2, 0, 1, "mul", "lhs", 1, "avx512"),  # 47 = 5 x 8 + 7
    (130, 130, 8, 24, (2, 1), 1, 1, 1, 1, "post", "rhs", 3, "avx512"),  # row stride 2
    (64, 64, 56, 56, (1, 1), 1, 1, 0, 1, "mul", "lhs", 1, "avx512"),
    (64, 96, 11, 40, (1, 1), 0, 1, 0, 1, "affine", None, 3, "avx2"),  # 38 = 9 x 4 + 2
    (33, 65, 7, 16, (1, 1), 1, 1, -1, 1, "mul", None, 1, "avx2"),
    (66, 34, 9, 20, (1, 1), 2, 1, 0, 2, "offset", "rhs", 3, "avx512"),  # groups; 22 columns: 2 x 8 + 6
]


def _case_ir(case, rng):
    cin, co, h, w, (sh, sw), p, d, pad_value, g, transform, residual, _, _ = case
    oh, ow = conv_output_size(h, 3, sh, p, d), conv_output_size(w, 3, sw, p, d)
    weights = pack_conv_weight(rng.random((co, cin // g, 3, 3)) < 0.5)
    m = rng.uniform(-2, 2, co).astype(np.float32)
    consts = {"w": weights, "m": m}
    extra = f" multiplier %m : {_t([co])}"
    attrs = ""
    if transform in ("affine", "offset"):
        if transform == "offset":  # bias = f32(m * k): the popcount form's (dot + k) * m
            b = (m.astype(np.float64) * rng.integers(-40, 40, co)).astype(np.float32)
            attrs = ', bnnc.binarized = "unipolar (popcount form)"'
        else:
            b = rng.uniform(-3, 3, co).astype(np.float32)
        consts["b"] = b
        extra += f" bias %b : {_t([co])}"
    if transform == "post":
        consts["pm"] = rng.uniform(-2, 2, co).astype(np.float32)
        consts["pb"] = rng.uniform(-1, 1, co).astype(np.float32)
        extra += f" post_multiplier %pm : {_t([co])} post_bias %pb : {_t([co])}"
    out_t = _t([1, co, oh, ow])
    if residual is not None:
        extra += f" residual %r : {out_t}"
    props = (
        f"strides = array<i64: {sh}, {sw}>, padding = array<i64: {p}, {p}>, dilations = array<i64: {d}, {d}>, "
        f"groups = {g} : i64, pad_value = {pad_value} : i64" + (", residual_lhs" if residual == "lhs" else "") + attrs
    )
    inputs = f"%x: {_t([1, cin, h, w])}" + (f", %r: {out_t}" if residual is not None else "")
    body = "\n  ".join(
        f"%{k} = arith.constant {from_numpy(v, i64 if v.dtype == np.int64 else f32)}" for k, v in consts.items()
    )
    ir = f"""func.func @forward({inputs}) -> {out_t} {{
  {body}
  %y = bnn.bconv2d %x, %w{extra} {{{props}}} : {_t([1, cin, h, w])}, {_t(weights.shape, "i64")} -> {out_t}
  func.return %y : {out_t}
}}"""
    return ir, weights, m, (oh, ow)


def _compile(ir, variant, threads, monkeypatch, columns: bool):
    """Compile with the column kernel or, `columns` False, the channel kernel;
    check which one lowered the conv."""
    used = []
    lower = _bconv_columns.lower_bconv2d_columns

    def spy(*args, **kwargs):
        used.append(True)
        return lower(*args, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(_bconv_columns, "lower_bconv2d_columns", spy)
        if not columns:
            mp.setattr(_bconv_columns, "column_tile", lambda *a: None)
        model = compile_ir(ir, VARIANTS[variant], threads)
    assert bool(used) == columns, "the column kernel was not the one used" if columns else "unexpected column kernel"
    return model


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)).replace(" ", ""))
def test_column_kernel_bit_exact(case, monkeypatch):
    cin, co, h, w, stride, p, d, pad_value, g, transform, residual, threads, variant = case
    rng = np.random.default_rng(cin * 1000 + co + h + w)
    ir, weights, m, (oh, ow) = _case_ir(case, rng)
    x = rng.standard_normal((1, cin, h, w)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = 0.0  # binarize(0) = +1
    args = [x]
    r = None
    if residual is not None:
        r = rng.standard_normal((1, co, oh, ow)).astype(np.float32)
        r.reshape(-1)[::7] = -0.0
        r.reshape(-1)[3::101] = np.inf
        args.append(r)
    got = _compile(ir, variant, threads, monkeypatch, columns=True)(*args)
    rows = _compile(ir, variant, threads, monkeypatch, columns=False)(*args)
    np.testing.assert_array_equal(got.view(np.uint32), rows.view(np.uint32))
    if transform == "mul":  # PyTorch: the exact integer dot times the multiplier, one rounding
        dot = reference_dot(np.where(x >= 0, 1.0, -1.0), weights, g, 1, p, d, pad_value)
        dot = dot[:, :, :: stride[0], :: stride[1]]  # a stride keeps every s-th row / column of stride 1's
        want = torch.from_numpy(dot.astype(np.float32)) * torch.from_numpy(m)[None, :, None, None]
        if r is not None:
            want = torch.from_numpy(r) + want if residual == "lhs" else want + torch.from_numpy(r)
        np.testing.assert_array_equal(got.view(np.uint32), want.numpy().view(np.uint32))


@pytest.mark.parametrize(
    "shape, stride, used",
    [
        ((64, 56), 1, True),  # 7 whole vectors
        ((64, 28), 1, False),  # the last vector would be half empty: channel kernel
        ((64, 56), 2, False),  # columns not contiguous
        ((3, 63), 1, True),
    ],
)
def test_column_kernel_selection(shape, stride, used, monkeypatch):
    """Which convs take the column kernel: whole or nearly whole vectors along x, stride 1 there."""
    c, hw = shape
    case = (c, c, 8, hw, (1, stride), 1, 1, 0, 1, "mul", None, 1, "avx512")
    ir, _, _, _ = _case_ir(case, np.random.default_rng(0))
    _compile(ir, "avx512", 1, monkeypatch, columns=used)
