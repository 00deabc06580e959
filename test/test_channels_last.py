"""channels-last changes where binary convs' float results are stored (every
float-result binary conv, NHWC), and where the float convs and pools around
them store theirs (NHWC when that removes a transpose), never their values:
models compiled with and without the pass agree bit for bit (1 and 3
threads), across channel counts that leave partial packed words, partial
register tiles and partial channel vectors, groups, PReLU/clamp epilogues,
NCHW residuals, float users that need a transpose back, strided/padded float
stems and ceil-mode, padded and count_include_pad=False pools; and the
default pipeline uses it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bnn_models import BINARIZERS, XnorConv2d, make_bireal, make_densenet, make_resnete, randomize_
from float_helpers import compile_ir, const_line, float_bits, forward_func, special_values, tensor_type
from pass_helpers import assert_same_bits_without, pipeline_with, pipeline_without
from torch import nn

import bnnc
from bnnc.dialects import bnn
from bnnc.driver import CompileOptions

WITHOUT = pipeline_without("channels-last")
# every float-result conv, however small (the default keeps results under 4096 elements NCHW)
ALL = pipeline_with(**{"channels-last": {"min_elements": 0}})


class Chain(nn.Module):
    """stem -> (sign -> bconv -> BN -> PReLU -> clamp) + shortcut, twice, then
    a float op on the binary path's output (it needs NCHW again)."""

    def __init__(self, c: int, groups: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.convs = nn.ModuleList(
            XnorConv2d(c, c, 3, padding=1, groups=groups, act=BINARIZERS["sign"]()) for _ in range(2)
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for _ in range(2))
        self.prelu = nn.PReLU(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # float NCHW: the first residual is transposed in
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            y = bn(conv(x))
            if i == 0:
                y = torch.clamp(self.prelu(y), -1.0, 1.5)
            x = x + y
        return torch.relu(x)


def _chain(c: int, groups: int, hw: tuple[int, int]):
    def make():
        torch.manual_seed(c + groups)
        model = Chain(c, groups)
        x = torch.randn(1, 3, *hw)
        randomize_(model, x, c)
        return model, x

    return make


class QuickNetStyle(nn.Module):
    """QuickNet's block as TFLite has it: x + (relu(bconv(sign x)) * s + b):
    the batch norm after the activation is the post affine, then the residual."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.convs = nn.ModuleList(XnorConv2d(c, c, 3, padding=1, act=BINARIZERS["sign"]()) for _ in range(3))
        self.scale = nn.Parameter(torch.rand(3, 1, c, 1, 1) + 0.5)
        self.shift = nn.Parameter(torch.randn(3, 1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i, conv in enumerate(self.convs):
            x = x + (torch.relu(conv(x)) * self.scale[i] + self.shift[i])
        return x


def _quicknet_style():
    torch.manual_seed(3)
    model = QuickNetStyle(32)
    x = torch.randn(1, 3, 8, 8)
    randomize_(model, x, 3)
    return model, x


class StemDown(nn.Module):
    """Bi-Real's float paths around its binary blocks: a strided, padded
    float stem and a max pool feed a binary block's pack and residual; an
    avg pool and a float conv (1x1, or k x k padded) on the downsampling
    shortcut feed the next block's residual. Odd sizes need ceil-mode (or
    padded) pools to match the binary conv's stride-2 output."""

    def __init__(self, c: int, d: int, stem: tuple[int, int, int], pool: nn.Module, down_pool: nn.Module, k: int):
        super().__init__()
        kernel, stride, pad = stem
        self.stem = nn.Sequential(nn.Conv2d(3, c, kernel, stride, pad, bias=False), nn.BatchNorm2d(c))
        self.pool = pool
        self.block = XnorConv2d(c, c, 3, padding=1, act=BINARIZERS["sign"]())
        self.bn = nn.BatchNorm2d(c)
        self.down = nn.Sequential(down_pool, nn.Conv2d(c, d, k, padding=k // 2, bias=False), nn.BatchNorm2d(d))
        self.block2 = XnorConv2d(c, d, 3, stride=2, padding=1, act=BINARIZERS["sign"]())
        self.bn2 = nn.BatchNorm2d(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.stem(x))
        x = x + self.bn(self.block(x))
        return self.down(x) + self.bn2(self.block2(x))


def _stem_down(c: int, d: int, hw: tuple[int, int], stem, pool, down_pool, k: int = 1):
    def make():
        torch.manual_seed(c + d)
        model = StemDown(c, d, stem, pool, down_pool, k)
        x = torch.randn(1, 3, *hw)
        randomize_(model, x, c + d)
        return model, x

    return make


def _compile(model, x, pipeline, threads):
    return bnnc.compile(model, (x,), pipeline=pipeline, num_threads=threads)


CASES = {
    "bireal": (make_bireal, 1),
    "bireal-3threads": (make_bireal, 3),
    "resnete": (make_resnete, 1),
    "densenet": (make_densenet, 1),
    "c8": (_chain(8, 1, (9, 7)), 1),
    "c70-partial-word-and-tile": (_chain(70, 1, (5, 11)), 1),
    "c130-groups2": (_chain(130, 2, (6, 6)), 1),
    "c130-groups2-3threads": (_chain(130, 2, (6, 6)), 3),
    "c3": (_chain(3, 1, (4, 5)), 1),
    "quicknet-post-affine": (_quicknet_style, 1),
    "stem-down-bireal-shape": (
        _stem_down(16, 32, (32, 32), (7, 2, 3), nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(2, 2)),
        1,
    ),
    "stem-down-odd-ceil-mode": (
        _stem_down(
            20, 35, (29, 27), (5, 2, 2), nn.MaxPool2d(3, 2, 0, ceil_mode=True), nn.AvgPool2d(2, 2, ceil_mode=True)
        ),
        1,
    ),
    "stem-down-c70-padded-pools-3threads": (
        _stem_down(
            70, 17, (13, 15), (3, 1, 1), nn.MaxPool2d(2, 1, 1), nn.AvgPool2d(3, 2, 1, count_include_pad=False), k=3
        ),
        3,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bit_identical_without_the_pass(case):
    make, threads = CASES[case]
    model, x = make()
    assert_same_bits_without(model, x, WITHOUT, threads, pipeline=ALL)


def test_default_pipeline_converts_the_residual_chain():
    model, x = make_bireal()
    imported = bnnc.driver.import_model(model.eval(), (x,))
    module = bnnc.driver.lower(imported, CompileOptions(pipeline=ALL), stop_after="bnn")
    convs = [op for op in module.walk() if isinstance(op, bnn.BConv2dOp) and op.threshold is None]
    packs = [op for op in module.walk() if isinstance(op, bnn.PackOp)]
    assert convs and all(op.channels_last is not None for op in convs)
    assert any(op.channels_last is not None for op in packs)
    # transposes only where the binary path meets NCHW float ops: out of a
    # conv into float ops (the downsampling shortcut's pool), or from a float
    # shortcut into a conv's residual; never between binary ops
    gathers = [op for op in module.walk() if isinstance(op, bnn.GatherOp)]
    assert gathers
    for g in gathers:
        users = [use.operation for use in g.result.uses]
        if isinstance(g.inputs[0].owner, bnn.BConv2dOp):
            assert not any(isinstance(u, (bnn.BConv2dOp, bnn.PackOp)) for u in users)
        else:
            assert users and all(isinstance(u, bnn.BConv2dOp) and u.residual is g.result for u in users)


def _bnn_module(model, x, pipeline=ALL):
    imported = bnnc.driver.import_model(model.eval(), (x,))
    return bnnc.driver.lower(imported, CompileOptions(pipeline=pipeline), stop_after="bnn")


def test_float_stem_and_shortcut_need_no_transpose():
    """The stem conv and its max pool, the avg pool and the 1x1 conv of the
    downsampling shortcut read and write NHWC: the only transpose left is the
    one into the NCHW mean at the end (bnn_models' Bi-Real has a 3x3 stem and
    no max pool; StemDown has both). StemDown's last block is a downsampling
    one read only by the function's result: its binary conv, whose residual
    is the shortcut's float conv, stays NCHW, and that conv reads NHWC and
    writes NCHW, so StemDown needs no transpose at all."""
    for make, transposes in ((make_bireal, 1), (CASES["stem-down-bireal-shape"][0], 0)):
        module = _bnn_module(*make())
        floats = [op for op in module.walk() if isinstance(op, (bnn.Conv2dOp, bnn.MaxPool2dOp, bnn.AvgPool2dOp))]
        nhwc_in = [op.channels_last is not None or getattr(op, "channels_last_input", None) is not None for op in floats]
        assert floats and all(nhwc_in)
        shortcut = [op for op in floats if isinstance(op, bnn.Conv2dOp) and isinstance(op.input.owner, bnn.AvgPool2dOp)]
        assert shortcut and all(op.channels_last_input is not None for op in shortcut)
        gathers = [op for op in module.walk() if isinstance(op, bnn.GatherOp)]
        assert len(gathers) == transposes
        assert all(isinstance(g.inputs[0].owner, bnn.BConv2dOp) for g in gathers)


class StemRelu(nn.Module):
    """A float stem whose pool feeds a float op (PReLU): nothing there reads NHWC."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2, 1)
        self.pool = nn.MaxPool2d(2, 2)
        self.prelu = nn.PReLU(16)
        self.block = XnorConv2d(16, 16, 3, padding=1, act=BINARIZERS["sign"]())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.pool(self.stem(x)))
        return x + self.block(x)


def test_float_conv_stays_nchw_unless_every_reader_takes_nhwc():
    """A stem conv -> pool -> PReLU keeps NCHW (converting it would only move a
    transpose); so does the binary conv after it, whose residual (the PReLU)
    is NCHW and whose only reader is the function's result: no transpose."""
    torch.manual_seed(0)
    model, x = StemRelu(), torch.randn(1, 3, 32, 32)
    randomize_(model, x, 0)
    module = _bnn_module(model, x)
    conv = next(op for op in module.walk() if isinstance(op, bnn.Conv2dOp))
    pool = next(op for op in module.walk() if isinstance(op, bnn.MaxPool2dOp))
    assert conv.channels_last is None and conv.channels_last_input is None and pool.channels_last is None
    gathers = [op for op in module.walk() if isinstance(op, bnn.GatherOp)]
    assert not gathers
    assert all(op.channels_last is None for op in module.walk() if isinstance(op, bnn.BConv2dOp))
    assert_same_bits_without(model, x, WITHOUT, 1, pipeline=ALL)


def test_post_affine_joins_the_epilogue_bit_identically():
    """relu -> mul -> add after a binary conv: the default pipeline keeps no
    float op between the convs, and gives the same bits as the graph's own
    mul and add (compiled without fuse-output-transform)."""
    model, x = _quicknet_style()
    model.eval()
    imported = bnnc.driver.import_model(model, (x,))
    module = bnnc.driver.lower(imported, CompileOptions(), stop_after="bnn")
    convs = [op for op in module.walk() if isinstance(op, bnn.BConv2dOp)]
    assert all(op.post_multiplier is not None and op.post_bias is not None for op in convs)
    assert not any(isinstance(op, (bnn.MulOp, bnn.AddOp, bnn.ReluOp)) for op in module.walk())
    unfused = pipeline_without("fuse-output-transform")
    xn = x.numpy()
    assert np.array_equal(_compile(model, x, None, 1)(xn), _compile(model, x, unfused, 1)(xn))


def _nhwc(shape: tuple[int, ...]) -> tuple[int, ...]:
    n, c, h, w = shape
    return n, h, w, c


def _pool_ir(kind: str, in_shape, out_shape, attrs: str, nhwc: bool) -> str:
    if nhwc:
        in_shape, out_shape, attrs = _nhwc(in_shape), _nhwc(out_shape), attrs + ", channels_last"
    body = f"%y = bnn.{kind} %x {{{attrs}}} : ({tensor_type(in_shape)}) -> {tensor_type(out_shape)}"
    return forward_func([("x", in_shape)], body, out_shape)


# kind, input shape, kernel, strides, padding, dilations, ceil mode, count_include_pad
POOLS = {
    "max-3x3s2p1": ("max_pool2d", (1, 70, 11, 10), (3, 3), (2, 2), (1, 1), (1, 1), False, None),
    "max-ceil-dilated": ("max_pool2d", (2, 5, 9, 8), (2, 3), (2, 2), (0, 1), (2, 1), True, None),
    "avg-ceil": ("avg_pool2d", (1, 33, 7, 9), (2, 2), (2, 2), (0, 0), (1, 1), True, True),
    "avg-padded-no-count-pad": ("avg_pool2d", (1, 17, 8, 6), (3, 3), (2, 2), (1, 1), (1, 1), False, False),
}


def _pool_case(case: str, nhwc: bool) -> tuple[str, tuple[int, ...]]:
    kind, in_shape, k, s, p, d, ceil, count_pad = POOLS[case]
    n, c, h, w = in_shape
    out_shape = (n, c, *(bnn.pool_output_size(size, *args, ceil) for size, *args in zip((h, w), k, s, p, d)))
    attrs = ", ".join(
        f"{name} = array<i64: {v[0]}, {v[1]}>"
        for name, v in (("kernel", k), ("strides", s), ("padding", p), ("dilations", d))
    )
    attrs += ", ceil_mode" if ceil else ""
    attrs += "" if count_pad is None else f", count_include_pad = {str(count_pad).lower()}"
    return _pool_ir(kind, in_shape, out_shape, attrs, nhwc), in_shape


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("case", list(POOLS))
def test_nhwc_pools_give_the_nchw_bits(case, threads):
    """A channels_last pool reduces the same taps in the same order as the
    NCHW one: the same bits, NaN payloads, -0.0 and -inf included."""
    nchw_ir, in_shape = _pool_case(case, False)
    rng = np.random.default_rng(len(case))
    x = special_values(rng.standard_normal(in_shape).astype(np.float32), rng, nan=True)
    x.flat[rng.integers(0, x.size, 8)] = -np.float32(np.nan)  # NaNs of the other sign
    want = compile_ir(nchw_ir, threads)(x)
    got = compile_ir(_pool_case(case, True)[0], threads)(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    assert np.array_equal(float_bits(got), float_bits(np.ascontiguousarray(want.transpose(0, 2, 3, 1))))


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize(
    "in_nhwc,out_nhwc,cin,cout,k,stride,pad,height,width",
    [
        (False, True, 3, 64, 7, 2, 3, 13, 64),  # a stem: NCHW takes the column kernel (32 wide)
        (True, True, 35, 17, 1, 1, 0, 13, 11),  # 1x1, 13 rows of 11 (13 is prime: no rows joined)
        (True, True, 64, 70, 1, 1, 0, 12, 28),  # 1x1: 12 rows of 28 as 3 rows of 112 (threaded: 4 of 84)
        (True, True, 20, 33, 1, 1, 0, 7, 7),  # 1x1: 7 x 7 pixels tiled as one row of 49
        (True, False, 20, 70, 3, 2, 1, 13, 11),
        (True, True, 9, 40, 3, 1, 1, 13, 11),
    ],
)
def test_nhwc_float_conv_gives_the_nchw_bits(in_nhwc, out_nhwc, cin, cout, k, stride, pad, height, width, threads):
    """A float conv reading and/or writing NHWC (the channel kernel, full
    channel vectors stored whole, a partial last one through its scratch
    tile) sums every output in the same order as the NCHW conv (either kernel)."""
    rng = np.random.default_rng(cin + cout)
    in_shape = (1, cin, height, width)
    oh, ow = (height + 2 * pad - k) // stride + 1, (width + 2 * pad - k) // stride + 1
    out_shape = (1, cout, oh, ow)
    x = rng.standard_normal(in_shape).astype(np.float32)
    w = rng.standard_normal((cout, cin, k, k)).astype(np.float32)
    scale, shift = rng.random(cout).astype(np.float32) + 0.5, rng.standard_normal(cout).astype(np.float32)

    def ir(nhwc_in: bool, nhwc_out: bool) -> str:
        i = _nhwc(in_shape) if nhwc_in else in_shape
        o = _nhwc(out_shape) if nhwc_out else out_shape
        flags = (", channels_last" if nhwc_out else "") + (", channels_last_input" if nhwc_in else "")
        body = (
            const_line("w", w)
            + const_line("s", scale)
            + const_line("t", shift)
            + f"%y = bnn.conv2d %x, %w post_scale %s : {tensor_type((cout,))} post_shift %t : {tensor_type((cout,))} "
            f"{{strides = array<i64: {stride}, {stride}>, padding = array<i64: {pad}, {pad}>, "
            f"dilations = array<i64: 1, 1>, groups = 1 : i64{flags}}} : {tensor_type(i)}, {tensor_type(w.shape)} -> {tensor_type(o)}"
        )
        return forward_func([("x", i)], body, o)

    want = compile_ir(ir(False, False), threads)(x)
    xin = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if in_nhwc else x
    got = compile_ir(ir(in_nhwc, out_nhwc), threads)(xin)
    if out_nhwc:
        want = np.ascontiguousarray(want.transpose(0, 2, 3, 1))
    assert np.array_equal(float_bits(got), float_bits(want))


def test_summary_marks_the_nhwc_float_ops():
    """`bnnc summary` marks every op whose result is N x H x W x C (NHWC):
    the stem conv (with its max pool), the shortcut's avg pool and 1x1 conv."""
    from bnnc.summary import summarize_model

    # big enough for the default min_elements (the smallest result, 32 x 12 x 12, is 4608)
    model, x = _stem_down(16, 32, (96, 96), (7, 2, 3), nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(2, 2))()
    s = summarize_model(model, (x,))
    marked = {layer.op for layer in s.layers if "(NHWC)" in layer.output}
    assert {"bnn.conv2d", "bnn.avg_pool2d", "bnn.bconv2d"} <= marked
    # the stem's max pool is folded into its conv (fuse-conv-maxpool)
    assert [layer.output.endswith("(NHWC) + max pool 3x3/2") for layer in s.layers if layer.op == "bnn.conv2d"][0]
