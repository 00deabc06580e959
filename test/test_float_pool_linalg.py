"""Ceil-mode and adaptive pooling, products of two activations and
transposed convolution against PyTorch: pools bit for bit (NaN, -0.0, -inf
included), sums within the float rounding bound |got - exact| <=
K * 2^-23 * sum|products| (K products per output; PyTorch's own kernels add
in another order), at 1, 2 and 3 threads (bit-identical across counts)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from float_helpers import THREADS, compile_ir, float_bits, forward_func, special_values, tensor_type
from torch import nn

from bnnc.dialects.bnn import pool_output_size
from bnnc.driver import CompileOptions, build, jit
from bnnc.frontend.torch_import import export_module, import_program

EPS = 2.0**-23


def _within_rounding(got: np.ndarray, exact: np.ndarray, magnitude: np.ndarray, terms: int) -> None:
    """|got - exact| <= terms * eps * magnitude (the standard bound of a float32
    sum of `terms` products), elementwise; exact and magnitude in float64."""
    bound = terms * EPS * magnitude + 1e-30
    err = np.abs(got.astype(np.float64) - exact)
    worst = np.max(err / bound)
    assert worst <= 1.0, f"error {worst:.2f}x the rounding bound"


def _compile_model(model: nn.Module, inputs: tuple, threads: int):
    """The full default pipeline; thread_min_work=0 splits even tiny layers."""
    module = import_program(export_module(model, inputs))
    return jit(build(module, options=CompileOptions(num_threads=threads, thread_min_work=0)))


class _Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


# ------------------------------------------------------------ ceil-mode pools

# kernel, stride, padding, dilation, (H, W): each one where ceil mode adds a
# row or column (checked below), incl. windows that start in the last input
# column, a ceil window dropped by PyTorch's "must start inside" rule, and
# dilation (max only).
CEIL_GEOMETRIES = [
    (3, 2, 0, 1, (8, 8)),
    (3, 2, 1, 1, (8, 10)),
    (2, 2, 0, 1, (7, 9)),
    (3, 3, 1, 1, (10, 12)),
    (4, 3, 2, 1, (8, 11)),
    (2, 3, 0, 1, (7, 9)),  # kernel < stride: some inputs never read
    (5, 4, 2, 1, (7, 14)),
    (3, 2, 1, 2, (9, 8)),
]


def _ceil_case(index: int, kind: str, threads: int):
    k, s, p, d, (h, w) = CEIL_GEOMETRIES[index]
    rng = np.random.default_rng(100 + index)
    x = special_values(rng.standard_normal((2, 3, h, w)).astype(np.float32), rng, nan=kind == "max")
    out = (2, 3, pool_output_size(h, k, s, p, d, True), pool_output_size(w, k, s, p, d, True))
    window = (
        f"kernel = array<i64: {k}, {k}>, strides = array<i64: {s}, {s}>, padding = array<i64: {p}, {p}>, "
        f"dilations = array<i64: {d}, {d}>"
    )
    t = torch.from_numpy(x)
    if kind == "max":
        op = f"bnn.max_pool2d %x {{{window}, ceil_mode}}"
        ref = F.max_pool2d(t, k, s, p, d, ceil_mode=True).numpy()
    else:
        include_pad = kind != "avg_excl"
        override = 5 if kind == "avg_override" else None
        props = f"{window}, count_include_pad = {str(include_pad).lower()}, ceil_mode"
        if override is not None:
            props += f", divisor_override = {override} : i64"
        op = f"bnn.avg_pool2d %x {{{props}}}"
        ref = F.avg_pool2d(t, k, s, p, ceil_mode=True, count_include_pad=include_pad, divisor_override=override).numpy()
    assert ref.shape == out
    ir = forward_func([("x", x.shape)], f"%y = {op} : ({tensor_type(x.shape)}) -> {tensor_type(out)}", out)
    return ir, x, ref


def test_ceil_geometries_change_the_size():
    """Every geometry above exercises ceil mode (else the tests below prove nothing)."""
    for k, s, p, d, (h, w) in CEIL_GEOMETRIES:
        floor = (pool_output_size(h, k, s, p, d, False), pool_output_size(w, k, s, p, d, False))
        ceil = (pool_output_size(h, k, s, p, d, True), pool_output_size(w, k, s, p, d, True))
        assert floor != ceil, (k, s, p, d, h, w)


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool_output_size_is_pytorchs(ceil_mode):
    """Incl. PyTorch's rule dropping a ceil window that would start past the
    input and its left padding (e.g. kernel 1, stride 2 on an even size)."""
    x = torch.zeros(1, 1, 12, 1)
    for k in range(1, 5):
        for s in range(1, 5):
            for p in range(k // 2 + 1):
                for d in (1, 2):
                    for h in range(d * (k - 1) + 1 - 2 * p, 13):
                        if h < 1:
                            continue
                        y = F.max_pool2d(x[:, :, :h], (k, 1), (s, 1), (p, 0), (d, 1), ceil_mode=ceil_mode)
                        assert pool_output_size(h, k, s, p, d, ceil_mode) == y.shape[2], (k, s, p, d, h)


CEIL_CASES = [
    (index, kind)
    for kind in ("max", "avg_incl", "avg_excl", "avg_override")
    for index, geometry in enumerate(CEIL_GEOMETRIES)
    if kind == "max" or geometry[3] == 1
]


@pytest.mark.parametrize("index, kind", CEIL_CASES)
def test_ceil_pool_bit_for_bit(index, kind):
    threads = THREADS[index % len(THREADS)]
    ir, x, ref = _ceil_case(index, kind, threads)
    np.testing.assert_array_equal(float_bits(compile_ir(ir, threads)(x)), float_bits(ref))


@pytest.mark.parametrize("kind", ["max", "avg_excl"])
def test_ceil_pool_thread_counts_agree(kind):
    ir, x, ref = _ceil_case(1, kind, 1)
    for threads in THREADS:
        np.testing.assert_array_equal(float_bits(compile_ir(ir, threads)(x)), float_bits(ref))


# ------------------------------------------------------------ adaptive pools

# (H, W) -> (OH, OW): dividing, not dividing, overlapping bins, more bins
# than pixels, global.
ADAPTIVE = [
    ((8, 8), (4, 2)),
    ((13, 11), (5, 4)),
    ((7, 9), (3, 7)),
    ((5, 4), (7, 6)),
    ((6, 7), (1, 1)),
    ((10, 3), (6, 1)),
]


@pytest.mark.parametrize("index", range(len(ADAPTIVE)))
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_adaptive_pool_bit_for_bit(kind, index):
    """PyTorch's CPU kernels: max from -inf taking v > max or NaN; avg sums the
    bin from 0 and divides by its height, then by its width."""
    (h, w), (oh, ow) = ADAPTIVE[index]
    rng = np.random.default_rng(200 + index)
    x = special_values(rng.standard_normal((2, 3, h, w)).astype(np.float32), rng, nan=kind == "max")
    if kind == "avg":
        x = np.where(np.isinf(x), np.float32(0.5), x).astype(np.float32)
        x[0, 0] *= 1000  # magnitudes where the two divisions round differently from one
    out = (2, 3, oh, ow)
    ir = forward_func([("x", x.shape)], f"%y = bnn.adaptive_{kind}_pool2d %x : ({tensor_type(x.shape)}) -> {tensor_type(out)}", out)
    # the ATen ops the frontend translates (F.adaptive_avg_pool2d(x, 1) is a mean instead)
    fn = torch.ops.aten.adaptive_max_pool2d.default if kind == "max" else torch.ops.aten._adaptive_avg_pool2d.default
    ref = fn(torch.from_numpy(x), [oh, ow])
    ref = (ref[0] if kind == "max" else ref).numpy()
    threads = THREADS[index % len(THREADS)]
    np.testing.assert_array_equal(float_bits(compile_ir(ir, threads)(x)), float_bits(ref))


def test_adaptive_avg_divides_twice_like_pytorch():
    """sum / kh / kw and sum / (kh * kw) differ in the last bit for some bins:
    the kernel must follow PyTorch's two divisions (a bin of 3 x 3 here)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 64, 9, 9)).astype(np.float32)
    ref = F.adaptive_avg_pool2d(torch.from_numpy(x), 3).numpy()
    sums = np.zeros(ref.shape, np.float32)
    for dy in range(3):
        for dx in range(3):
            sums = (sums + x[:, :, dy::3, dx::3]).astype(np.float32)
    assert (sums / np.float32(9) != ref).any()
    ir = forward_func([("x", x.shape)], f"%y = bnn.adaptive_avg_pool2d %x : ({tensor_type(x.shape)}) -> {tensor_type(ref.shape)}", ref.shape)
    np.testing.assert_array_equal(float_bits(compile_ir(ir, 1)(x)), float_bits(ref))


