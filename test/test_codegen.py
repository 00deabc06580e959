"""End to end: upstream dialects -> bnnc's convert-*-to-llvm chain ->
to_llvmlite_ir -> optimize -> JIT / object / assembly."""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import numpy as np
import pytest
from xdsl.parser import Parser
from xdsl.passes import PassPipeline

from bnnc.codegen import JitModule, emit_assembly, emit_object, optimize, to_llvmlite_ir
from bnnc.context import make_context
from bnnc.dialects.bitpack import popcount
from bnnc.errors import TargetError
from bnnc.passes.registry import all_passes
from bnnc.target import KNOWN_TARGETS, Target, resolve_target

PIPELINE = (
    "convert-scf-to-cf,convert-memref-to-llvm,convert-vector-to-llvm,convert-math-to-llvm,"
    "convert-arith-to-llvm,convert-cf-to-llvm,convert-func-to-llvm,reconcile-unrealized-casts"
)

POPCOUNT = """
func.func @popsum(%a: memref<256xi64>, %b: memref<256xi64>) -> i64 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = arith.constant 256 : index
  %z = arith.constant 0 : i64
  %r = scf.for %i = %c0 to %n step %c1 iter_args(%acc = %z) -> (i64) {
    %x = memref.load %a[%i] : memref<256xi64>
    %y = memref.load %b[%i] : memref<256xi64>
    %t = arith.xori %x, %y : i64
    %p = math.ctpop %t : i64
    %s = arith.addi %acc, %p : i64
    scf.yield %s : i64
  }
  func.return %r : i64
}

// 2-D, through a heap scratch buffer (aligned_alloc/free resolve in the JIT)
func.func @popcount_rows(%a: memref<4x16xi64>, %out: memref<4xi64>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c16 = arith.constant 16 : index
  %z = arith.constant 0 : i64
  %tmp = memref.alloc() : memref<4xi64>
  scf.for %i = %c0 to %c4 step %c1 {
    %r = scf.for %j = %c0 to %c16 step %c1 iter_args(%acc = %z) -> (i64) {
      %x = memref.load %a[%i, %j] : memref<4x16xi64>
      %p = math.ctpop %x : i64
      %s = arith.addi %acc, %p : i64
      scf.yield %s : i64
    }
    memref.store %r, %tmp[%i] : memref<4xi64>
  }
  scf.for %i = %c0 to %c4 step %c1 {
    %v = memref.load %tmp[%i] : memref<4xi64>
    %ii = arith.index_cast %i : index to i64
    %w = arith.addi %v, %ii : i64
    memref.store %w, %out[%i] : memref<4xi64>
  }
  memref.dealloc %tmp : memref<4xi64>
  func.return
}
"""

FLOAT = """
func.func @dot(%a: memref<64xf32>, %b: memref<64xf32>, %scale: f32) -> f32 {
  %c0 = arith.constant 0 : index
  %c8 = arith.constant 8 : index
  %n = arith.constant 64 : index
  %zero = arith.constant dense<0.0> : vector<8xf32>
  %acc = scf.for %i = %c0 to %n step %c8 iter_args(%v = %zero) -> (vector<8xf32>) {
    %x = vector.load %a[%i] : memref<64xf32>, vector<8xf32>
    %y = vector.load %b[%i] : memref<64xf32>, vector<8xf32>
    %s = vector.fma %x, %y, %v : vector<8xf32>
    scf.yield %s : vector<8xf32>
  }
  %bs = vector.broadcast %scale : f32 to vector<8xf32>
  %scaled = arith.mulf %acc, %bs : vector<8xf32>
  %r = vector.reduction <add>, %scaled : vector<8xf32> into f32
  func.return %r : f32
}
"""


def lower(src: str) -> str:
    ctx = make_context()
    module = Parser(ctx, src).parse_module()
    passes = all_passes()
    PassPipeline.parse_spec(passes, PIPELINE).apply(ctx, module)
    module.verify()
    return to_llvmlite_ir(module)


@pytest.fixture(scope="module")
def host() -> Target:
    return resolve_target("host")


@pytest.fixture(scope="module")
def popcount_ir() -> str:
    return lower(POPCOUNT)


