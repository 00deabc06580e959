"""bnnc's Python API: bnnc.compile, its errors, and torch.compile(backend="bnnc")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import bnnc
from bnnc import errors


class BinaryConv(nn.Conv2d):
    """XNOR-Net style: sign(W) scaled by the per-channel mean |W|."""

    def forward(self, x):
        w = self.weight
        alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
        return F.conv2d(x, torch.sign(w) * alpha, None, self.stride, self.padding)


class SmallBNN(nn.Module):
    """sign -> binary conv with alpha -> BN -> fp linear."""

    def __init__(self, cin=8, cout=16, hw=6, classes=10):
        super().__init__()
        self.conv = BinaryConv(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.fc = nn.Linear(cout * hw * hw, classes)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.5, 2)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        x = self.bn(self.conv(torch.sign(x)))
        return self.fc(torch.flatten(x, 1))


class TwoInTwoOut(nn.Module):
    """Two inputs, a tuple of two outputs."""

    def __init__(self):
        super().__init__()
        self.conv = BinaryConv(8, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x, y):
        a = self.bn(self.conv(torch.sign(x))) + y
        b = x * 2.0 - y
        return a, b


class Upsampler(nn.Module):
    def forward(self, x):
        return torch.sort(x, dim=-1).values  # an op bnnc does not compile


class WithUnsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(8, 8, 1)
        self.up = Upsampler()

    def forward(self, x):
        return self.up(self.head(x))


SHAPE = (1, 8, 6, 6)


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    model = SmallBNN().eval()
    x = torch.randn(*SHAPE)
    return model, x, bnnc.compile(model, (x,))


def test_torch_in_torch_out(small):
    model, x, fast = small
    y = fast(x)
    ref = model(x).detach()
    assert isinstance(y, torch.Tensor)
    assert y.shape == ref.shape and y.dtype == ref.dtype
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4)
    # other inputs of the same shape
    x2 = torch.randn(*SHAPE)
    torch.testing.assert_close(fast(x2), model(x2).detach(), rtol=1e-4, atol=1e-4)


def test_numpy_in_numpy_out(small):
    model, x, fast = small
    y = fast(x.numpy())
    assert isinstance(y, np.ndarray)
    assert y.dtype == np.float32 and y.shape == tuple(model(x).shape)
    np.testing.assert_allclose(y, model(x).detach().numpy(), rtol=1e-4, atol=1e-4)


def test_single_tensor_example_input():
    model = SmallBNN().eval()
    x = torch.randn(*SHAPE)
    fast = bnnc.compile(model, x)
    torch.testing.assert_close(fast(x), model(x).detach(), rtol=1e-4, atol=1e-4)


def test_compiling_keeps_the_callers_training_mode():
    # bnnc compiles the inference function (BN with running statistics), but a
    # model in training mode stays in training mode for the caller
    torch.manual_seed(1)
    model = SmallBNN().train()
    x = torch.randn(*SHAPE)
    fast = bnnc.compile(model, (x,))
    assert model.training and all(m.training for m in model.modules())
    torch.testing.assert_close(fast(x), model.eval()(x).detach(), rtol=1e-4, atol=1e-4)


def test_multiple_inputs_and_outputs():
    model = TwoInTwoOut().eval()
    x, y = torch.randn(*SHAPE), torch.randn(*SHAPE)
    fast = bnnc.compile(model, (x, y))
    out = fast(x, y)
    ref = model(x, y)
    assert isinstance(out, tuple) and len(out) == 2
    for got, want in zip(out, ref):
        assert got.shape == want.shape and got.dtype == want.dtype
        torch.testing.assert_close(got, want.detach(), rtol=1e-4, atol=1e-4)
    out_np = fast(x.numpy(), y.numpy())
    assert isinstance(out_np, tuple) and all(isinstance(o, np.ndarray) for o in out_np)
    with pytest.raises(bnnc.InputError, match=r"expected 2 input\(s\).*\[1, 8, 6, 6\].*got 1"):
        fast(x)


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda: torch.randn(1, 8, 7, 7), r"expected shape \[1, 8, 6, 6\], got \[1, 8, 7, 7\]"),
        (lambda: torch.randn(8, 6, 6), r"expected shape \[1, 8, 6, 6\], got \[8, 6, 6\]"),
        (lambda: np.zeros((1, 8, 5, 6), np.float32), r"expected shape \[1, 8, 6, 6\]"),
        (lambda: torch.randn(*SHAPE, dtype=torch.float64), r"float32\[1, 8, 6, 6\].*float64"),
        (lambda: torch.randint(0, 3, SHAPE), r"float32\[1, 8, 6, 6\].*int64"),
        (lambda: np.zeros(SHAPE), r"float32\[1, 8, 6, 6\].*float64"),
        (lambda: [[0.0] * 6] * 6, r"expected a torch.Tensor or numpy.ndarray, got list"),
        (lambda: 3.0, r"expected a torch.Tensor or numpy.ndarray, got float"),
    ],
)
def test_bad_inputs_raise_input_error(small, bad, message):
    _, _, fast = small
    with pytest.raises(bnnc.InputError, match=message):
        fast(bad())


def test_wrong_count_states_expected_shape(small):
    _, x, fast = small
    with pytest.raises(bnnc.InputError, match=r"expected 1 input\(s\) \(float32\[1, 8, 6, 6\]\), got 2"):
        fast(x, x)
    with pytest.raises(bnnc.InputError, match=r"float32\[1, 8, 6, 6\].*got 0"):
        fast()


def test_unsupported_op_raises_unsupported_error():
    with pytest.raises(bnnc.UnsupportedError) as info:
        bnnc.compile(WithUnsupported().eval(), (torch.randn(*SHAPE),))
    msg = str(info.value)
    assert "aten.sort" in msg and "up" in msg and "test_api.py:" in msg


def test_module_without_example_inputs():
    with pytest.raises(bnnc.UnsupportedError, match="example_inputs"):
        bnnc.compile(SmallBNN().eval())


def test_non_model_is_refused():
    with pytest.raises(bnnc.BnncError, match="cannot compile a int"):
        bnnc.compile(42)


@pytest.mark.parametrize("target", ["aarch64", "x86_64", "mips"])
def test_non_host_target_raises_target_error(target):
    with pytest.raises(bnnc.TargetError, match=f"not '{target}'"):
        bnnc.compile(SmallBNN().eval(), (torch.randn(*SHAPE),), target=target)


def test_unknown_cpu_and_malformed_features_raise_target_error():
    model, x = SmallBNN().eval(), torch.randn(*SHAPE)
    with pytest.raises(bnnc.TargetError, match="unknown cpu 'nosuchcpu'"):
        bnnc.compile(model, (x,), cpu="nosuchcpu")
    with pytest.raises(bnnc.TargetError, match="malformed feature 'avx2'"):
        bnnc.compile(model, (x,), features="avx2")


def test_unknown_pass_raises_pass_error():
    with pytest.raises(bnnc.PassError, match="nope"):
        bnnc.compile(SmallBNN().eval(), (torch.randn(*SHAPE),), pipeline="bnn=canonicalize,nope")


def test_compile_exported_program_and_pt2_path(tmp_path):
    model = SmallBNN().eval()
    x = torch.randn(*SHAPE)
    ep = torch.export.export(model, (x,))
    ref = model(x).detach()
    torch.testing.assert_close(bnnc.compile(ep)(x), ref, rtol=1e-4, atol=1e-4)
    path = tmp_path / "small.pt2"
    torch.export.save(ep, path)
    torch.testing.assert_close(bnnc.compile(str(path))(x), ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(bnnc.compile(path)(x), ref, rtol=1e-4, atol=1e-4)  # a pathlib.Path


def test_compile_mlir_path(tmp_path):
    """A .mlir file of bnn IR (what `bnnc compile --emit=bnn` writes) compiles
    through the API as through the CLI; its function must be @forward (the API's name)."""
    import io

    from xdsl.printer import Printer

    from bnnc.driver import import_model

    model = SmallBNN().eval()
    x = torch.randn(*SHAPE)
    text = io.StringIO()
    Printer(stream=text).print_op(import_model(model, (x,)))
    path = tmp_path / "small.mlir"
    path.write_text(text.getvalue())
    torch.testing.assert_close(bnnc.compile(str(path))(x), model(x).detach(), rtol=1e-4, atol=1e-4)
    renamed = tmp_path / "renamed.mlir"
    renamed.write_text(text.getvalue().replace("@forward", "@net"))
    with pytest.raises(bnnc.errors.IRError, match="no function @forward; its functions: @net"):
        bnnc.compile(renamed)
    broken = tmp_path / "broken.mlir"
    broken.write_text("builtin.module {\n  func.func @forward(")
    with pytest.raises(bnnc.errors.IRError, match="broken.mlir"):
        bnnc.compile(broken)


def test_model_file_errors(tmp_path):
    with pytest.raises(bnnc.ModelLoadError, match="no such file"):
        bnnc.compile(str(tmp_path / "missing.pt2"))
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(b"\x00not a zip" * 100)
    with pytest.raises(bnnc.ModelLoadError, match="junk.pt2"):
        bnnc.compile(str(junk))
    pickled = tmp_path / "state.pt"
    torch.save({"w": torch.zeros(2)}, pickled)
    with pytest.raises(bnnc.ModelLoadError, match="arbitrary code"):
        bnnc.compile(str(pickled))


def test_error_classes_are_bnnc_errors():
    for cls in (
        bnnc.UnsupportedError,
        bnnc.ModelLoadError,
        bnnc.InputError,
        bnnc.TargetError,
        bnnc.PassError,
        bnnc.IRError,
    ):
        assert issubclass(cls, bnnc.BnncError)
        assert issubclass(cls, Exception)
    # every exception class errors.py defines is exported; all but InternalError
    # (a bnnc bug, exit 3) are BnncErrors, the errors a user can act on
    defined = {v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, BaseException)}
    assert defined <= {getattr(bnnc, c.__name__, None) for c in defined}
    assert {c for c in defined if not issubclass(c, bnnc.BnncError)} == {bnnc.InternalError}
    assert issubclass(bnnc.TracingError, bnnc.ModelLoadError)