# -------------------------------------------------------------------- matmul

# (batch or None, M, K, N, transpose_lhs, transpose_rhs): rows not a multiple
# of the 4-row tile, columns with and without a scalar tail, 1-wide.
MATMULS = [
    (None, 5, 7, 37, False, False),
    (None, 8, 16, 32, False, True),
    (3, 6, 9, 20, False, True),
    (2, 1, 3, 1, True, False),
    (2, 13, 5, 70, True, True),
    (4, 4, 33, 8, False, False),
]


def _matmul_case(index: int):
    batch, m, k, n, ta, tb = MATMULS[index]
    rng = np.random.default_rng(300 + index)
    lead = [] if batch is None else [batch]
    a = rng.standard_normal(lead + ([k, m] if ta else [m, k])).astype(np.float32)
    b = rng.standard_normal(lead + ([n, k] if tb else [k, n])).astype(np.float32)
    flags = [name for name, on in (("transpose_lhs", ta), ("transpose_rhs", tb)) if on]
    attrs = f" {{{', '.join(flags)}}}" if flags else ""
    out = tuple(lead + [m, n])
    body = f"%y = bnn.matmul %a, %b{attrs} : ({tensor_type(a.shape)}, {tensor_type(b.shape)}) -> {tensor_type(out)}"
    ir = forward_func([("a", a.shape), ("b", b.shape)], body, out)
    a64 = np.swapaxes(a, -1, -2).astype(np.float64) if ta else a.astype(np.float64)
    b64 = np.swapaxes(b, -1, -2).astype(np.float64) if tb else b.astype(np.float64)
    return ir, (a, b), a64 @ b64, np.abs(a64) @ np.abs(b64), k


