"""Reductions, softmax and normalisations (bnn.reduce, bnn.softmax,
bnn.normalize) against PyTorch eager: the kernels at the IR level at 1, 2
and 3 threads, PyTorch's NaN / inf behaviour, and whole models through
torch.export.

Tolerances are the float rounding of each formula, in units of u = 2^-24
(half an f32 ulp at 1): bnnc and PyTorch add in different orders, and an
n-element sum in any order is within (n - 1) u sum|x| of the exact one, so
two of them are within 2 n u sum|x|. exp / log / sqrt add a few u each.
max and min are exact (NaN in the same places; +-0 compare equal).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from float_helpers import THREADS, compile_ir, forward_func, tensor_type
from torch import nn
from xdsl.parser import Parser

import bnnc
from bnnc.context import make_context
from bnnc.errors import UnsupportedError

U = 2.0**-24
def compile_op(op: str, in_shape, out_shape, threads: int):
    """One op `%y = <op> : <types>` as a function."""
    return compile_ir(forward_func([("x", in_shape)], f"%y = {op}", out_shape), threads)


def _dims_attr(dims) -> str:
    return f"array<i64: {', '.join(map(str, dims))}>"


def _kept(shape, dims):
    return tuple(1 if i in dims else s for i, s in enumerate(shape))


def assert_within(got: np.ndarray, ref: np.ndarray, tol: np.ndarray) -> None:
    """|got - ref| <= tol elementwise, NaN exactly where PyTorch has NaN,
    infinities equal."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(got[~finite & ~np.isnan(ref)], ref[~finite & ~np.isnan(ref)])
    err = np.abs(got - ref)[finite]
    bound = np.broadcast_to(tol, ref.shape)[finite]
    worst = np.argmax(err - bound) if err.size else 0
    assert np.all(err <= bound), f"error {err[worst]:.3g} exceeds tolerance {bound[worst]:.3g}"


# (shape, dims): innermost axis reduced with whole vectors and a tail, kept
# innermost axis, reduced runs on both sides of a kept one, size-1 axes,
# everything, nothing but a size-1 axis.
REDUCE_CASES = [
    ((2, 4, 3, 37), (3,)),
    ((2, 4, 3, 37), (2, 3)),
    ((2, 4, 3, 37), (1,)),
    ((2, 4, 3, 37), (1, 3)),
    ((2, 4, 3, 37), (0, 2, 3)),
    ((2, 4, 3, 37), (0, 1, 2, 3)),
    ((3, 1, 5, 1, 16), (2, 3)),
    ((5, 64), (1,)),
    ((7, 9), (0,)),
    ((4, 1, 6), (1,)),
    ((1, 1), (0, 1)),
]
KINDS = ["sum", "mean", "max", "min", "var", "std"]


def _torch_reduce(x: torch.Tensor, kind: str, dims, correction: float = 1.0) -> torch.Tensor:
    if kind == "sum":
        return x.sum(dims, keepdim=True)
    if kind == "mean":
        return x.mean(dims, keepdim=True)
    if kind == "max":
        return x.amax(dims, keepdim=True)
    if kind == "min":
        return x.amin(dims, keepdim=True)
    fn = torch.var if kind == "var" else torch.std
    return fn(x, dims, correction=correction, keepdim=True)


def _reduce_tolerance(x: np.ndarray, kind: str, dims, ref: np.ndarray) -> np.ndarray:
    n = math.prod(x.shape[d] for d in dims)
    absx = np.abs(x.astype(np.float64)).sum(axis=tuple(dims), keepdims=True)
    if kind == "sum":
        return 2 * n * U * absx
    if kind == "mean":
        return 2 * n * U * absx / n + 2 * U * np.abs(ref)
    if kind in ("max", "min"):
        return np.zeros_like(ref)
    # two-pass / Welford variance: a relative error of a few n u
    return 4 * (n + 4) * U * np.abs(ref) + 1e-30


@pytest.mark.parametrize("case", range(len(REDUCE_CASES)))
@pytest.mark.parametrize("kind", KINDS)
def test_reduce_matches_pytorch(case: int, kind: str) -> None:
    shape, dims = REDUCE_CASES[case]
    threads = THREADS[case % 3]
    rng = np.random.default_rng(case)
    x = (rng.standard_normal(shape) * 3 + 0.5).astype(np.float32)
    out = _kept(shape, dims)
    corr = ", correction = 1.0 : f32" if kind in ("var", "std") else ""
    op = f'bnn.reduce %x {{kind = "{kind}", dims = {_dims_attr(dims)}{corr}}} : ({tensor_type(shape)}) -> {tensor_type(out)}'
    with np.errstate(all="ignore"):
        got = compile_op(op, shape, out, threads)(x)
        ref = _torch_reduce(torch.from_numpy(x), kind, dims).numpy()
        assert_within(got, ref, _reduce_tolerance(x, kind, dims, ref))