def test_popcount_jit(host: Target, popcount_ir: str) -> None:
    jit = JitModule(optimize(popcount_ir, host))
    rng = np.random.default_rng(0)
    a = rng.integers(-(2**63), 2**63 - 1, 256, dtype=np.int64)
    b = rng.integers(-(2**63), 2**63 - 1, 256, dtype=np.int64)
    fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p)(jit.address_of("popsum"))
    assert fn(a.ctypes.data, b.ctypes.data) == int(popcount(a ^ b).sum())

    m = rng.integers(-(2**63), 2**63 - 1, (4, 16), dtype=np.int64)
    out = np.zeros(4, dtype=np.int64)
    rows = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(jit.address_of("popcount_rows"))
    rows(m.ctypes.data, out.ctypes.data)
    expect = popcount(m.reshape(-1)).reshape(4, 16).sum(axis=1) + np.arange(4)
    np.testing.assert_array_equal(out, expect)


def test_float_kernel_jit(host: Target) -> None:
    ir_text = lower(FLOAT)
    declared = {f.name for f in llvm.parse_assembly(ir_text).functions if f.is_declaration}
    assert "llvm.fma.v8f32" in declared and any(n.startswith("llvm.vector.reduce.fadd") for n in declared), declared
    jit = JitModule(optimize(ir_text, host))
    rng = np.random.default_rng(1)
    a = rng.standard_normal(64).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    fn = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_float)(jit.address_of("dot"))
    got = fn(a.ctypes.data, b.ctypes.data, ctypes.c_float(0.5))
    assert got == pytest.approx(float(np.dot(a.astype(np.float64), b)) * 0.5, rel=1e-4, abs=1e-4)


def test_loads_use_gep_not_inttoptr(popcount_ir: str) -> None:
    assert "getelementptr inbounds" in popcount_ir
    assert "inttoptr" not in popcount_ir and "ptrtoint" not in popcount_ir
    assert "aligned_alloc" in popcount_ir and "@\"free\"" in popcount_ir


def test_aarch64_asm_and_object(popcount_ir: str) -> None:
    t = resolve_target("aarch64")
    mod = optimize(popcount_ir, t)
    asm = emit_assembly(mod, t)
    assert "cnt" in asm and ".16b" in asm
    obj = emit_object(mod, t)
    assert obj[:4] == b"\x7fELF" and obj[18] == 183  # e_machine = EM_AARCH64


def test_x86_64_asm_and_object(popcount_ir: str) -> None:
    t = resolve_target("x86_64")
    mod = optimize(popcount_ir, t)
    asm = emit_assembly(mod, t)
    assert "popsum:" in asm
    obj = emit_object(mod, t)
    assert obj[:4] == b"\x7fELF" and obj[18] == 62  # EM_X86_64
    t512 = resolve_target("x86_64", cpu="icelake-server", features="-prefer-256-bit")
    assert t512.vector_bits == 512 and t512.has_vpopcntdq
    assert "vpopcntq" in emit_assembly(optimize(popcount_ir, t512), t512)


def test_targets() -> None:
    assert KNOWN_TARGETS == ("host", "x86_64", "aarch64", "armv7", "riscv64", "cortex-m4", "cortex-m7")
    x = resolve_target("x86_64")
    assert (x.triple, x.cpu, x.vector_bits, x.has_avx2) == ("x86_64-unknown-linux-gnu", "x86-64-v3", 256, True)
    a = resolve_target("aarch64")
    assert (a.triple, a.cpu, a.features, a.vector_bits) == ("aarch64-unknown-linux-gnu", "generic", "+neon", 128)
    assert resolve_target("host").is_host and not a.is_host


@pytest.mark.parametrize(
    "args, needle",
    [
        (("sparc",), "accepted: host, x86_64, aarch64"),
        (("x86_64", "not-a-cpu"), "unknown cpu 'not-a-cpu'"),
        (("aarch64", "skylake"), "unknown cpu 'skylake'"),
        (("aarch64", None, "neon"), "malformed feature"),
        (("x86_64", None, "+avx2,,+bad feature"), "malformed feature"),
    ],
)
def test_target_errors(args: tuple, needle: str) -> None:
    with pytest.raises(TargetError, match=needle):
        resolve_target(*args)
