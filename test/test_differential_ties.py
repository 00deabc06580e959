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
import pytest
import torch
import torch.nn.functional as F
from graph_models import SignRelu, WhereLt
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


# --- the oracle's side, without bnnc ----------------------------------------


class _NoiseChannel(nn.Module):
    """where(x >= 0) -> xnor 1x1 conv -> where(y < 0, -1, 1) (or, unipolar,
    sign(relu(y)): {0, 1}) -> xnor 3x3 conv.

    The first conv reads the binarized input twice (cat([s, s])), and its
    channel 1 weighs the copies +alpha and -alpha: that channel is exactly 0
    at every pixel, and only rounding noise in float32 and float64 alike (its
    maximum is noise, so no threshold relative to it finds the zeros).
    exact=True computes the binary convs exactly (integer dot times alpha) and
    decides the ties by the binarizer's rule at 0 (where: +1; sign(relu(0)):
    0), as bnnc does; flip decides the
    pixels where channel 0's exact value is `flip` * alpha the wrong way (a
    simulated miscompile, far from rounding)."""

    def __init__(self, exact: bool = False, flip: int | None = None, unipolar: bool = False):
        super().__init__()
        self.conv1 = bm.XnorConv2d(6, 2, 1)
        self.conv2 = bm.XnorConv2d(2, 4, 3, padding=1)
        self.act = SignRelu() if unipolar else WhereLt()
        self.exact, self.flip, self.unipolar = exact, flip, unipolar
        with torch.no_grad():
            # unequal magnitudes: alpha = mean|w| has a full float64 mantissa, so
            # float64 sums of +-alpha leave noise too (1e-16), some of it negative
            mags = torch.tensor([0.31, 0.2, 0.45, 0.3, 0.27, 0.5])
            self.conv1.weight[1] = (mags * torch.tensor([1.0, 1, 1, -1, -1, -1])).view(6, 1, 1)

    def forward(self, x):
        s = torch.where(x >= 0, 1.0, -1.0)
        s = torch.cat([s, s], dim=1)
        if not self.exact:
            return self.conv2(self.act(self.conv1(s)))
        dot = F.conv2d(s.double(), torch.sign(self.conv1.weight).double())
        z = (dot > 0).double() if self.unipolar else torch.where(dot < 0, -1.0, 1.0)
        if self.flip is not None:
            other = 1 - z[:, 0] if self.unipolar else -z[:, 0]
            z[:, 0] = torch.where(dot[:, 0] == self.flip, other, z[:, 0])
        alpha = self.conv2.weight.abs().mean(dim=(1, 2, 3)).double()[None, :, None, None]
        out = F.conv2d(z.double(), torch.sign(self.conv2.weight).double(), padding=1) * alpha
        return out.float()


def _noise_channel(flip: int | None = None, unipolar: bool = False):
    """The eager model, the 'compiled' one (same parameters), the input."""
    model, x = bm._build(7, lambda: _NoiseChannel(unipolar=unipolar), (2, 3, 6, 6))
    exact = _NoiseChannel(exact=True, flip=flip, unipolar=unipolar)
    exact.load_state_dict(model.state_dict())
    return model, exact.eval(), x


@pytest.mark.parametrize("unipolar", [False, True])
def test_oracle_explains_a_channel_of_exact_zeros(unipolar):
    """The tie channel's float32 (and float64) values are all noise; the oracle
    must take them as exact zeros (ZERO_ATOL, TIE_ATOL32), not compare them
    with their own channel's maximum. Unipolar: sign(relu(y)) at an exact zero
    is 0 (PyTorch's sign(0), and bnnc's {0, 1} form), not +1; the oracle used to
    force every relu zero to +1."""
    from differential import assert_matches_torch, run_traced

    model, exact, x = _noise_channel(unipolar=unipolar)
    _, rec32 = run_traced(model, (x,))
    _, rec64 = run_traced(model, (x,), float64=True)
    y32, y64 = rec32[1].values[:, 1], rec64[1].values[:, 1]  # unipolar: relu(y)
    assert 0 < y32.abs().max() < 1e-6 and y64.abs().max() < 1e-12, "channel 1 is no longer all noise"
    wrong64 = (y64 > 0) if unipolar else (y64 < 0)
    assert wrong64.any(), "float64 noise no longer decides a tie: the float64 re-run would explain it alone"
    with torch.no_grad():
        got, ref = exact(x), model(x)
    assert not torch.allclose(got, ref, rtol=1e-4, atol=1e-4), "the float32 noise no longer flips a decision"
    verdict = assert_matches_torch(model, (x,), got)
    assert verdict.explained and "exactly 0 in exact arithmetic" in verdict, verdict


