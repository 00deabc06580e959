"""bnnc summary / CompiledModel.summary(): per-layer sizes and MACs against
figures computed by hand from the layer shapes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from bnn_models import BINARIZERS, XnorConv2d
from torch import nn

import bnnc
from bnnc.cli import main
from bnnc.summary import ModelSummary, summarize_model

ROOT = Path(__file__).resolve().parents[1]


class BinConv(nn.Module):
    """sign(x) conv (sign(W) * mean|W| per output channel): a binary conv."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
        # (sign(0) = 0 would make the input three-valued: not binary)
        binary = torch.where(x >= 0, 1.0, -1.0)
        return F.conv2d(binary, torch.sign(self.weight) * alpha, stride=self.stride, padding=1)


class SmallNet(nn.Module):
    """1x64x8x8 -> binary 3x3 64->64 (8x8) -> binary 3x3 64->32 stride 2 (4x4) -> float Linear 512->10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = BinConv(64, 64, 1)
        self.conv2 = BinConv(64, 32, 2)
        self.fc = nn.Linear(512, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.conv2(self.conv1(x)), 1))


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    model = SmallNet().eval()
    x = torch.randn(1, 64, 8, 8)
    return model, x, summarize_model(model, (x,))


def _rows(summary: ModelSummary, op: str):
    return [layer for layer in summary.layers if layer.op == op]


def test_binary_conv_64_to_64(small):
    _, _, s = small
    conv = _rows(s, "bnn.bconv2d")[0]
    assert conv.kind == "binary"
    assert conv.weights == 36_864  # 64 * 64 * 3 * 3 weight bits
    assert conv.weight_bytes == 4_608  # packed: 64 channels in one i64 word per tap
    assert conv.bit_macs == 64 * 64 * 9 * 8 * 8  # Cout * Cin * 9 * Hout * Wout
    assert conv.float_macs == 0
    # binarized again by conv2: fuse-bn-sign makes it write packed bits through thresholds
    assert conv.output == "1x1x8x8xi64"
    assert conv.activation_bytes == 8 * 8 * 8
    # 64 thresholds (i64); the zero-padding correction table (64x3x3 i64) is stored but no parameter
    assert conv.params == 36_864 + 64
    assert conv.param_bytes == 4_608 + 64 * 8 + 64 * 9 * 8
    assert conv.location.startswith("conv1 (") and "test_summary.py" in conv.location


def test_strided_binary_conv_and_float_linear(small):
    _, _, s = small
    conv2 = _rows(s, "bnn.bconv2d")[1]
    assert conv2.weights == 32 * 64 * 9 and conv2.weight_bytes == 32 * 9 * 8
    assert conv2.bit_macs == 32 * 64 * 9 * 4 * 4
    assert conv2.params == 32 * 64 * 9 + 32  # + the multiplier alpha
    assert conv2.output == "1x32x4x4xf32"  # 512 elements: too small for channels-last
    (fc,) = _rows(s, "bnn.linear")
    assert fc.kind == "float"
    assert fc.float_macs == 512 * 10 and fc.bit_macs == 0
    assert fc.params == 512 * 10 + 10 and fc.param_bytes == (512 * 10 + 10) * 4
    assert fc.weights == 5_120 and fc.weight_bytes == 20_480


def test_totals(small):
    model, _, s = small
    t = s.totals()
    assert t["params_before"] == sum(p.numel() for p in model.state_dict().values()) == 36_864 + 18_432 + 5_130
    assert t["bytes_before"] == 4 * t["params_before"]
    assert t["before_source"] == "PyTorch state_dict"
    assert t["params_after"] == sum(layer.params for layer in s.layers)
    assert t["bytes_after"] == sum(layer.param_bytes for layer in s.layers)
    bit = 64 * 64 * 9 * 64 + 32 * 64 * 9 * 16
    assert t["bit_macs"] == bit and t["float_macs"] == 5_120
    assert t["binary_mac_share"] == pytest.approx(bit / (bit + 5_120))
    # The ops after the graph passes, and the buffers live while each runs:
    # the input (16384 B) throughout; pack 512 B; bconv 512 B of bits (then
    # the pack's bits are freed); bconv2 2048 B (then bconv's bits are
    # freed); reshape 2048 B: the peak, input + bconv2 + reshape; linear 40 B.
    assert [layer.op for layer in s.layers] == ["bnn.pack", "bnn.bconv2d", "bnn.bconv2d", "bnn.reshape", "bnn.linear"]
    assert t["peak_activation_bytes"] == 16_384 + 2_048 + 2_048


def test_table_and_json(small):
    _, _, s = small
    text = str(s)
    assert "bconv2d" in text and "36,864" not in text.split("\n")[0]
    assert "binary)" in text and "peak activation memory" in text
    data = json.loads(s.to_json())
    assert set(data) == {"model", "layers", "totals"}
    assert data["layers"][1]["weights"] == 36_864 and data["layers"][1]["op"] == "bnn.bconv2d"


def test_compiled_model_summary(small):
    model, x, s = small
    compiled = bnnc.compile(model, (x,), num_threads=1, cache=False)
    got = compiled.summary()
    assert got.totals() == s.totals()
    assert compiled.summary() is got  # computed once


def test_digits_example_totals():
    sys.path.insert(0, str(ROOT / "examples"))
    from digits_bnn import load_trained

    model = load_trained()
    s = summarize_model(model, (torch.zeros(1, 1, 8, 8),))
    convs = _rows(s, "bnn.bconv2d")
    assert [c.weights for c in convs] == [16 * 16 * 9, 32 * 16 * 9, 32 * 32 * 9]
    assert [c.bit_macs for c in convs] == [16 * 16 * 9 * 64, 32 * 16 * 9 * 16, 32 * 32 * 9 * 16]
    assert s.bit_macs == 368_640
    assert s.float_macs == 16 * 9 * 64 + 32 * 16 * 16 + 32 * 10  # stem conv, 1x1 shortcut conv, head
    assert s.params_before == sum(p.numel() for p in model.state_dict().values())
    assert s.bytes_after < s.bytes_before / 4
    assert {layer.kind for layer in s.layers} == {"binary", "float"}


def _cli_json(capsys, *args: str) -> dict:
    assert main(["summary", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_every_format(tmp_path, capsys, small):
    """.pt2, .mlir (bnn IR), .onnx and .tflite all summarise."""
    model, x, s = small
    pt2 = tmp_path / "small.pt2"
    torch.export.save(torch.export.export(model, (x,)), pt2)
    data = _cli_json(capsys, str(pt2))
    assert data["totals"]["bit_macs"] == s.bit_macs and data["totals"]["before_source"] == "PyTorch state_dict"

    from xdsl.printer import Printer

    from bnnc.driver import import_model

    mlir = tmp_path / "small.mlir"
    with mlir.open("w") as f:
        Printer(stream=f).print_op(import_model(model, (x,), name="net"))
    data = _cli_json(capsys, str(mlir))
    assert data["model"] == "net" and data["totals"]["bit_macs"] == s.bit_macs
    assert data["totals"]["before_source"] == "imported weights"

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    w = (np.sign(w) * np.abs(w).mean(axis=(1, 2, 3), keepdims=True)).astype(np.float32)  # +-alpha_c
    g = rng.standard_normal((10, 8 * 4 * 4)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Flatten", ["c"], ["f"]),
            helper.make_node("Gemm", ["f", "g"], ["y"], transB=1),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(g, "g")],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    data = _cli_json(capsys, str(path))
    assert data["totals"]["float_macs"] == 8 * 27 * 16 + 128 * 10
    assert data["totals"]["params_before"] == w.size + g.size
    # binary weights on a real-valued input stay a float conv: binary-weight
    assert [(layer["op"], layer["kind"]) for layer in data["layers"] if layer["float_macs"]] == [
        ("bnn.conv2d", "binary-weight"), ("bnn.linear", "float"),
    ]

    data = _cli_json(capsys, str(ROOT / "test/data/tflite/binary_chain.tflite"))
    assert data["totals"]["bit_macs"] > 0 and data["totals"]["binary_mac_share"] > 0.5
    assert any(layer["op"] == "bnn.bconv2d" for layer in data["layers"])


def test_cli_table_and_error(capsys, tmp_path):
    assert main(["summary", str(ROOT / "test/data/tflite/binary_chain.tflite")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("bnnc summary: @") and "bit-MACs" in out
    assert main(["summary", str(tmp_path / "missing.pt2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bnnc: error:") and "Traceback" not in err


class _ConvFeedsConvAndRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = XnorConv2d(16, 16, 3, padding=1, act=BINARIZERS["sign"]())
        self.b = XnorConv2d(16, 16, 3, padding=1, act=BINARIZERS["where"]())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        return torch.relu(y) * self.b(y)


def test_channels_last_conv_and_its_transpose():
    """A binary conv big enough for channels-last whose result a pack reads
    is marked (NHWC); the transpose back to NCHW for its float reader is a
    gather whose index (a permutation) the compiled code does not keep, so
    it adds no bytes. The conv only a float op reads stays NCHW."""
    torch.manual_seed(0)
    model = _ConvFeedsConvAndRelu()
    s = summarize_model(model.eval(), (torch.randn(1, 16, 32, 32),))
    first, second = _rows(s, "bnn.bconv2d")
    assert first.output == "1x32x32x16xf32 (NHWC)"
    assert second.output == "1x16x32x32xf32"
    (transpose,) = _rows(s, "bnn.gather")
    assert transpose.output == "1x16x32x32xf32" and transpose.param_bytes == 0
