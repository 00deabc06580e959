"""The binary kernels against a float64 reference, at the IR level (independent
of the frontend): every kernel variant the targets select (AVX-512 VPOPCNTDQ at
512 bits, AVX2 at 256, scalar popcnt), thread counts, odd shapes (channel
counts not a multiple of 64, stride, dilation, groups, padding 0/1/2 with pad
values 0/+1/-1), float and packed inputs, float output transforms and packed
threshold outputs. Binary accumulators must match exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import f32, i64
from xdsl.parser import Parser

from bnnc.context import make_context
from bnnc.dialects import bnn
from bnnc.dialects.bitpack import (
    pack_activations,
    pack_bits,
    pack_conv_weight,
    packed_words,
    padding_correction,
    unpack_conv_weight,
)
from bnnc.dialects.bnn import conv_output_size
from bnnc.dialects.dense import from_numpy
from bnnc.driver import CompileOptions, build, jit

# Feature strings that select each x86 kernel variant on this host.
VARIANTS = {"avx512": None, "avx2": "-avx512f", "scalar": "-avx512f,-avx2,-avx"}


def reference_dot(signs, weight_words, groups, stride, padding, dilation, pad_value) -> np.ndarray:
    cg = signs.shape[1] // groups
    w = torch.from_numpy(1 - 2 * unpack_conv_weight(weight_words, cg).astype(np.float64))
    x = F.pad(torch.from_numpy(signs.astype(np.float64)), (padding,) * 4, value=float(pad_value))
    return F.conv2d(x, w, stride=stride, dilation=dilation, groups=groups).numpy()


def compile_ir(text: str, features: str | None, threads: int):
    """Compile the IR as written: no graph-level rewrites, only the lowering."""
    module = Parser(make_context(), text).parse_module()
    # thread_min_work=0: even these small layers run on `threads` threads
    options = CompileOptions(features=features, num_threads=threads, pipeline="bnn=", thread_min_work=0)
    return jit(build(module, options=options))


def _t(shape, elem="f32") -> str:
    return f"tensor<{'x'.join(map(str, shape))}x{elem}>"


conv_cases = st.fixed_dictionaries(
    {
        "cin": st.sampled_from([1, 3, 33, 64, 65, 100]),
        "cout": st.sampled_from([1, 3, 8, 33, 64, 65]),
        "groups": st.sampled_from([1, 2]),
        "kernel": st.sampled_from([1, 3]),
        "stride": st.sampled_from([1, 2]),
        "dilation": st.sampled_from([1, 2]),
        "padding": st.sampled_from([0, 1, 2]),
        "pad_value": st.sampled_from([0, 1, -1]),
        "batch": st.sampled_from([1, 2]),
        "hw": st.tuples(st.integers(5, 12), st.integers(5, 12)),
        "variant": st.sampled_from(sorted(VARIANTS)),
        "threads": st.sampled_from([1, 2, 3]),
        "transform": st.sampled_from(["none", "affine", "prelu_clamp"]),
        "seed": st.integers(0, 2**31 - 1),
    }
)


def _valid(case) -> bool:
    g = case["groups"]
    return case["cin"] % g == 0 and case["cout"] % g == 0 and min(case["hw"]) + 2 * case["padding"] > case["dilation"] * (case["kernel"] - 1)


# No shrinking: every example compiles a model; a failure prints its case.
NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]


@settings(max_examples=40, deadline=None, phases=NO_SHRINK, suppress_health_check=[HealthCheck.filter_too_much])
@given(conv_cases.filter(_valid))
def test_bconv2d_float_input_matches_reference(case):
    rng = np.random.default_rng(case["seed"])
    n, c, co, g, k = case["batch"], case["cin"], case["cout"], case["groups"], case["kernel"]
    h, w = case["hw"]
    s, p, d = case["stride"], case["padding"], case["dilation"]
    cg = c // g
    oh, ow = conv_output_size(h, k, s, p, d), conv_output_size(w, k, s, p, d)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = 0.0  # binarize(0) = +1
    weights = pack_conv_weight(rng.random((co, cg, k, k)) < 0.5)
    dot = reference_dot(np.where(x >= 0, 1.0, -1.0), weights, g, s, p, d, case["pad_value"])
    consts = [f"%w = arith.constant {from_numpy(weights, i64)}"]
    extra = ""
    expected = dot
    if case["transform"] != "none":
        m = rng.uniform(-2, 2, co).astype(np.float32)
        b = rng.uniform(-3, 3, co).astype(np.float32)
        consts += [f"%m = arith.constant {from_numpy(m, f32)}", f"%b = arith.constant {from_numpy(b, f32)}"]
        extra = f" multiplier %m : {_t([co])} bias %b : {_t([co])}"
        v = (dot.astype(np.float32) * m[None, :, None, None] + b[None, :, None, None]).astype(np.float64)
        if case["transform"] == "prelu_clamp":
            a = rng.uniform(-1, 1, co).astype(np.float32)
            consts.append(f"%a = arith.constant {from_numpy(a, f32)}")
            extra += f" slope %a : {_t([co])}"
            v = np.where(v > 0, v, (v.astype(np.float32) * a[None, :, None, None]).astype(np.float64))
            v = np.clip(v, -1.5, 2.0)
        expected = v
    props = (
        f"strides = array<i64: {s}, {s}>, padding = array<i64: {p}, {p}>, dilations = array<i64: {d}, {d}>, "
        f"groups = {g} : i64, pad_value = {case['pad_value']} : i64"
    )
    if case["transform"] == "prelu_clamp":
        props += ", clamp_min = -1.5 : f32, clamp_max = 2.0 : f32"
    body = "\n  ".join(consts)
    ir = f"""func.func @forward(%x: {_t([n, c, h, w])}) -> {_t([n, co, oh, ow])} {{
  {body}
  %y = bnn.bconv2d %x, %w{extra} {{{props}}} : {_t([n, c, h, w])}, {_t(weights.shape, 'i64')} -> {_t([n, co, oh, ow])}
  func.return %y : {_t([n, co, oh, ow])}
}}"""
    got = compile_ir(ir, VARIANTS[case["variant"]], case["threads"])(x)
    if case["transform"] == "none":
        np.testing.assert_array_equal(got, expected.astype(np.float32))
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


# (cin, cout, h, w, stride, padding, pad_value, residual, threads, variant): NCHW float
# results written a row at a time through register transposes (16, 8 and 4
# lanes on AVX-512, 8 and 4 on AVX2, 4 on scalar, scalar leftovers), the
# residual read the same way in either add order
NCHW_ROW_CASES = [
    (3, 3, 17, 19, 1, 1, 0, None, 1, "avx512"),
    (33, 33, 20, 21, 1, 1, 0, "rhs", 3, "avx512"),
    (65, 65, 28, 28, 1, 1, 0, "lhs", 1, "avx512"),
    (130, 130, 14, 13, 1, 1, 1, "rhs", 3, "avx512"),
    (64, 64, 56, 56, 1, 1, 0, "lhs", 1, "avx512"),
    (64, 96, 23, 37, 2, 1, -1, "rhs", 3, "avx512"),
    (65, 33, 30, 31, 1, 0, 0, None, 1, "avx2"),
    (33, 65, 12, 26, 2, 2, 0, "lhs", 3, "scalar"),
]


@pytest.mark.parametrize("case", NCHW_ROW_CASES, ids=lambda c: "-".join(map(str, c)))
def test_bconv2d_nchw_rows_bit_exact(case):
    """A float NCHW result equals PyTorch's bits: dot * multiplier (one f32
    rounding, as PyTorch's) plus a residual (-0.0 and infinities included)."""
    cin, co, h, w, s, p, pad_value, residual, threads, variant = case
    rng = np.random.default_rng(cin * 1000 + co + h)
    oh, ow = conv_output_size(h, 3, s, p, 1), conv_output_size(w, 3, s, p, 1)
    x = rng.standard_normal((1, cin, h, w)).astype(np.float32)
    weights = pack_conv_weight(rng.random((co, cin, 3, 3)) < 0.5)
    dot = reference_dot(np.where(x >= 0, 1.0, -1.0), weights, 1, s, p, 1, pad_value)
    m = rng.uniform(-2, 2, co).astype(np.float32)
    want = torch.from_numpy(dot.astype(np.float32)) * torch.from_numpy(m)[None, :, None, None]
    out_t = _t([1, co, oh, ow])
    extra, args = "", [x]
    if residual is not None:
        r = rng.standard_normal((1, co, oh, ow)).astype(np.float32)
        r.reshape(-1)[:: 7] = -0.0
        r.reshape(-1)[3 :: 101] = np.inf
        want = torch.from_numpy(r) + want if residual == "lhs" else want + torch.from_numpy(r)
        extra = f" residual %r : {out_t}"
        args.append(r)
    props = (
        f"strides = array<i64: {s}, {s}>, padding = array<i64: {p}, {p}>, dilations = array<i64: 1, 1>, "
        f"groups = 1 : i64, pad_value = {pad_value} : i64" + (", residual_lhs" if residual == "lhs" else "")
    )
    inputs = f"%x: {_t([1, cin, h, w])}" + (f", %r: {out_t}" if residual is not None else "")
    ir = f"""func.func @forward({inputs}) -> {out_t} {{
  %w = arith.constant {from_numpy(weights, i64)}
  %m = arith.constant {from_numpy(m, f32)}
  %y = bnn.bconv2d %x, %w multiplier %m : {_t([co])}{extra} {{{props}}} : {_t([1, cin, h, w])}, {_t(weights.shape, 'i64')} -> {out_t}
  func.return %y : {out_t}
}}"""
    got = compile_ir(ir, VARIANTS[variant], threads)(*args)
    np.testing.assert_array_equal(got.view(np.uint32), want.numpy().view(np.uint32))


