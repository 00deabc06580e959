"""Dynamic batch (bnnc.dynamic_batch): one compiled function for any batch
size N, bit-identical to the fixed-batch builds, refused for models whose
samples interact, and runnable from the C example at several batch sizes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import bnnc
from bnnc.runtime.signature import Signature

ROOT = Path(__file__).resolve().parents[1]


class BinaryConv(nn.Conv2d):
    def forward(self, x):
        alpha = self.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
        return F.conv2d(x, torch.sign(self.weight) * alpha, None, self.stride, self.padding)


class TwoInTwoOut(nn.Module):
    """Two inputs and two outputs, so every buffer's per-sample stride is exercised."""

    def __init__(self):
        super().__init__()
        self.conv = BinaryConv(8, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, 5)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.5, 2)

    def forward(self, x, y):
        features = self.bn(self.conv(torch.sign(x)))
        logits = self.fc(features.view(features.size(0), -1)) + y
        return logits, features.permute(0, 2, 3, 1)


def inputs(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 8, 4, 4, generator=g), torch.randn(n, 5, generator=g)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TwoInTwoOut().eval()


@pytest.fixture(scope="module")
def dynamic(model):
    """The dynamic-batch build with 2 threads (they split the batch)."""
    return bnnc.compile(model, inputs(3), dynamic_batch=True, num_threads=2, cache=False)


def test_bit_identical_to_fixed_batch_builds(model, dynamic):
    assert dynamic.signature.dynamic_batch
    single = bnnc.compile(model, inputs(3), dynamic_batch=True, num_threads=1, cache=False)
    for n in (1, 5):
        fixed = bnnc.compile(model, inputs(n), num_threads=1, cache=False)
        got, want = dynamic(*inputs(n, seed=n)), fixed(*inputs(n, seed=n))
        for a, b in zip(got, want):
            assert a.shape == b.shape and torch.equal(a, b)
    for n in (1, 2, 3, 4, 7, 16):  # more and fewer samples than threads, uneven splits
        x = inputs(n, seed=100 + n)
        got, one_thread = dynamic(*x), single(*x)
        with torch.no_grad():
            want = model(*x)
        for a, b, c in zip(got, one_thread, want):
            assert a.shape == c.shape and torch.equal(a, b)
            torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-4)


def test_each_sample_is_independent_of_the_others(dynamic):
    x, y = inputs(6, seed=7)
    batch = dynamic(x, y)
    for i in range(6):
        alone = dynamic(x[i : i + 1], y[i : i + 1])
        for a, b in zip(batch, alone):
            assert torch.equal(a[i : i + 1], b)


def test_numpy_inputs_and_batch_mismatch(dynamic):
    x, y = (t.numpy() for t in inputs(4))
    logits, _ = dynamic(x, y)
    assert isinstance(logits, np.ndarray) and logits.shape == (4, 5)
    with pytest.raises(bnnc.InputError, match="same batch size"):
        dynamic(x, y[:3])
    with pytest.raises(bnnc.InputError, match=r"\[N, 8, 4, 4\]"):
        dynamic(x[:, :4], y)


class Summed(nn.Module):
    def forward(self, x):
        return torch.sign(x).sum(dim=0, keepdim=True)


class ScaledByBatch(nn.Module):
    def forward(self, x):
        return torch.sign(x) * x.shape[0]


class Flipped(nn.Module):
    def forward(self, x):
        return torch.flip(torch.sign(x), dims=[0])


class BatchNormalised(nn.Module):
    def forward(self, x):
        return x - x.mean(dim=0, keepdim=True)


class Cumulative(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, dim=0)


class Flattened(nn.Module):
    def forward(self, x):
        return torch.sign(x).reshape(-1)


class FixedBatch(nn.Module):
    def forward(self, x):
        return x.view(3, -1)


@pytest.mark.parametrize("cls", [Summed, ScaledByBatch, Flipped, BatchNormalised, Cumulative, Flattened, FixedBatch])
def test_models_whose_samples_interact_are_refused(cls):
    with pytest.raises(bnnc.UnsupportedError, match="dynamic batch") as info:
        bnnc.compile(cls().eval(), torch.randn(3, 4, 2), dynamic_batch=True, cache=False)
    assert "\n" not in str(info.value).split("hint")[0].strip()  # one line (plus an optional hint)


def test_signature_and_header_take_n():
    sig = Signature.from_json(
        '{"name": "m", "inputs": [{"shape": [1, 3], "dtype": "float32"}], '
        '"outputs": [{"shape": [1, 2], "dtype": "float32"}], "dynamic_batch": true}'
    )
    assert sig.dynamic_batch and Signature.from_json(sig.to_json()) == sig
    assert sig.c_prototype() == "void m(long long n, const float *in0, float *out0);"
    abi = "\n".join(sig.c_generic_abi())
    assert "m(n, inputs[0], outputs[0]);" in abi and "m(1, inputs[0], outputs[0]);" in abi


def test_c_example_runs_two_batch_sizes(model, dynamic, tmp_path):
    """`bnnc compile --dynamic-batch` writes an object whose header takes N;
    examples/c builds a runner that reads N off the input file's size."""
    for tool in ("gcc", "make"):
        assert shutil.which(tool), f"{tool} is needed to build examples/c"
    batch = torch.export.Dim("batch")  # (a .pt2 exported at a fixed batch may have it baked into a reshape)
    program = torch.export.export(model, inputs(2), dynamic_shapes=({0: batch}, {0: batch}))
    torch.export.save(program, tmp_path / "pair.pt2")
    cli = [str(Path(shutil.which("bnnc") or ROOT / ".venv/bin/bnnc"))]
    result = subprocess.run(
        [*cli, "compile", str(tmp_path / "pair.pt2"), "--dynamic-batch", "--num-threads", "2", "--no-cache",
         "-o", str(tmp_path / "pair.o")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    header = (tmp_path / "pair.h").read_text()
    assert "void pair(long long n, const float *in0, const float *in1, float *out0, float *out1);" in header
    assert "#define PAIR_DYNAMIC_BATCH 1" in header
    build = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "examples/c"), f"MODEL={tmp_path / 'pair.o'}", f"OUT={tmp_path / 'run_model'}",
         "CFLAGS=-O2 -Wall -Wextra -Werror"],
        capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stderr
    for n in (2, 5):
        x, y = inputs(n, seed=n)
        x.numpy().tofile(tmp_path / "x.bin")
        y.numpy().tofile(tmp_path / "y.bin")
        run = subprocess.run(
            [str(tmp_path / "run_model"), *(str(tmp_path / f) for f in ("x.bin", "y.bin", "l.bin", "f.bin"))],
            capture_output=True, text=True,
        )
        assert run.returncode == 0, run.stderr
        logits, features = dynamic(x, y)
        assert np.array_equal(np.fromfile(tmp_path / "l.bin", dtype=np.float32).reshape(n, 5), logits.numpy())
        assert np.array_equal(np.fromfile(tmp_path / "f.bin", dtype=np.float32).reshape(n, 4, 4, 8), features.numpy())
    # a file that is not a whole number of samples is refused
    np.zeros(8 * 4 * 4 + 1, dtype=np.float32).tofile(tmp_path / "x.bin")
    bad = subprocess.run(
        [str(tmp_path / "run_model"), *(str(tmp_path / f) for f in ("x.bin", "y.bin", "l.bin", "f.bin"))],
        capture_output=True, text=True,
    )
    assert bad.returncode != 0 and "samples" in bad.stderr
