"""Exact-arithmetic ties: binarizer inputs that are exactly 0 in exact arithmetic.

A tie is decided by the binarizer's own rule at 0 (``where(x < 0, -1, 1)``:
+1), but float32 rounding noise of PyTorch's sums (or bnnc's) can decide it
either way. Fuzzer case seed 20261131 graph 359 (test/data/fuzz-regressions/)
had both: PyTorch's float32 noise, which the oracle must accept as a tie, and
bnnc's own noise from the {0, 1}-input popcount form, which was a bnnc bug
(its epilogue fma(dot, m, f32(m * S)) left the rounding error of m * S where
the exact value m * (dot + S) is 0). These tests pin both sides.
"""

from __future__ import annotations

import bnn_models as bm
import torch
import torch.nn.functional as F
from graph_models import SignRelu
from torch import nn


class _UnipolarConv(nn.Module):
    """sign(relu(x)) -> xnor conv (no bias): alpha_c * integer, exactly 0 at many pixels."""

    def __init__(self, cin: int = 1, cout: int = 4):
        super().__init__()
        self.act = SignRelu()
        self.conv = bm.XnorConv2d(cin, cout, 3, padding=0)

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        """The integer dot of the {0, 1} input with sign(W) (float64 holds it exactly)."""
        u = (x > 0).double()
        return F.conv2d(u, torch.sign(self.conv.weight).double())

    def forward(self, x):
        return self.conv(self.act(x))


def test_unipolar_bconv_keeps_exact_zeros():
    """bnnc's popcount form of a {0, 1}-input binary conv is exactly 0 where the
    exact sum is 0 (it gave up to +-3e-8, the rounding error of f32(alpha/2 * S),
    which a later where(x < 0) decided as -1)."""
    import bnnc

    model, x = bm._build(12, _UnipolarConv, (2, 1, 9, 9))
    got = torch.as_tensor(bnnc.compile(model, (x,), target="host")(x))
    dot = model.exact(x)
    zero = dot == 0
    # still a test of the bug: ties in channels whose alpha/2 * sum(sign W) is not a float32
    m = model.conv.weight.abs().mean(dim=(1, 2, 3)).double() / 2
    s = torch.sign(model.conv.weight).sum(dim=(1, 2, 3)).double()
    inexact = (m * s).float().double() != m * s
    assert int(zero[:, inexact].sum()) > 20, (inexact, zero.sum(dim=(0, 2, 3)))
    assert (got[zero] == 0).all(), got[zero][got[zero] != 0]
    alpha = model.conv.weight.abs().mean(dim=(1, 2, 3)).double()[None, :, None, None]
    assert torch.allclose(got.double(), alpha * dot, rtol=1e-6, atol=0)
