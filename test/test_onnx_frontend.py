"""The ONNX / QONNX frontend (compiler/frontend/onnx_*.py).

* bnnc's own test models exported with torch.onnx.export(dynamo=True):
  compiled from the .onnx file they match PyTorch eager (test/differential.py's
  oracle) and have as many binary layers (bnn.bconv2d / bnn.bdense) after the
  graph pipeline as the same model compiled through the PyTorch frontend;
* hand-built graphs covering the float ops, checked against onnx.reference;
* QONNX quantizers built by hand (checked against QONNX's definitions written
  out here in numpy, tie values included), and a real Brevitas export_qonnx
  of bnn_pynq's TFC 1W1A against the Brevitas model itself;
* hostile and malformed files: one `bnnc: error:` line, exit code 2.
"""

from __future__ import annotations

import collections
import os
import sys
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import bnnc
import bnn_models as bm
from bnnc.cli import main as cli_main
from bnnc.driver import CompileOptions, import_model, lower
from bnnc.errors import BnncError, ModelLoadError, UnsupportedError
from bnnc.frontend.onnx_import import import_onnx
from differential import assert_matches_torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))  # third_party_table's factories

OPSET = [helper.make_opsetid("", 18)]
QONNX_OPSET = [helper.make_opsetid("", 18), helper.make_opsetid("qonnx.custom_op.general", 2)]
F = TensorProto.FLOAT


def _save(tmp_path, nodes, inputs, outputs, inits=(), opsets=OPSET, name="m.onnx"):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=opsets)
    if any(not o.type.HasField("tensor_type") for o in graph.output):  # outputs typed by inference
        known = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
        for o in model.graph.output:
            if not o.type.HasField("tensor_type"):
                o.CopyFrom(known[o.name])
    path = tmp_path / name
    onnx.save(model, path)
    return path


def _vi(name, shape, elem=F):
    if shape is None:  # an output whose type inference fills in
        return helper.make_empty_tensor_value_info(name)
    return helper.make_tensor_value_info(name, elem, shape)


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def _binary_layers(module) -> tuple[int, int]:
    c = collections.Counter(op.name for op in module.walk())
    return c["bnn.bconv2d"], c["bnn.bdense"]


# ------------------------------------------------ torch.onnx.export (dynamo)


_EXPORTS: dict[str, tuple] = {}


def _exported(name, tmp_path_factory):
    """bnn_models' model `name`, exported once per session."""
    if name not in _EXPORTS:
        model, x = getattr(bm, f"make_{name}")(0)
        path = tmp_path_factory.mktemp("onnx") / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), str(path), dynamo=True, verbose=False)
        _EXPORTS[name] = (model, x, path)
    return _EXPORTS[name]


@pytest.mark.parametrize("name", ["bireal", "reactnet", "odd_shapes", "binary_mlp"])
def test_export_binary_layers_as_torch_frontend(name, tmp_path_factory):
    """The exported model reaches the passes as the PyTorch frontend's does:
    the same number of binary convs and dense layers, and at least one."""
    model, x, path = _exported(name, tmp_path_factory)
    via_onnx = _binary_layers(lower(import_onnx(path), CompileOptions(), "bnn"))
    via_torch = _binary_layers(lower(import_model(model, (x,)), CompileOptions(), "bnn"))
    assert via_onnx == via_torch
    assert sum(via_onnx) > 0


@pytest.mark.parametrize("name", ["bireal"])
def test_export_matches_torch(name, tmp_path_factory):
    model, x, path = _exported(name, tmp_path_factory)
    cm = bnnc.compile(str(path))
    for xi in (x, torch.randn_like(x), torch.randn_like(x) * 3.0):
        assert_matches_torch(model, (xi,), cm(xi))


# ------------------------------------------------ hand-built float graphs