def _bits(value: int) -> np.float32:
    return np.array([value], np.uint32).view(np.float32)[0]


@pytest.mark.parametrize("kind", ["max", "min"])
@pytest.mark.parametrize("dims", [(2,), (1, 2)])
def test_max_min_nan_signs_infinities_and_zeros(kind: str, dims) -> None:
    """The vector loop orders f32 bit patterns as integers and tracks NaNs
    apart: NaNs of either sign (x86 makes negative ones) in any lane, the
    first element or the tail give NaN; rows of infinities, of one sign of
    zero only, of negative values only, and the extreme finite values
    come out exactly (-0 and +0 compare equal, as in PyTorch's check)."""
    rows = 12
    x = np.random.default_rng(7).standard_normal((2, rows, 37)).astype(np.float32) * 3
    x[0, 0, 0] = np.nan  # first element
    x[0, 1, 17] = _bits(0xFFC00000)  # negative quiet NaN in a lane
    x[0, 2, 36] = _bits(0xFF800001)  # negative signalling-pattern NaN in the tail
    x[0, 3, 31] = _bits(0x7F800001)  # positive NaN, last vector lane
    x[0, 4] = -np.inf
    x[0, 5] = np.inf
    x[0, 6] = -0.0
    x[0, 7] = 0.0
    x[0, 8] = -np.abs(x[0, 8]) - 1  # negative only
    x[0, 9, 3], x[0, 9, 20] = np.finfo(np.float32).max, -np.finfo(np.float32).max
    x[0, 10, 5], x[0, 10, 6] = _bits(1), _bits(0x80000001)  # denormals
    x[0, 10] *= 1e-30
    x[0, 11, :32] = np.inf  # infinities in the vectors, a NaN-free tail
    x[1, 3, 30] = -np.inf
    x[1, 4, 2] = np.inf
    out = _kept(x.shape, dims)
    op = f'bnn.reduce %x {{kind = "{kind}", dims = {_dims_attr(dims)}}} : ({tensor_type(x.shape)}) -> {tensor_type(out)}'
    for threads in (1, 2):
        got = compile_op(op, x.shape, out, threads)(x)
        ref = _torch_reduce(torch.from_numpy(x), kind, dims).numpy()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
        np.testing.assert_array_equal(np.where(np.isnan(ref), 0, got), np.where(np.isnan(ref), 0, ref))
    if dims == (2,):
        assert np.isnan(got[0, :4]).all() and not np.isnan(got[0, 4:]).any()


def test_reduce_nan_and_inf_like_pytorch() -> None:
    """sum: inf + -inf = NaN; max / min: a NaN anywhere (vector lanes or
    tail) gives NaN; var with N - correction <= 0 divides by 0 (inf or NaN)."""
    x = np.arange(2 * 3 * 37, dtype=np.float32).reshape(2, 3, 37) / 7 - 9
    x[0, 0, 5] = np.inf
    x[0, 0, 30] = -np.inf
    x[0, 1, 36] = np.nan  # the scalar tail
    x[1, 2, 3] = np.nan  # a vector lane
    x[1, 1, 0] = -np.inf
    t = torch.from_numpy(x)
    for kind in ("sum", "max", "min", "mean"):
        op = f'bnn.reduce %x {{kind = "{kind}", dims = array<i64: 2>}} : ({tensor_type(x.shape)}) -> {tensor_type((2, 3, 1))}'
        got = compile_op(op, x.shape, (2, 3, 1), 1)(x)
        ref = _torch_reduce(t, kind, (2,)).numpy()
        assert_within(got, ref, _reduce_tolerance(np.nan_to_num(x, posinf=0, neginf=0), kind, (2,), ref))
    y = np.array([[1.0, 2.0], [3.0, 3.0]], np.float32)
    for correction in (2.0, 3.0):
        op = f'bnn.reduce %x {{kind = "var", dims = array<i64: 1>, correction = {correction} : f32}} : ({tensor_type(y.shape)}) -> {tensor_type((2, 1))}'
        got = compile_op(op, y.shape, (2, 1), 1)(y)
        with np.errstate(all="ignore"):
            ref = torch.var(torch.from_numpy(y), 1, correction=correction, keepdim=True).numpy()
        np.testing.assert_array_equal(got, ref)