@pytest.mark.parametrize("index", range(len(MATMULS)))
def test_matmul_within_rounding(index):
    ir, (a, b), exact, magnitude, k = _matmul_case(index)
    results = [compile_ir(ir, threads)(a, b) for threads in THREADS]
    _within_rounding(results[0], exact, magnitude, k)
    for other in results[1:]:
        np.testing.assert_array_equal(float_bits(other), float_bits(results[0]))


# (batch, in features, out features, bias): out features a multiple of the
# register tile, not one (a partial last tile), fewer than one vector, the
# classifier (with and without bias); batches of one row block, of several
# blocks and a tail (AVX-512 blocks 6 rows), odd sizes everywhere.
LINEARS = [
    (1, 512, 1000, True),
    (1, 512, 1000, False),
    (2, 33, 7, True),
    (3, 16, 130, True),
    (1, 5, 96, True),
    (1, 64, 1, True),
    (1, 37, 13, False),
    (3, 129, 7, True),
    (13, 70, 65, True),
]


@pytest.mark.parametrize("index", range(len(LINEARS)))
def test_float_linear_within_rounding(index):
    """bnn.linear reads its weights tile-major (one contiguous block per tile
    of output features, the partial last tile a narrower block) for a block of
    batch rows at a time: every feature of every row, the partial last tile
    included, gets its own weights and bias, at any thread count with the
    same bits."""
    n, k, m, bias = LINEARS[index]
    torch.manual_seed(index)
    model = nn.Linear(k, m, bias=bias).eval()
    x = torch.randn(n, k)
    results = [_compile_model(model, (x,), threads)(x.numpy()) for threads in THREADS]
    w64, x64 = (t.detach().double().numpy() for t in (model.weight, x))
    b64 = model.bias.detach().double().numpy() if bias else np.zeros(m)
    _within_rounding(results[0], x64 @ w64.T + b64, np.abs(x64) @ np.abs(w64.T) + np.abs(b64), k + 1)
    for other in results[1:]:
        np.testing.assert_array_equal(float_bits(other), float_bits(results[0]))


def test_float_linear_rows_share_weights_not_results():
    """A batch is computed in blocks of rows that share each weight load; each
    row still gets its own FMA chain in k order: the bits of every row of a
    13-row batch (two 6-row blocks and a tail on AVX-512) equal the batch-1
    model's on that row."""
    torch.manual_seed(7)
    model = nn.Linear(45, 83).eval()
    x = torch.randn(13, 45)
    batch = _compile_model(model, (x,), 1)(x.numpy())
    single = _compile_model(model, (x[:1],), 1)
    for row in range(13):
        np.testing.assert_array_equal(float_bits(batch[row : row + 1]), float_bits(single(x[row : row + 1].numpy())))


# --------------------------------------------------------------- zero_insert


@pytest.mark.parametrize(
    "strides, padding",
    [((2, 2), (1, 2, 1, 2)), ((3, 1), (0, 0, 2, 0)), ((2, 3), (-1, 1, 2, -2)), ((1, 1), (-1, -1, 0, 0))],
)
def test_zero_insert_exact(strides, padding):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    sh, sw = strides
    left, right, top, bottom = padding
    full = np.zeros((2, 3, (4 - 1) * sh + 1 + 2 * 2, (5 - 1) * sw + 1 + 2 * 2), np.float32)
    full[:, :, 2 : 2 + (4 - 1) * sh + 1 : sh, 2 : 2 + (5 - 1) * sw + 1 : sw] = x
    ref = full[:, :, 2 - top : full.shape[2] - 2 + bottom, 2 - left : full.shape[3] - 2 + right]
    attrs = f"strides = array<i64: {sh}, {sw}>, padding = array<i64: {left}, {right}, {top}, {bottom}>"
    ir = forward_func([("x", x.shape)], f"%y = bnn.zero_insert %x {{{attrs}}} : ({tensor_type(x.shape)}) -> {tensor_type(ref.shape)}", ref.shape)
    for threads in (1, 2):
        np.testing.assert_array_equal(float_bits(compile_ir(ir, threads)(x)), float_bits(ref))


