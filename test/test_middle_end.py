"""The middle end against PyTorch eager on adversarial parameters.

bconv -> BN -> binarize -> bconv (no alpha) has an exact integer output, so
every threshold fuse-bn-sign derives must decide exactly like PyTorch's
float32 batch norm: negative, zero and tiny gamma, huge beta, and means that
put the decision boundary exactly on an integer accumulator value.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from ir_helpers import op_counts

import bnnc
from bnnc.context import make_context
from bnnc.dialects import bnn
from bnnc.frontend.torch_import import export_module, import_program
from bnnc.pipeline import GRAPH_PASSES, run_passes


def binarize(x):
    return torch.where(x >= 0, 1.0, -1.0)


def batch_norm(c, gamma, beta, mean, var) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.weight.copy_(gamma)
        bn.bias.copy_(beta)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
    return bn


class BnSignNet(nn.Module):
    def __init__(self, cin, cmid, gamma, beta, mean, var, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w1 = nn.Parameter(torch.randn(cmid, cin, 3, 3, generator=g))
        self.w2 = nn.Parameter(torch.randn(4, cmid, 3, 3, generator=g))
        self.bn = batch_norm(cmid, gamma, beta, mean, var)

    def forward(self, x):
        y = F.conv2d(binarize(x), torch.sign(self.w1), padding=1)
        y = binarize(self.bn(y))
        return F.conv2d(y, torch.sign(self.w2), padding=1)


def _params(kind: str, c: int, k: int, rng: np.random.Generator):
    f = lambda a: torch.tensor(np.asarray(a, dtype=np.float32))
    mean = rng.integers(-k, k + 1, c).astype(np.float32)  # boundary on an integer dot
    var = rng.uniform(0.1, 4.0, c)
    gamma = rng.uniform(0.5, 2.0, c) * rng.choice([-1.0, 1.0], c)
    beta = np.zeros(c)
    if kind == "negative_zero_gamma":
        gamma[::3] = 0.0
        beta[::3] = rng.choice([-1.0, 0.0, 1.0], len(beta[::3]))
    elif kind == "tiny_gamma":
        gamma = rng.choice([-1.0, 1.0], c) * 1e-30
        beta = rng.uniform(-1e-30, 1e-30, c)
    elif kind == "huge_beta":
        beta = rng.choice([-1e6, 1e6, 3e38, -3e38], c)
    elif kind == "fractional_mean":
        mean = mean + rng.choice([0.5, -0.5, 1e-3, 0.49999997], c)
        beta = rng.uniform(-0.1, 0.1, c)
    return f(gamma), f(beta), f(mean), f(var)


KINDS = ["boundary", "negative_zero_gamma", "tiny_gamma", "huge_beta", "fractional_mean"]


@pytest.mark.parametrize("kind", KINDS)
def test_bn_sign_thresholds_match_eager(kind):
    cin, cmid = 8, 70  # 70 channels: two packed words, a partial one
    rng = np.random.default_rng(KINDS.index(kind))
    model = BnSignNet(cin, cmid, *_params(kind, cmid, 9 * cin, rng)).eval()
    x = torch.randn(2, cin, 6, 5)
    cm = bnnc.compile(model, (x,))
    for xi in (x, torch.randn_like(x), torch.randn_like(x) * 5):
        ref = model(xi)
        got = cm(xi)
        assert torch.equal(got, ref), f"{(got != ref).sum().item()} of {ref.numel()} differ"


def test_default_pipeline_fuses_bn_sign_into_thresholds():
    model = BnSignNet(8, 70, *_params("boundary", 70, 72, np.random.default_rng(0))).eval()
    module = import_program(export_module(model, (torch.randn(1, 8, 6, 5),)))
    run_passes(module, ",".join(GRAPH_PASSES), make_context())
    ops = op_counts(module)
    assert ops["bnn.batch_norm"] == ops["bnn.conv2d"] == 0 and ops["bnn.bconv2d"] > 0, ops
    convs = [op for op in module.walk() if isinstance(op, bnn.BConv2dOp)]
    assert sum(op.threshold is not None for op in convs) == 1, "the first conv's BN + sign becomes thresholds"
    assert any(op.correction is not None for op in convs), "zero padding becomes a correction"


# ---------------------------------------------------------------- fuse-bn-pack


class BnPackNet(nn.Module):
    """concat -> BN -> binarize -> binary conv (+-1 weights): BinaryDenseNet's
    layer; the output is an exact integer, so every bit must be PyTorch's."""

    def __init__(self, cin, gamma, beta, mean, var, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(4, 2 * cin, 3, 3, generator=g))
        self.bn = batch_norm(2 * cin, gamma, beta, mean, var)

    def forward(self, x):
        y = binarize(self.bn(torch.cat([x, 3 * x], 1)))
        return F.conv2d(y, torch.sign(self.w), padding=1)


def _adversarial_input(shape, rng: np.random.Generator, scale: float) -> torch.Tensor:
    """Normal values, and in places +-0, the f32 subnormals' ends, +-1e38
    (finite after the concat's 3 x: an infinity times a zero gamma is NaN,
    which where(x >= 0, 1, -1) makes -1 and bnn.sign +1, with or without
    this fusion)."""
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    special = np.array([0.0, -0.0, 1e-45, -1e-45, 1.1754942e-38, -1.1754942e-38, 1e38, -1e38], np.float32)
    mask = rng.random(shape) < 0.1
    x[mask] = rng.choice(special, int(mask.sum()))
    return torch.from_numpy(x)


