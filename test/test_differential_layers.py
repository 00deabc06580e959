"""Single-layer differential tests: bnnc.compile against PyTorch eager.

Every test builds a tiny eval-mode model, compiles it for the host, runs it on
the example input and on a fresh input of the same shape, and compares with
``assert_matches_torch``. Binary-only paths (binarize -> conv with sign(W),
no scale) produce integers and are compared exactly.
"""

from __future__ import annotations

import warnings

import bnn_models as bm
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from differential import assert_matches_torch

from bnnc.errors import InputError, UnsupportedError


def _rand_bn_(bn: nn.modules.batchnorm._BatchNorm, seed: int = 0, mean_scale: float = 0.3):
    g = torch.Generator().manual_seed(seed)
    c = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(mean_scale * torch.randn(c, generator=g))
        bn.running_var.copy_(torch.empty(c).uniform_(0.5, 2.0, generator=g))
        if bn.affine:
            gamma = torch.empty(c).uniform_(0.5, 1.5, generator=g)
            gamma[torch.rand(c, generator=g) < 0.2] *= -1
            bn.weight.copy_(gamma)
            bn.bias.copy_(0.3 * torch.randn(c, generator=g))
    return bn


def check(compile_fn, model, x, *, n_inputs=2, **kw):
    """Compile on x, compare on x and on fresh inputs of the same shape."""
    model = model.eval()
    cm = compile_fn(model, (x,), target="host")
    xs = [x] + [torch.randn_like(x) for _ in range(n_inputs - 1)]
    for xi in xs:
        out = cm(xi)
        assert_matches_torch(model, (xi,), out, **kw)
    return cm


# ---------------------------------------------------------------------------
# Binary conv2d geometry (exact integer outputs)
# ---------------------------------------------------------------------------


class BinConv(nn.Module):
    """where(x >= 0, 1, -1) -> conv2d(., sign(W)): an exact integer result."""

    def __init__(self, cin, cout, k, stride=1, padding=0, dilation=1, groups=1):
        super().__init__()
        self.conv = bm.SignConv2d(cin, cout, k, stride=stride, padding=padding, dilation=dilation, groups=groups)

    def forward(self, x):
        return self.conv(torch.where(x >= 0, 1.0, -1.0))


#         cin  cout k  s  p  d  g  n  hw
CONV_CASES = [
    (1, 1, 3, 1, 1, 1, 1, 1, 8),
    (1, 3, 3, 1, 0, 1, 1, 4, 8),
    (3, 1, 1, 1, 0, 1, 1, 1, 8),
    (3, 3, 3, 1, 1, 1, 1, 1, 5),
    (3, 33, 3, 2, 1, 1, 1, 1, 9),
    (3, 64, 3, 1, 2, 2, 1, 4, 7),
    (3, 65, 3, 2, 0, 1, 1, 1, 8),
    (3, 100, 1, 2, 0, 1, 1, 1, 9),
    (1, 64, 3, 2, 2, 2, 1, 1, 13),
    (1, 100, 1, 1, 0, 1, 1, 1, 4),
    (33, 3, 3, 1, 2, 2, 1, 1, 10),
    (33, 33, 1, 2, 0, 1, 1, 4, 7),
    (33, 64, 3, 1, 1, 1, 1, 1, 8),
    (33, 65, 3, 1, 1, 2, 1, 1, 9),
    (33, 100, 3, 2, 1, 2, 1, 1, 10),
    (64, 1, 1, 1, 0, 1, 1, 4, 5),
    (64, 33, 3, 2, 2, 2, 1, 1, 12),
    (64, 64, 3, 1, 1, 1, 1, 4, 8),
    (64, 64, 3, 1, 1, 1, 2, 1, 8),
    (64, 64, 1, 1, 0, 1, 2, 1, 8),
    (64, 64, 3, 2, 1, 2, 2, 4, 10),
    (64, 65, 3, 2, 2, 1, 1, 1, 10),
    (64, 100, 3, 2, 1, 1, 2, 1, 9),
    (65, 1, 3, 2, 1, 2, 1, 1, 11),
    (65, 33, 1, 1, 0, 1, 1, 4, 6),
    (65, 64, 3, 1, 0, 1, 1, 4, 6),
    (65, 65, 3, 1, 1, 1, 1, 1, 7),
    (65, 100, 3, 1, 0, 2, 1, 1, 9),
    (100, 1, 3, 1, 1, 1, 1, 1, 6),
    (100, 3, 3, 1, 2, 1, 1, 4, 6),
    (100, 64, 3, 2, 0, 2, 2, 1, 12),
    (100, 65, 1, 1, 0, 1, 1, 1, 5),
    (100, 100, 3, 1, 1, 1, 2, 1, 8),
    (100, 100, 1, 2, 0, 1, 2, 4, 7),
    (2, 2, 3, 1, 1, 1, 2, 1, 6),  # groups == channels (depthwise-like)
    (64, 64, 3, 1, 2, 1, 1, 1, 3),  # padding larger than half the input
    # non-square input
    (33, 33, 3, 2, 1, 1, 1, 1, (9, 14)),
]
LARGE_CONV_CASES = [
    (256, 256, 3, 1, 1, 1, 1, 1, 14),
    (512, 128, 3, 1, 1, 1, 1, 1, 7),
    (128, 256, 3, 2, 1, 1, 1, 2, 16),
]