def _softmax_tolerance(x: np.ndarray, dim: int, log: bool, ref: np.ndarray) -> np.ndarray:
    n = x.shape[dim]
    if not log:
        return (n + 8) * U * np.abs(ref) + 1e-38
    x64 = x.astype(np.float64)
    shifted = np.abs(x64 - x64.max(axis=dim, keepdims=True))
    return (n + 8) * U * (shifted + np.abs(ref) + 1)


SOFTMAX_SHAPES = [(2, 4, 3, 37), (3, 1000), (1, 16, 5, 5), (4, 1)]


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("case", [(s, d) for s in range(len(SOFTMAX_SHAPES)) for d in range(len(SOFTMAX_SHAPES[s]))])
def test_softmax_matches_pytorch(case, log: bool) -> None:
    s, dim = case
    shape = SOFTMAX_SHAPES[s]
    threads = THREADS[(s + dim) % 3]
    rng = np.random.default_rng(10 * s + dim)
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    op = f"bnn.softmax %x {{dim = {dim} : i64{', log' if log else ''}}} : {tensor_type(shape)}"
    got = compile_op(op, shape, shape, threads)(x)
    ref = (torch.log_softmax if log else torch.softmax)(torch.from_numpy(x), dim).numpy()
    assert_within(got, ref, _softmax_tolerance(x, dim, log, ref))


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dim", [0, 1])
def test_softmax_special_rows_like_pytorch(dim: int, log: bool) -> None:
    """Large values do not overflow (max subtraction); a row holding NaN or
    +inf, or only -inf, is NaN throughout; -inf entries give 0 (log: -inf)."""
    x = np.tile(np.linspace(-3, 3, 21, dtype=np.float32), (6, 1))
    x[0] += 1000.0
    x[1, 4] = np.nan
    x[2, 20] = np.inf
    x[3] = -np.inf
    x[4, :10] = -np.inf
    x[5, 0] = -1e30
    if dim == 0:
        x = np.ascontiguousarray(x.T)
    op = f"bnn.softmax %x {{dim = {dim} : i64{', log' if log else ''}}} : {tensor_type(x.shape)}"
    got = compile_op(op, x.shape, x.shape, 2)(x)
    with np.errstate(all="ignore"):
        ref = (torch.log_softmax if log else torch.softmax)(torch.from_numpy(x), dim).numpy()
        assert_within(got, ref, _softmax_tolerance(np.nan_to_num(x, nan=0, posinf=0, neginf=0), dim, log, ref))


# (shape, dims, affine shape or None)
NORM_CASES = [
    ((2, 7, 40), (2,), (1, 1, 40)),  # layer norm over the last axis
    ((2, 3, 4, 5), (2, 3), (1, 1, 4, 5)),  # layer norm over two axes
    ((2, 3, 4, 5), (1, 2, 3), None),
    ((1, 6, 5, 7), (0, 2, 3), (1, 6, 1, 1)),  # instance norm on an (1, N*C) view
    ((3, 4, 5, 5), (0, 2, 3), (1, 4, 1, 1)),  # batch statistics
    ((2, 2, 3, 20), (2, 3), (1, 2, 3, 1)),  # group norm on an (N, G, C/G, HW) view
    ((6, 5), (0,), (1, 5)),  # statistics over a kept innermost axis
]


@pytest.mark.parametrize("case", range(len(NORM_CASES)))
@pytest.mark.parametrize("affine", [False, True])
def test_normalize_matches_reference(case: int, affine: bool) -> None:
    """Against float64: the error is u times the size of each term of
    x * rstd - rstd * mean (|x| rstd and |mean| rstd), the statistics' sum
    error (n u relative), and the affine's rounding."""
    shape, dims, pshape = NORM_CASES[case]
    threads = THREADS[case % 3]
    rng = np.random.default_rng(case)
    x = (rng.standard_normal(shape) * 2 + 1.5).astype(np.float32)
    eps = 1e-5
    use = affine and pshape is not None
    w = rng.uniform(0.5, 2.0, pshape).astype(np.float32) if use else np.ones([1] * len(shape), np.float32)
    b = rng.standard_normal(pshape).astype(np.float32) if use else np.zeros([1] * len(shape), np.float32)
    attrs = f"{{dims = {_dims_attr(dims)}, epsilon = {eps:e} : f32}}"
    if use:
        args = f"weight %w : {tensor_type(pshape)} bias %b : {tensor_type(pshape)} "
        consts = (
            f"%w = arith.constant dense<{w.tolist()}> : {tensor_type(pshape)}\n"
            f"  %b = arith.constant dense<{b.tolist()}> : {tensor_type(pshape)}\n  "
        )
        op = f"bnn.normalize %x {args}{attrs} : {tensor_type(shape)}"
        got = _compile_with_consts(consts, op, shape, threads)(x)
    else:
        got = compile_op(f"bnn.normalize %x {attrs} : {tensor_type(shape)}", shape, shape, threads)(x)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=dims, keepdims=True)
    rstd = 1 / np.sqrt(x64.var(axis=dims, keepdims=True) + eps)
    ref = (x64 - mean) * rstd * w + b
    n = math.prod(shape[d] for d in dims)
    tol = (n + 8) * U * ((np.abs(x64) + np.abs(mean)) * rstd * np.abs(w) + np.abs(b))
    assert_within(got, ref, tol)


