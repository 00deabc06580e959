"""Cancellation in a float output: a linear layer's output much smaller than
its terms, which float32 cannot compute to within rtol of itself (the
oracle's "Cancellation" rule, test/differential.py). Fuzz seed 20261314
graph 27 found it: through ONNX, bnnc's float output 0.0011 was 4.1e-7 from
the float64 value (0.6 ulp of its terms' magnitude 12, 1352 terms), over a
tolerance of 1.1e-7 relative to the output itself."""

from __future__ import annotations

import json
import tempfile

import pytest
import torch
from differential import CANCEL_LAMBDA, assert_matches_torch
from graph_models import build
from torch import nn

from bnnc.driver import CompileOptions, jit
from bnnc.driver import build as bnnc_build

FUZZ_20261314_27 = json.loads(
    '{"blocks": [{"kind": "float", "op": "slice_c"}], "classes": 1, "head": "flatten", '
    '"input": [1, 4, 13, 13], "seed": 6645, "stem": 16}'
)


class _CancellingHead(nn.Module):
    """A linear output of ~1e-3 from 1000 terms of magnitude ~1e-2 each."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.fc = nn.Linear(1000, 1)
        with torch.no_grad():
            self.fc.weight.copy_(torch.rand(1, 1000, generator=g) + 0.5)
            self.fc.bias.zero_()
        x = torch.rand(1, 1000, generator=g) * 0.02 - 0.01
        x[0, 0] -= float(self.fc(x).item()) / float(self.fc.weight[0, 0]) - 1e-3 / float(self.fc.weight[0, 0])
        self.x = x

    def forward(self, x):
        return self.fc(x)


def _exact_and_magnitude(model: _CancellingHead) -> tuple[float, float]:
    m64 = model.fc.double()
    x64 = model.x.double()
    exact = float(m64(x64))
    mag = float(x64.abs() @ m64.weight.abs().T + m64.bias.abs())
    model.fc.float()
    return exact, mag


def test_the_example_cancels():
    model = _CancellingHead()
    exact, mag = _exact_and_magnitude(model)
    assert abs(exact - 1e-3) < 1e-6 and mag > 1.0, "the output is 1e-3 from terms of total magnitude > 1"


@pytest.mark.parametrize("ulps", [2.0, 5.0])
def test_rounding_of_the_terms_is_accepted(ulps):
    """A compiled output a few ulp of the terms' magnitude from the exact value
    (what another summation order gives) is explained, though it is far
    outside rtol of the output itself."""
    model = _CancellingHead()
    exact, mag = _exact_and_magnitude(model)
    got = torch.tensor([[exact + ulps * mag * 2.0**-24]], dtype=torch.float32)
    verdict = assert_matches_torch(model, (model.x,), got)
    assert verdict.explained and "cancellation" in verdict


@pytest.mark.parametrize("error", [3.0, 0.3])
def test_a_wrong_linear_output_is_still_rejected(error):
    """Beyond the rounding bound (a dropped term, a wrong weight) the output is
    a mismatch: the bound is CANCEL_LAMBDA * sqrt(n) ulp of the terms, not
    the output's size."""
    model = _CancellingHead()
    exact, mag = _exact_and_magnitude(model)
    bound = CANCEL_LAMBDA * 1000**0.5 * 2.0**-24 * mag
    got = torch.tensor([[exact + error * 1e-3 + 2 * bound]], dtype=torch.float32)
    with pytest.raises(AssertionError, match="NOT explained"):
        assert_matches_torch(model, (model.x,), got)


def test_fuzz_20261314_graph_27_through_onnx():
    """The fuzz graph itself: stem conv, BN, a channel slice, flatten, a
    1352-input linear; compiled from its ONNX export it matches (explained by
    cancellation or exactly), and so does the JIT build from PyTorch."""
    model, x = build(FUZZ_20261314_27)
    options = CompileOptions(num_threads=8, check_bounds=True)
    assert_matches_torch(model, (x,), jit(bnnc_build(model, (x,), options))(x))
    with tempfile.TemporaryDirectory() as tmp:
        torch.onnx.export(model, (x,), tmp + "/m.onnx", dynamo=True, external_data=False, verbose=False)
        from_onnx = jit(bnnc_build(tmp + "/m.onnx", None, options))
        assert_matches_torch(model, (x,), from_onnx(x))