def _conv_id(c):
    cin, cout, k, s, p, d, g, n, hw = c
    return f"c{cin}-{cout}_k{k}_s{s}_p{p}_d{d}_g{g}_n{n}_hw{hw}"


def _run_conv_case(compile_fn, case, seed=0):
    cin, cout, k, s, p, d, g, n, hw = case
    h, w = hw if isinstance(hw, tuple) else (hw, hw)
    torch.manual_seed(seed)
    model = BinConv(cin, cout, k, s, p, d, g)
    x = torch.randn(n, cin, h, w)
    check(compile_fn, model, x, exact=True)


@pytest.mark.parametrize("case", CONV_CASES, ids=_conv_id)
def test_binary_conv2d_geometry(bnnc_compile, case):
    _run_conv_case(bnnc_compile, case)


@pytest.mark.slow
@pytest.mark.parametrize("case", LARGE_CONV_CASES, ids=_conv_id)
def test_binary_conv2d_large(bnnc_compile, case):
    _run_conv_case(bnnc_compile, case)


def test_binary_conv2d_border_all_ones_input(bnnc_compile):
    """All-(+1) and all-(-1) inputs make the zero-padding border effect maximal."""
    torch.manual_seed(3)
    model = BinConv(16, 8, 3, 1, 2, 1, 1).eval()
    x = torch.ones(1, 16, 5, 5)
    cm = bnnc_compile(model, (x,), target="host")
    for xi in (x, -x, torch.randn_like(x)):
        assert_matches_torch(model, (xi,), cm(xi), exact=True)


# ---------------------------------------------------------------------------
# Binarizer idioms
# ---------------------------------------------------------------------------

EXACT_BINARIZERS = {"sign", "where", "sign_nozero", "approxsign_fn", "ge"}


class BnBinConv(nn.Module):
    def __init__(self, binarizer: nn.Module, cin=16, cout=24, conv_cls=bm.SignConv2d, **conv_kw):
        super().__init__()
        self.bn = _rand_bn_(nn.BatchNorm2d(cin))
        self.act = binarizer
        conv_kw.setdefault("padding", 1)
        self.conv = conv_cls(cin, cout, 3, **conv_kw)

    def forward(self, x):
        return self.conv(self.act(self.bn(x)))


@pytest.mark.parametrize("name", sorted(bm.BINARIZERS))
def test_binarizer_idiom(bnnc_compile, name):
    torch.manual_seed(1)
    model = BnBinConv(bm.BINARIZERS[name]())
    x = torch.randn(2, 16, 9, 9)
    check(bnnc_compile, model, x, exact=(True if name in EXACT_BINARIZERS else None), accum_size=16 * 9)


def test_binarizer_rsign(bnnc_compile):
    torch.manual_seed(2)
    rs = bm.RSign(16, bm.ApproxSign())
    with torch.no_grad():
        rs.move.bias.copy_(0.3 * torch.randn(1, 16, 1, 1))
    model = BnBinConv(rs)
    x = torch.randn(1, 16, 8, 8)
    check(bnnc_compile, model, x, accum_size=16 * 9)


def test_binarizer_rsign_exact(bnnc_compile):
    """RSign with the where idiom and no weight scale: exact integers."""
    torch.manual_seed(2)
    rs = bm.RSign(16, bm.WhereBinarizer())
    with torch.no_grad():
        rs.move.bias.copy_(0.3 * torch.randn(1, 16, 1, 1))
    model = BnBinConv(rs)
    check(bnnc_compile, model, torch.randn(1, 16, 8, 8), exact=True)


def test_binarizer_on_graph_input(bnnc_compile):
    """where(x >= 0) applied straight to the model input."""
    torch.manual_seed(4)
    model = BinConv(8, 8, 3, 1, 1)
    x = torch.randn(1, 8, 6, 6)
    x[0, 0, 0, 0] = 0.0
    x[0, 1, 2, 3] = -0.0
    cm = check(bnnc_compile, model, x, exact=True)
    # 0 and -0.0 are +1 for both PyTorch's where(x >= 0) and bnnc
    assert torch.equal(cm(x), model(x))


