"""bnnc profile and per-layer timing: structure and consistency (no timing
thresholds: the machine is shared), and that timing is absent unless asked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnnc.cli import main
from bnnc.driver import CompileOptions, build, jit
from bnnc.profile import Roofline, layer_profiles, profile_model
from bnnc.summary import summarize_model

ROOT = Path(__file__).resolve().parents[1]
TFLITE = ROOT / "test/data/tflite/binary_chain.tflite"


class TinyNet(nn.Module):
    """float stem conv -> binary 3x3 conv 64->64 -> float linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 64, 3, padding=1)
        self.weight = nn.Parameter(torch.randn(64, 64, 3, 3))
        self.fc = nn.Linear(64 * 6 * 6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
        b = torch.where(self.stem(x) >= 0, 1.0, -1.0)
        y = F.conv2d(b, torch.sign(self.weight) * alpha, padding=1)
        return self.fc(torch.flatten(y, 1))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return TinyNet().eval(), torch.randn(1, 3, 6, 6)


@pytest.fixture(scope="module")
def tiny_summary(tiny):
    model, x = tiny
    return summarize_model(model, (x,))


def _check_structure(report, summary) -> None:
    assert [layer.function for layer in report.layers] == [layer.function for layer in summary.layers]
    assert sum(layer.percent for layer in report.layers) == pytest.approx(100.0, abs=0.01)
    assert all(layer.ms >= 0 for layer in report.layers)
    for layer in report.layers:
        assert (layer.gbitmac_per_s is not None) == (layer.bit_macs > 0 and layer.ms > 0)
        assert (layer.gflop_per_s is not None) == (layer.float_macs > 0 and layer.ms > 0)


def test_profile_module(tiny, tiny_summary):
    model, x = tiny
    report = profile_model(model, [x.numpy()], CompileOptions(num_threads=1), example_inputs=(x,), runs=5, warmup=1)
    _check_structure(report, tiny_summary)
    assert [layer.op for layer in report.layers if layer.bit_macs] == ["bnn.bconv2d"]
    assert all(layer.threads == 1 for layer in report.layers)
    assert report.bnnc is not None and report.bnnc.runs == 5
    t = report.bnnc
    assert t.min_ms <= t.p10_ms <= t.median_ms <= t.p90_ms <= t.max_ms  # (5 runs: percentiles inside the data)
    assert report.pytorch is not None and report.pytorch.runs == 5  # a PyTorch model: eager timed too
    data = json.loads(report.to_json())
    assert set(data) == {"model", "threads", "roofline", "layers", "layers_ms", "bnnc", "pytorch", "pytorch_threads"}
    assert set(data["layers"][0]) == {
        "index", "function", "op", "location", "kind", "threads", "ms", "percent", "bit_macs", "float_macs",
        "gbitmac_per_s", "gflop_per_s", "roofline_percent",
    }
    assert data["roofline"]["bitmac_per_cycle"] > 0 and data["roofline"]["ghz"] > 0
    text = str(report)
    assert "bconv2d" in text and "roofline:" in text and "PyTorch eager" in text


def test_threaded_layers_are_timed(tiny, tiny_summary):
    """Layers handed to the thread pool (__bnnc_parallel_for) get counters too."""
    model, x = tiny
    options = CompileOptions(num_threads=2, thread_min_work=0)
    report = profile_model(model, None, options, example_inputs=(x,), runs=3, warmup=1, compare_pytorch=False)
    _check_structure(report, tiny_summary)
    assert report.threads == 2 and report.roofline.cores == 2 and report.pytorch is None
    on_pool = {layer.op for layer in report.layers if layer.threads == 2}
    assert "bnn.bconv2d" in on_pool and "bnn.reshape" not in on_pool  # (a reshape is never threaded)


def test_timers_change_no_result_and_are_off_by_default(tiny, tiny_summary):
    model, x = tiny
    plain = jit(build(model, (x,), CompileOptions(num_threads=1)))
    timed = jit(build(model, (x,), CompileOptions(num_threads=1, profile_layers=True)))
    assert plain.layer_times_ns() is None
    np.testing.assert_array_equal(plain(x).numpy(), timed(x).numpy())
    timed.reset_layer_times()
    assert not timed.layer_times_ns().any()
    timed(x)
    counters = timed.layer_times_ns()
    assert len(counters) == len(tiny_summary.layers) and counters.sum() > 0


def test_llvm_ir_unchanged_without_profiling(tiny):
    """Profiling off costs nothing: without the option the LLVM IR has no
    timer call and no counters (the timers exist only when asked for)."""
    from bnnc.driver import import_model, llvm_ir, lower
    from bnnc.runtime.signature import signature_of

    model, x = tiny
    texts = {}
    for profile in (False, True):
        module = import_model(model, (x,))
        signature = signature_of(module, "forward")
        lower(module, CompileOptions(num_threads=1), "llvm")
        texts[profile] = llvm_ir(module, signature, profile_layers=profile)
    assert "clock_gettime" not in texts[False] and "__bnnc_profile" not in texts[False]
    assert "clock_gettime" in texts[True] and "__bnnc_profile_ns" in texts[True]


def test_layer_profiles_arithmetic():
    """Rates and roofline shares from known figures."""
    from bnnc.summary import LayerSummary, ModelSummary

    def row(i: int, bits: int, flops: int) -> LayerSummary:
        return LayerSummary(i, f"f_{i}_x", "bnn.x", "", [], "", "binary", 0, 0, 0, 0, bits, flops, 0)

    summary = ModelSummary("m", [row(0, 2_000_000, 0), row(1, 0, 1_000_000), row(2, 0, 0)])
    roof = Roofline("test", bitmac_per_cycle=100, mac_per_cycle=10, ghz=2.0, ghz_source="test", cores=2)
    # 1 ms, 1 ms, 2 ms; layer 0 on the thread pool (2 cores), the others on one
    rows = layer_profiles(summary, np.array([1e6, 1e6, 2e6]), roof, np.array([True, False, False]))
    assert [r.percent for r in rows] == [25.0, 25.0, 50.0]
    assert rows[0].gbitmac_per_s == pytest.approx(2.0) and rows[0].gflop_per_s is None
    assert rows[0].threads == 2 and rows[1].threads == 1
    assert rows[0].roofline_percent == pytest.approx(100 * 2e6 / (2 * 200e9) / 1e-3)  # 0.5%
    assert rows[1].gflop_per_s == pytest.approx(2.0)
    assert rows[1].roofline_percent == pytest.approx(100 * 1e6 / 20e9 / 1e-3)  # 5%
    assert rows[2].roofline_percent is None and rows[2].gbitmac_per_s is None


def test_cli_profile_tflite_json_and_plot(tmp_path, capsys):
    svg = tmp_path / "profile.svg"
    rc = main(["profile", str(TFLITE), "--runs", "3", "--num-threads", "1", "--json", "--plot", str(svg)])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pytorch"] is None  # not a PyTorch model
    assert sum(layer["percent"] for layer in data["layers"]) == pytest.approx(100.0, abs=0.01)
    assert any(layer["op"] == "bnn.bconv2d" and layer["gbitmac_per_s"] for layer in data["layers"])
    assert "<svg" in svg.read_text()


def test_cli_profile_errors(tmp_path, capsys):
    assert main(["profile", str(TFLITE), "--runs", "0"]) == 2
    assert "--runs must be at least 1" in capsys.readouterr().err
    bad = tmp_path / "x.npy"
    np.save(bad, np.zeros((2, 2), np.float64))
    assert main(["profile", str(TFLITE), "--input", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bnnc: error:") and "Traceback" not in err


@pytest.mark.parametrize("target", ["armv7", "cortex-m4"])
def test_timers_need_a_64bit_linux_target(tiny, target):
    # the timers read a {i64, i64} timespec; 32-bit glibc and bare metal differ
    from bnnc.errors import TargetError

    model, x = tiny
    with pytest.raises(TargetError, match=f"64-bit Linux target, not '{target}'"):
        build(model, (x,), CompileOptions(target=target, profile_layers=True))