@settings(max_examples=25, deadline=None, phases=NO_SHRINK, suppress_health_check=[HealthCheck.filter_too_much])
@given(conv_cases.filter(_valid), st.sampled_from([1, 2]))
def test_bconv2d_packed_threshold_output(case, out_groups):
    """Packed input with in_channels, zero padding through +1 padding plus a
    correction table, packed output through thresholds (bit = dot < t)."""
    rng = np.random.default_rng(case["seed"])
    n, c, co, g, k = case["batch"], case["cin"], case["cout"], case["groups"], case["kernel"]
    if co % out_groups:
        out_groups = 1
    h, w = case["hw"]
    s, p, d = case["stride"], case["padding"], case["dilation"]
    cg = c // g
    oh, ow = conv_output_size(h, k, s, p, d), conv_output_size(w, k, s, p, d)
    signs = np.where(rng.random((n, c, h, w)) < 0.5, -1.0, 1.0)
    packed = pack_activations(signs, g)
    weights = pack_conv_weight(rng.random((co, cg, k, k)) < 0.5)
    dot = reference_dot(signs, weights, g, s, p, d, 0)
    correction = padding_correction(weights, cg)
    threshold = rng.integers(-k * k * cg, k * k * cg + 1, co).astype(np.int64)
    expected = pack_activations(np.where(dot < threshold[None, :, None, None], -1.0, 1.0), out_groups)
    words_in, words_out = packed_words(c, g), packed_words(co, out_groups)
    props = (
        f"strides = array<i64: {s}, {s}>, padding = array<i64: {p}, {p}>, dilations = array<i64: {d}, {d}>, "
        f"groups = {g} : i64, pad_value = 1 : i64, in_channels = {c} : i64, out_groups = {out_groups} : i64"
    )
    ir = f"""func.func @forward(%x: {_t([n, words_in, h, w], 'i64')}) -> {_t([n, words_out, oh, ow], 'i64')} {{
  %w = arith.constant {from_numpy(weights, i64)}
  %t = arith.constant {from_numpy(threshold, i64)}
  %c = arith.constant {from_numpy(correction, i64)}
  %y = bnn.bconv2d %x, %w threshold %t : {_t([co], 'i64')} correction %c : {_t([co, k, k], 'i64')} {{{props}}} : {_t([n, words_in, h, w], 'i64')}, {_t(weights.shape, 'i64')} -> {_t([n, words_out, oh, ow], 'i64')}
  func.return %y : {_t([n, words_out, oh, ow], 'i64')}
}}"""
    got = compile_ir(ir, VARIANTS[case["variant"]], case["threads"])(packed)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("k,m", [(1, 1), (65, 10), (100, 64), (512, 130)])
