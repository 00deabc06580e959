"""torch.compile(model, backend="bnnc") in the ways PyTorch code calls it:
changing batch sizes, graph breaks, symbolic non-batch dimensions, training
mode, no_grad / inference_mode. Every result is compared with eager PyTorch."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch._dynamo.testing import CompileCounterWithBackend

import bnnc
import bnnc.driver
from bnnc.torch_backend import BnncFallbackWarning


class BinaryConv(nn.Conv2d):
    """sign(W) scaled by the per-channel mean |W| (XNOR-Net)."""

    def forward(self, x):
        alpha = self.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
        return F.conv2d(x, torch.sign(self.weight) * alpha, None, self.stride, self.padding)


class Tiny(nn.Module):
    """sign -> binary conv -> BN -> float linear: one binary layer, small enough to compile in a second."""

    def __init__(self, c: int = 8, hw: int = 4, classes: int = 5):
        super().__init__()
        self.conv = BinaryConv(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c * hw * hw, classes)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.5, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.bn(self.conv(torch.sign(x))), 1))


class WithGraphBreak(Tiny):
    """Data-dependent Python control flow on `.item()` and a print: Dynamo
    splits the forward into graphs around them."""

    def forward(self, x):
        y = self.bn(self.conv(torch.sign(x)))
        if y.mean().item() > 0:  # graph break: the branch depends on data
            print("positive mean")
            y = y * 2.0
        return self.fc(torch.flatten(y, 1))


class WithSecondInput(Tiny):
    """A second input whose last dimension changes between calls."""

    def forward(self, x, extra):
        return super().forward(x) + extra.sum(dim=1, keepdim=True)


class MixesSamples(Tiny):
    """Subtracts the batch mean: no dynamic-batch build, one build per batch size."""

    def forward(self, x):
        out = super().forward(x)
        return out - out.mean(dim=0, keepdim=True)


class Sorting(Tiny):
    def forward(self, x):
        return torch.sort(super().forward(x), dim=-1).values  # an op bnnc does not compile


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.fixture
def bnnc_builds(monkeypatch):
    """Counts bnnc's compiles (each ends in one driver.jit call)."""
    calls = []
    real = bnnc.driver.jit

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(bnnc.driver, "jit", counting)
    return calls


def close(got, want):
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_batch_sizes_1_2_5_1_match_eager_and_reuse_code(bnnc_builds):
    model = Tiny().eval()
    counter = CompileCounterWithBackend("bnnc")
    compiled = torch.compile(model, backend=counter)
    builds_after = []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", BnncFallbackWarning)  # nothing may fall back to eager
        for n in (1, 2, 5, 1):
            x = torch.randn(n, 8, 4, 4)
            close(compiled(x), model(x))
            builds_after.append(len(bnnc_builds))
    # Dynamo compiles batch 1 statically and, on seeing batch 2, once more with a symbolic batch.
    assert counter.frame_count <= 2
    # batch 1: a static build; batch 2: Dynamo's symbolic batch maps to one
    # dynamic-batch build, which serves 5 too; the second 1 reuses the first.
    assert builds_after == [1, 2, 2, 2]


def test_repeated_shapes_never_recompile(bnnc_builds):
    model = Tiny().eval()
    compiled = torch.compile(model, backend="bnnc")
    counts = []
    with torch.no_grad():
        for n in (3, 4, 3, 4, 3):
            x = torch.randn(n, 8, 4, 4)
            close(compiled(x), model(x))
            counts.append(len(bnnc_builds))
    # 3: static; 4: the dynamic-batch build (Dynamo tries its newest graph
    # first, so that build serves the later 3s as well)
    assert counts[2] == counts[-1] <= 2


def test_samples_that_interact_get_one_build_per_batch_size(bnnc_builds):
    model = MixesSamples().eval()
    compiled = torch.compile(model, backend="bnnc")
    counts = []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", BnncFallbackWarning)
        for n in (2, 3, 4, 3):
            x = torch.randn(n, 8, 4, 4)
            close(compiled(x), model(x))
            counts.append(len(bnnc_builds))
    assert counts == [1, 2, 3, 3]