def test_sign_after_relu_is_unipolar(bnnc_compile):
    """torch.sign of a relu output is {0, 1}: computed exactly, by a binary conv in its popcount form."""
    from bnnc.context import make_context
    from bnnc.frontend.torch_import import export_module, import_program
    from bnnc.pipeline import GRAPH_PASSES, run_passes

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv0 = nn.Conv2d(4, 8, 3, padding=1)
            self.conv = bm.SignConv2d(8, 8, 3, padding=1)

        def forward(self, x):
            return self.conv(torch.sign(F.relu(self.conv0(x))))

    torch.manual_seed(5)
    model, x = M().eval(), torch.randn(1, 4, 6, 6)
    check(bnnc_compile, model, x, n_inputs=4)
    module = import_program(export_module(model, (x,)))
    run_passes(module, ",".join(GRAPH_PASSES), make_context())
    assert str(module).count("bnn.bconv2d") == 1 and "unipolar" in str(module)


class ThresholdBinarizer(nn.Module):
    """A binariser with a threshold t (scalar or per channel), in one of the
    spellings users write: where(x >= t, 1, -1), where(x > t, ...),
    where(t <= x, ...) (the constant on the left), (x > t).float() ({0, 1})."""

    def __init__(self, spelling: str, t):
        super().__init__()
        self.spelling = spelling
        self.register_buffer("t", torch.as_tensor(t, dtype=torch.float32))

    def forward(self, x):
        t = self.t
        if self.spelling == "ge":
            return torch.where(x >= t, 1.0, -1.0)
        if self.spelling == "gt":
            return torch.where(x > t, 1.0, -1.0)
        if self.spelling == "le_lhs":
            return torch.where(t <= x, 1.0, -1.0)
        if self.spelling == "unipolar_gt":
            return (x > t).float()
        raise ValueError(self.spelling)


THRESHOLDS = {
    "scalar": 0.375,
    "negative": -1.25,
    "per_channel": (torch.arange(8, dtype=torch.float32) * 0.25 - 1.0).reshape(1, 8, 1, 1),
}


@pytest.mark.parametrize("threshold", sorted(THRESHOLDS))
@pytest.mark.parametrize("spelling", ["ge", "gt", "le_lhs", "unipolar_gt"])
def test_binarizer_with_threshold(bnnc_compile, spelling, threshold):
    """x compared with a nonzero threshold t is a binariser of x - t (exact in
    float32): the conv after it is binary, and inputs exactly at t (ties)
    and one ulp either side go the way PyTorch's comparison sends them."""
    torch.manual_seed(6)
    t = THRESHOLDS[threshold]
    model = nn.Sequential(ThresholdBinarizer(spelling, t), bm.SignConv2d(8, 16, 3, padding=1)).eval()
    x = torch.randn(1, 8, 7, 7)
    at = torch.broadcast_to(torch.as_tensor(t), x.shape)
    x[:, :, 0] = at[:, :, 0]  # exactly t
    x[:, :, 1] = torch.nextafter(at[:, :, 1], torch.tensor(float("inf")))
    x[:, :, 2] = torch.nextafter(at[:, :, 2], torch.tensor(float("-inf")))
    cm = check(bnnc_compile, model, x, exact=True)
    assert torch.equal(cm(x), model(x))
    assert "bconv2d" in str(cm.summary()) and " conv2d " not in str(cm.summary())


def test_threshold_compare_not_binarised_keeps_pytorch_semantics(bnnc_compile):
    """An infinite threshold is not shifted (x - inf is NaN at x = inf), and a
    threshold mask used for float math stays one: both compute PyTorch's values."""

    class M(nn.Module):
        def forward(self, x):
            return torch.where(x >= float("inf"), 1.0, -1.0) + (x > 0.5).float() * torch.tanh(x)

    x = torch.randn(1, 4, 5, 5)
    x[0, 0, 0, :3] = torch.tensor([float("inf"), 0.5, float(np.nextafter(np.float32(0.5), np.float32(1)))])
    cm = check(bnnc_compile, M().eval(), x)
    assert cm(x)[0, 0, 0, :2].tolist() == [2.0, -1.0]  # where(inf >= inf) is 1; 0.5 > 0.5 is false