def _check_reference(path, feeds, rtol=1e-5, atol=1e-5):
    """Compile `path`, run it on `feeds` and compare every output with onnx.reference."""
    model = onnx.load(path)
    want = ReferenceEvaluator(model).run(None, feeds)
    cm = bnnc.compile(str(path))
    got = cm(*[feeds[i.name] for i in model.graph.input if i.name in feeds])
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want)
    for out, g, w in zip(model.graph.output, got, want):
        np.testing.assert_allclose(g, np.asarray(w, np.float32), rtol=rtol, atol=atol, err_msg=out.name)


def test_elementwise_and_movement_ops(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    x[0, 0, 0, :4] = [0.0, -0.0, 2.5, -1.5]  # sign(0), ties for Round
    n = helper.make_node
    nodes = [
        n("Sign", ["x"], ["sign"]),
        n("GreaterOrEqual", ["x", "zero"], ["ge"]),
        n("Where", ["ge", "one", "mone"], ["where"]),
        n("Less", ["x", "zero"], ["lt"]),
        n("Not", ["lt"], ["not"]),
        n("And", ["ge", "not"], ["and"]),
        n("Or", ["lt", "ge"], ["or"]),
        n("Cast", ["and"], ["and_f"], to=F),
        n("Cast", ["or"], ["or_f"], to=F),
        n("Clip", ["x", "cmin", "cmax"], ["clip"]),
        n("Clip", ["x", "", "cmax"], ["clip_hi"]),
        n("PRelu", ["x", "slope"], ["prelu"]),
        n("LeakyRelu", ["x"], ["leaky"], alpha=0.2),
        n("HardSigmoid", ["x"], ["hsig"]),
        n("Neg", ["x"], ["neg"]),
        n("Abs", ["x"], ["abs"]),
        n("Sqrt", ["abs"], ["sqrt"]),
        n("Tanh", ["x"], ["tanh"]),
        n("Erf", ["x"], ["erf"]),
        n("Sigmoid", ["x"], ["sig"]),
        n("Exp", ["x"], ["exp"]),
        n("Pow", ["x", "two"], ["pow"]),
        n("Max", ["x", "neg", "zero"], ["max"]),
        n("Round", ["x"], ["round"]),
        n("Floor", ["x"], ["floor"]),
        n("Ceil", ["x"], ["ceil"]),
        n("Transpose", ["x"], ["tr"], perm=[0, 2, 3, 1]),
        n("Slice", ["x", "st", "en", "ax", "stp"], ["slice"]),
        n("Gather", ["x", "gidx"], ["gather"], axis=3),
        n("Split", ["x", "split"], ["s0", "s1"], axis=3),
        n("Tile", ["x", "reps"], ["tile"]),
        n("Pad", ["x", "pads4", "pval"], ["pad_const"], mode="constant"),
        n("Pad", ["x", "pads4"], ["pad_reflect"], mode="reflect"),
        n("Pad", ["x", "pads4"], ["pad_edge"], mode="edge"),
        n("Resize", ["x", "", "scales"], ["resize"], mode="nearest"),
        n("Resize", ["x", "", "scales"], ["bilinear"], mode="linear"),
        n("Shape", ["x"], ["shp"]),
        n("Reshape", ["x", "shp"], ["same"]),
        n("Flatten", ["same"], ["flat"], axis=1),
        n("Concat", ["s0", "s1", "x"], ["cat"], axis=3),
    ]
    inits = [
        _init("zero", np.float32(0)), _init("one", np.float32(1)), _init("mone", np.float32(-1)),
        _init("cmin", np.float32(-0.5)), _init("cmax", np.float32(0.75)), _init("two", np.float32(2)),
        _init("slope", rng.standard_normal((3, 1, 1)).astype(np.float32)),
        _init("st", np.array([1, 2], np.int64)), _init("en", np.array([5, 6], np.int64)),
        _init("ax", np.array([2, 3], np.int64)), _init("stp", np.array([2, 3], np.int64)),
        _init("gidx", np.array([[0, 5], [2, 2]], np.int64)), _init("split", np.array([2, 4], np.int64)),
        _init("reps", np.array([1, 2, 1, 1], np.int64)),
        _init("pads4", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)), _init("pval", np.float32(-1)),
        _init("scales", np.array([1, 1, 2, 2], np.float32)),
    ]
    outs = [
        "sign", "where", "and_f", "or_f", "clip", "clip_hi", "prelu", "leaky", "hsig", "neg", "sqrt", "tanh", "erf",
        "sig", "exp", "pow", "max", "round", "floor", "ceil", "tr", "slice", "gather", "tile", "pad_const",
        "pad_reflect", "pad_edge", "resize", "bilinear", "flat", "cat",
    ]
    path = _save(tmp_path, nodes, [_vi("x", list(x.shape))], [_vi(o, None) for o in outs], inits)
    _check_reference(path, {"x": x})


