"""Bounds-checked builds (the check-bounds pass, `--check-bounds`, `check_bounds=True`).

An out-of-bounds access in loop IR must stop the process with the access's
location on stderr (run in a subprocess: it aborts); an in-bounds one must run
unchanged; and real models must compute bit-identical results with and
without the checks, threaded or not.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import bnn_models as bm
import pytest
import torch
from ir_helpers import functions, parse_ir
from xdsl.dialects import func

# Lowers loop IR (optionally with check-bounds) to the llvm dialect, JITs it
# and calls forward(x, y) on x = [1, 2, 3, 4]; prints y.
_RUNNER = textwrap.dedent(
    """
    import ctypes, sys
    import numpy as np
    from xdsl.parser import Parser
    from bnnc.codegen import JitModule, optimize, to_llvmlite_ir
    from bnnc.context import make_context
    from bnnc.pipeline import LLVM_PASSES, run_passes
    from bnnc.target import resolve_target

    path, checked = sys.argv[1], sys.argv[2] == "1"
    ctx = make_context()
    module = Parser(ctx, open(path).read()).parse_module()
    run_passes(module, ",".join((["check-bounds"] if checked else []) + LLVM_PASSES), ctx)
    target = resolve_target("host")
    jit = JitModule(optimize(to_llvmlite_ir(module), target, opt_level=2), target)
    forward = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(jit.address_of("forward"))
    x = np.arange(1, 5, dtype=np.float32)
    y = np.zeros(4, dtype=np.float32)
    forward(x.ctypes.data, y.ctypes.data)
    print(" ".join(str(float(v)) for v in y), flush=True)
    """
)

# y[i] = x[i + shift] for i in 0..4: shift 1 reads x[4], one past the end.
_SHIFT_IR = """
func.func @forward(%x: memref<4xf32>, %y: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %s = arith.constant SHIFT : index
  scf.for %i = %c0 to %c4 step %c1 {
    %j = arith.addi %i, %s : index
    %v = memref.load %x[%j] : memref<4xf32> loc("shift_layer"("model.py":42:7))
    memref.store %v, %y[%i] : memref<4xf32>
  }
  func.return
}
"""


# y[0:4] = x[OFF : OFF + 4] as one vector: OFF 1 puts the last lane at x[4].
_VECTOR_IR = """
func.func @forward(%x: memref<4xf32>, %y: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %off = arith.index_cast %n : i64 to index
  %v = vector.load %x[%off] : memref<4xf32>, vector<4xf32>
  vector.store %v, %y[%c0] : memref<4xf32>, vector<4xf32>
  func.return
}
"""


def _run_loop_ir(tmp_path: Path, shift: int, checked: bool, ir: str = _SHIFT_IR) -> subprocess.CompletedProcess:
    path = tmp_path / f"shift{shift}.mlir"
    path.write_text(ir.replace("SHIFT", str(shift)))
    return subprocess.run(
        [sys.executable, "-c", _RUNNER, str(path), "1" if checked else "0"],
        capture_output=True, text=True, timeout=300, check=False,
    )


def test_out_of_bounds_load_aborts_with_its_location(tmp_path):
    r = _run_loop_ir(tmp_path, 1, checked=True)
    assert r.returncode == -signal.SIGABRT, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""  # stopped before returning
    assert (
        "bnnc: bounds check failed in @forward at 'shift_layer' (model.py:42:7): "
        "out-of-bounds memref.load of memref<4xf32>"
    ) in r.stderr, r.stderr


def test_negative_index_aborts(tmp_path):
    r = _run_loop_ir(tmp_path, -1, checked=True)
    assert r.returncode == -signal.SIGABRT, (r.returncode, r.stderr)
    assert "out-of-bounds memref.load" in r.stderr


@pytest.mark.parametrize("offset,aborts", [(0, False), (1, True)])
def test_vector_load_checks_its_last_lane(tmp_path, offset, aborts):
    ir = _VECTOR_IR.replace("%off = arith.index_cast %n : i64 to index", f"%off = arith.constant {offset} : index")
    # the constant offset is known, but the pass only skips constants whose every lane is inside
    r = _run_loop_ir(tmp_path, offset, checked=True, ir=ir)
    if aborts:
        assert r.returncode == -signal.SIGABRT, (r.returncode, r.stderr)
        assert "out-of-bounds vector.load of memref<4xf32>" in r.stderr, r.stderr
    else:
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["1.0", "2.0", "3.0", "4.0"]


def test_in_bounds_access_runs_unchanged(tmp_path):
    r = _run_loop_ir(tmp_path, 0, checked=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1.0", "2.0", "3.0", "4.0"]


def test_unchecked_out_of_bounds_is_silent(tmp_path):
    """Why the option exists: without it the same read returns whatever follows x."""
    r = _run_loop_ir(tmp_path, 1, checked=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:3] == ["2.0", "3.0", "4.0"]
    assert "bounds check" not in r.stderr


@pytest.mark.parametrize("factory,threads", [(bm.make_odd_shapes, 2), (bm.make_binary_mlp, 1)])
def test_models_identical_with_and_without_checks(factory, threads):
    import bnnc

    model, x = factory(0)
    plain = bnnc.compile(model, (x,), num_threads=threads)
    checked = bnnc.compile(model, (x,), num_threads=threads, check_bounds=True)
    for xi in (x, torch.randn_like(x)):
        assert torch.equal(plain(xi), checked(xi))


def test_cli_pipeline_and_loop_ir(tmp_path):
    """--check-bounds puts the pass after the lowering and before dedupe, also
    when the loops stage is overridden; the loop IR then calls the fail function."""
    from bnnc.cli import main
    from bnnc.pipeline import parse_pipeline, with_bounds_checks

    p = parse_pipeline(None, check_bounds=True).stages["loops"].split(",")
    assert p[-2:] == ["check-bounds", "dedupe-layer-functions"] and p[0].startswith("convert-bnn-to-loops")
    q = parse_pipeline("loops=convert-bnn-to-loops", check_bounds=True).stages["loops"]
    assert q == "convert-bnn-to-loops,check-bounds"
    assert with_bounds_checks(with_bounds_checks(parse_pipeline(None))).stages["loops"].count("check-bounds") == 1
    assert "check-bounds" not in parse_pipeline(None).stages["loops"]

    model, x = bm.make_binary_mlp(0)
    pt2 = tmp_path / "mlp.pt2"
    torch.export.save(torch.export.export(model, (x,)), str(pt2))
    out = tmp_path / "mlp.loops.mlir"
    assert main(["compile", str(pt2), "--emit=loops", "--check-bounds", "-o", str(out)]) == 0
    module = parse_ir(out.read_text())
    callees = {op.callee.string_value() for op in module.walk() if isinstance(op, func.CallOp)}
    assert "__bnnc_bounds_fail" in callees and functions(module)["abort"].is_declaration
    plain = tmp_path / "plain.mlir"
    assert main(["compile", str(pt2), "--emit=loops", "-o", str(plain)]) == 0
    assert "__bnnc_bounds_fail" not in functions(plain.read_text())
