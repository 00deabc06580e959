"""fuse-conv-relu folds a ReLU into the float conv it reads (a ResNet-style
stem: conv -> BN -> ReLU -> max pool). The fused bits must be the unfused
conv + ReLU's: NaN payloads, -0.0 (kept, as torch.relu keeps it) and +0.0,
-inf, in both float conv kernels (vectorised over output columns for NCHW
rows, over output channels otherwise), before a fused max pool, on 1 and 3
threads; a BinaryResNetE-style network matches the unfused build bit for bit
and PyTorch within rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bnn_models import BINARIZERS, XnorConv2d, randomize_
from float_helpers import const_line, float_bits, forward_func, tensor_type
from pass_helpers import assert_same_bits_without, pipeline_without
from torch import nn
from xdsl.parser import Parser

from bnnc.context import make_context
from bnnc.dialects import bnn
from bnnc.driver import CompileOptions, build, import_model, jit, lower
from bnnc.passes.fuse_conv_relu import FuseConvReluPass
from bnnc.summary import summarize_model


def _compile(text: str, threads: int, passes: str):
    module = Parser(make_context(), text).parse_module()
    options = CompileOptions(num_threads=threads, pipeline="bnn=" + passes, thread_min_work=0)
    return jit(build(module, options=options))


def _conv_relu_ir(cin, cout, conv, hw, channels_last, pool, rng) -> tuple[str, tuple[int, ...]]:
    """conv (BN epilogue with a negative scale on some channels and a -0.0
    shift on some, so it yields -0.0 and +0.0) -> relu [-> max pool]."""
    k, s, p = conv
    h, w = hw
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    weight = rng.standard_normal((cout, cin, k, k)).astype(np.float32)
    weight[:, :, :, : k // 2] = 0.0  # zero products give exact zeros
    scale = (rng.random(cout) + 0.5).astype(np.float32) * np.where(rng.random(cout) < 0.4, -1, 1).astype(np.float32)
    shift = rng.standard_normal(cout).astype(np.float32)
    shift[rng.random(cout) < 0.4] = -0.0
    conv_shape = (1, oh, ow, cout) if channels_last else (1, cout, oh, ow)
    window = lambda name, v: f"{name} = array<i64: {v}, {v}>"
    layout = ", channels_last" if channels_last else ""
    body = (
        const_line("w", weight)
        + const_line("s", scale)
        + const_line("t", shift)
        + f"%c = bnn.conv2d %x, %w post_scale %s : {tensor_type((cout,))} post_shift %t : {tensor_type((cout,))} "
        f"{{{window('strides', s)}, {window('padding', p)}, {window('dilations', 1)}, groups = 1 : i64{layout}}} "
        f": {tensor_type((1, cin, h, w))}, {tensor_type(weight.shape)} -> {tensor_type(conv_shape)}\n  "
        f"%{'r' if pool else 'y'} = bnn.relu %c : {tensor_type(conv_shape)}"
    )
    out_shape = conv_shape
    if pool:
        pk, ps, pp = pool
        poh, pow_ = ((size + 2 * pp - pk) // ps + 1 for size in (oh, ow))
        out_shape = (1, poh, pow_, cout)
        body += (
            f"\n  %y = bnn.max_pool2d %r {{{window('kernel', pk)}, {window('strides', ps)}, {window('padding', pp)}, "
            f"{window('dilations', 1)}, channels_last}} : ({tensor_type(conv_shape)}) -> {tensor_type(out_shape)}"
        )
    return forward_func([("x", (1, cin, h, w))], body, out_shape), (1, cin, h, w)


# cin, cout, conv (k, stride, pad), input H x W, channels_last, fused pool (k, stride, pad)
CASES = {
    "columns-nchw-stem": (3, 16, (7, 2, 3), (20, 64), False, None),  # 32 output columns: the column kernel
    "channels-nchw-narrow": (3, 20, (3, 1, 1), (9, 5), False, None),
    "channels-nhwc-33ch": (4, 33, (3, 1, 1), (9, 10), True, None),
    "nhwc-then-fused-pool": (3, 64, (7, 2, 3), (29, 27), True, (3, 2, 1)),
}


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_fused_relu_gives_the_unfused_bits(case, threads):
    cin, cout, conv, hw, channels_last, pool = CASES[case]
    rng = np.random.default_rng(cout + hw[1])
    text, in_shape = _conv_relu_ir(cin, cout, conv, hw, channels_last, pool, rng)
    x = rng.standard_normal(in_shape).astype(np.float32)
    x[:, :, : in_shape[2] // 3] = np.where(rng.random((cin, in_shape[2] // 3, in_shape[3])) < 0.5, 0.0, -0.0)
    rate = 0.7 / (cin * conv[0] ** 2)  # a special input spoils about one in this many outputs
    u = rng.random(in_shape)
    x[u < rate / 3] = -np.inf
    nans = (u >= rate / 3) & (u < rate)
    payloads = (0x7FC00000 | rng.integers(1, 1 << 22, int(nans.sum()))).astype(np.uint32)
    payloads[rng.random(payloads.size) < 0.5] |= np.uint32(0x80000000)
    x[nans] = payloads.view(np.float32)
    fused_passes = "fuse-conv-relu" + (",fuse-conv-maxpool" if pool else "")
    module = Parser(make_context(), text).parse_module()
    FuseConvReluPass().apply(make_context(), module)
    assert not any(isinstance(op, bnn.ReluOp) for op in module.walk())  # it did fuse
    want = _compile(text, threads, "")(x)
    got = _compile(text, threads, fused_passes)(x)
    bits = float_bits(want)
    assert np.isnan(want).any() and (bits == float_bits(np.float32(-0.0))).any() and (bits == 0).any()
    assert np.array_equal(float_bits(got), bits)


class ResNetEStem(nn.Module):
    """BinaryResNetE's stem (conv -> BN -> ReLU -> max pool -> BN) feeding
    two binary blocks' packs and residuals."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, c, 7, 2, 3, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(3, 2, 1), nn.BatchNorm2d(c)
        )
        self.blocks = nn.ModuleList(XnorConv2d(c, c, 3, padding=1, act=BINARIZERS["sign"]()) for _ in range(2))
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block, bn in zip(self.blocks, self.bns):
            x = x + bn(block(x))
        return x


