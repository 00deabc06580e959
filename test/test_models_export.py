"""The model zoo itself: every model runs, is not trivial, and exports.

These tests need no bnnc: they check that the zoo is a fair input for it."""

from __future__ import annotations

import bnn_models as bm
import pytest
import torch
from differential import run_traced

FACTORIES = {f.__name__.removeprefix("make_"): f for f in bm.MODEL_FACTORIES}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_model_runs_and_is_nontrivial(name):
    model, x = FACTORIES[name](0)
    assert not model.training
    with torch.no_grad():
        y1 = model(x)
        x2 = torch.randn((2,) + tuple(x.shape[1:]))
        y2 = model(x2)
    assert y1.shape[0] == 1 and y2.shape[0] == 2
    assert torch.isfinite(y1).all() and torch.isfinite(y2).all()
    # outputs depend on the input and are not constant across classes
    assert not torch.allclose(y2[0], y2[1], rtol=1e-4, atol=1e-4)
    assert float(y1.std()) > 1e-3
    # deterministic factory
    model_b, x_b = FACTORIES[name](0)
    assert torch.equal(x, x_b)
    with torch.no_grad():
        assert torch.equal(model_b(x), y1)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_binarizers_see_balanced_signs(name):
    """Every activation binarizer sees both signs (BN stats are calibrated):
    otherwise a miscompiled binary layer could hide behind a constant. The
    zoo's binarizers compare with 0; the tracer's records of comparisons with
    another threshold are its clamps' tests (x < -1 is rarely true), left out."""
    model, x = FACTORIES[name](0)
    x = torch.randn((2,) + tuple(x.shape[1:]))
    _, records = run_traced(model, (x,))
    for i, r in enumerate(records):
        if r.threshold:
            continue
        pos = float((r.values >= 0).double().mean())
        assert 0.02 < pos < 0.98, f"binarizer #{i} ({r.kind}) of {name}: {pos:.3f} of inputs >= 0"


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("batch", [1, 2])
def test_model_exports(name, batch):
    model, x = FACTORIES[name](0)
    x = torch.randn((batch,) + tuple(x.shape[1:]))
    ep = torch.export.export(model.eval(), (x,))
    out = ep.module()(x)
    with torch.no_grad():
        ref = model(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