def test_layer_ops(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 4, 7, 8)).astype(np.float32)
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w", "b"], ["conv_asym"], pads=[1, 0, 2, 1], strides=[2, 1]),
        n("Conv", ["x", "wg"], ["conv_group"], group=2, pads=[1, 1, 1, 1], dilations=[2, 1]),
        n("Conv", ["x", "w"], ["conv_same"], auto_pad="SAME_UPPER", strides=[2, 2]),
        n("ConvTranspose", ["x", "wt", "bt"], ["deconv"], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 0]),
        n("BatchNormalization", ["x", "g", "beta", "mean", "var"], ["bn"], epsilon=1e-3),
        n("InstanceNormalization", ["x", "g", "beta"], ["inorm"]),
        n("LayerNormalization", ["x", "lw", "lb"], ["lnorm"], axis=-1),
        n("MaxPool", ["x"], ["maxpool"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
        n("AveragePool", ["x"], ["avgpool"], kernel_shape=[2, 2], strides=[2, 2], count_include_pad=1),
        n("GlobalAveragePool", ["x"], ["gap"]),
        n("ReduceMean", ["x", "axes"], ["rmean"], keepdims=0),
        n("ReduceMax", ["x", "axes"], ["rmax"], keepdims=1),
        n("ReduceL2", ["x", "axes"], ["rl2"], keepdims=1),
        n("Softmax", ["x"], ["softmax"], axis=1),
        n("LogSoftmax", ["x"], ["logsoftmax"], axis=-1),
        n("Flatten", ["x"], ["flat"]),
        n("Gemm", ["flat", "gw", "gc"], ["gemm"], transB=1, alpha=0.5, beta=2.0),
        n("MatMul", ["x", "mm"], ["matmul"]),
    ]
    r = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    inits = [
        _init("w", r(6, 4, 3, 2)), _init("b", r(6)), _init("wg", r(6, 2, 3, 3)), _init("wt", r(4, 3, 3, 3)),
        _init("bt", r(3)), _init("g", r(4)), _init("beta", r(4)), _init("mean", r(4)),
        _init("var", np.abs(r(4)) + 0.5), _init("lw", r(8)), _init("lb", r(8)), _init("axes", np.array([2, 3], np.int64)),
        _init("gw", r(5, 4 * 7 * 8)), _init("gc", r(5)), _init("mm", r(8, 3)),
    ]
    outs = [
        "conv_asym", "conv_group", "conv_same", "deconv", "bn", "inorm", "lnorm", "maxpool", "avgpool", "gap",
        "rmean", "rmax", "rl2", "softmax", "logsoftmax", "gemm", "matmul",
    ]
    path = _save(tmp_path, nodes, [_vi("x", list(x.shape))], [_vi(o, None) for o in outs], inits)
    _check_reference(path, {"x": x}, rtol=1e-4, atol=1e-4)


def _avg_pool_spec(x, kernel, strides, pads, include_pad):
    """ONNX AveragePool with ceil_mode=1 as its definition (opset 19) and PyTorch
    say: a window starting in the right padding is dropped, a window running past
    the padded input counts only the part inside it (count_include_pad=1), or
    only the real pixels (count_include_pad=0). onnx.reference 1.23 is no oracle
    here: with ceil_mode=1 it averages even interior windows wrongly."""
    _, _, h, w = x.shape
    size = [h, w]
    out = []
    for d in range(2):
        o = -(-(size[d] + 2 * pads[d] - kernel[d]) // strides[d]) + 1
        out.append(o - 1 if (o - 1) * strides[d] >= size[d] + pads[d] else o)
    y = np.zeros((*x.shape[:2], *out), np.float64)
    for i in range(out[0]):
        for j in range(out[1]):
            y0, x0 = i * strides[0] - pads[0], j * strides[1] - pads[1]
            y1, x1 = min(y0 + kernel[0], h + pads[0]), min(x0 + kernel[1], w + pads[1])
            a0, a1, b0, b1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
            count = (y1 - y0) * (x1 - x0) if include_pad else (a1 - a0) * (b1 - b0)
            y[:, :, i, j] = x[:, :, a0:a1, b0:b1].sum(axis=(2, 3)) / count
    return y.astype(np.float32)


# (input H, W), kernel, strides, pads: windows clipped at the bottom/right,
# a last window that would start in the padding (dropped), mixed per axis
AVG_CEIL_CASES = [
    ((7, 10), (3, 3), (2, 2), (1, 1)),
    ((7, 10), (2, 2), (2, 2), (1, 1)),
    ((7, 10), (3, 3), (3, 3), (0, 0)),
    ((7, 10), (3, 2), (2, 3), (1, 0)),
    ((5, 6), (3, 3), (3, 3), (1, 1)),
    ((5, 6), (2, 3), (3, 2), (1, 1)),
]


def test_average_pool_ceil_mode(tmp_path):
    """AveragePool ceil_mode=1 with pads, count_include_pad 0 and 1: bnnc's divisors
    against the operator's definition, itself checked against PyTorch."""
    rng = np.random.default_rng(5)
    n = helper.make_node
    for hw in sorted({c[0] for c in AVG_CEIL_CASES}):
        x = rng.standard_normal((1, 2, *hw)).astype(np.float32)
        nodes, outs, want = [], [], []
        for i, (_, k, s, p) in enumerate(c for c in AVG_CEIL_CASES if c[0] == hw):
            for include in (0, 1):
                name = f"avg{i}_{include}"
                nodes.append(n("AveragePool", ["x"], [name], kernel_shape=list(k), strides=list(s),
                               pads=[p[0], p[1], p[0], p[1]], ceil_mode=1, count_include_pad=include))
                ref = _avg_pool_spec(x, k, s, p, include)
                torch_ref = torch.nn.functional.avg_pool2d(
                    torch.from_numpy(x), k, s, p, ceil_mode=True, count_include_pad=bool(include)
                )
                np.testing.assert_allclose(ref, torch_ref.numpy(), rtol=1e-6, atol=1e-6)
                outs.append(_vi(name, list(ref.shape)))
                want.append(ref)
        path = _save(tmp_path, nodes, [_vi("x", list(x.shape))], outs, name=f"avg{hw[0]}.onnx")
        got = bnnc.compile(str(path))(x)
        for o, g, w in zip(outs, got, want):
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6, err_msg=o.name)


def test_symbolic_batch_needs_input_shape(tmp_path, capsys):
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    path = _save(tmp_path, nodes, [_vi("x", ["N", 3])], [_vi("y", ["N", 3])])
    with pytest.raises(ModelLoadError, match="symbolic dimension `N`.*\n.*--input-shape"):
        import_onnx(path)
    cm = bnnc.compile(str(path), (np.zeros((2, 3), np.float32),))
    x = np.array([[-1, 0, 2], [3, -4, 5]], np.float32)
    np.testing.assert_array_equal(cm(x), np.maximum(x, 0))
    assert cli_main(["compile", str(path), "--emit=bnn"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("bnnc: error:") and "symbolic dimension" in err[0]
    assert cli_main(["compile", str(path), "--emit=bnn", "--input-shape", "4,3"]) == 0
    assert "tensor<4x3xf32>" in capsys.readouterr().out


def test_cli_run(tmp_path):
    w = np.where(np.random.default_rng(2).standard_normal((8, 3, 3, 3)) >= 0, 0.5, -0.5).astype(np.float32)
    n = helper.make_node
    nodes = [n("Sign", ["x"], ["s"]), n("Conv", ["s", "w"], ["c"], pads=[1, 1, 1, 1]), n("Relu", ["c"], ["y"])]
    path = _save(tmp_path, nodes, [_vi("x", [1, 3, 6, 6])], [_vi("y", None)], [_init("w", w)])
    x = np.random.default_rng(3).standard_normal((1, 3, 6, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert cli_main(["run", str(path), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    want = ReferenceEvaluator(onnx.load(path)).run(None, {"x": x})[0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-6, atol=1e-6)
    assert _binary_layers(lower(import_onnx(path), CompileOptions(), "bnn")) == (1, 0)


# ------------------------------------------------------------------ QONNX


def _qonnx_quant(x, scale, zp, bits, signed, narrow, mode):
    """QONNX's Quant, as its operator definition writes it."""
    v = x / scale + zp
    if bits == 1 and signed:
        q = np.where(v >= 0, 1.0, -1.0).astype(np.float32)
    else:
        lo = -(2 ** (bits - 1)) + narrow if signed else 0
        hi = 2 ** (bits - 1) - 1 if signed else 2**bits - 1 - narrow
        q = {"ROUND": np.round, "FLOOR": np.floor, "CEIL": np.ceil}[mode](np.clip(v, lo, hi))
    return ((q - zp) * scale).astype(np.float32)


QUANT_CASES = [
    (8, 1, 0, "ROUND", 0.05, 0.0),  # CNV's 8-bit signed input quantizer
    (8, 0, 1, "ROUND", 0.03, 3.0),  # unsigned, narrow, with a zero point
    (6, 1, 1, "FLOOR", 0.1, 0.0),
    (4, 1, 0, "CEIL", 0.25, 0.0),
    (2, 1, 1, "ROUND", 0.5, 0.0),  # three levels: the compare-mask form
    (1, 1, 0, "ROUND", 0.7, 0.0),  # signed 1 bit is bipolar in QONNX
    (1, 0, 0, "ROUND", 0.4, 0.0),  # unsigned 1 bit: {0, s}
    (1, 0, 0, "FLOOR", 0.4, 0.0),
]


@pytest.mark.parametrize("bits,signed,narrow,mode,scale,zp", QUANT_CASES)
def test_qonnx_quant(tmp_path, bits, signed, narrow, mode, scale, zp):
    x = (np.random.default_rng(bits).standard_normal((1, 2, 4, 8)) * 3).astype(np.float32)
    x.reshape(-1)[:6] = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.0], np.float32) * np.float32(scale)  # ties
    node = helper.make_node(
        "Quant", ["x", "s", "z", "b"], ["y"], domain="qonnx.custom_op.general",
        signed=signed, narrow=narrow, rounding_mode=mode,
    )
    inits = [_init("s", np.float32(scale)), _init("z", np.float32(zp)), _init("b", np.float32(bits))]
    path = _save(tmp_path, [node], [_vi("x", list(x.shape))], [_vi("y", list(x.shape))], inits, QONNX_OPSET)
    got = bnnc.compile(str(path))(x)
    want = _qonnx_quant(x, np.float32(scale), np.float32(zp), bits, signed, narrow, mode)
    np.testing.assert_array_equal(got, want)


def test_qonnx_bipolar_layers_are_binary(tmp_path):
    """BipolarQuant on the activation (runtime) and on the weights (folded)
    makes a binary conv and a binary dense layer."""
    rng = np.random.default_rng(4)
    n = helper.make_node
    q = dict(domain="qonnx.custom_op.general")
    nodes = [
        n("BipolarQuant", ["x", "one"], ["xq"], **q),
        n("BipolarQuant", ["w", "one"], ["wq"], **q),
        n("Conv", ["xq", "wq"], ["c"], pads=[1, 1, 1, 1]),
        n("BatchNormalization", ["c", "g", "b", "m", "v"], ["bn"]),
        n("BipolarQuant", ["bn", "one"], ["aq"], **q),
        n("Flatten", ["aq"], ["f"]),
        n("BipolarQuant", ["fw", "one"], ["fwq"], **q),
        n("MatMul", ["f", "fwq"], ["y"]),
    ]
    inits = [
        _init("one", np.float32(1)), _init("w", rng.standard_normal((8, 3, 3, 3)).astype(np.float32)),
        _init("g", rng.standard_normal(8).astype(np.float32)), _init("b", rng.standard_normal(8).astype(np.float32)),
        _init("m", rng.standard_normal(8).astype(np.float32)), _init("v", (rng.random(8) + 0.5).astype(np.float32)),
        _init("fw", rng.standard_normal((8 * 5 * 5, 10)).astype(np.float32)),
    ]
    path = _save(tmp_path, nodes, [_vi("x", [1, 3, 5, 5])], [_vi("y", [1, 10])], inits, QONNX_OPSET)
    assert _binary_layers(lower(import_onnx(path), CompileOptions(), "bnn")) == (1, 1)
    x = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)
    # the oracle: the same graph with BipolarQuant written as ONNX ops
    bq = lambda a: np.where(a >= 0, 1.0, -1.0).astype(np.float32)  # noqa: E731
    inits_d = {t.name: numpy_helper.to_array(t) for t in inits}
    ref = helper.make_graph(
        [n("Conv", ["xq", "wq"], ["c"], pads=[1, 1, 1, 1]), n("BatchNormalization", ["c", "g", "b", "m", "v"], ["bn"])],
        "r", [_vi("xq", [1, 3, 5, 5])], [_vi("bn", None)],
        [_init("wq", bq(inits_d["w"])), *[_init(k, inits_d[k]) for k in "gbmv"]],
    )
    bn = ReferenceEvaluator(helper.make_model(ref, opset_imports=OPSET)).run(None, {"xq": bq(x)})[0]
    want = bq(bn).reshape(1, -1) @ bq(inits_d["fw"])
    np.testing.assert_allclose(bnnc.compile(str(path))(x), want, rtol=1e-5, atol=1e-4)


def test_qonnx_trunc(tmp_path):
    x = np.arange(-40, 40, dtype=np.float32).reshape(1, 1, 8, 10) * np.float32(0.25)
    node = helper.make_node("Trunc", ["x", "s", "z", "bi", "bo"], ["y"], domain="qonnx.custom_op.general")
    inits = [_init("s", np.float32(0.25)), _init("z", np.float32(0)), _init("bi", np.float32(8)), _init("bo", np.float32(4))]
    path = _save(tmp_path, [node], [_vi("x", list(x.shape))], [_vi("y", list(x.shape))], inits, QONNX_OPSET)
    want = (np.floor(np.round(x / np.float32(0.25)) / np.float32(16)) * np.float32(0.25)).astype(np.float32)
    np.testing.assert_array_equal(bnnc.compile(str(path))(x), want)


def test_brevitas_tfc_export_qonnx(tmp_path):
    """A real Brevitas export_qonnx (bnn_pynq TFC 1W1A, random weights)
    matches the Brevitas model and its layers run as binary dense layers."""
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    torch.manual_seed(0)
    model, _ = model_with_cfg("tfc_1w1a", pretrained=False)
    model.eval()
    x = torch.randn(1, 1, 28, 28)
    path = tmp_path / "tfc.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(model, x, str(path))
        cm = bnnc.compile(str(path))
        for xi in (x, torch.randn_like(x)):
            assert_matches_torch(model, (xi,), cm(xi))
    dense = _binary_layers(lower(import_onnx(path), CompileOptions(), "bnn"))[1]
    assert dense >= 3, f"only {dense} binary dense layers"


def test_brevitas_cnv_export_qonnx(tmp_path):
    """Brevitas' bnn_pynq CNV 1W1A (8-bit input quantizer, 1-bit weights and
    activations, TensorNorm) through export_qonnx: random weights and batch-norm
    statistics (bench/third_party_table.py's factory), matches the Brevitas model
    on two inputs; 5 convs + 3 linears run as binary ops, the first conv (binary
    weights on 8-bit input) as a float conv."""
    import third_party_table as tp
    from brevitas.export import export_qonnx

    spec = tp.MODELS["cnv_1w1a"]
    model, x = spec.make(0)
    path = tmp_path / "cnv.onnx"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_qonnx(model, x, str(path))
            assert {n.op_type for n in onnx.load(path).graph.node} >= {"Quant", "BipolarQuant"}
            cm = bnnc.compile(str(path))
            for xi in (x, torch.rand_like(x) * 2 - 1):
                assert_matches_torch(model, (xi,), cm(xi))
    finally:
        torch.set_num_threads(threads)
    convs, dense = _binary_layers(lower(import_onnx(path), CompileOptions(), "bnn"))
    assert (convs, dense) == (5, 3), (convs, dense)


# ------------------------------------------------------- hostile files


def _external_model(tmp_path, location, offset=0, length=None, data=None):
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = numpy_helper.from_array(w, "w")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    entries = {"location": location, "offset": str(offset), "length": str(length if length is not None else w.nbytes)}
    for k, v in entries.items():
        e = t.external_data.add()
        e.key, e.value = k, v
    (tmp_path / "weights.bin").write_bytes(data if data is not None else w.tobytes())
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    graph = helper.make_graph(nodes, "g", [_vi("x", [2, 3])], [_vi("y", [2, 4])], [t])
    path = tmp_path / "ext.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=OPSET).SerializeToString())
    return path


def _cli_error(path, capsys) -> str:
    assert cli_main(["compile", str(path), "--emit=bnn"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bnnc: error:"), err
    return err[0]


def test_external_data_inside_folder_loads(tmp_path):
    path = _external_model(tmp_path, "weights.bin")
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(bnnc.compile(str(path))(x), x @ np.arange(12, dtype=np.float32).reshape(3, 4))


@pytest.mark.parametrize(
    "location,offset,length,match",
    [
        ("../outside.bin", 0, None, "outside the model's folder"),
        ("/etc/passwd", 0, None, "absolute path"),
        ("sub/../../x.bin", 0, None, "outside the model's folder"),
        ("weights.bin", 4096, None, "past the end"),
        ("weights.bin", 40, 16, "runs past the end"),
        ("missing.bin", 0, None, "missing"),
    ],
)
def test_hostile_external_data(tmp_path, capsys, location, offset, length, match):
    inner = tmp_path / "model"
    inner.mkdir()
    (tmp_path / "outside.bin").write_bytes(b"\0" * 48)
    path = _external_model(inner, location, offset, length)
    assert match in _cli_error(path, capsys)
    with pytest.raises(ModelLoadError, match=match):
        bnnc.compile(str(path))


def test_symlink_out_of_folder_refused(tmp_path, capsys):
    inner = tmp_path / "model"
    inner.mkdir()
    (tmp_path / "secret.bin").write_bytes(np.zeros(12, np.float32).tobytes())
    path = _external_model(inner, "link.bin")
    os.symlink(tmp_path / "secret.bin", inner / "link.bin")
    assert "outside the model's folder" in _cli_error(path, capsys)


def test_malformed_files(tmp_path, capsys):
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    good = _save(tmp_path, nodes, [_vi("x", [1, 3])], [_vi("y", [1, 3])]).read_bytes()
    cases = {"truncated.onnx": good[: len(good) // 2], "garbage.onnx": b"\x08\x07 not a protobuf \xff\xff\xff", "empty.onnx": b""}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        line = _cli_error(tmp_path / name, capsys)
        assert name in line
        with pytest.raises(BnncError):
            bnnc.compile(str(tmp_path / name))


def test_old_opset_and_unknown_op_refused(tmp_path):
    old = _save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [1, 3])], [_vi("y", [1, 3])],
                opsets=[helper.make_opsetid("", 11)], name="old.onnx")
    with pytest.raises(UnsupportedError, match="opset 11"):
        import_onnx(old)
    odd = _save(tmp_path, [helper.make_node("Det", ["x"], ["y"])], [_vi("x", [3, 3])], [_vi("y", [])], name="det.onnx")
    with pytest.raises(UnsupportedError, match="unsupported ONNX op Det"):
        import_onnx(odd)