def test_sign_of_even_accumulator_is_not_silent(bnnc_compile):
    """sign(conv(sign x, sign W)) with an even K: the integer accumulator is 0
    for some inputs, where torch.sign says 0 and a binary result cannot.
    bnnc must refuse or warn; it must not silently compute another function."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = bm.SignConv2d(2, 8, 1)  # K = 2: the accumulator is often 0
            self.c2 = bm.SignConv2d(8, 4, 1)

        def forward(self, x):
            return self.c2(torch.sign(self.c1(torch.where(x >= 0, 1.0, -1.0))))

    torch.manual_seed(6)
    model = M().eval()
    x = torch.randn(1, 2, 6, 6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cm = bnnc_compile(model, (x,), target="host")
        except UnsupportedError:
            return
    relevant = [w for w in caught if "sign" in str(w.message).lower() or "zero" in str(w.message).lower()]
    if relevant:
        return
    out = cm(x)
    assert torch.equal(out, model(x)), "torch.sign of a possibly-zero accumulator was compiled silently and differs"


# ---------------------------------------------------------------------------
# Weight binarisation / alpha spellings
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(bm.CONV_LAYERS))
@pytest.mark.parametrize("geom", [(1, 1), (2, 0)], ids=["s1p1", "s2p0"])
def test_alpha_spelling(bnnc_compile, name, geom):
    stride, padding = geom
    torch.manual_seed(7)
    model = BnBinConv(bm.WhereBinarizer(), 24, 33, bm.CONV_LAYERS[name], stride=stride, padding=padding)
    x = torch.randn(2, 24, 10, 10)
    check(bnnc_compile, model, x, accum_size=24 * 9, exact=(True if name == "no_alpha" else None))


def test_alpha_bireal_hardbinaryconv(bnnc_compile):
    torch.manual_seed(8)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = _rand_bn_(nn.BatchNorm2d(16))
            self.act = bm.ApproxSignFnBinarizer()
            self.conv = bm.HardBinaryConv(16, 32, 3, stride=1, padding=1)

        def forward(self, x):
            return self.conv(self.act(self.bn(x)))

    check(bnnc_compile, M(), torch.randn(1, 16, 8, 8), accum_size=16 * 9)


@pytest.mark.parametrize("bias", [False, True])
def test_weights_overwritten_outside_graph(bnnc_compile, bias):
    """XNOR-Net-PyTorch style: a plain nn.Conv2d whose weights are +-alpha_c."""
    torch.manual_seed(9)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = _rand_bn_(nn.BatchNorm2d(32))
            self.conv = bm.overwrite_with_binary_weights_(nn.Conv2d(32, 16, 3, padding=1, bias=bias))

        def forward(self, x):
            return self.conv(torch.sign(self.bn(x)))

    check(bnnc_compile, M(), torch.randn(1, 32, 7, 7), accum_size=32 * 9)


def test_xnor_activation_scale_K(bnnc_compile):
    torch.manual_seed(10)
    blk = bm.XnorBlock(16, 32, 3, 1, 1, pool=True)
    _rand_bn_(blk.bn)
    check(bnnc_compile, blk, torch.randn(1, 16, 8, 8), accum_size=16 * 9)


# ---------------------------------------------------------------------------
# -1 padding
# ---------------------------------------------------------------------------


class PadMinusOneExact(nn.Module):
    def __init__(self, cin, cout, pad):
        super().__init__()
        self.pad = pad
        self.conv = bm.SignConv2d(cin, cout, 3, padding=0)

    def forward(self, x):
        xb = torch.where(x >= 0, 1.0, -1.0)
        p = self.pad
        return self.conv(F.pad(xb, (p, p, p, p), value=-1))


@pytest.mark.parametrize("cin,cout,pad", [(8, 8, 1), (33, 65, 1), (64, 16, 2)])
def test_pad_minus_one_exact(bnnc_compile, cin, cout, pad):
    torch.manual_seed(11)
    check(bnnc_compile, PadMinusOneExact(cin, cout, pad), torch.randn(1, cin, 7, 7), exact=True)


def test_pad_minus_one_with_alpha(bnnc_compile):
    torch.manual_seed(12)
    model = BnBinConv(bm.WhereBinarizer(), 16, 16, bm.PadMinusOneConv, pad=1)
    check(bnnc_compile, model, torch.randn(2, 16, 6, 6), accum_size=16 * 9)


# ---------------------------------------------------------------------------
# Binary linear (bdense)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n,fin,fout", [(1, 64, 10), (4, 100, 65), (2, 33, 1), (1, 1, 7), (3, 65, 64), (1, 512, 256)]
)
def test_binary_linear_exact(bnnc_compile, n, fin, fout):
    torch.manual_seed(13)
    model = bm.BinaryLinear(fin, fout, bias=False, act=bm.WhereBinarizer(), scale=False)
    check(bnnc_compile, model, torch.randn(n, fin), exact=True)


@pytest.mark.parametrize("bias", [False, True])
def test_binary_linear_alpha(bnnc_compile, bias):
    torch.manual_seed(14)
    model = bm.BinaryLinear(96, 40, bias=bias, act=bm.SteSignBinarizer(), scale=True)
    check(bnnc_compile, model, torch.randn(2, 96), accum_size=96)


def test_binary_matmul_spelling(bnnc_compile):
    """sign(x) @ sign(W).t() written with matmul instead of F.linear."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = _rand_bn_(nn.BatchNorm1d(48))
            self.weight = nn.Parameter(torch.randn(20, 48))

        def forward(self, x):
            return torch.sign(self.bn(x)) @ torch.sign(self.weight).t()

    torch.manual_seed(15)
    check(bnnc_compile, M(), torch.randn(3, 48), exact=True)