@pytest.mark.parametrize("threads", [1, 3])
def test_resnete_stem_matches_the_unfused_build_and_pytorch(threads):
    torch.manual_seed(3)
    model = ResNetEStem(64).eval()
    x = torch.randn(1, 3, 40, 36)
    randomize_(model, x, 3)
    module = lower(import_model(model, (x,)), CompileOptions(), stop_after="bnn")
    convs = [op for op in module.walk() if isinstance(op, bnn.Conv2dOp)]
    # the default pipeline fuses the ReLU, lays the stem out NHWC (its max pool
    # and batch norm follow) and fuses the max pool: the one transpose left
    # gives the caller NCHW
    assert len(convs) == 1 and convs[0].relu is not None and convs[0].max_pool() is not None
    assert not any(isinstance(op, (bnn.ReluOp, bnn.MaxPool2dOp)) for op in module.walk())
    assert sum(isinstance(op, bnn.GatherOp) for op in module.walk()) == 1
    assert all(op.channels_last is not None for op in module.walk() if isinstance(op, bnn.BatchNormOp))
    # unfused, everything stays NCHW until the transpose before the pack
    assert_same_bits_without(model, x, pipeline_without("fuse-conv-relu"), threads)
    stem = next(layer for layer in summarize_model(model, (x,)).layers if layer.op == "bnn.conv2d")
    assert stem.output.endswith("(NHWC) + relu + max pool 3x3/2")