def _compile_with_consts(consts: str, op: str, shape, threads: int):
    return compile_ir(forward_func([("x", shape)], f"{consts}%y = {op}", shape), threads)


@pytest.mark.parametrize(
    "op, shape, out",
    [
        ('bnn.reduce %x {kind = "sum", dims = array<i64: 2, 3>}', (2, 5, 6, 35), (2, 5, 1, 1)),
        ('bnn.reduce %x {kind = "var", dims = array<i64: 1>, correction = 1.0 : f32}', (2, 5, 6, 35), (2, 1, 6, 35)),
        ("bnn.softmax %x {dim = 1 : i64}", (2, 5, 6, 35), None),
        ("bnn.softmax %x {dim = 3 : i64, log}", (2, 5, 6, 35), None),
        ("bnn.normalize %x {dims = array<i64: 1, 2, 3>, epsilon = 1.0e-05 : f32}", (5, 3, 6, 35), None),
    ],
)
def test_thread_counts_agree_bit_for_bit(op: str, shape, out) -> None:
    """Each row is computed whole by one block, so the split never changes a value."""
    out = out or shape
    types = f"({tensor_type(shape)}) -> {tensor_type(out)}" if "reduce" in op else tensor_type(shape)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    results = [compile_op(f"{op} : {types}", shape, out, t)(x) for t in THREADS]
    for r in results[1:]:
        np.testing.assert_array_equal(r.view(np.int32), results[0].view(np.int32))


# ----------------------------------------------------------- whole models


