"""The benchmark still runs: `bench/run.py --quick` on one tiny layer shape
(no timing assertions; the bench checks its own results against PyTorch and
exits with an error if they are wrong)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench_result(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path_factory.mktemp("bench") / "result.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--layers-only", "--single-thread",
         "--shapes", "64x8", "--runs", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.exists(), f"bench/run.py wrote no results (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc, json.loads(out.read_text())


def test_bench_layer_runs(bench_result):
    proc, result = bench_result
    assert "WrongResult" not in proc.stderr, proc.stderr[-3000:]
    assert "Layers:" in proc.stdout and "64ch@8x8" in proc.stdout
    assert "larq_compute_engine" in result["peers"] and "tvm" in result["peers"]
    assert result["machine"]["cores"] >= 1
    (row,) = result["layers"]
    assert row["layer"] == "64ch@8x8"
    assert "error" not in row, row["error"]
    # the float form (f32 NCHW -> bconv2d -> f32 NCHW) compiled, matched PyTorch exactly and was timed
    assert "float" in row["verified"], row.get("errors")
    assert row["bnnc_float_ms"] > 0 and row["torch_nchw_ms"] > 0 and row["torch_cl_ms"] > 0


def test_bench_packed_layer_compiles(bench_result):
    """The packed form (packed words -> bconv2d with threshold and correction ->
    packed words) compiles, matches PyTorch bit-exactly and is timed."""
    _, result = bench_result
    (row,) = result["layers"]
    assert "packed" in row["verified"], f"packed layer failed: {row.get('errors')}"
    assert row["bnnc_packed_ms"] > 0


def test_bench_measures_this_hosts_roofline(bench_result):
    """The `% roof` columns are against the ceiling measured on this host
    (bench/roofline.py), and the run says which ceiling it used."""
    proc, result = bench_result
    assert "roofline" in proc.stdout and "measured on this host" in proc.stdout
    assert result["roofline_bitmac_per_s"] > 0
    assert result["roofline_bitmac_per_s"] != result["anchor_roofline_bitmac_per_s"]


def test_roofline_loop_counts_what_it_times():
    """The roofline loop's accumulators equal numpy's popcount of the same
    words (measure() raises otherwise): a loop LLVM simplified away would
    be caught, not reported as a fast ceiling."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import roofline
    finally:
        sys.path.remove(str(ROOT / "bench"))
    for rows, cols in ((1, 1), (3, 2)):
        assert roofline._measure_tile(rows, cols, 0.02) > 0
