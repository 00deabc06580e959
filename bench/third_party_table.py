"""Third-party BNN model zoos through bnnc: which conv/linear layers become binary.

    python bench/third_party_table.py                 # every model
    python bench/third_party_table.py tfc_1w1a cnv_1w1a

For each model (Brevitas' bnn_pynq CNV/TFC/SFC/LFC 1W1A, a small Brevitas
QuantConv2d block, bitorch's model zoo; random weights, batch-norm statistics
set to non-trivial random values) it imports the model into bnnc, runs the
graph-level pipeline (what `bnnc compile --emit=bnn` prints) and counts the
conv/linear ops:

- binary:        bnn.bconv2d / bnn.bdense (binarised input, ±alpha weights)
- binary-weight: float bnn.conv2d / bnn.linear whose constant weight holds at
                 most two values per output channel (BWN, e.g. a first layer
                 on real-valued input)
- float:         every other bnn.conv2d / bnn.linear

next to what the PyTorch model has (`expect` = binary/binary-weight: its
layers with 1-bit input and 1-bit weights, and with 1-bit weights on
multi-bit input). A model bnnc cannot import prints its error instead.
test/test_third_party_models.py uses the same factories and counter and
asserts these counts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

# ----------------------------------------------------------------------------
# model factories


def _randomize_norms(model: nn.Module, x: torch.Tensor, seed: int) -> None:
    """Give every batch norm (and Brevitas' TensorNorm) realistic, non-trivial
    statistics: calibrate them on a random batch shaped like `x` (so the
    normalised values straddle 0 as in a trained net), then perturb mean, var,
    gamma (a fifth of them negative) and beta at random."""
    g = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    tensor_norms = [m for m in model.modules() if type(m).__name__ == "TensorNorm"]
    model.train()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batch
    calib = torch.randn((8,) + tuple(x.shape[1:]), generator=g)
    with torch.no_grad():
        model(calib)
    model.eval()
    with torch.no_grad():
        for m in norms + tensor_norms:
            c = m.running_mean.numel()
            std = m.running_var.clamp_min(1e-3).sqrt()
            m.running_mean.add_(0.3 * std * torch.randn(c, generator=g))
            m.running_var.mul_(torch.empty(c).uniform_(0.5, 2.0, generator=g))
            if getattr(m, "weight", None) is not None:
                sign = torch.where(torch.rand(c, generator=g) < 0.2, -1.0, 1.0)
                m.weight.copy_(sign * torch.empty(c).uniform_(0.5, 1.5, generator=g))
            if getattr(m, "bias", None) is not None:
                m.bias.copy_(0.1 * torch.randn(c, generator=g))


def _brevitas_bnn_pynq(cfg_name: str, shape: tuple[int, ...]) -> Callable[[int], tuple[nn.Module, torch.Tensor]]:
    def make(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
        from brevitas_examples.bnn_pynq.models import model_with_cfg

        torch.manual_seed(seed)
        model, _cfg = model_with_cfg(cfg_name, pretrained=False)  # no download: random init
        x = torch.randn(shape)
        _randomize_norms(model, x, seed)
        return model.eval(), x

    make.__name__ = f"make_{cfg_name}"
    return make


class BrevitasBlock(nn.Module):
    """QuantIdentity(1 bit, BINARY) -> QuantConv2d(1-bit weights) -> BatchNorm2d,
    spelled with keyword overrides of Brevitas' default quantizers (`kind="kw"`)
    or with its SignedBinary*PerTensorConst quantizers (`kind="const"`)."""

    def __init__(self, kind: str = "kw", cin: int = 16, cout: int = 32):
        super().__init__()
        from brevitas.core.quant import QuantType
        from brevitas.nn import QuantConv2d, QuantIdentity

        if kind == "kw":
            self.act = QuantIdentity(bit_width=1, quant_type=QuantType.BINARY)
            self.conv = QuantConv2d(
                cin, cout, 3, padding=1, bias=False, weight_bit_width=1, weight_quant_type=QuantType.BINARY
            )
        else:
            from brevitas.quant.binary import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst

            self.act = QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
            self.conv = QuantConv2d(cin, cout, 3, padding=1, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(self.act(x)))


def _brevitas_block(kind: str) -> Callable[[int], tuple[nn.Module, torch.Tensor]]:
    def make(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
        torch.manual_seed(seed)
        model = BrevitasBlock(kind)
        x = torch.randn(1, 16, 8, 8)
        _randomize_norms(model, x, seed)
        return model.eval(), x

    make.__name__ = f"make_brevitas_block_{kind}"
    return make


def _bitorch(cls_name: str, shape: tuple[int, ...]) -> Callable[[int], tuple[nn.Module, torch.Tensor]]:
    def make(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
        import bitorch.models as bm

        torch.manual_seed(seed)
        model = getattr(bm, cls_name)(input_shape=list(shape), num_classes=10)
        x = torch.randn(shape)
        _randomize_norms(model, x, seed)
        return model.eval(), x

    make.__name__ = f"make_bitorch_{cls_name.lower()}"
    return make


@dataclass(frozen=True)
class ThirdPartyModel:
    name: str
    make: Callable[[int], tuple[nn.Module, torch.Tensor]]
    # conv/linear layers with 1-bit input and 1-bit weights in the PyTorch
    # model: a BNN compiler turns them into bnn.bconv2d / bnn.bdense
    expected_binary: int
    # conv/linear layers with 1-bit weights on multi-bit input: float
    # bnn.conv2d / bnn.linear whose constant weights hold two values per channel
    expected_binary_weight: int
    # the model's conv/linear layers in total (binary + binary-weight + float)
    layers: int
    note: str = ""


# How each library spells a 1-bit quantizer in core ATen (after
# ExportedProgram.run_decompositions(); s is a per-tensor scale computed from
# f32[] buffers, 1.0 for bnn_pynq, e.g. s = abs(value) / abs(abs(full([1], 1.)))):
#
# Brevitas, activations (ClampedBinaryQuant; bnn_pynq CommonActQuant and
#   SignedBinaryActPerTensorConst): a clamp written with where, then a sign
#   through bool -> float:
#     c = where(lt(where(gt(x, s), s, x), neg(s)), neg(s), where(gt(x, s), s, x))
#     y = mul(sub(mul(_to_copy(ge.Scalar(c, 0.0), dtype=f32), 2.0), 1.0), s)
# Brevitas, weights (BinaryQuant): W sliced with slice(W, 0, 0, INT64_MAX), then
#     mul(sub(mul(_to_copy(ge.Scalar(W, 0.0), dtype=f32), 2.0), 1.0), s)
#   SignedBinaryWeightPerTensorConst clamps W in place first (clamp_ ->
#   slice_scatter(W, minimum(W, s)) / maximum(.., -s)): a PARAMETER_MUTATION
#   output of the decomposed program. With keyword overrides
#   (weight_bit_width=1, weight_quant_type=BINARY) the scale is max|W| computed
#   in the graph: where(ge(m, 0), 1., -1.) * clamp(abs(m), 1e-10), m = max(abs(view(W, [-1]))).
# CNV's input quantizer is 8-bit integer quantisation (Q1.7, power-of-two scale
#   2^round(v) / 2^round(log2(2^7)) = 1/128), written as
#     mul(sub(clamp_where(round(add(div(x, 1/128), zp)), -128, 127), zp), 1/128)
#   on x' = 2x - 1: the first conv has binary weights on 8-bit input.
# bitorch (Sign quantizer): where(eq.Scalar(sign(v), 0), clone(<f32[] 1.0 lifted
#   constant>), sign(v)) with v = view(x, x.shape) (GradientCancellation); the same
#   on the weights; padding is an explicit constant_pad_nd(value=-1.0)
#   (QuickNet: +1.0) before a conv with padding 0, also for 1x1 / unpadded convs.

MODELS: dict[str, ThirdPartyModel] = {
    m.name: m
    for m in [
        # Brevitas bnn_pynq (FINN's BNN-PYNQ): FC nets binarise the input too
        # (IN_BIT_WIDTH 1), so every linear layer is binary; TensorNorm at the end.
        ThirdPartyModel("tfc_1w1a", _brevitas_bnn_pynq("tfc_1w1a", (1, 1, 28, 28)), 4, 0, 4, "linear 3x64 + 10"),
        ThirdPartyModel("sfc_1w1a", _brevitas_bnn_pynq("sfc_1w1a", (1, 1, 28, 28)), 4, 0, 4, "linear 3x256 + 10"),
        ThirdPartyModel("lfc_1w1a", _brevitas_bnn_pynq("lfc_1w1a", (1, 1, 28, 28)), 4, 0, 4, "linear 3x1024 + 10"),
        # CNV: 8-bit input quantizer, so the first conv is binary-weight;
        # 5 convs (two behind a max-pool of binarised values) + 3 linears are binary.
        ThirdPartyModel(
            "cnv_1w1a", _brevitas_bnn_pynq("cnv_1w1a", (1, 3, 32, 32)), 8, 1, 9, "6 conv + 3 linear, 8-bit input"
        ),
        ThirdPartyModel(
            "brevitas_block_kw", _brevitas_block("kw"), 1, 0, 1, "bit_width=1, quant_type=BINARY keyword overrides"
        ),
        ThirdPartyModel(
            "brevitas_block_const", _brevitas_block("const"), 1, 0, 1, "SignedBinary{Act,Weight}PerTensorConst"
        ),
        # bitorch: the first conv, 1x1 downsample / transition convs (except
        # ResNet-18 v1's, which are binary) and the classifier stay float.
        ThirdPartyModel("bitorch_lenet", _bitorch("LeNet", (1, 1, 28, 28)), 2, 0, 4, "binary conv2 + fc1; tanh"),
        ThirdPartyModel(
            "bitorch_resnete18", _bitorch("ResnetE18", (1, 3, 16, 16)), 16, 0, 21, "3 float 1x1 downsample"
        ),
        ThirdPartyModel("bitorch_densenet28", _bitorch("DenseNet28", (1, 3, 16, 16)), 23, 0, 28, "3 float transitions"),
        ThirdPartyModel(
            "bitorch_meliusnet22", _bitorch("MeliusNet22", (1, 3, 16, 16)), 17, 0, 22, "3 float transitions"
        ),
        ThirdPartyModel(
            "bitorch_quicknetsmall", _bitorch("QuickNetSmall", (1, 3, 32, 32)), 16, 0, 26, "float stem, blur-pool, 1x1"
        ),
        ThirdPartyModel("bitorch_resnet18v1", _bitorch("Resnet18V1", (1, 3, 16, 16)), 19, 0, 21, "binary downsample"),
    ]
}


# ----------------------------------------------------------------------------
# counting binary layers in the bnn IR

BINARY_OPS = ("bnn.bconv2d", "bnn.bdense")
FLOAT_OPS = ("bnn.conv2d", "bnn.linear")


def bnn_ir(model: nn.Module, x: torch.Tensor):
    """The model's bnn IR after the graph-level pipeline (`--emit=bnn`)."""
    from bnnc.driver import CompileOptions, import_model, lower

    module = import_model(model, (x,))
    return lower(module, CompileOptions(num_threads=1), "bnn")


def _const_values(value) -> np.ndarray | None:
    from xdsl.dialects import arith
    from xdsl.dialects.builtin import DenseIntOrFPElementsAttr

    from bnnc.dialects.dense import to_numpy

    op = value.owner
    if isinstance(op, arith.ConstantOp) and isinstance(op.value, DenseIntOrFPElementsAttr):
        return to_numpy(op.value)
    return None


def two_valued_per_channel(weight: np.ndarray) -> bool:
    """At most two distinct values in each output channel (axis 0)."""
    w = weight.reshape(weight.shape[0], -1)
    return all(np.unique(row).size <= 2 for row in w)


@dataclass
class LayerCounts:
    binary: int = 0  # bnn.bconv2d / bnn.bdense
    binary_weight: int = 0  # float conv/linear with two-valued constant weights per output channel
    float: int = 0  # every other bnn.conv2d / bnn.linear (including weights computed at run time)
    runtime_weights: int = 0  # of those, conv/linear whose weight is not a constant after the pipeline

    @property
    def total(self) -> int:
        return self.binary + self.binary_weight + self.float


def count_layers(module) -> LayerCounts:
    counts = LayerCounts()
    for op in module.walk():
        name = op.name
        if name in BINARY_OPS:
            counts.binary += 1
        elif name in FLOAT_OPS:
            w = _const_values(op.operands[1])
            if w is None:
                counts.float += 1
                counts.runtime_weights += 1
            elif two_valued_per_channel(w):
                counts.binary_weight += 1
            else:
                counts.float += 1
    return counts


def torch_layer_count(model: nn.Module) -> int:
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())