def test_conv_then_flatten_binary_linear(bnnc_compile):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.bn = _rand_bn_(nn.BatchNorm2d(8))
            self.fc = bm.BinaryLinear(8 * 4 * 4, 33, bias=True, act=bm.GeQuantizer())
            self.bn1 = _rand_bn_(nn.BatchNorm1d(33), mean_scale=0.05)

        def forward(self, x):
            return self.bn1(self.fc(torch.flatten(self.bn(self.conv(x)), 1)))

    torch.manual_seed(16)
    check(bnnc_compile, M(), torch.randn(2, 3, 8, 8), accum_size=128)


# ---------------------------------------------------------------------------
# Float ops around a binary conv
# ---------------------------------------------------------------------------


def _float_op(name: str, c: int):
    """Return (module, output transform) for a float op applied to the conv output."""
    if name == "bn":
        return _rand_bn_(nn.BatchNorm2d(c), mean_scale=3.0)
    if name == "relu":
        return nn.ReLU()
    if name == "prelu":
        p = nn.PReLU(c)
        with torch.no_grad():
            p.weight.uniform_(0.05, 0.5)
        return p
    if name == "hardtanh":
        return nn.Hardtanh(-4.0, 4.0)
    if name == "mul_per_channel":
        return _Lambda(lambda y, s: y * s, torch.randn(1, c, 1, 1))
    if name == "add_per_channel":
        return _Lambda(lambda y, s: y + s, torch.randn(1, c, 1, 1))
    if name == "maxpool_k2":
        return nn.MaxPool2d(2)
    if name == "maxpool_k3_s2_p1":
        return nn.MaxPool2d(3, 2, 1)
    if name == "avgpool_k2":
        return nn.AvgPool2d(2)
    if name == "avgpool_k3_s2_p1_incl":
        return nn.AvgPool2d(3, 2, 1, count_include_pad=True)
    if name == "avgpool_k3_s1_p1_excl":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    if name == "adaptive_avg_1":
        return nn.AdaptiveAvgPool2d(1)
    if name == "adaptive_avg_2":
        return nn.AdaptiveAvgPool2d((2, 2))
    if name == "global_mean":
        return _Lambda(lambda y: y.mean(dim=(2, 3)))
    if name == "flatten":
        return nn.Flatten()
    if name == "bn_relu_maxpool":
        return nn.Sequential(_rand_bn_(nn.BatchNorm2d(c), mean_scale=3.0), nn.ReLU(), nn.MaxPool2d(2))
    raise KeyError(name)


class _Lambda(nn.Module):
    def __init__(self, fn, *params):
        super().__init__()
        self.fn = fn
        for i, p in enumerate(params):
            self.register_buffer(f"p{i}", p)
        self.n = len(params)

    def forward(self, y):
        return self.fn(y, *[getattr(self, f"p{i}") for i in range(self.n)])


FLOAT_OPS = [
    "bn", "relu", "prelu", "hardtanh", "mul_per_channel", "add_per_channel",
    "maxpool_k2", "maxpool_k3_s2_p1", "avgpool_k2", "avgpool_k3_s2_p1_incl",
    "avgpool_k3_s1_p1_excl", "adaptive_avg_1", "adaptive_avg_2", "global_mean",
    "flatten", "bn_relu_maxpool",
]


class ConvThen(nn.Module):
    def __init__(self, op):
        super().__init__()
        self.conv = BinConv(8, 16, 3, 1, 1)
        self.op = op

    def forward(self, x):
        return self.op(self.conv(x))


@pytest.mark.parametrize("name", FLOAT_OPS)
def test_float_op_after_binary_conv(bnnc_compile, name):
    torch.manual_seed(17)
    model = ConvThen(_float_op(name, 16))
    check(bnnc_compile, model, torch.randn(2, 8, 8, 8), accum_size=72)


@pytest.mark.parametrize("name", ["bn", "relu", "prelu", "hardtanh", "maxpool_k3_s2_p1", "avgpool_k3_s2_p1_incl", "adaptive_avg_1", "flatten"])
def test_float_op_on_float_input(bnnc_compile, name):
    """The same ops in a purely float model (the fp32 stem of a BNN)."""
    torch.manual_seed(18)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), _float_op(name, 16))
    check(bnnc_compile, model, torch.randn(1, 3, 8, 8), accum_size=27)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.bn0 = _rand_bn_(nn.BatchNorm2d(16))
        self.conv = bm.XnorConv2d(16, 16, 3, padding=1)
        self.bn = _rand_bn_(nn.BatchNorm2d(16))

    def forward(self, x):
        x = self.bn0(self.stem(x))
        return x + self.bn(self.conv(torch.where(x >= 0, 1.0, -1.0)))


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn0 = _rand_bn_(nn.BatchNorm2d(8))
        self.c1 = bm.SignConv2d(8, 8, 3, padding=1)
        self.c2 = bm.SignConv2d(8, 5, 1)

    def forward(self, x):
        xb = torch.where(self.bn0(x) >= 0, 1.0, -1.0)
        return torch.cat([self.c1(xb), x, self.c2(xb)], dim=1)