def test_repr_describes_signature(small):
    _, _, fast = small
    assert "float32[1, 8, 6, 6]" in repr(fast) and "float32[1, 10]" in repr(fast)


# ---------------------------------------------------------------------------
# torch.compile(model, backend="bnnc")
# ---------------------------------------------------------------------------


@pytest.fixture
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_torch_compile_backend_matches_eager(fresh_dynamo):
    model = SmallBNN().eval()
    x = torch.randn(*SHAPE)
    compiled = torch.compile(model, backend="bnnc")
    with torch.no_grad():
        out = compiled(x)
        ref = model(x)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    x2 = torch.randn(*SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x2), model(x2), rtol=1e-4, atol=1e-4)


def test_torch_compile_backend_tuple_outputs(fresh_dynamo):
    model = TwoInTwoOut().eval()
    x, y = torch.randn(*SHAPE), torch.randn(*SHAPE)
    with torch.no_grad():
        out = torch.compile(model, backend="bnnc")(x, y)
        ref = model(x, y)
    assert len(out) == 2
    for got, want in zip(out, ref):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_torch_compile_backend_unsupported_graph_runs_eagerly(fresh_dynamo):
    """A graph bnnc cannot compile runs in eager PyTorch with a warning naming
    the op (test_torch_compile.py covers the backend in depth)."""
    from bnnc.torch_backend import BnncFallbackWarning

    model = WithUnsupported().eval()
    compiled = torch.compile(model, backend="bnnc")
    x = torch.randn(*SHAPE)
    with torch.no_grad(), pytest.warns(BnncFallbackWarning, match="aten.sort"):
        torch.testing.assert_close(compiled(x), model(x))