def _one_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def table(names: list[str]) -> list[dict]:
    rows = []
    for name in names:
        spec = MODELS[name]
        model, x = spec.make(0)
        row = {
            "model": name,
            "input": "x".join(map(str, x.shape)),
            "layers": torch_layer_count(model),
            "expected": f"{spec.expected_binary}/{spec.expected_binary_weight}",
        }
        try:
            counts = count_layers(bnn_ir(model, x))
        except Exception as e:  # noqa: BLE001 - the table reports any failure
            row["error"] = _one_line(e)
        else:
            row.update(
                binary=counts.binary,
                binary_weight=counts.binary_weight,
                float=counts.float,
                runtime_weights=counts.runtime_weights,
                ok=(counts.binary, counts.binary_weight) == (spec.expected_binary, spec.expected_binary_weight),
            )
        rows.append(row)
        print(_format_row(row), flush=True)
    return rows


HEADER = (
    f"{'model':22} {'input':10} {'layers':>6} {'expect':>7} {'binary':>6} {'bin-w':>6} {'float':>6}  "
    "note (expect = binary/binary-weight layers a BNN compiler should produce)"
)


def _format_row(row: dict) -> str:
    head = f"{row['model']:22} {row['input']:10} {row['layers']:>6} {row['expected']:>7}"
    if "error" in row:
        return f"{head} {'-':>6} {'-':>6} {'-':>6}  {row['error']}"
    notes = [] if row["ok"] else ["MISSED"]
    if row["runtime_weights"]:
        notes.append(f"{row['runtime_weights']} with run-time weights")
    return f"{head} {row['binary']:>6} {row['binary_weight']:>6} {row['float']:>6}  {', '.join(notes)}"


def main(argv: list[str]) -> int:
    import warnings

    warnings.filterwarnings("ignore")
    names = argv or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        print(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}", file=sys.stderr)
        return 2
    print(HEADER)
    table(names)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