@pytest.mark.parametrize("unipolar", [False, True])
@pytest.mark.parametrize("flip", [4, -4])
def test_oracle_still_rejects_a_wrong_decision_next_to_ties(flip, unipolar, monkeypatch):
    """The same model with a real miscompile (decisions at |x| = 4 alpha taken
    the other way) is still a mismatch."""
    import differential

    monkeypatch.setattr(differential, "MAX_SEARCH_RUNS", 16)  # cannot succeed; keep it short
    model, wrong, x = _noise_channel(flip=flip, unipolar=unipolar)
    with torch.no_grad():
        got = wrong(x)
        assert not torch.equal(got, _noise_channel(unipolar=unipolar)[1](x)), "no pixel has that dot: pick another"
    with pytest.raises(AssertionError, match="NOT explained"):
        differential.assert_matches_torch(model, (x,), got)


def test_oracle_still_rejects_a_perturbed_output(monkeypatch):
    """An output off by a little more than the float tolerance, on top of the
    ties, is a mismatch too."""
    import differential

    monkeypatch.setattr(differential, "MAX_SEARCH_RUNS", 16)
    model, exact, x = _noise_channel()
    with torch.no_grad():
        got = exact(x)
    got[0, 0, 0, 0] += 1e-3 * float(got.abs().max())
    with pytest.raises(AssertionError, match="NOT explained"):
        differential.assert_matches_torch(model, (x,), got)


class _WhereAfterUnipolar(nn.Module):
    """sign(relu(x)) -> xnor conv -> where(y < 0, -1, 1) -> xnor conv: the binarizer
    reads a layer recognize-binarization rewrote earlier in the same run."""

    def __init__(self):
        super().__init__()
        self.uni = _UnipolarConv(1, 4)
        self.conv = bm.XnorConv2d(4, 2, 3, padding=1)

    def forward(self, x):
        return self.conv(WhereLt()(self.uni(x)))


def test_binarizer_of_a_unipolar_conv_compiles():
    """It raised PassError ('recognize-binarization produced invalid IR': a
    bnn.sign of the erased float conv); found while shrinking seed 20261131 graph 359."""
    import bnnc
    from differential import assert_matches_torch

    model, x = bm._build(12, _WhereAfterUnipolar, (2, 1, 9, 9))
    compiled = bnnc.compile(model, (x,), target="host")
    assert_matches_torch(model, (x,), compiled(x))


class _SignLinear(nn.Module):
    """sign(x) -> flatten -> linear: one binarizer whose input (one channel of
    8x8) has many values near 0."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 16)

    def forward(self, x):
        return self.fc(torch.sign(x).flatten(1))


def _many_ties(flips: list[int], scale: float = 1e-8):
    """The model, an input with 20 values within rounding of 0 (|x| = `scale`,
    the rest O(1)), and the output with the decisions at `flips` (indices of
    near-zero values) taken the other way."""
    torch.manual_seed(3)
    model = _SignLinear().eval()
    x = torch.randn(1, 64)
    near = torch.arange(0, 64, 3)[:20]
    x[0, near] = scale * torch.where(torch.rand(20) < 0.5, -1.0, 1.0)
    s = torch.sign(x)
    s[0, near[flips]] = -s[0, near[flips]]
    with torch.no_grad():
        return model, x.reshape(1, 1, 8, 8), model.fc(s)


def test_oracle_explains_many_ties_by_descent():
    """Three of 20 near-zero decisions taken the other way (fuzz seed 20261399
    graph 10: 28 exact zeros from a bilinear upsample, 3 noise decisions): the
    subsets up to size 2 do not reach it within the budget (1 + 20 + 190 runs,
    and size 3 would be 1140 more); the descent on the output distance does."""
    from differential import assert_matches_torch

    model, x, got = _many_ties([2, 9, 15])
    verdict = assert_matches_torch(model, (x,), got)
    assert verdict.explained and "3 near-zero binarizer decision(s)" in verdict and "descent" in verdict, verdict


def test_oracle_descent_rejects_a_decision_that_is_not_near_zero():
    """The descent only flips near-zero decisions: an output that needs a clear
    one flipped as well is still a mismatch."""
    from differential import assert_matches_torch

    model, x, got = _many_ties([2, 9])
    flat = x.flatten(1)
    clear = int(torch.nonzero(flat[0].abs() > 0.5)[0])
    got = got - 2 * model.fc.weight[:, clear].detach() * torch.sign(flat[0, clear])
    with pytest.raises(AssertionError, match="NOT explained"):
        assert_matches_torch(model, (x,), got)