def test_residual_add(bnnc_compile):
    torch.manual_seed(19)
    check(bnnc_compile, Residual(), torch.randn(2, 3, 8, 8), accum_size=144)


def test_concat(bnnc_compile):
    torch.manual_seed(20)
    check(bnnc_compile, Concat(), torch.randn(1, 8, 6, 6))


def test_two_outputs(bnnc_compile):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = BinConv(4, 8, 3, 1, 1)
            self.fc = nn.Linear(8, 3)

        def forward(self, x):
            y = self.conv(x)
            return y, self.fc(y.mean(dim=(2, 3)))

    torch.manual_seed(21)
    model = M().eval()
    x = torch.randn(1, 4, 6, 6)
    cm = bnnc_compile(model, (x,), target="host")
    out = cm(x)
    assert isinstance(out, tuple) and len(out) == 2
    assert_matches_torch(model, (x,), out)


# ---------------------------------------------------------------------------
# API contract used by the differential tests
# ---------------------------------------------------------------------------


def test_numpy_in_numpy_out(bnnc_compile):
    torch.manual_seed(22)
    model = BinConv(4, 8, 3, 1, 1).eval()
    x = torch.randn(1, 4, 6, 6)
    cm = bnnc_compile(model, (x,), target="host")
    out = cm(x.numpy())
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert_matches_torch(model, (x,), out, exact=True)


def test_wrong_shape_or_dtype_is_input_error(bnnc_compile):
    torch.manual_seed(23)
    model = BinConv(4, 8, 3, 1, 1).eval()
    x = torch.randn(1, 4, 6, 6)
    cm = bnnc_compile(model, (x,), target="host")
    with pytest.raises(InputError):
        cm(torch.randn(1, 4, 7, 6))
    with pytest.raises(InputError):
        cm(x.double())
    with pytest.raises(InputError):
        cm(x, x)


# ---------------------------------------------------------------------------
# Self-tests of the comparison helper (no bnnc needed): it must be able to fail
# ---------------------------------------------------------------------------


def test_helper_accepts_identical_and_rejects_perturbed():
    torch.manual_seed(30)
    model = BinConv(4, 8, 3, 1, 1).eval()
    x = torch.randn(1, 4, 6, 6)
    y = model(x)
    assert_matches_torch(model, (x,), y, exact=True)
    bad = y.clone()
    bad[0, 3, 2, 2] += 2
    with pytest.raises(AssertionError, match="NOT explained"):
        assert_matches_torch(model, (x,), bad)
    with pytest.raises(AssertionError, match="shape"):
        assert_matches_torch(model, (x,), y[:, :4])
    with pytest.raises(AssertionError, match="dtype"):
        assert_matches_torch(model, (x,), y.double())


def test_helper_float_tolerance():
    torch.manual_seed(31)
    model = ConvThen(_float_op("bn", 16)).eval()
    x = torch.randn(1, 8, 8, 8)
    with torch.no_grad():
        y = model(x)
    scale = float(y.abs().max())
    assert_matches_torch(model, (x,), y + 1e-6 * scale)
    with pytest.raises(AssertionError):
        assert_matches_torch(model, (x,), y + 1e-3 * scale)
    nan = y.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(AssertionError):
        assert_matches_torch(model, (x,), nan)


def test_helper_explains_only_near_zero_flips():
    torch.manual_seed(32)
    model = BinConv(4, 8, 3, 1, 1).eval()
    x = torch.randn(1, 4, 6, 6)
    x[0, 1, 2, 3] = 1e-9  # PyTorch's pre-sign value is within rounding of 0
    flipped_near = x.clone()
    flipped_near[0, 1, 2, 3] = -1e-9
    assert "explained" in assert_matches_torch(model, (x,), model(flipped_near))
    flipped_far = x.clone()
    flipped_far[0, 2, 2, 2] = -flipped_far[0, 2, 2, 2]
    with pytest.raises(AssertionError, match="NOT explained"):
        assert_matches_torch(model, (x,), model(flipped_far))


def test_helper_ignores_weight_signs():
    """Weights are exact constants: a near-zero weight explains nothing."""
    torch.manual_seed(33)
    model = BinConv(4, 8, 3, 1, 1).eval()
    with torch.no_grad():
        model.conv.weight[0, 0, 0, 0] = 1e-12
    x = torch.randn(1, 4, 6, 6)
    y = model(x)
    bad = y.clone()
    bad[0, 0] += 2
    with pytest.raises(AssertionError, match="NOT explained"):
        assert_matches_torch(model, (x,), bad)


def test_helper_flip_through_model():
    """A near-zero sign deep inside a zoo model, decided the other way, is explained."""
    model, x = bm.make_resnete(0)
    from differential import find_ambiguous, run_traced

    _, rec = run_traced(model, (x,))
    amb = find_ambiguous(rec, None, 1e-5)
    if not amb:
        pytest.skip("no near-zero pre-sign values for this seed")
    a = amb[0]
    base = 1.0 if a.value32 >= 0 else -1.0
    outs, _ = run_traced(model, (x,), overrides={a.group: {a.index: -base}})
    msg = assert_matches_torch(model, (x,), outs[0])
    assert "explained" in msg


