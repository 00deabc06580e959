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


class BnSignNet(nn.Module):
    def __init__(self, cin, cmid, gamma, beta, mean, var, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w1 = nn.Parameter(torch.randn(cmid, cin, 3, 3, generator=g))
        self.w2 = nn.Parameter(torch.randn(4, cmid, 3, 3, generator=g))
        self.bn = nn.BatchNorm2d(cmid)
        with torch.no_grad():
            self.bn.weight.copy_(gamma)
            self.bn.bias.copy_(beta)
            self.bn.running_mean.copy_(mean)
            self.bn.running_var.copy_(var)

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
