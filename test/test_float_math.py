"""The float math ops between binary layers (bnn.unary, bnn.elu,
bnn.leaky_relu, bnn.pow, bnn.minimum / bnn.maximum, one-bound and
tensor-bound clamps) against PyTorch eager, at the IR level at 1, 2 and 3
threads and through the PyTorch frontend.

Tolerances. Ops made of comparisons, selects and correctly rounded
arithmetic (leaky_relu, reciprocal, pow with exponent 0, 1, 2, 3, -1, -2,
minimum/maximum, clamps) must match bit for bit, NaN positions included
(a NaN's payload is not compared: PyTorch's vectorised kernels produce
all-ones NaNs). sqrt may differ by 1 ulp: bnnc's (sqrtss) is correctly
rounded, PyTorch's (MKL VML on this build) is not always. The others call an elementary function (exp, tanh, erf,
log1p, expm1, powf): bnnc uses glibc's (via LLVM intrinsics or libm calls),
PyTorch its vectorised ones (Sleef, MKL VML, oneDNN for gelu), each within
about 1 ulp of the true value, so they may differ by ULPS = 4 ulp of the
result. Where PyTorch's own formula cancels (1 + erf(.) and 1 + tanh(.) in
gelu for x << 0, exp(x) - 1 in elu near 0) a 1-ulp difference in the
elementary function is an absolute difference of a few ulp of 1 times the
factor outside, so those ops also allow 4 * 2^-23 * |x| (gelu) and
4 * 2^-23 * |alpha * scale| (elu) absolutely."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from float_helpers import THREADS, compile_ir, tensor_type
from torch import nn
from xdsl.parser import Parser

from bnnc.context import make_context
from bnnc.driver import CompileOptions, build
from bnnc.frontend.torch_import import export_module, import_program

ULPS = 4
EPS = 2.0**-23


def _ordered(a: np.ndarray) -> np.ndarray:
    """f32 bits as integers ordered like the floats (so ulp distance is a difference)."""
    i = np.ascontiguousarray(a, dtype=np.float32).view(np.int32).astype(np.int64)
    return np.where(i < 0, -(i & 0x7FFFFFFF), i)


def assert_close(got: np.ndarray, ref: np.ndarray, ulps: int = 0, abs_tol: np.ndarray | float = 0.0) -> None:
    """Same NaN positions; elsewhere within `ulps` ulp or `abs_tol` (0, 0: bit for bit)."""
    got, ref = np.asarray(got, np.float32), np.asarray(ref, np.float32)
    assert got.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref), err_msg="NaN positions differ")
    ok = ~np.isnan(ref)
    dist = np.abs(_ordered(got) - _ordered(ref))
    with np.errstate(invalid="ignore"):  # inf - inf: those must be equal bits anyway
        close = (dist <= ulps) | (np.abs(got.astype(np.float64) - ref) <= abs_tol)
    bad = ok & ~close
    assert not bad.any(), (
        f"{bad.sum()} values differ, worst {dist[bad].max()} ulp: x-index {np.argwhere(bad)[:3].tolist()}, "
        f"got {got[bad][:3]}, want {ref[bad][:3]}"
    )


def _special(shape, rng, scale: float = 3.0) -> np.ndarray:
    """Normal values plus tiny, huge, +-0, +-inf and NaN sprinkled in."""
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    u = rng.random(shape)
    x[u < 0.04] = 0.0
    x[(u >= 0.04) & (u < 0.08)] = -0.0
    x[(u >= 0.08) & (u < 0.1)] = np.inf
    x[(u >= 0.1) & (u < 0.12)] = -np.inf
    x[(u >= 0.12) & (u < 0.14)] = np.nan
    x[(u >= 0.14) & (u < 0.17)] *= 1e-30
    x[(u >= 0.17) & (u < 0.2)] *= 1e6
    return x


SHAPE = (2, 3, 5, 7)

# op text -> (PyTorch eager, ulps, absolute tolerance as a function of x)
UNARY_CASES: dict[str, tuple] = {
    'bnn.unary %x {fn = "tanh"}': (torch.tanh, ULPS, None),
    'bnn.unary %x {fn = "sigmoid"}': (torch.sigmoid, ULPS, None),
    'bnn.unary %x {fn = "gelu"}': (F.gelu, ULPS, lambda x: 4 * EPS * np.abs(x)),
    'bnn.unary %x {fn = "gelu_tanh"}': (lambda x: F.gelu(x, approximate="tanh"), ULPS, lambda x: 4 * EPS * np.abs(x)),
    'bnn.unary %x {fn = "sqrt"}': (torch.sqrt, 1, None),
    'bnn.unary %x {fn = "rsqrt"}': (torch.rsqrt, ULPS, None),
    'bnn.unary %x {fn = "reciprocal"}': (torch.reciprocal, 0, None),
    'bnn.unary %x {fn = "exp"}': (torch.exp, ULPS, None),
    'bnn.unary %x {fn = "expm1"}': (torch.expm1, ULPS, None),
    'bnn.unary %x {fn = "log"}': (torch.log, ULPS, None),
    'bnn.unary %x {fn = "log1p"}': (torch.log1p, ULPS, None),
    'bnn.unary %x {fn = "erf"}': (torch.erf, ULPS, None),
    "bnn.elu %x {alpha = 0.7 : f32, scale = 1.0 : f32, input_scale = 1.0 : f32}": (
        lambda x: F.elu(x, 0.7),
        ULPS,
        lambda x: 4 * EPS * 0.7,
    ),
    "bnn.elu %x {alpha = 1.6732632423543772 : f32, scale = 1.0507009873554805 : f32, input_scale = 0.5 : f32}": (
        lambda x: torch.ops.aten.elu(x, 1.6732632423543772, 1.0507009873554805, 0.5),
        ULPS,
        lambda x: 4 * EPS * 1.6732632423543772 * 1.0507009873554805,
    ),
    "bnn.leaky_relu %x {negative_slope = 0.1 : f32}": (lambda x: F.leaky_relu(x, 0.1), 0, None),
    "bnn.leaky_relu %x {negative_slope = -2.0 : f32}": (lambda x: F.leaky_relu(x, -2.0), 0, None),
    **{
        f"bnn.pow %x {{exponent = {e} : f32}}": (lambda x, e=e: torch.pow(x, e), {0.5: 1, -0.5: ULPS}.get(e, 0), None)
        for e in (0.0, 1.0, 2.0, 3.0, -1.0, -2.0, 0.5, -0.5)
    },
    "bnn.pow %x {exponent = 3.5 : f32}": (lambda x: torch.pow(x, 3.5), ULPS, None),
    "bnn.pow %x {exponent = -1.25 : f32}": (lambda x: torch.pow(x, -1.25), ULPS, None),
}


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("index", range(len(UNARY_CASES)))
def test_unary_kernel_matches_pytorch(index, threads):
    text = list(UNARY_CASES)[index]
    torch_fn, ulps, abs_fn = UNARY_CASES[text]
    rng = np.random.default_rng(index * 3 + threads)
    x = _special(SHAPE, rng)
    if '"gelu"' in text:
        x[x == np.inf] = 1e4  # PyTorch's oneDNN gelu gives NaN at +inf (see the next test)
    ir = f"func.func @forward(%x: {tensor_type(SHAPE)}) -> {tensor_type(SHAPE)} {{\n  %y = {text} : {tensor_type(SHAPE)}\n  func.return %y : {tensor_type(SHAPE)}\n}}"
    got = compile_ir(ir, threads)(x)
    ref = torch_fn(torch.from_numpy(x)).numpy()
    assert_close(got, ref, ulps, abs_fn(x) if abs_fn else 0.0)


def test_gelu_at_plus_infinity_follows_the_formula():
    """x * 0.5 * (1 + erf(inf)) = inf, as PyTorch's own kernel (a 1-element
    tensor) computes; its oneDNN path for larger tensors gives NaN there."""
    shape = (1, 4)
    ir = f'func.func @forward(%x: {tensor_type(shape)}) -> {tensor_type(shape)} {{\n  %y = bnn.unary %x {{fn = "gelu"}} : {tensor_type(shape)}\n  func.return %y : {tensor_type(shape)}\n}}'
    x = np.array([[np.inf, -np.inf, 0.0, -0.0]], np.float32)
    got = compile_ir(ir, 1)(x)
    want = np.array([F.gelu(torch.tensor([v])).item() for v in x[0]], np.float32)[None]
    assert_close(got, want)
    assert got[0, 0] == np.inf and np.isnan(got[0, 1]) and np.signbit(got[0, 3])


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("kind", ["minimum", "maximum"])
@pytest.mark.parametrize(
    "shapes", [((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 3, 4, 5), (3, 1, 1)), ((1, 3, 1, 5), (2, 1, 4, 1))]
)
def test_minimum_maximum_broadcast_match_pytorch_bit_for_bit(kind, shapes, threads):
    rng = np.random.default_rng(len(shapes[1]) * 7 + threads)
    a, b = _special(shapes[0], rng), _special(shapes[1], rng)
    out = tuple(np.broadcast_shapes(a.shape, b.shape))
    ir = (
        f"func.func @forward(%a: {tensor_type(a.shape)}, %b: {tensor_type(b.shape)}) -> {tensor_type(out)} {{\n"
        f"  %y = bnn.{kind} %a, %b : ({tensor_type(a.shape)}, {tensor_type(b.shape)}) -> {tensor_type(out)}\n  func.return %y : {tensor_type(out)}\n}}"
    )
    got = compile_ir(ir, threads)(a, b)
    ref = getattr(torch, kind)(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    # +-0 ties aside (next test), the values must be identical
    assert_close(np.where(got == 0, 0.0, got), np.where(ref == 0, 0.0, ref))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(a) | np.isnan(b))


@pytest.mark.parametrize("kind", ["minimum", "maximum"])
def test_minimum_maximum_signed_zero_ties_return_rhs(kind):
    """Of +0 and -0 PyTorch's vectorised kernel returns the second operand
    (64 contiguous elements: all of them take the vectorised path)."""
    shape = (2, 32)
    a = np.where(np.arange(64).reshape(shape) % 2 == 0, 0.0, -0.0).astype(np.float32)
    b = -a
    ir = (
        f"func.func @forward(%a: {tensor_type(shape)}, %b: {tensor_type(shape)}) -> {tensor_type(shape)} {{\n"
        f"  %y = bnn.{kind} %a, %b : ({tensor_type(shape)}, {tensor_type(shape)}) -> {tensor_type(shape)}\n  func.return %y : {tensor_type(shape)}\n}}"
    )
    got = compile_ir(ir, 1)(a, b)
    ref = getattr(torch, kind)(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_array_equal(np.signbit(got), np.signbit(ref))
    np.testing.assert_array_equal(np.signbit(got), np.signbit(b))


# ------------------------------------------------------------ through torch


class Fn(nn.Module):
    def __init__(self, fn, *params: torch.Tensor):
        super().__init__()
        self.fn = fn
        self.p = nn.ParameterList([nn.Parameter(p, requires_grad=False) for p in params])

    def forward(self, *xs):
        return self.fn(*xs, *self.p)


def _compiled(model: nn.Module, inputs: tuple, threads: int = 1):
    from bnnc import compile as bnnc_compile

    return bnnc_compile(model, inputs, num_threads=threads)


def _inputs(rng, *shapes) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(_special(s, rng)) for s in shapes)


MODEL_CASES: dict[str, tuple] = {
    # name: (fn, input shapes, parameters, ulps, abs tolerance of x)
    "silu": (F.silu, [SHAPE], [], ULPS, None),
    "softplus": (lambda x: F.softplus(x, 2.0, 3.0), [SHAPE], [], ULPS, None),
    "softplus_default": (F.softplus, [SHAPE], [], ULPS, None),
    "selu": (F.selu, [SHAPE], [], ULPS, lambda x: 4 * EPS * 1.76),
    "elu": (lambda x: F.elu(x, 0.5), [SHAPE], [], ULPS, lambda x: 4 * EPS * 0.5),
    "gelu": (F.gelu, [SHAPE], [], ULPS, lambda x: 4 * EPS * np.abs(x)),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), [SHAPE], [], ULPS, lambda x: 4 * EPS * np.abs(x)),
    "tanh_sigmoid": (lambda x: torch.tanh(x) + torch.sigmoid(x), [SHAPE], [], ULPS, lambda x: 8 * EPS),
    "roots": (lambda x: torch.sqrt(x) * torch.rsqrt(x.abs() + 1), [SHAPE], [], ULPS, None),
    "reciprocal": (torch.reciprocal, [SHAPE], [], 0, None),
    "exp_log": (
        lambda x: torch.exp(x) - torch.log1p(x.abs()) + torch.log(x),
        [SHAPE],
        [],
        ULPS,
        lambda x: 4 * EPS * np.exp(np.minimum(np.abs(x), 80)),
    ),
    "erf_expm1": (lambda x: torch.erf(x) * torch.expm1(x * 0.1), [SHAPE], [], ULPS, None),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), [SHAPE], [], 0, None),
    "pow": (lambda x: x**2 + x.abs() ** 1.5 - x**-1, [SHAPE], [], ULPS, lambda x: 4 * EPS * (x**2 + np.abs(x) ** 1.5)),
    "minimum_inputs": (torch.minimum, [SHAPE, (3, 1, 7)], [], 0, None),
    "maximum_param": (lambda x, p: torch.maximum(p, x), [SHAPE], [torch.linspace(-1, 1, 5).reshape(5, 1)], 0, None),
    "clamp_tensor": (
        lambda x, lo, hi: torch.clamp(x, lo, hi),
        [SHAPE],
        [torch.tensor([-1.0, -0.25, 0.5]).reshape(1, 3, 1, 1), torch.tensor([1.0, 0.25, 2.0]).reshape(1, 3, 1, 1)],
        0,
        None,
    ),
    "clamp_tensor_min_only": (lambda x, lo: torch.clamp(x, min=lo), [SHAPE, (1, 3, 5, 1)], [], 0, None),
    "clamp_tensor_max_only": (lambda x, hi: torch.clamp(x, max=hi), [SHAPE, (7,)], [], 0, None),
    "clamp_tensor_crossed": (
        lambda x, lo, hi: torch.clamp(x, lo, hi),
        [SHAPE],
        [torch.ones(1), torch.zeros(1)],
        0,
        None,
    ),
    "clamp_min_number": (lambda x: torch.clamp(x, min=-0.5), [SHAPE], [], 0, None),
    "clamp_max_number": (lambda x: torch.clamp(x, max=0.25), [SHAPE], [], 0, None),
    "clamp_max_zero": (lambda x: x.clamp_max(0.0), [SHAPE], [], 0, None),
    "clamp_crossed_numbers": (lambda x: torch.clamp(x, 1.0, -1.0), [SHAPE], [], 0, None),
    "hardtanh_infinite_bound": (lambda x: F.hardtanh(x, -math.inf, 2.0), [SHAPE], [], 0, None),
    "relu6": (F.relu6, [SHAPE], [], 0, None),
}


@pytest.mark.parametrize("name", list(MODEL_CASES))
def test_model_matches_pytorch_eager(name):
    fn, shapes, params, ulps, abs_fn = MODEL_CASES[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    xs = _inputs(rng, *shapes)
    if name == "gelu":
        xs[0][xs[0] == math.inf] = 1e4  # PyTorch's oneDNN gelu gives NaN at +inf
    model = Fn(fn, *params).eval()
    threads = 1 + len(name) % 2
    got = _compiled(model, xs, threads)(*xs).numpy()
    with torch.no_grad():
        ref = model(*xs).numpy()
    x0 = xs[0].numpy()
    assert_close(got, ref, ulps, abs_fn(np.broadcast_to(x0, ref.shape)) if abs_fn else 0.0)


@pytest.mark.parametrize(
    "fn, params, ops",
    [
        (F.silu, [], ["bnn.unary", "bnn.mul"]),
        (F.selu, [], ["bnn.elu"]),
        (lambda x: torch.clamp(x, min=0.5), [], ["bnn.hardtanh"]),
        (lambda x: torch.clamp(x, max=0.5), [], ["bnn.hardtanh"]),
        (lambda x: torch.clamp(x, min=0.0), [], ["bnn.relu"]),
        (lambda x: torch.pow(x, 2.5), [], ["bnn.pow"]),
        (lambda x, p: torch.clamp(x, p, None), [torch.ones(3)], ["bnn.maximum"]),
        (lambda x, p: torch.clamp(x, None, p), [torch.ones(3)], ["bnn.minimum"]),
        (lambda x, p, q: torch.clamp(x, p, q), [torch.zeros(3), torch.ones(3)], ["bnn.maximum", "bnn.minimum"]),
    ],
)
def test_translation_is_one_to_one(fn, params, ops):
    text = str(import_program(export_module(Fn(fn, *params), (torch.randn(2, 3),))))
    found = [line.split("=", 1)[1].split()[0] for line in text.splitlines() if " = bnn." in line]
    assert found == ops, text


def test_nan_clamp_bound_is_refused():
    from bnnc.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="NaN bound"):
        import_program(export_module(Fn(lambda x: torch.clamp(x, min=math.nan)), (torch.randn(2, 3),)))


def test_math_functions_need_no_libm_in_a_shared_library(tmp_path):
    """exp, tanh, erf, log1p, expm1 and log on f32 are inline polynomials
    (passes/_vector_math.py): the artifact calls no libm function for them."""
    from bnnc.artifacts import write_artifact
    from bnnc.runtime.artifact_loader import load_artifact, undefined_symbols

    model = Fn(lambda x: torch.erf(x) + torch.log1p(x.abs()) + torch.expm1(x) + torch.tanh(x) + torch.sigmoid(x)).eval()
    x = torch.from_numpy(_special((2, 3, 4), np.random.default_rng(5)))
    built = build(model, (x,), CompileOptions(target="x86_64", num_threads=1))
    path = str(tmp_path / "m.so")
    write_artifact(built.llvm_module, built.target, built.signature, path, kind="so")
    libm = {"erff", "log1pf", "expm1f", "expf", "tanhf", "logf"}
    assert not libm & set(undefined_symbols(path))
    got = np.asarray(load_artifact(path)(x.numpy()))
    assert_close(got, model(x).detach().numpy(), 2 * ULPS, 4 * EPS * np.exp(np.minimum(np.abs(x.numpy()), 80)))


# --------------------------------------------------- the f32 polynomials alone

F64_REFERENCE = {
    "exp": torch.exp,
    "log": torch.log,
    "log1p": torch.log1p,
    "expm1": torch.expm1,
    "tanh": torch.tanh,
    "erf": torch.erf,
}
MAX_ULPS = 2.0  # measured: 1.0 (exp, log, erf), 1.5 (log1p, expm1, tanh)


def _polynomial_inputs() -> np.ndarray:
    """Special values, dense sweeps of the interesting ranges, and 2^21
    random bit patterns (every exponent, NaNs and denormals included)."""
    rng = np.random.default_rng(2024)
    f = np.float32
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 2.0**-24, 2.0**24, 2.0**24 + 2.0]
    special += [1e-45, -1e-45, 2.0**-126, -(2.0**-126), np.finfo(f).max, -np.finfo(f).max, -0.99999994, 1.0000001]
    special += [88.72283935546875, 88.72284698486328, -88.72283935546875, -87.33654, -103.2789, -103.972, -104.0]
    special += [89.0, 0.34657359, -0.34657359, 0.5493061, 0.5493062, 3.92, 3.93, 3.94, 0.99999994, -17.5, -18.0]
    dense = [
        np.linspace(-20, 20, 1 << 19, dtype=f),
        (rng.standard_normal(1 << 19) * 3).astype(f),
        (np.exp(rng.uniform(-87, 88, 1 << 19)) * rng.choice([-1.0, 1.0], 1 << 19)).astype(f),
    ]
    bits = rng.integers(0, 2**32, 1 << 21, dtype=np.uint64).astype(np.uint32).view(f)
    return np.concatenate([np.array(special, f), *dense, bits])


@pytest.mark.parametrize("fn", list(F64_REFERENCE))
def test_polynomial_within_2_ulp_of_float64(fn):
    """Each f32 expansion over millions of inputs: within MAX_ULPS ulp of
    the float64 value (in ulps of the f32-rounded reference), NaN exactly
    where the function is undefined or the input is NaN, infinities and
    zeros (with their signs) exactly as the rounded reference."""
    x = _polynomial_inputs()
    ir = f'func.func @forward(%x: {tensor_type(x.shape)}) -> {tensor_type(x.shape)} {{\n  %y = bnn.unary %x {{fn = "{fn}"}} : {tensor_type(x.shape)}\n  func.return %y : {tensor_type(x.shape)}\n}}'
    got = np.asarray(compile_ir(ir, 2)(x)).astype(np.float64)
    with np.errstate(all="ignore"):
        ref = F64_REFERENCE[fn](torch.from_numpy(x.astype(np.float64))).numpy()
        ref32 = ref.astype(np.float32)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref32), err_msg="NaN positions differ")
    exact = ~np.isfinite(ref32) | (ref32 == 0)  # infinities (incl. overflow) and zeros (incl. underflow, -0)
    exact &= ~np.isnan(ref32)
    np.testing.assert_array_equal(got[exact], ref32[exact].astype(np.float64))
    np.testing.assert_array_equal(np.signbit(got[exact]), np.signbit(ref32[exact]))
    finite = np.isfinite(ref32) & (ref32 != 0)
    ulps = np.abs(got[finite] - ref[finite]) / np.spacing(np.abs(ref32[finite])).astype(np.float64)
    worst = int(np.argmax(ulps))
    assert ulps[worst] <= MAX_ULPS, f"{fn}({x[finite][worst]!r}) = {got[finite][worst]!r}, want {ref[finite][worst]!r}: {ulps[worst]:.2f} ulp"


@pytest.mark.parametrize(
    "op, message",
    [
        ('bnn.unary %x {fn = "softmax"}', "bnn.unary fn must be one of"),
        ("bnn.pow %x {exponent = 0x7fc00000 : f32}", "exponent must not be NaN"),
    ],
)
def test_verifier_rejects_bad_math_ops(op, message):
    from xdsl.utils.exceptions import VerifyException

    module = Parser(
        make_context(),
        f"func.func @f(%x: tensor<2xf32>) -> tensor<2xf32> {{\n  %y = {op} : tensor<2xf32>\n  func.return %y : tensor<2xf32>\n}}",
    ).parse_module()
    with pytest.raises(VerifyException, match=message):
        module.verify()
