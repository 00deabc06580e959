"""The float "glue" kernels (pooling, elementwise, batch norm, sign packing)
at the IR level against PyTorch / NumPy, bit for bit where PyTorch's CPU
kernel fixes the order of operations, and at 1, 2 and 3 threads (the results
must not depend on the thread count)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from float_helpers import THREADS, compile_ir, float_bits, forward_func, special_values, tensor_type
from xdsl.dialects.builtin import f32

from bnnc.dialects.bitpack import pack_activations, packed_words
from bnnc.dialects.bnn import batch_norm_affine
from bnnc.dialects.dense import from_numpy

# kernel, stride, padding, dilation, (H, W): odd sizes, kernel > stride,
# kernel < stride, padding up to half the kernel, dilation, windows that
# only partly fit, 1x1 outputs.
POOL_GEOMETRIES = [
    (3, 2, 1, 1, (14, 14)),  # the ResNet stem's pool
    (3, 2, 1, 1, (9, 7)),
    (2, 2, 0, 1, (7, 9)),
    (3, 1, 1, 1, (5, 6)),
    (3, 2, 0, 1, (8, 5)),
    (5, 2, 2, 1, (11, 6)),
    (4, 3, 2, 1, (10, 13)),
    (2, 3, 1, 1, (8, 8)),  # kernel < stride: some inputs never read
    (1, 1, 0, 1, (3, 4)),
    (3, 3, 1, 1, (2, 2)),  # no interior at all
    (7, 1, 3, 1, (5, 5)),
    (3, 1, 1, 2, (7, 8)),  # dilation (max only)
    (3, 2, 1, 3, (5, 7)),  # dilated windows with taps beyond both borders
]


def _out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _pool_case(index: int, geometry, kind: str, threads: int):
    k, s, p, d, (h, w) = geometry
    rng = np.random.default_rng(index * 7 + threads)
    x = special_values(rng.standard_normal((2, 3, h, w)).astype(np.float32), rng, nan=kind == "max")
    oh, ow = _out_size(h, k, s, p, d), _out_size(w, k, s, p, d)
    out = (2, 3, oh, ow)
    window = f"kernel = array<i64: {k}, {k}>, strides = array<i64: {s}, {s}>, padding = array<i64: {p}, {p}>, dilations = array<i64: {d}, {d}>"
    if kind == "max":
        op = f"bnn.max_pool2d %x {{{window}}}"
        ref = F.max_pool2d(torch.from_numpy(x), k, s, p, d).numpy()
    else:
        include_pad = kind != "avg_excl"
        override = 5 if kind == "avg_override" else None
        props = f"{window}, count_include_pad = {str(include_pad).lower()}"
        if override is not None:
            props += f", divisor_override = {override} : i64"
        op = f"bnn.avg_pool2d %x {{{props}}}"
        ref = F.avg_pool2d(
            torch.from_numpy(x), k, s, p, count_include_pad=include_pad, divisor_override=override
        ).numpy()
    ir = forward_func([("x", x.shape)], f"%y = {op} : ({tensor_type(x.shape)}) -> {tensor_type(out)}", out)
    return ir, x, ref


# avg_pool2d has no dilation: the avg kinds take the undilated geometries only
POOL_CASES = [
    (index, kind)
    for kind in ("max", "avg_incl", "avg_excl", "avg_override")
    for index, geometry in enumerate(POOL_GEOMETRIES)
    if kind == "max" or geometry[3] == 1
]


@pytest.mark.parametrize("index, kind", POOL_CASES)
def test_pool_matches_pytorch_bit_for_bit(index, kind):
    """PyTorch's NCHW CPU kernels visit the window row by row: max keeps the
    first of equal values and propagates NaN; avg sums from 0 then divides."""
    geometry = POOL_GEOMETRIES[index]
    threads = THREADS[index % len(THREADS)]
    ir, x, ref = _pool_case(index, geometry, kind, threads)
    got = compile_ir(ir, threads)(x)
    np.testing.assert_array_equal(float_bits(got), float_bits(ref))


@pytest.mark.parametrize("kind", ["max", "avg_incl"])
def test_pool_thread_counts_agree(kind):
    ir, x, ref = _pool_case(0, (3, 2, 1, 1, (13, 11)), kind, 1)
    for threads in THREADS:
        np.testing.assert_array_equal(float_bits(compile_ir(ir, threads)(x)), float_bits(ref))


def test_maxpool_nan_anywhere_in_the_window_propagates():
    """A NaN at any tap (first, middle, last) gives NaN, whatever follows."""
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    ir = forward_func(
        [("x", x.shape)],
        f"%y = bnn.max_pool2d %x {{kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>}} : ({tensor_type(x.shape)}) -> {tensor_type((1, 1, 1, 1))}",
        (1, 1, 1, 1),
    )
    model = compile_ir(ir, 1)
    for position in range(9):
        y = x.copy()
        y.flat[position] = np.nan
        assert np.isnan(model(y)).all(), position
        assert np.isnan(F.max_pool2d(torch.from_numpy(y), 3).numpy()).all()


PADS = [(0, 0, 0, 0), (1, 2, 0, 1), (2, 3, 2, 3), (0, 1, 3, 0), (4, 0, 0, 0), (0, 0, 0, 5)]


@pytest.mark.parametrize("pads", PADS, ids=str)
def test_pad_runs_match_pytorch(pads):
    """bnn.pad writes border bands, row fills and row copies with no bounds
    test: every asymmetric combination (a side alone, none, the TFLite
    stem's (2, 3)) must equal F.pad, including -0.0 and NaN copied bit for bit."""
    left, right, top, bottom = pads
    rng = np.random.default_rng(sum(pads))
    x = special_values(rng.standard_normal((2, 3, 5, 7)).astype(np.float32), rng, nan=True)
    out = (2, 3, 5 + top + bottom, 7 + left + right)
    ir = forward_func(
        [("x", x.shape)],
        f"%y = bnn.pad %x {{padding = array<i64: {left}, {right}, {top}, {bottom}>, value = -1.5 : f32}} : ({tensor_type(x.shape)}) -> {tensor_type(out)}",
        out,
    )
    ref = F.pad(torch.from_numpy(x), pads, value=-1.5).numpy()
    np.testing.assert_array_equal(float_bits(compile_ir(ir, 1)(x)), float_bits(ref))


# ---------------------------------------------------------------- elementwise

SHAPE = (2, 5, 7, 9)


def _unary_cases():
    rng = np.random.default_rng(3)
    slope = rng.uniform(0.05, 0.5, SHAPE[1]).astype(np.float32)
    yield "sign", "bnn.sign %x", [], lambda x: np.where(x < 0, -1.0, 1.0).astype(np.float32)
    yield "relu", "bnn.relu %x", [], lambda x: np.where(x < 0, 0.0, x).astype(np.float32)
    yield "abs", "bnn.abs %x", [], np.abs
    yield (
        "hardtanh",
        "bnn.hardtanh %x {min_val = -0.5 : f32, max_val = 1.25 : f32}",
        [],
        lambda x: F.hardtanh(torch.from_numpy(x), -0.5, 1.25).numpy(),
    )
    yield (
        "prelu",
        f"bnn.prelu %x, %s : ({tensor_type(SHAPE)}, {tensor_type(slope.shape)}) -> {tensor_type(SHAPE)}",
        [f"%s = arith.constant {from_numpy(slope, f32)}"],
        lambda x: F.prelu(torch.from_numpy(x), torch.from_numpy(slope)).numpy(),
    )
    one = np.array([0.25], np.float32)
    yield (
        "prelu_single",
        f"bnn.prelu %x, %s : ({tensor_type(SHAPE)}, {tensor_type(one.shape)}) -> {tensor_type(SHAPE)}",
        [f"%s = arith.constant {from_numpy(one, f32)}"],
        lambda x: F.prelu(torch.from_numpy(x), torch.from_numpy(one)).numpy(),
    )


UNARY = {name: rest for name, *rest in _unary_cases()}


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_glue_ops(name, threads):
    op, consts, ref = UNARY[name]
    rng = np.random.default_rng(threads)
    x = special_values(rng.standard_normal(SHAPE).astype(np.float32), rng, nan=False)
    if "%s" not in op:
        op = f"{op} : {tensor_type(SHAPE)}"
    ir = forward_func([("x", SHAPE)], "\n  ".join([*consts, f"%y = {op}"]), SHAPE)
    got = compile_ir(ir, threads)(x)
    np.testing.assert_array_equal(float_bits(got), float_bits(ref(x)))


# rhs shapes broadcast against lhs: same shape, per channel in several
# spellings, a row vector (W), a column (H x 1), one scalar, and a broadcast lhs
BROADCASTS = [
    (SHAPE, SHAPE),
    (SHAPE, (1, SHAPE[1], 1, 1)),
    (SHAPE, (SHAPE[1], 1, 1)),
    (SHAPE, (SHAPE[3],)),
    (SHAPE, (SHAPE[2], 1)),
    (SHAPE, (1,)),
    ((1, SHAPE[1], 1, 1), SHAPE),
    ((3, 6), (3, 6)),
    ((3, 6), (6,)),
]

BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("shapes", BROADCASTS, ids=str)
def test_binary_glue_ops_broadcast(op, shapes):
    lhs_shape, rhs_shape = shapes
    out = np.broadcast_shapes(lhs_shape, rhs_shape)
    rng = np.random.default_rng(len(lhs_shape) * 10 + len(rhs_shape))
    a = rng.standard_normal(lhs_shape).astype(np.float32)
    b = rng.standard_normal(rhs_shape).astype(np.float32)
    ir = forward_func(
        [("a", lhs_shape), ("b", rhs_shape)],
        f"%y = bnn.{op} %a, %b : ({tensor_type(lhs_shape)}, {tensor_type(rhs_shape)}) -> {tensor_type(out)}",
        out,
    )
    threads = THREADS[BROADCASTS.index(shapes) % len(THREADS)]
    got = compile_ir(ir, threads)(a, b)
    np.testing.assert_array_equal(float_bits(got), float_bits(BINARY[op](a, b)))


def _batch_norm_ir(shape, rng):
    c = shape[1]
    mean, gamma, beta = (rng.standard_normal(c).astype(np.float32) for _ in range(3))
    var = rng.uniform(0.1, 2.0, c).astype(np.float32)
    consts = [f"%{n} = arith.constant {from_numpy(v, f32)}" for n, v in zip("mvgb", (mean, var, gamma, beta))]
    vec = tensor_type([c])
    op = f"%y = bnn.batch_norm %x, %m, %v, %g, %b {{epsilon = 1.0e-05 : f32}} : ({tensor_type(shape)}, {vec}, {vec}, {vec}, {vec}) -> {tensor_type(shape)}"
    scale, shift = batch_norm_affine(mean, var, gamma, beta, 1e-5)
    return forward_func([("x", shape)], "\n  ".join([*consts, op]), shape), scale, shift


@pytest.mark.parametrize("shape", [SHAPE, (1, 6, 1, 1), (3, 6), (2, 4, 5)], ids=str)
def test_batch_norm_one_fma(shape):
    """y = fma(x, scale[c], shift[c]) rounded once, at every thread count."""
    rng = np.random.default_rng(sum(shape))
    ir, scale, shift = _batch_norm_ir(shape, rng)
    x = rng.standard_normal(shape).astype(np.float32)
    bshape = (1, -1) + (1,) * (len(shape) - 2)
    exact = x.astype(np.float64) * scale.reshape(bshape) + shift.reshape(bshape)
    results = [compile_ir(ir, threads)(x) for threads in THREADS]
    for got in results[1:]:
        np.testing.assert_array_equal(float_bits(got), float_bits(results[0]))
    # fma rounds x*s+t once; the float64 sum is within half an f64 ulp of it
    np.testing.assert_allclose(results[0], exact.astype(np.float32), rtol=2e-7, atol=1e-30)


# ---------------------------------------------------------------- packing


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("c,groups,hw", [(64, 1, (7, 5)), (70, 2, (9, 7)), (130, 1, (3, 4)), (5, 1, (1, 1))])
def test_pack_threads(c, groups, hw, threads):
    rng = np.random.default_rng(c + threads)
    x = special_values(rng.standard_normal((2, c, *hw)).astype(np.float32), rng, nan=True)
    out = (2, packed_words(c, groups), *hw)
    ir = forward_func(
        [("x", x.shape)],
        f"%y = bnn.pack %x {{groups = {groups} : i64}} : {tensor_type(x.shape)} -> {tensor_type(out, 'i64')}",
        out,
        "i64",
    )
    np.testing.assert_array_equal(compile_ir(ir, threads)(x), pack_activations(x, groups))
