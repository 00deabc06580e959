"""The AArch64 binary conv kernel (issue 13): popcounts accumulate in 16-bit
lanes (`cnt v.16b` + `uadalp v.8h`) and are widened to 64 bits once per chunk
of at most 4095 K steps (a 16-bit lane gains at most 16 per step).

The layers run as aarch64 shared libraries under qemu-aarch64 and must give
exactly the integer dot products numpy computes, including the worst case for
the 16-bit lanes (every xor bit set: each lane gains 16 per step) and K loops
long enough to cross the chunk boundary, both in an outer K loop (3x3 taps of
29440 channels: 4140 steps, widened per kernel row) and inside the innermost
one (a 1x1 conv of 4100 words: a full chunk of 4095 steps, then 5).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from xdsl.parser import Parser

import bnnc.context
from bnnc.artifacts import write_artifact
from bnnc.codegen import emit_assembly
from bnnc.dialects import bitpack
from bnnc.driver import CompileOptions, build
from bnnc.passes._microkernel import choose_popcount_tile, choose_tile, popcount_chunk_steps
from bnnc.pipeline import kernel_options
from bnnc.runtime.emulated_run import run_artifact
from bnnc.target import resolve_target

CROSS_TOOLS = ("qemu-aarch64", "aarch64-linux-gnu-gcc")


@pytest.fixture(scope="module")
def cross_tools() -> None:
    missing = [t for t in CROSS_TOOLS if shutil.which(t) is None]
    if missing or not Path("/usr/aarch64-linux-gnu/lib").is_dir():
        pytest.fail(
            f"the NEON kernel tests need {', '.join(missing) or '/usr/aarch64-linux-gnu'}: "
            "apt-get install qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
            pytrace=False,
        )


def _layer_ir(x_shape, w_packed: np.ndarray, pad: int) -> str:
    n, c, h, w = x_shape
    co, kh, kw, words = w_packed.shape
    oh, ow = h + 2 * pad - kh + 1, w + 2 * pad - kw + 1
    xt = f"tensor<{n}x{c}x{h}x{w}xf32>"
    wt = f"tensor<{co}x{kh}x{kw}x{words}xi64>"
    yt = f"tensor<{n}x{co}x{oh}x{ow}xf32>"
    attrs = (
        f"strides = array<i64: 1, 1>, padding = array<i64: {pad}, {pad}>, dilations = array<i64: 1, 1>, "
        "groups = 1 : i64, pad_value = 0 : i64"
    )
    return f"""func.func @layer(%x: {xt}) -> {yt} {{
  %w = arith.constant dense<{json.dumps(w_packed.tolist())}> : {wt}
  %s = bnn.sign %x : {xt}
  %y = bnn.bconv2d %s, %w {{{attrs}}} : {xt}, {wt} -> {yt}
  func.return %y : {yt}
}}
"""


def _reference(x: np.ndarray, w_neg: np.ndarray, pad: int) -> np.ndarray:
    """Exact integer dot products of sign(x) (0 -> +1) with the +-1 weights, zero padding."""
    xs = np.where(x < 0, -1, 1).astype(np.int64)
    ws = np.where(w_neg, -1, 1).astype(np.int64)
    xs = np.pad(xs, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, h, w = xs.shape
    co, _, kh, kw = ws.shape
    oh, ow = h - kh + 1, w - kw + 1
    out = np.zeros((n, co, oh, ow), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            out += np.einsum("nchw,oc->nohw", xs[:, :, ky : ky + oh, kx : kx + ow], ws[:, :, ky, kx])
    return out


def _run_aarch64(tmp_path: Path, x: np.ndarray, w_neg: np.ndarray, pad: int) -> np.ndarray:
    text = _layer_ir(x.shape, bitpack.pack_conv_weight(w_neg), pad)
    module = Parser(bnnc.context.make_context(), text).parse_module()
    built = build(module, options=CompileOptions(target="aarch64", name="layer"))
    path = tmp_path / "layer.so"
    write_artifact(built.llvm_module, built.target, built.signature, str(path), kind="so")
    (out,) = run_artifact(str(path), [x], "layer")
    return out


def _check_exact(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert np.all(got == np.round(got)), "outputs are not integers"
    bad = got.astype(np.int64) != want
    assert not bad.any(), f"{int(bad.sum())} of {bad.size} outputs differ; first: got {got[bad][:5]}, want {want[bad][:5]}"


def test_target_data_chooses_16_bit_lanes_only_on_aarch64():
    assert resolve_target("aarch64").popcount_accumulator_bits == 16
    x86 = resolve_target("x86_64", "icelake-server", "-prefer-256-bit")
    assert x86.popcount_accumulator_bits == 64
    assert "popcount_bits=16" in kernel_options(resolve_target("aarch64"))
    assert "popcount_bits" not in kernel_options(x86)  # the x86 pipeline is unchanged
    assert popcount_chunk_steps(16) == 4095  # 4095 * 16 <= 65535 < 4096 * 16


def test_tile_counts_every_live_neon_register():
    """x86 keeps its tile; on NEON accumulators + weights + broadcasts + the
    eor/cnt results in flight fit in 32 registers."""
    for channels in (64, 128, 256, 512):
        assert choose_popcount_tile(512, 32, channels, 64) == choose_tile(512, 64, 32, channels)
        t = choose_popcount_tile(128, 32, channels, 16)
        assert (t.lanes, t.vectors, t.pixels) == (2, 4, 4)
        assert t.pixels * t.vectors + t.vectors + t.pixels + 2 * t.vectors <= 32


def test_aarch64_hot_loop_accumulates_in_16_bit_lanes():
    """eor + cnt .16b + uadalp .8h, and no 64-bit widening chain in the loop."""
    rng = np.random.default_rng(0)
    w_neg = rng.random((64, 64, 3, 3)) < 0.5
    text = _layer_ir((1, 64, 8, 8), bitpack.pack_conv_weight(w_neg), 1)
    module = Parser(bnnc.context.make_context(), text).parse_module()
    built = build(module, options=CompileOptions(target="aarch64", name="layer"))
    asm = emit_assembly(built.llvm_module, built.target)
    assert "uadalp\tv" in asm and ".8h" in asm
    assert not any("uadalp" in line and ".2d" in line for line in asm.splitlines())


@pytest.mark.parametrize("case", ["random", "all_xor_bits_set"])
def test_512_channel_3x3_conv_is_exact_under_qemu(cross_tools, tmp_path, case):
    rng = np.random.default_rng(512)
    c, co, hw = 512, 16, 7
    if case == "random":
        x = rng.standard_normal((1, c, hw, hw)).astype(np.float32)
        w_neg = rng.random((co, c, 3, 3)) < 0.5
    else:  # input all -1, weights all +1: every xor bit is 1, the 16-bit lanes' worst case
        x = -np.ones((1, c, hw, hw), dtype=np.float32)
        w_neg = np.zeros((co, c, 3, 3), dtype=bool)
    want = _reference(x, w_neg, 1)
    if case == "all_xor_bits_set":
        assert want[0, 0, hw // 2, hw // 2] == -9 * c
    _check_exact(_run_aarch64(tmp_path, x, w_neg, 1), want)


@pytest.mark.parametrize(
    "channels, kernel, size",
    [
        (64 * 460, 3, 3),  # 9 x 460 = 4140 steps > 4095: chunks of one kernel row (3 x 460 steps)
        (64 * 4100, 1, 1),  # one K loop of 4100 steps: a chunk of 4095, then 5
    ],
)
def test_k_longer_than_a_16_bit_chunk_is_exact_under_qemu(cross_tools, tmp_path, channels, kernel, size):
    steps = kernel * kernel * channels // 64
    assert steps > 4095  # (not popcount_chunk_steps: a wrong bound must fail below)
    rng = np.random.default_rng(channels)
    co = 4
    x = rng.standard_normal((1, channels, size, size)).astype(np.float32)
    w_neg = rng.random((co, channels, kernel, kernel)) < 0.5
    w_neg[0] = x[0] >= 0  # weight = -sign(x): every xor bit set, the dot is -K
    w_neg[1] = x[0] < 0  # weight = sign(x): the dot is +K
    want = _reference(x, w_neg, 0)
    assert want[0, 0, 0, 0] == -steps * 64 and want[0, 1, 0, 0] == steps * 64
    _check_exact(_run_aarch64(tmp_path, x, w_neg, 0), want)


def test_widening_matches_host_on_x86(tmp_path):
    """The same layer on the host (64-bit popcounts) gives the same integers
    as numpy: the reference the aarch64 tests compare with is the x86 path's."""
    from bnnc.driver import jit

    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 128, 5, 5)).astype(np.float32)
    w_neg = rng.random((8, 128, 3, 3)) < 0.5
    text = _layer_ir(x.shape, bitpack.pack_conv_weight(w_neg), 1)
    module = Parser(bnnc.context.make_context(), text).parse_module()
    model = jit(build(module, options=CompileOptions(name="layer", num_threads=1)))
    _check_exact(np.asarray(model(x)), _reference(x, w_neg, 1))


def test_qemu_is_really_aarch64(cross_tools, tmp_path):
    """The artifact the exactness tests run is an aarch64 ELF (no silent host fallback)."""
    from bnnc.runtime.artifact_loader import elf_machine

    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 64, 4, 4)).astype(np.float32)
    w_neg = rng.random((4, 64, 3, 3)) < 0.5
    text = _layer_ir(x.shape, bitpack.pack_conv_weight(w_neg), 1)
    module = Parser(bnnc.context.make_context(), text).parse_module()
    built = build(module, options=CompileOptions(target="aarch64", name="layer"))
    path = tmp_path / "layer.so"
    write_artifact(built.llvm_module, built.target, built.signature, str(path), kind="so")
    assert elf_machine(str(path)) == "aarch64"
    assert subprocess.run(["qemu-aarch64", "--version"], capture_output=True).returncode == 0