class Reductions(nn.Module):
    """The reductions a classifier head or an attention block uses."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (
            x.sum(dim=(1, 3), keepdim=True),
            x.sum(),
            x.amax(dim=1),
            torch.amin(x, dim=(-2, -1)),
            x.max(),
            x.var(dim=1, keepdim=True),
            torch.var(x, dim=(1, 2), correction=0),
            F.softmax(x, dim=1),
            F.log_softmax(x, dim=-1),
            x.mean(dim=(2, 3)),
        )


def _model_tolerance(x: np.ndarray, ref: np.ndarray, terms: int) -> np.ndarray:
    """Rounding of `terms`-element sums of values the size of the input."""
    return 4 * (terms + 8) * U * (np.abs(ref) + np.abs(x).max() * terms)


def test_reductions_model_matches_pytorch() -> None:
    x = torch.randn(2, 4, 3, 5)
    model = Reductions().eval()
    got = bnnc.compile(model, (x,), num_threads=2)(x)
    ref = model(x)
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert tuple(g.shape) == tuple(r.shape)
        assert_within(g.numpy(), r.numpy(), _model_tolerance(x.numpy(), r.numpy(), x.numel()))


class TinyTransformerBlock(nn.Module):
    """Pre-norm attention over a short sequence: layer norm, softmax scores,
    a residual; std-based scaling as some BNN blocks use."""

    def __init__(self, d: int = 16):
        super().__init__()
        torch.manual_seed(0)
        self.ln = nn.LayerNorm(d)
        self.ln2 = nn.LayerNorm(d, elementwise_affine=False)
        self.q = nn.Linear(d, d)
        with torch.no_grad():
            self.ln.weight.uniform_(0.5, 1.5)
            self.ln.bias.uniform_(-0.5, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln(x)
        scores = F.softmax(h @ h.transpose(-1, -2) * 0.25, dim=-1)
        h = self.ln2(x + scores @ self.q(h))
        return h / (h.std(dim=-1, keepdim=True) + 1.0)


def test_layer_norm_softmax_std_model_matches_pytorch() -> None:
    x = torch.randn(1, 6, 16)
    model = TinyTransformerBlock().eval()
    got = bnnc.compile(model, (x,), num_threads=1)(x)
    with torch.no_grad():
        ref = model(x)
    assert_within(got.numpy(), ref.numpy(), np.full(ref.shape, 64 * 16 * U * 8))


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.GroupNorm(2, 6),
        lambda: nn.GroupNorm(3, 6, affine=False),
        lambda: nn.GroupNorm(1, 6),
        lambda: nn.InstanceNorm2d(6),
        lambda: nn.InstanceNorm2d(6, affine=True),
        lambda: nn.InstanceNorm2d(6, affine=True, track_running_stats=True),
        lambda: nn.InstanceNorm2d(6, track_running_stats=True),
        lambda: nn.LayerNorm([5, 7]),
        lambda: nn.BatchNorm2d(6, track_running_stats=False),
    ],
)
def test_norm_modules_match_pytorch(make) -> None:
    torch.manual_seed(1)
    norm = make()
    with torch.no_grad():
        for name, p in norm.named_parameters():
            p.uniform_(0.5, 1.5) if name == "weight" else p.uniform_(-0.5, 0.5)
        if getattr(norm, "running_mean", None) is not None:
            norm.running_mean.uniform_(-1, 1)
            norm.running_var.uniform_(0.5, 2)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), norm).eval()
    x = torch.randn(2, 3, 5, 7) * 2 + 1
    got = bnnc.compile(model, (x,), num_threads=2)(x)
    with torch.no_grad():
        ref = model(x)
    # outputs are O(1): the statistics' sums (<= 210 terms) dominate
    assert_within(got.numpy(), ref.numpy(), np.full(ref.shape, 4 * 218 * U * 8))


def test_max_dim_values_match_pytorch() -> None:
    class M(nn.Module):
        def forward(self, x):
            return torch.max(x, dim=1).values, torch.min(x, dim=-1, keepdim=True).values

    x = torch.randn(3, 4, 5)
    got = bnnc.compile(M(), (x,), num_threads=1)(x)
    for g, r in zip(got, M()(x)):
        np.testing.assert_array_equal(g.numpy(), r.numpy())


def test_non_float32_reduction_is_refused() -> None:
    class M(nn.Module):
        def forward(self, x):
            return x.sum(dim=1, dtype=torch.float64).float()

    with pytest.raises(UnsupportedError, match="sum"):
        bnnc.compile(M(), (torch.randn(2, 3),))


@pytest.mark.parametrize(
    "op, message",
    [
        (
            'bnn.reduce %x {kind = "prod", dims = array<i64: 1>} : (tensor<2x3xf32>) -> tensor<2x1xf32>',
            "kind must be one of",
        ),
        ('bnn.reduce %x {kind = "sum", dims = array<i64: 1>} : (tensor<2x3xf32>) -> tensor<2xf32>', "result must be"),
        ('bnn.reduce %x {kind = "sum", dims = array<i64: 1, 0>} : (tensor<2x3xf32>) -> tensor<1x1xf32>', "ascending"),
        ('bnn.reduce %x {kind = "var", dims = array<i64: 1>} : (tensor<2x3xf32>) -> tensor<2x1xf32>', "correction"),
        ('bnn.reduce %x {kind = "sum", dims = array<i64: 2>} : (tensor<2x3xf32>) -> tensor<2x3xf32>', "out of range"),
        ("bnn.softmax %x {dim = 2 : i64} : tensor<2x3xf32>", "out of range"),
    ],
)
def test_verifier_rejects_malformed_ops(op: str, message: str) -> None:
    from xdsl.utils.exceptions import VerifyException

    text = f"func.func @f(%x: tensor<2x3xf32>) {{\n  %y = {op}\n  func.return\n}}"
    with pytest.raises(VerifyException, match=message):
        Parser(make_context(), text).parse_module().verify()


def test_normalize_verifier_rejects_a_weight_that_does_not_broadcast() -> None:
    from xdsl.utils.exceptions import VerifyException

    text = """func.func @f(%x: tensor<2x3xf32>, %w: tensor<2x1xf32>) {
  %y = bnn.normalize %x weight %w : tensor<2x1xf32> {dims = array<i64: 1>, epsilon = 1.0e-05 : f32} : tensor<2x3xf32>
  %z = bnn.normalize %x weight %x : tensor<2x3xf32> {dims = array<i64: 1>, epsilon = 1.0e-05 : f32} : tensor<2x3xf32>
  func.return
}"""
    Parser(make_context(), text).parse_module().verify()  # (2, 1) and (2, 3) both broadcast
    bad = text.replace("tensor<2x1xf32>", "tensor<3x1xf32>")
    with pytest.raises(VerifyException, match="must have the input's rank"):
        Parser(make_context(), bad).parse_module().verify()
