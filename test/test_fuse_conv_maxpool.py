"""fuse-conv-maxpool folds a max pool into the channels-last float conv it
reads (a ResNet stem): the conv's values go into the pooled outputs from its
epilogue and its own result is never stored. The pooled bits must be the
unfused conv + pool's: NaN payloads (the last NaN of a window wins), the first
of equal values, -inf, ceil-mode and padded windows, partial channel vectors,
and thread blocks that share a conv row (1 and 3 threads); whole models match
the unfused build bit for bit and PyTorch within rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bnn_models import BINARIZERS, XnorConv2d, randomize_
from float_helpers import const_line, float_bits, forward_func, tensor_type
from pass_helpers import assert_same_bits_without, pipeline_without
from torch import nn
from xdsl.parser import Parser

import bnnc
from bnnc.context import make_context
from bnnc.dialects import bnn
from bnnc.driver import CompileOptions, build, jit
from bnnc.passes.fuse_conv_maxpool import FuseConvMaxpoolPass
from bnnc.summary import summarize_model

WITHOUT = pipeline_without("fuse-conv-maxpool")


def _compile(text: str, threads: int, passes: str):
    module = Parser(make_context(), text).parse_module()
    options = CompileOptions(num_threads=threads, pipeline="bnn=" + passes, thread_min_work=0)
    return jit(build(module, options=options))


def _nan_payloads(rng, n: int) -> np.ndarray:
    """Quiet NaNs of both signs with distinct payloads (which one wins shows the order)."""
    bits = (0x7FC00000 | rng.integers(1, 1 << 22, n)).astype(np.uint32)
    bits[rng.random(n) < 0.5] |= np.uint32(0x80000000)
    return bits.view(np.float32)


def _conv_pool_ir(cin, cout, conv, pool, hw, rng) -> tuple[str, tuple[int, ...]]:
    """NCHW input -> channels-last conv (with a BN epilogue whose scale is
    negative on some channels and shift -0.0 on some, so the conv yields both
    zeros) -> channels-last max pool."""
    k, s, p = conv
    pk, ps, pp, ceil = pool
    h, w = hw
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    poh, pow_ = (bnn.pool_output_size(size, pk, ps, pp, 1, ceil) for size in (oh, ow))
    weight = rng.standard_normal((cout, cin, k, k)).astype(np.float32)
    weight[:, :, :, : k // 2] = 0.0  # zero products give exact zeros
    scale = (rng.random(cout) + 0.5).astype(np.float32) * np.where(rng.random(cout) < 0.3, -1, 1).astype(np.float32)
    shift = rng.standard_normal(cout).astype(np.float32)
    shift[rng.random(cout) < 0.4] = -0.0

    window = lambda name, v: f"{name} = array<i64: {v}, {v}>"
    body = (
        const_line("w", weight)
        + const_line("s", scale)
        + const_line("t", shift)
        + f"%c = bnn.conv2d %x, %w post_scale %s : {tensor_type((cout,))} post_shift %t : {tensor_type((cout,))} "
        f"{{{window('strides', s)}, {window('padding', p)}, {window('dilations', 1)}, groups = 1 : i64, channels_last}} "
        f": {tensor_type((1, cin, h, w))}, {tensor_type(weight.shape)} -> {tensor_type((1, oh, ow, cout))}\n  "
        f"%y = bnn.max_pool2d %c {{{window('kernel', pk)}, {window('strides', ps)}, {window('padding', pp)}, "
        f"{window('dilations', 1)}{', ceil_mode' if ceil else ''}, channels_last}} "
        f": ({tensor_type((1, oh, ow, cout))}) -> {tensor_type((1, poh, pow_, cout))}"
    )
    return forward_func([("x", (1, cin, h, w))], body, (1, poh, pow_, cout)), (1, cin, h, w)


# cin, cout, conv (k, stride, pad), pool (k, stride, pad, ceil), input H x W
CASES = {
    "stem-7x7s2-pool3s2p1": (3, 64, (7, 2, 3), (3, 2, 1, False), (29, 27)),
    "odd-ceil-partial-vector": (3, 20, (5, 2, 2), (3, 2, 0, True), (29, 27)),
    "1x1-70ch-nan-payloads": (2, 70, (1, 1, 0), (3, 2, 1, False), (13, 11)),
    "pool2s1p1": (3, 17, (3, 1, 1), (2, 1, 1, False), (9, 10)),
    "pool3s3-ceil": (4, 33, (3, 1, 0), (3, 3, 0, True), (16, 14)),
}


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_fused_pool_gives_the_unfused_bits(case, threads):
    cin, cout, conv, pool, hw = CASES[case]
    rng = np.random.default_rng(cout + hw[0])
    text, in_shape = _conv_pool_ir(cin, cout, conv, pool, hw, rng)
    x = rng.standard_normal(in_shape).astype(np.float32)
    x[:, :, : in_shape[2] // 3] = np.where(rng.random((cin, in_shape[2] // 3, in_shape[3])) < 0.5, 0.0, -0.0)
    # a special input spoils every conv output that reads it: about one in a
    # pooled window's receptive field, so some windows have one or two
    rate = 0.7 / (cin * ((pool[0] - 1) * conv[1] + conv[0]) ** 2)
    u = rng.random(in_shape)
    x[u < rate / 3] = -np.inf
    nans = (u >= rate / 3) & (u < rate)
    x[nans] = _nan_payloads(rng, int(nans.sum()))
    fused = _compile(text, threads, "fuse-conv-maxpool")
    module = Parser(make_context(), text).parse_module()
    FuseConvMaxpoolPass().apply(make_context(), module)
    assert not any(isinstance(op, bnn.MaxPool2dOp) for op in module.walk())  # it did fuse
    want = _compile(text, threads, "")(x)
    got = fused(x)
    bits = float_bits(want)
    assert np.isnan(want).any() and not np.isnan(want).all() and (bits == float_bits(np.float32(-0.0))).any()
    assert np.array_equal(float_bits(got), float_bits(want))


class StemBlock(nn.Module):
    """A ResNet/Bi-Real stem (conv -> BN -> max pool) feeding two binary
    blocks' packs and residuals, so channels-last makes the stem NHWC."""

    def __init__(self, c: int, stem: tuple[int, int, int], pool: nn.MaxPool2d) -> None:
        super().__init__()
        k, s, p = stem
        self.stem = nn.Sequential(nn.Conv2d(3, c, k, s, p, bias=False), nn.BatchNorm2d(c), pool)
        self.blocks = nn.ModuleList(XnorConv2d(c, c, 3, padding=1, act=BINARIZERS["sign"]()) for _ in range(2))
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block, bn in zip(self.blocks, self.bns):  # the first block's result is packed: NHWC
            x = x + bn(block(x))
        return x