@pytest.mark.parametrize("kind", KINDS)
def test_bn_pack_thresholds_match_eager(kind):
    """The batch norm folds into the pack's thresholds (none left) and every
    bit equals PyTorch's, on means that put the boundary on inputs, negative,
    zero and tiny gamma, huge beta, and adversarial inputs."""
    cin = 35  # 70 channels after the concat: two packed words, a partial one
    rng = np.random.default_rng(100 + KINDS.index(kind))
    gamma, beta, mean, var = _params(kind, 2 * cin, 10, rng)
    if kind == "negative_zero_gamma":  # gamma 0 with beta < 0 has no threshold: beta >= 0 here
        beta = beta.abs()
    model = BnPackNet(cin, gamma, beta, mean, var).eval()
    x = torch.randn(2, cin, 6, 5)
    module = import_program(export_module(model, (x,)))
    run_passes(module, ",".join(GRAPH_PASSES), make_context())
    ops = op_counts(module)
    assert ops["bnn.batch_norm"] == 0 and ops["bnn.pack"] == 1, ops
    cm = bnnc.compile(model, (x,))
    for scale in (1.0, 10.0, 1e-3):
        xi = _adversarial_input(tuple(x.shape), rng, scale)
        xi[0, :, 0, 0] = mean[:cin]  # on the boundary of channels 0..cin-1
        ref, got = model(xi), cm(xi)
        assert torch.equal(got, ref), f"{(got != ref).sum().item()} of {ref.numel()} differ"


def _rounds_negative(x: float, scale: float, shift: float) -> bool:
    """f32(x * scale + shift), rounded once, < 0: exactly, with fractions."""
    from fractions import Fraction

    if np.isinf(x):
        with np.errstate(invalid="ignore"):
            v = x * scale + shift  # +-inf, or NaN when scale is 0
        return bool(v < 0)
    return Fraction(float(x)) * Fraction(float(scale)) + Fraction(float(shift)) < Fraction(-1, 2**150)


def test_pack_thresholds_decide_like_the_rounded_fma():
    """pack_thresholds against an exact evaluation, at the threshold and its
    neighbours (where a wrong rounding would show), random values, zeros,
    subnormals and infinities, for scales and shifts from tiny to huge."""
    from bnnc.passes.fuse_bn_pack import pack_thresholds

    rng = np.random.default_rng(7)
    scale = np.concatenate([
        rng.standard_normal(40), rng.choice([-1, 1], 10) * 1e-30, rng.choice([-1, 1], 10) * 1e30,
        [1.0, -1.0, 0.0, -0.0, 3.0, 1e-45],
    ]).astype(np.float32)
    shift = np.concatenate([
        rng.standard_normal(40), rng.standard_normal(10) * 1e-30, rng.choice([-1e38, 1e38, 0.5], 10),
        [-2.0, 0.5, 1.0, 0.0, 1e-45, -1e-45],
    ]).astype(np.float32)
    threshold, direction = pack_thresholds(scale, shift)
    specials = np.array([0.0, -0.0, 1e-45, -1e-45, np.inf, -np.inf, 3.4028235e38, -3.4028235e38], np.float32)
    for c in range(scale.size):
        t = threshold[c]
        near = [t, -t] if np.isfinite(t) else []
        for v in list(near):
            for direction_of_step in (np.inf, -np.inf):
                step = np.float32(v)
                for _ in range(3):
                    step = np.nextafter(step, np.float32(direction_of_step))
                    near.append(step)
        for x in [*near, *rng.standard_normal(20).astype(np.float32), *specials]:
            x = np.float32(x)
            with np.errstate(invalid="ignore", over="ignore"):
                got = bool(np.float32(x * direction[c]) < t)
            assert got == _rounds_negative(x, scale[c], shift[c]), (c, scale[c], shift[c], x, t, direction[c])


def test_pack_thresholds_refuse_a_constant_bit_for_finite_values_only():
    """gamma 0 with a negative shift: bit 1 for finite x, 0 for +-inf (0 * inf
    is NaN); no threshold says that, so the batch norm stays."""
    from bnnc.passes.fuse_bn_pack import pack_thresholds

    assert pack_thresholds(np.float32([1.0, 0.0]), np.float32([0.0, -1.0])) is None
    assert pack_thresholds(np.float32([np.inf]), np.float32([0.0])) is None
    assert pack_thresholds(np.float32([1.0]), np.float32([np.nan])) is None


class ResidualBnPackNet(BnSignNet):
    """binary conv + shortcut -> BN -> binarize -> binary conv (the
    batch-norm-before-sign block of ResNetE): the shortcut's sum is written
    channels-last, so the thresholded pack reads N x H x W x C."""

    def __init__(self, c, gamma, beta, mean, var, seed=1):
        super().__init__(c, c, gamma, beta, mean, var, seed)

    def forward(self, x):
        y = F.conv2d(binarize(x), torch.sign(self.w1), padding=1) * 0.25 + x
        return F.conv2d(binarize(self.bn(y)), torch.sign(self.w2), padding=1)


def test_bn_pack_thresholds_on_a_channels_last_residual_sum():
    c = 70
    rng = np.random.default_rng(3)
    gamma, beta, mean, var = _params("fractional_mean", c, 8, rng)
    model = ResidualBnPackNet(c, gamma, beta, mean, var).eval()
    x = torch.randn(1, c, 12, 12)
    module = import_program(export_module(model, (x,)))
    run_passes(module, ",".join(GRAPH_PASSES), make_context())
    packs = [op for op in module.walk() if isinstance(op, bnn.PackOp) and op.threshold is not None]
    assert len(packs) == 1 and packs[0].channels_last is not None, str(module)
    assert op_counts(module)["bnn.batch_norm"] == 0
    cm = bnnc.compile(model, (x,))
    for xi in (x, _adversarial_input(tuple(x.shape), rng, 4.0)):
        ref, got = model(xi), cm(xi)
        assert torch.equal(got, ref), f"{(got != ref).sum().item()} of {ref.numel()} differ"