# ---------------------------------------------------------------------------
# Edge cases
# ---------------------------------------------------------------------------


class GeneralConv(nn.Module):
    """where -> SignConv2d with any nn.Conv2d geometry (tuples, 'same')."""

    def __init__(self, cin, cout, **kw):
        super().__init__()
        self.conv = bm.SignConv2d(cin, cout, **kw)

    def forward(self, x):
        return self.conv(torch.where(x >= 0, 1.0, -1.0))


@pytest.mark.parametrize(
    "cin,cout,kw,hw",
    [
        (8, 8, dict(kernel_size=(3, 1), stride=(2, 1), padding=(1, 0)), (9, 7)),
        (8, 16, dict(kernel_size=(1, 3), stride=(1, 2), padding=(0, 1), dilation=(1, 2)), (6, 11)),
        (16, 16, dict(kernel_size=3, padding="same", dilation=2), (7, 7)),
        (16, 8, dict(kernel_size=5, padding=2), (6, 6)),
        (8, 8, dict(kernel_size=3, padding=1, bias=True), (5, 5)),
        (63, 63, dict(kernel_size=3, padding=1), (4, 4)),
        (127, 129, dict(kernel_size=3, padding=1), (4, 4)),
        (129, 127, dict(kernel_size=1), (3, 5)),
        (200, 40, dict(kernel_size=3, padding=1, groups=2), (4, 4)),
        (8, 8, dict(kernel_size=3, padding=1, groups=8), (6, 6)),
    ],
    ids=lambda v: str(v).replace(" ", ""),
)
def test_binary_conv2d_general_geometry(bnnc_compile, cin, cout, kw, hw):
    torch.manual_seed(40)
    model = GeneralConv(cin, cout, **kw)
    x = torch.randn(1, cin, *hw)
    with torch.no_grad():
        integer = bool((model(x) == model(x).round()).all())
    check(bnnc_compile, model, x, exact=integer)