# ------------------------------------------------------ whole models (torch)

# in, out, kernel, stride, padding, output_padding, dilation, groups, bias, (H, W)
CONV_TRANSPOSE = [
    (4, 6, 3, 2, 1, 1, 1, 1, True, (5, 6)),
    (4, 4, 4, 2, 1, 0, 1, 2, False, (6, 5)),
    (3, 5, 3, 1, 1, 0, 1, 1, True, (7, 7)),  # stride 1: a plain padded conv
    (2, 3, 2, 3, 2, 1, 1, 1, True, (5, 4)),  # padding > dilation*(k-1): crops
    (6, 3, 3, 2, 2, 1, 2, 3, True, (6, 6)),  # dilation, groups, output_padding
    (2, 2, (1, 3), (2, 1), (0, 1), (1, 0), 1, 1, False, (4, 5)),  # rectangular
]


@pytest.mark.parametrize("index", range(len(CONV_TRANSPOSE)))
def test_conv_transpose2d_within_rounding(index):
    cin, cout, k, s, p, op, d, g, bias, (h, w) = CONV_TRANSPOSE[index]
    torch.manual_seed(index)
    layer = nn.ConvTranspose2d(cin, cout, k, s, p, op, g, bias, d).eval()
    x = torch.randn(2, cin, h, w)
    threads = THREADS[index % len(THREADS)]
    got = _compile_model(layer, (x,), threads)(x.numpy())
    W64, x64 = layer.weight.double(), x.double()
    kw = {"stride": s, "padding": p, "output_padding": op, "groups": g, "dilation": d}
    exact = F.conv_transpose2d(x64, W64, None, **kw)
    if bias:
        exact = exact + layer.bias.double()[None, :, None, None]
    magnitude = F.conv_transpose2d(x64.abs(), W64.abs(), None, **kw)
    if bias:
        magnitude = magnitude + layer.bias.double().abs()[None, :, None, None]
    kh, kw_ = (k, k) if isinstance(k, int) else k
    assert got.shape == tuple(layer(x).shape)
    _within_rounding(got, exact.detach().numpy(), magnitude.detach().numpy(), cin // g * kh * kw_ + 1)


def test_attention_style_products():
    """q @ k^T, a softmax-free weighting and a 3-D @ 2-D product: the matmul
    decompositions (permute / expand / view / bmm / mm) of 2-D, 3-D and 4-D tensors."""

    def fn(q, k, v, m):
        scores = q @ k.transpose(-1, -2)  # [1, 2, 5, 6]
        return scores @ v, m @ m.transpose(-1, -2), q.flatten(0, 1) @ m

    q, k, v, m = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 3), torch.randn(8, 4)
    model = _Fn(fn)
    for threads in (1, 2):
        got = _compile_model(model, (q, k, v, m), threads)(q.numpy(), k.numpy(), v.numpy(), m.numpy())
        q64, k64, v64, m64 = (t.double() for t in (q, k, v, m))
        s64 = q64 @ k64.transpose(-1, -2)
        s_mag = q64.abs() @ k64.abs().transpose(-1, -2)
        _within_rounding(got[0], (s64 @ v64).numpy(), (s_mag @ v64.abs()).numpy(), 8 * 6 + 6)
        _within_rounding(got[1], (m64 @ m64.T).numpy(), (m64.abs() @ m64.abs().T).numpy(), 4)
        _within_rounding(got[2], (q64.flatten(0, 1) @ m64).numpy(), (q64.abs().flatten(0, 1) @ m64.abs()).numpy(), 8)


def test_ceil_pools_in_a_model_bit_for_bit():
    """The frontend keeps PyTorch's ceil-mode windows; max pool feeding a
    binary conv (binary-maxpool packs it) keeps them too."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(1)
            self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
            with torch.no_grad():
                self.conv.weight.copy_(torch.sign(self.conv.weight) * 0.5)

        def forward(self, x):
            a = F.max_pool2d(x, 3, 2, ceil_mode=True)
            b = F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
            s = torch.where(F.max_pool2d(x, 2, 3, 1, ceil_mode=True) >= 0, 1.0, -1.0)
            return a, b, self.conv(s)

    x = torch.randn(2, 3, 8, 9)
    model = Net().eval()
    refs = model(x)
    for threads in (1, 2):
        got = _compile_model(model, (x,), threads)(x.numpy())
        for g, r in zip(got, refs):
            np.testing.assert_array_equal(float_bits(g), float_bits(r.detach().numpy()))
