"""Every model of the zoo, compiled by bnnc and compared with PyTorch eager."""

from __future__ import annotations

import pytest
import torch

import bnn_models as bm
from differential import assert_matches_torch

FACTORIES = {f.__name__.removeprefix("make_"): f for f in bm.MODEL_FACTORIES}


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_model_matches_eager(bnnc_compile, name, batch):
    model, x = FACTORIES[name](0)
    x = torch.randn((batch,) + tuple(x.shape[1:]))
    cm = bnnc_compile(model, (x,), target="host")
    # the example input, fresh inputs, and scaled inputs (other sign patterns)
    inputs = [x, torch.randn_like(x), torch.randn_like(x) * 3.0]
    for xi in inputs:
        out = cm(xi)
        assert_matches_torch(model, (xi,), out)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_model_other_seeds(bnnc_compile, name, seed):
    model, x = FACTORIES[name](seed)
    cm = bnnc_compile(model, (x,), target="host")
    for xi in (x, torch.randn_like(x)):
        assert_matches_torch(model, (xi,), cm(xi))


@pytest.mark.parametrize("name", ["bireal", "xnornet", "odd_shapes"])
def test_model_numpy_io(bnnc_compile, name):
    model, x = FACTORIES[name](0)
    cm = bnnc_compile(model, (x,), target="host")
    out = cm(x.numpy())
    assert out.__class__.__module__ == "numpy"
    assert_matches_torch(model, (x,), out)