def test_binary_maxpool_then_conv(bnnc_compile):
    """max-pool of +-1 values (padding pads with -inf, not 0) feeding a binary conv."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = nn.MaxPool2d(3, 2, 1)
            self.conv = bm.SignConv2d(16, 8, 3, padding=1)

        def forward(self, x):
            return self.conv(self.pool(torch.where(x >= 0, 1.0, -1.0)))

    torch.manual_seed(41)
    check(bnnc_compile, M(), torch.randn(1, 16, 9, 9), exact=True)


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("pool", ["max", "avg_excl", "avg_incl"])
def test_pool_ceil_mode(bnnc_compile, pool, ceil_mode):
    torch.manual_seed(42)
    if pool == "max":
        op = nn.MaxPool2d(3, 2, 1, ceil_mode=ceil_mode)
    else:
        op = nn.AvgPool2d(3, 2, 1, ceil_mode=ceil_mode, count_include_pad=(pool == "avg_incl"))
    model = ConvThen(op)
    if ceil_mode:
        # ceil_mode may be refused, but only cleanly, naming the op
        try:
            check(bnnc_compile, model, torch.randn(1, 8, 8, 8), accum_size=72)
        except UnsupportedError as e:
            assert "pool" in str(e) and "ceil_mode" in str(e)
        return
    check(bnnc_compile, model, torch.randn(1, 8, 8, 8), accum_size=72)


class ExactBNThreshold(nn.Module):
    """BN parameters for which PyTorch's pre-sign value is computed exactly:
    (acc - m) * gamma + beta with integer m, gamma = +-1, var = 1, eps = 0.
    Where acc == m the value is exactly 0 and where(x >= 0) says +1; a fused
    integer threshold must say the same (no rounding excuse here)."""

    def __init__(self, cin=6, cout=8):
        super().__init__()
        self.c1 = bm.SignConv2d(cin, cout, 1)
        self.bn = nn.BatchNorm2d(cout, eps=0.0)
        self.c2 = bm.SignConv2d(cout, 4, 1)
        with torch.no_grad():
            self.bn.running_mean.copy_(torch.tensor([0.0, 2.0, -2.0, 4.0, 0.0, 2.0, -4.0, 6.0])[:cout])
            self.bn.running_var.fill_(1.0)
            self.bn.weight.copy_(torch.tensor([1.0, -1.0, 1.0, -1.0, -1.0, 1.0, -1.0, 1.0])[:cout])
            self.bn.bias.zero_()

    def forward(self, x):
        y = self.bn(self.c1(torch.where(x >= 0, 1.0, -1.0)))
        return self.c2(torch.where(y >= 0, 1.0, -1.0))


def test_bn_threshold_exact_boundary(bnnc_compile):
    torch.manual_seed(43)
    model = ExactBNThreshold().eval()
    x = torch.randn(2, 6, 8, 8)
    with torch.no_grad():
        acc = model.c1(torch.where(x >= 0, 1.0, -1.0))
    # the boundary is hit for many elements
    assert int((acc == model.bn.running_mean.view(1, -1, 1, 1)).sum()) > 20
    cm = bnnc_compile(model, (x,), target="host")
    with torch.no_grad():
        ref = model(x)
    out = cm(x)
    assert torch.equal(out, ref), f"{int((out != ref).sum())} elements differ at exactly-representable BN thresholds"


def test_bn_zero_gamma_channel(bnnc_compile):
    """gamma = 0 makes a channel constant (sign of beta) before the binarizer."""
    torch.manual_seed(44)
    model = BnBinConv(bm.WhereBinarizer(), 16, 8)
    with torch.no_grad():
        model.bn.weight[3] = 0.0
        model.bn.bias[3] = -0.5
        model.bn.weight[5] = 0.0
        model.bn.bias[5] = 0.25
    check(bnnc_compile, model, torch.randn(1, 16, 6, 6), exact=True)


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_input_scale(bnnc_compile, scale):
    torch.manual_seed(45)
    model = Residual().eval()
    x = torch.randn(1, 3, 8, 8) * scale
    cm = bnnc_compile(model, (x,), target="host")
    for xi in (x, torch.randn_like(x) * scale):
        assert_matches_torch(model, (xi,), cm(xi), accum_size=144)


def test_binarized_tensor_used_twice(bnnc_compile):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = _rand_bn_(nn.BatchNorm2d(8))
            self.a = bm.SignConv2d(8, 8, 3, padding=1)
            self.b = bm.XnorConv2d(8, 8, 1)

        def forward(self, x):
            xb = torch.sign(self.bn(x))
            return self.a(xb) + self.b(xb) + xb

    torch.manual_seed(46)
    check(bnnc_compile, M(), torch.randn(1, 8, 6, 6), accum_size=72)


def test_outputs_do_not_alias_between_calls(bnnc_compile):
    torch.manual_seed(47)
    model = BinConv(8, 8, 3, 1, 1).eval()
    x1, x2 = torch.randn(1, 8, 6, 6), torch.randn(1, 8, 6, 6)
    cm = bnnc_compile(model, (x1,), target="host")
    out1 = cm(x1)
    keep = out1.clone()
    cm(x2)
    assert torch.equal(out1, keep), "the second call overwrote the first call's output"
    assert_matches_torch(model, (x1,), out1, exact=True)


@pytest.mark.parametrize("layout", ["channels_last", "sliced", "transposed"])
def test_non_contiguous_inputs(bnnc_compile, layout):
    torch.manual_seed(48)
    model = Residual().eval()
    x = torch.randn(2, 3, 8, 8)
    cm = bnnc_compile(model, (x,), target="host")
    if layout == "channels_last":
        xi = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    elif layout == "sliced":
        xi = torch.randn(2, 3, 8, 16)[..., ::2]
    else:
        xi = torch.randn(2, 3, 8, 8).transpose(2, 3)
    assert not xi.is_contiguous()
    assert_matches_torch(model, (xi,), cm(xi), accum_size=144)


def test_non_contiguous_numpy_input(bnnc_compile):
    torch.manual_seed(49)
    model = BinConv(4, 8, 3, 1, 1).eval()
    x = torch.randn(1, 4, 6, 6)
    cm = bnnc_compile(model, (x,), target="host")
    xn = np.asfortranarray(torch.randn(1, 4, 6, 6).numpy())
    out = cm(xn)
    assert isinstance(out, np.ndarray)
    assert_matches_torch(model, (torch.from_numpy(np.ascontiguousarray(xn)),), out, exact=True)


def test_weights_captured_at_compile_time(bnnc_compile):
    """Changing the module after compiling does not change the compiled model."""
    torch.manual_seed(50)
    model = BnBinConv(bm.WhereBinarizer(), 8, 8, bm.XnorConv2d).eval()
    x = torch.randn(1, 8, 6, 6)
    cm = bnnc_compile(model, (x,), target="host")
    import copy

    frozen = copy.deepcopy(model)
    with torch.no_grad():
        model.conv.weight.mul_(-1)
        model.bn.running_mean.add_(1.0)
    assert_matches_torch(frozen, (x,), cm(x), accum_size=72)


def test_two_inputs(bnnc_compile):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = bm.SignConv2d(8, 8, 3, padding=1)
            self.bn = _rand_bn_(nn.BatchNorm2d(8))

        def forward(self, x, y):
            return self.bn(self.conv(torch.where(x >= 0, 1.0, -1.0))) + y

    torch.manual_seed(51)
    model = M().eval()
    x, y = torch.randn(1, 8, 5, 5), torch.randn(1, 8, 5, 5)
    cm = bnnc_compile(model, (x, y), target="host")
    assert_matches_torch(model, (x, y), cm(x, y), accum_size=72)