def test_graph_break_matches_eager(bnnc_builds, capsys):
    model = WithGraphBreak().eval()
    counter = CompileCounterWithBackend("bnnc")
    compiled = torch.compile(model, backend=counter)
    with torch.no_grad():
        for _ in range(3):
            x = torch.randn(2, 8, 4, 4)
            close(compiled(x), model(x))
    assert counter.frame_count >= 2  # the forward was split
    assert len(bnnc_builds) >= 1  # the graph with the binary conv was compiled by bnnc


def test_symbolic_non_batch_dimension(bnnc_builds):
    model = WithSecondInput().eval()
    compiled = torch.compile(model, backend="bnnc")
    x = torch.randn(2, 8, 4, 4)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", BnncFallbackWarning)
        for length in (3, 4, 7, 4):
            extra = torch.randn(2, length)
            close(compiled(x, extra), model(x, extra))
    assert len(bnnc_builds) <= 3  # 3, 4, 7 (the second 4 is cached)


def test_inference_mode_matches_eager(bnnc_builds):
    model = Tiny().eval()
    compiled = torch.compile(model, backend="bnnc")
    with torch.inference_mode():
        for n in (1, 3):
            x = torch.randn(n, 8, 4, 4)
            close(compiled(x), model(x))
    assert len(bnnc_builds) >= 1


def test_unsupported_op_runs_eagerly_with_one_warning():
    model = Sorting().eval()
    compiled = torch.compile(model, backend="bnnc")
    with torch.no_grad(), pytest.warns(BnncFallbackWarning, match="aten.sort") as record:
        for _ in range(2):
            x = torch.randn(2, 8, 4, 4)
            close(compiled(x), model(x))
    messages = [str(w.message) for w in record if issubclass(w.category, BnncFallbackWarning)]
    assert len(messages) == 1 and "\n" not in messages[0]


def test_strict_mode_raises_the_bnnc_error():
    compiled = torch.compile(Sorting().eval(), backend="bnnc", options={"fallback": False})
    with pytest.raises(Exception) as info, torch.no_grad():
        compiled(torch.randn(2, 8, 4, 4))
    chain, e = [], info.value
    while e is not None:
        chain.append(e)
        e = e.__cause__ or e.__context__
    assert any(isinstance(e, bnnc.UnsupportedError) for e in chain), chain


def test_training_mode_is_refused_with_a_warning(bnnc_builds):
    model = Tiny().train()
    eager = Tiny().train()
    eager.load_state_dict(model.state_dict())
    compiled = torch.compile(model, backend="bnnc")
    x = torch.randn(4, 8, 4, 4)
    with torch.no_grad(), pytest.warns(BnncFallbackWarning, match="training mode.*model.eval"):
        close(compiled(x), eager(x))  # batch statistics, as PyTorch computes them
    assert not bnnc_builds
    close(model.bn.running_mean, eager.bn.running_mean)  # the buffer update happened, once


def test_calls_needing_gradients_run_eagerly(bnnc_builds):
    model = Tiny().eval()
    compiled = torch.compile(model, backend="bnnc")
    x = torch.randn(2, 8, 4, 4)
    with pytest.warns(BnncFallbackWarning, match="no_grad"):
        out = compiled(x)
    out.sum().backward()  # eager PyTorch kept the autograd graph
    assert model.fc.weight.grad is not None
    assert not bnnc_builds


def test_unknown_backend_option_is_an_error():
    compiled = torch.compile(Tiny().eval(), backend="bnnc", options={"nm_threads": 2})
    with pytest.raises(Exception, match="unknown bnnc backend option.*nm_threads.*num_threads"), torch.no_grad():
        compiled(torch.randn(2, 8, 4, 4))
