"""Frontend errors: unsupported ops, torch.sign after relu, bad inputs, model file loaders."""

from __future__ import annotations

import os
import pickle
import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from ir_helpers import op_counts

from bnnc.errors import ModelLoadError, UnsupportedError
from bnnc.frontend.loaders import load_model_file
from bnnc.frontend.torch_import import export_module, import_program

HERE = os.path.basename(__file__)


class Upsample(nn.Module):
    """An op bnnc does not compile (sorting) inside nested modules."""

    def forward(self, x):
        return torch.sort(x, dim=-1).values


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv2 = Upsample()

    def forward(self, x):
        return self.conv2(x)


class Deep(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Sequential(Layer())

    def forward(self, x):
        return self.layer1(x) * 2


def test_unsupported_op_names_op_module_and_line():
    ep = export_module(Deep(), (torch.randn(1, 2, 4, 4),))
    with pytest.raises(UnsupportedError) as info:
        import_program(ep)
    msg = str(info.value)
    assert "aten.sort" in msg
    assert "layer1.0.conv2" in msg
    # the user's line, not torch's nn.Upsample internals
    assert re.search(re.escape(HERE) + r":\d+", msg), msg
    assert "hint:" in msg


class SignAfterRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)

    def forward(self, x):
        return F.conv2d(torch.sign(F.relu(x)), torch.sign(self.conv.weight))


def test_torch_sign_after_relu_is_unipolar():
    """torch.sign(relu(x)) is {0, 1}: compiled exactly, as a binary conv in its popcount form."""
    from differential import assert_matches_torch

    import bnnc
    from bnnc.context import make_context
    from bnnc.pipeline import run_passes

    torch.manual_seed(0)
    model = SignAfterRelu().eval()
    x = torch.randn(1, 3, 5, 5)
    module = import_program(export_module(model, (x,)))
    assert "bnn.signum" in str(module)  # the import is faithful
    run_passes(module, "recognize-binarization,fold-weight-binarization,canonicalize,dce", make_context())
    assert "bnn.bconv2d" in str(module) and "bnn.signum" not in str(module), str(module)
    with torch.no_grad():
        assert_matches_torch(model, (x,), bnnc.compile(model, (x,))(x))


def test_torch_sign_of_integer_accumulator_stays_exact():
    """torch.sign of a bias-free binary conv's accumulator is three-valued: a float op, never binarize."""
    from differential import assert_matches_torch

    import bnnc

    class TwoLayers(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(4, 4, 1, bias=False)
            self.b = nn.Conv2d(4, 4, 3, bias=False)

        def forward(self, x):
            h = F.conv2d(torch.where(x >= 0, 1.0, -1.0), torch.sign(self.a.weight))
            return F.conv2d(torch.sign(h), torch.sign(self.b.weight))

    torch.manual_seed(0)
    model = TwoLayers().eval()
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        acc = F.conv2d(torch.where(x >= 0, 1.0, -1.0), torch.sign(model.a.weight))
    assert (acc == 0).any()  # the case that matters: exact zeros PyTorch's sign keeps
    with torch.no_grad():
        assert_matches_torch(model, (x,), bnnc.compile(model, (x,))(x), exact=True)


class Plain(nn.Module):
    def forward(self, x):
        return x * 2


def test_dynamic_shape_refused():
    batch = torch.export.Dim("batch", min=2, max=64)
    ep = torch.export.export(Plain(), (torch.randn(4, 3),), dynamic_shapes={"x": {0: batch}})
    with pytest.raises(UnsupportedError, match=r"input `x`.*dynamic shape"):
        import_program(ep)


def test_non_f32_input_refused():
    ep = torch.export.export(Plain(), (torch.randn(4, 3, dtype=torch.float64),))
    with pytest.raises(UnsupportedError, match=r"input `x`.*float64"):
        import_program(ep)


def test_export_failure_is_unsupported_error():
    class DataDependent(nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x
            return -x

    with pytest.raises(UnsupportedError, match="torch.export"):
        export_module(DataDependent(), (torch.randn(2, 2),))


# ----------------------------------------------------------------- loaders


def _tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()


EXAMPLE = (torch.randn(1, 3, 8, 8),)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        load_model_file(str(tmp_path / "nope.pt2"))
    with pytest.raises(ModelLoadError, match="directory"):
        load_model_file(str(tmp_path))
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        load_model_file(str(empty))


def test_not_a_model_file(tmp_path):
    p = tmp_path / "model.pt2"
    p.write_text("hello, I am not a model\n")
    with pytest.raises(ModelLoadError, match="not a torch.export archive"):
        load_model_file(str(p))


def test_pt2_roundtrip_and_truncated(tmp_path):
    p = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(_tiny(), EXAMPLE), str(p))
    assert "bnn.conv2d" in str(import_program(load_model_file(str(p))))
    data = p.read_bytes()
    t = tmp_path / "trunc.pt2"
    t.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated"):
        load_model_file(str(t))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_arbitrary_pickle_refused_without_trust(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pt"
    with open(p, "wb") as f:
        pickle.dump(_Payload(str(marker)), f)
    with pytest.raises(ModelLoadError, match="arbitrary code"):
        load_model_file(str(p))
    assert not marker.exists(), "the pickle's payload ran"
    # the same for the zip flavour of torch.save
    z = tmp_path / "evil_zip.pt"
    torch.save(_Payload(str(marker)), str(z))
    with pytest.raises(ModelLoadError, match="arbitrary code"):
        load_model_file(str(z))
    assert not marker.exists(), "the pickle's payload ran"


def test_trusted_pickle_module_loads(tmp_path):
    p = tmp_path / "m.pt"
    torch.save(_tiny(), str(p))
    ep = load_model_file(str(p), trust=True, example_inputs=EXAMPLE)
    assert "bnn.relu" in str(import_program(ep))


def test_torchscript_pt_loads(tmp_path):
    p = tmp_path / "script.pt"
    torch.jit.script(_tiny()).save(str(p))
    with pytest.raises(ModelLoadError, match="input-shape"):
        load_model_file(str(p))
    ep = load_model_file(str(p), example_inputs=EXAMPLE)
    ops = op_counts(import_program(ep))
    assert ops["bnn.conv2d"] > 0 and ops["bnn.relu"] > 0, ops