MODELS = {
    "bireal-stem-3threads": (64, (7, 2, 3), nn.MaxPool2d(3, 2, 1), (40, 36), 3),
    "odd-ceil-70ch": (70, (5, 2, 2), nn.MaxPool2d(3, 2, 0, ceil_mode=True), (45, 43), 1),
}


@pytest.mark.parametrize("case", list(MODELS))
def test_models_match_the_unfused_build_and_pytorch(case):
    c, stem, pool, hw, threads = MODELS[case]
    torch.manual_seed(c)
    model = StemBlock(c, stem, pool).eval()
    x = torch.randn(1, 3, *hw)
    randomize_(model, x, c)
    module = bnnc.driver.lower(bnnc.driver.import_model(model, (x,)), CompileOptions(), stop_after="bnn")
    convs = [op for op in module.walk() if isinstance(op, bnn.Conv2dOp)]
    assert len(convs) == 1 and convs[0].max_pool() is not None  # the default pipeline fuses it
    assert not any(isinstance(op, bnn.MaxPool2dOp) for op in module.walk())
    assert_same_bits_without(model, x, WITHOUT, threads)


def test_summary_counts_the_conv_macs_and_marks_the_pool():
    torch.manual_seed(0)
    model = StemBlock(64, (7, 2, 3), nn.MaxPool2d(3, 2, 1)).eval()
    x = torch.randn(1, 3, 40, 36)
    summary = summarize_model(model, (x,))
    stem = next(layer for layer in summary.layers if layer.op == "bnn.conv2d")
    assert stem.float_macs == 64 * 20 * 18 * 3 * 7 * 7  # the 20 x 18 conv pixels, not the 10 x 9 pooled ones
    assert stem.output.endswith("(NHWC) + max pool 3x3/2")
