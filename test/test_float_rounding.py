"""round (half to even), floor, ceil and trunc: bit for bit as PyTorch, zeros' signs included.

CNV's 8-bit input quantizer (Brevitas) rounds; so do QONNX's Quant nodes."""

from __future__ import annotations

import pytest
import torch

import bnnc

SPECIAL = [-2.5, -1.5, -0.5, -0.3, 0.5, 1.5, 2.5, 3.7, -3.7, 8388607.5, -8388609.0, 1e9, -1e-30, 0.0, -0.0]


class Rounding(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


@pytest.mark.parametrize("fn", [torch.round, torch.floor, torch.ceil, torch.trunc], ids=lambda f: f.__name__)
def test_rounding_bit_for_bit(fn):
    torch.manual_seed(0)
    x = torch.cat(
        [
            torch.tensor(SPECIAL + [float("nan"), float("inf"), -float("inf")]),
            torch.randn(300) * 10,
            torch.randint(-50, 50, (60,)).float() / 2,  # exact halves: ties
        ]
    ).reshape(1, 3, -1)
    model = Rounding(fn).eval()
    got, ref = bnnc.compile(model, (x,))(x), model(x)
    assert torch.equal(torch.isnan(got), torch.isnan(ref))
    ok = ~torch.isnan(ref)
    assert torch.equal(got[ok], ref[ok])
    assert torch.equal(torch.signbit(got[ok]), torch.signbit(ref[ok]))
