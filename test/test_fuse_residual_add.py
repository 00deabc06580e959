"""fuse-residual-add changes where the shortcut add happens, never its result:
models compiled with and without the pass must agree bit for bit (1 and 2
threads), and the default pipeline must actually fuse the adds."""

from __future__ import annotations

import pytest
import torch
from bnn_models import BINARIZERS, XnorConv2d, make_bireal, make_resnete, randomize_
from ir_helpers import op_counts
from pass_helpers import assert_same_bits_without, pipeline_without
from torch import nn

import bnnc
from bnnc.dialects import bnn
from bnnc.driver import CompileOptions

WITHOUT = pipeline_without("fuse-residual-add")


class ResidualFirst(nn.Module):
    """shortcut + clamp(prelu(bn(bconv))): the residual is the add's lhs, after
    a PReLU and a clamp, on a grouped 3x3 conv with zero padding (corrected border pixels)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = XnorConv2d(8, 8, 3, padding=1, groups=2, act=BINARIZERS["sign"]())
        self.bn = nn.BatchNorm2d(8)
        self.prelu = nn.PReLU(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + torch.clamp(self.prelu(self.bn(y)), -1.0, 1.5)


def _residual_first():
    torch.manual_seed(5)
    model = ResidualFirst()
    randomize_(model, torch.randn(1, 8, 9, 7), 6)
    return model, torch.randn(1, 8, 9, 7)


@pytest.mark.parametrize(
    "make, threads",
    [(make_bireal, 1), (make_bireal, 2), (make_resnete, 1), (_residual_first, 1)],
    ids=["bireal", "bireal-2threads", "resnete", "residual-lhs-prelu-clamp"],
)
def test_bit_identical_to_unfused(make, threads):
    model, x = make()
    assert_same_bits_without(model, x, WITHOUT, threads)


def test_default_pipeline_fuses_the_shortcut_adds():
    model, x = make_bireal()
    imported = bnnc.driver.import_model(model.eval(), (x,))
    fused_module = bnnc.driver.lower(imported.clone(), CompileOptions(), stop_after="bnn")
    fused = op_counts(fused_module)
    unfused = op_counts(bnnc.driver.lower(imported, CompileOptions(pipeline=WITHOUT), stop_after="bnn"))
    with_residual = sum(isinstance(op, bnn.BConv2dOp) and op.residual is not None for op in fused_module.walk())
    assert with_residual > 0
    assert fused["bnn.add"] == unfused["bnn.add"] - with_residual
    assert fused["bnn.bconv2d"] == unfused["bnn.bconv2d"]