def test_bdense_matches_reference(variant, k, m):
    rng = np.random.default_rng(k * m)
    x = rng.standard_normal((3, k)).astype(np.float32)
    wsign = np.where(rng.random((m, k)) < 0.5, -1.0, 1.0)
    words = pack_bits(wsign < 0)
    mult = rng.uniform(0.5, 2, m).astype(np.float32)
    dot = np.where(x >= 0, 1.0, -1.0) @ wsign.T
    ir = f"""func.func @forward(%x: {_t([3, k])}) -> {_t([3, m])} {{
  %w = arith.constant {from_numpy(words, i64)}
  %m = arith.constant {from_numpy(mult, f32)}
  %y = bnn.bdense %x, %w multiplier %m : {_t([m])} : {_t([3, k])}, {_t(words.shape, 'i64')} -> {_t([3, m])}
  func.return %y : {_t([3, m])}
}}"""
    got = compile_ir(ir, VARIANTS[variant], 1)(x)
    np.testing.assert_allclose(got, (dot.astype(np.float32) * mult), rtol=1e-6)


def test_packing_and_binary_maxpool():
    """bnn.pack then bnn.bmax_pool2d equals packing the max-pooled signs."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 70, 9, 7)).astype(np.float32)
    pooled = F.max_pool2d(torch.from_numpy(np.where(x >= 0, 1.0, -1.0)), 3, 2, 1).numpy()
    expected = pack_activations(pooled, 2)
    ir = f"""func.func @forward(%x: {_t([2, 70, 9, 7])}) -> {_t([2, 2, 5, 4], 'i64')} {{
  %p = bnn.pack %x {{groups = 2 : i64}} : {_t([2, 70, 9, 7])} -> {_t([2, 2, 9, 7], 'i64')}
  %y = bnn.bmax_pool2d %p {{kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>}} : ({_t([2, 2, 9, 7], 'i64')}) -> {_t([2, 2, 5, 4], 'i64')}
  func.return %y : {_t([2, 2, 5, 4], 'i64')}
}}"""
    np.testing.assert_array_equal(compile_ir(ir, None, 1)(x), expected)


# By their bits: the zeros, NaNs at both ends of both signs' payloads, the
# infinities, the subnormals' and normals' ends, -1.
SPECIAL_F32 = np.array(
    [0x80000000, 0x00000000, 0x7FC00000, 0xFFC00000, 0xFF800001, 0xFFFFFFFF, 0x7F800001, 0x7FFFFFFF, 0x7F800000,
     0xFF800000, 0x00000001, 0x80000001, 0x807FFFFF, 0x80800000, 0xFF7FFFFF, 0x7F7FFFFF, 0xBF800000],
    dtype=np.uint32,
).view(np.float32)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize(
    ("c", "groups", "hw", "threads"),
    [(1, 1, (1, 1), 1), (31, 1, (3, 5), 1), (32, 1, (4, 4), 2), (33, 1, (5, 7), 3), (64, 1, (4, 8), 1),
     (65, 1, (7, 7), 2), (100, 2, (2, 9), 3), (130, 1, (6, 11), 2), (192, 3, (3, 3), 1)],
)
def test_pack_sets_the_bit_of_every_value_below_zero(c, groups, hw, threads, variant):
    """bnn.pack of NCHW floats: bit 1 exactly where x < 0.0, as a compare
    gives it (-0.0 and NaN of either sign are +1; -inf, the negative
    subnormals and -FLT_MAX are -1), for channel counts around the 32-bit
    halves and the 64-bit words, pixel counts below, at and past a vector's,
    and shares of rows on several threads."""
    rng = np.random.default_rng(c * 131 + hw[0] * 7 + hw[1])
    shape = (2, c, *hw)
    x = rng.standard_normal(shape).astype(np.float32)
    special = rng.random(shape) < 0.3
    x[special] = rng.choice(SPECIAL_F32, int(special.sum()))
    x.reshape(-1)[: SPECIAL_F32.size] = SPECIAL_F32[: x.size]
    words = packed_words(c, groups)
    out = _t([2, words, *hw], "i64")
    ir = f"""func.func @forward(%x: {_t(shape)}) -> {out} {{
  %p = bnn.pack %x {{groups = {groups} : i64}} : {_t(shape)} -> {out}
  func.return %p : {out}
}}"""
    expected = pack_activations(np.where(x < 0, -1.0, 1.0), groups)
    np.testing.assert_array_equal(compile_ir(ir, VARIANTS[variant], threads)(x), expected)


# ----------------------------------------------------------------------------
# Float convolutions: the channel-vectorised and the column-vectorised kernel


def _float_conv_ir(case, rng) -> tuple[str, dict]:
    """IR of a float conv (+ bias) followed by an inference batch norm when
    case["bn"], and the float64 reference pieces."""
    n, c, co, g, k = case["batch"], case["cin"], case["cout"], case["groups"], case["kernel"]
    h, w = case["hw"]
    s, p, d = case["stride"], case["padding"], case["dilation"]
    oh, ow = conv_output_size(h, k, s, p, d), conv_output_size(w, k, s, p, d)
    weight = rng.standard_normal((co, c // g, k, k)).astype(np.float32)
    consts = [f"%w = arith.constant {from_numpy(weight, f32)}"]
    extra = ""
    ref = {"weight": weight, "bias": None, "bn": None, "out": [n, co, oh, ow]}
    if case["bias"]:
        ref["bias"] = rng.standard_normal(co).astype(np.float32)
        consts.append(f"%b = arith.constant {from_numpy(ref['bias'], f32)}")
        extra = f" bias %b : {_t([co])}"
    props = f"strides = array<i64: {s}, {s}>, padding = array<i64: {p}, {p}>, dilations = array<i64: {d}, {d}>, groups = {g} : i64"
    lines = [
        f"%y = bnn.conv2d %x, %w{extra} {{{props}}} : {_t([n, c, h, w])}, {_t(weight.shape)} -> {_t([n, co, oh, ow])}"
    ]
    result = "%y"
    if case["bn"]:
        mean, beta = rng.uniform(-1, 1, co).astype(np.float32), rng.uniform(-1, 1, co).astype(np.float32)
        var, gamma = rng.uniform(0.2, 2, co).astype(np.float32), rng.uniform(-1.5, 1.5, co).astype(np.float32)
        for name, v in (("m", mean), ("v", var), ("ga", gamma), ("be", beta)):
            consts.append(f"%{name} = arith.constant {from_numpy(v, f32)}")
        ref["bn"] = bnn.batch_norm_affine(mean, var, gamma, beta, 1e-5)
        vec = _t([co])
        lines.append(
            f"%z = bnn.batch_norm %y, %m, %v, %ga, %be {{epsilon = 1.0e-05 : f32}} : "
            f"({_t([n, co, oh, ow])}, {vec}, {vec}, {vec}, {vec}) -> {_t([n, co, oh, ow])}"
        )
        result = "%z"
    body = "\n  ".join(consts + lines)
    ir = f"""func.func @forward(%x: {_t([n, c, h, w])}) -> {_t([n, co, oh, ow])} {{
  {body}
  func.return {result} : {_t([n, co, oh, ow])}
}}"""
    return ir, ref


def _float_conv_reference(case, x: np.ndarray, ref: dict) -> np.ndarray:
    y = F.conv2d(
        torch.from_numpy(x.astype(np.float64)),
        torch.from_numpy(ref["weight"].astype(np.float64)),
        None if ref["bias"] is None else torch.from_numpy(ref["bias"].astype(np.float64)),
        stride=case["stride"],
        padding=case["padding"],
        dilation=case["dilation"],
        groups=case["groups"],
    ).numpy()
    if ref["bn"] is not None:
        scale, shift = (v.astype(np.float64)[None, :, None, None] for v in ref["bn"])
        y = y * scale + shift
    return y


def _compile_float_conv(ir: str, features, threads: int, kernel: str, fuse: bool):
    """kernel: "auto" (the rule), or "columns" / "channels" forced."""
    from unittest import mock

    import bnnc.passes._lower_float_conv as lfc

    module = Parser(make_context(), ir).parse_module()
    options = CompileOptions(
        features=features, num_threads=threads, pipeline="bnn=fuse-conv-bn" if fuse else "bnn=", thread_min_work=0
    )
    rule = lfc.use_column_kernel if kernel == "auto" else (lambda *_: kernel == "columns")
    with mock.patch.object(lfc, "use_column_kernel", rule):
        return jit(build(module, options=options))


float_conv_cases = st.fixed_dictionaries(
    {
        "cin": st.sampled_from([1, 3, 4, 6, 17]),
        "cout": st.sampled_from([1, 3, 8, 13, 64, 65]),
        "groups": st.sampled_from([1, 1, 2, 3]),
        "kernel": st.sampled_from([1, 3, 5, 7]),
        "stride": st.sampled_from([1, 2, 3]),
        "dilation": st.sampled_from([1, 1, 2]),
        "padding": st.sampled_from([0, 1, 2, 3]),
        "batch": st.sampled_from([1, 2]),
        "hw": st.tuples(st.integers(5, 14), st.integers(5, 45)),
        "bias": st.booleans(),
        "bn": st.booleans(),
        "variant": st.sampled_from(sorted(VARIANTS)),
        "threads": st.sampled_from([1, 2, 3]),
        "kernel_shape": st.sampled_from(["auto", "columns", "channels"]),
        "seed": st.integers(0, 2**31 - 1),
    }
)


def _float_valid(case) -> bool:
    g = case["groups"]
    reach = case["dilation"] * (case["kernel"] - 1)
    return case["cin"] % g == 0 and case["cout"] % g == 0 and min(case["hw"]) + 2 * case["padding"] > reach


@settings(max_examples=40, deadline=None, phases=NO_SHRINK, suppress_health_check=[HealthCheck.filter_too_much])
@given(float_conv_cases.filter(_float_valid))
def test_float_conv2d_matches_reference(case):
    """Both kernel shapes (and the rule's choice) against float64, with odd
    widths (ow % lanes != 0), strides 1-3, dilation, groups, padding, bias and
    a fused batch norm, on every x86 variant and thread count."""
    rng = np.random.default_rng(case["seed"])
    ir, ref = _float_conv_ir(case, rng)
    n, c = case["batch"], case["cin"]
    x = rng.standard_normal((n, c, *case["hw"])).astype(np.float32)
    got = _compile_float_conv(ir, VARIANTS[case["variant"]], case["threads"], case["kernel_shape"], fuse=case["bn"])(x)
    k = c // case["groups"] * case["kernel"] ** 2
    np.testing.assert_allclose(got, _float_conv_reference(case, x, ref), rtol=1e-4, atol=2e-6 * k)


# (cin, cout, groups, kernel, stride, dilation, padding, (h, w)): the stem's
# shape scaled down, ow % 16 != 0, ow % 8 != 0, ow < 16, dilation, groups, depthwise.
FLOAT_SHAPES = [
    (3, 64, 1, 7, 2, 1, 3, (12, 40)),
    (3, 10, 1, 3, 1, 1, 1, (6, 37)),
    (4, 6, 2, 3, 3, 2, 2, (9, 50)),
    (8, 16, 1, 1, 1, 1, 0, (4, 28)),
    (6, 9, 3, 5, 2, 1, 2, (7, 11)),
    (32, 32, 32, 3, 2, 1, 1, (28, 28)),  # depthwise, ow 14: 8-lane column vectors
    (16, 16, 16, 3, 1, 1, 1, (7, 7)),  # depthwise, ow 7: 4-lane column vectors
]


def _shape_case(shape, **extra) -> dict:
    cin, cout, g, k, s, d, p, hw = shape
    case = {"cin": cin, "cout": cout, "groups": g, "kernel": k, "stride": s, "dilation": d, "padding": p, "hw": hw}
    return {**case, "batch": 1, "bias": True, "bn": True, **extra}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("shape", FLOAT_SHAPES)
def test_float_conv2d_kernels_and_fused_bn_agree_bit_for_bit(variant, shape):
    """Both kernel shapes accumulate in the same order, so they give the same
    bits; the batch norm fused by fuse-conv-bn gives the unfused result's bits
    (a following sign depends on every bit)."""
    case = _shape_case(shape)
    rng = np.random.default_rng(sum(map(hash, map(str, shape))) % 2**32)
    ir, ref = _float_conv_ir(case, rng)
    x = rng.standard_normal((1, case["cin"], *case["hw"])).astype(np.float32)
    features = VARIANTS[variant]
    unfused = _compile_float_conv(ir, features, 2, "auto", fuse=False)(x)
    for kernel in ("columns", "channels"):
        np.testing.assert_array_equal(_compile_float_conv(ir, features, 2, kernel, fuse=True)(x), unfused)
    k = case["cin"] // case["groups"] * case["kernel"] ** 2
    np.testing.assert_allclose(unfused, _float_conv_reference(case, x, ref), rtol=1e-4, atol=2e-6 * k)


@pytest.mark.parametrize("shape", FLOAT_SHAPES[:3])
def test_float_conv2d_neon_under_qemu(shape, tmp_path):
    """The same float convs (both kernel shapes, fused batch norm) compiled for
    aarch64 NEON and run under qemu-aarch64."""
    import shutil
    from unittest import mock

    import bnnc.passes._lower_float_conv as lfc
    from bnnc.artifacts import write_artifact
    from bnnc.runtime.emulated_run import run_artifact

    if shutil.which("qemu-aarch64") is None or shutil.which("aarch64-linux-gnu-gcc") is None:
        pytest.fail("needs qemu-aarch64 and aarch64-linux-gnu-gcc (see test_artifacts.py)", pytrace=False)
    case = _shape_case(shape)
    rng = np.random.default_rng(len(str(shape)))
    ir, ref = _float_conv_ir(case, rng)
    x = rng.standard_normal((1, case["cin"], *case["hw"])).astype(np.float32)
    outputs = []
    for kernel in ("columns", "channels"):
        options = CompileOptions(target="aarch64", num_threads=1, pipeline="bnn=fuse-conv-bn", name="forward")
        with mock.patch.object(lfc, "use_column_kernel", lambda *_, k=kernel: k == "columns"):
            built = build(Parser(make_context(), ir).parse_module(), options=options)
        path = tmp_path / f"{kernel}.so"
        write_artifact(built.llvm_module, built.target, built.signature, str(path), kind="so")
        outputs.append(run_artifact(str(path), [x])[0])
    np.testing.assert_array_equal(outputs[0], outputs[1])
    k = case["cin"] // case["groups"] * case["kernel"] ** 2
    np.testing.assert_allclose(outputs[0], _float_conv_reference(case, x, ref), rtol=1e-4, atol=2e-6 * k)
