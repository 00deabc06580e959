"""The binary-conv roofline of *this* host, measured: an ideal register-blocked
xor + popcount + add loop over L1-resident words, compiled by LLVM for the
host CPU as bnnc's kernels are, and timed on one core.

Why measure it: ANCHORS.md's ceiling (~326 bit-MAC/cycle at ~3.0 GHz) was
measured on the Intel AVX-512 VPOPCNTDQ machine class; on another CPU
(AMD Zen 4 runs 512-bit popcounts at another rate, an AVX2 CPU has no vector
popcount) a layer's "% of the roofline" against it means nothing. The loop
here has no loads it does not need, no epilogue and no padding: nothing a
real conv can beat but the measurement's noise.

    python bench/roofline.py          # prints the ceiling and each tile's figure

`bench/run.py` uses `measure()` for its `% roof` columns.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass

import numpy as np

WORDS = 256  # 64-bit words per row: 8 rows of 2 KiB stay in L1
LANES = 8  # <8 x i64>: LLVM splits it where the vectors are narrower


@dataclass(frozen=True)
class Roofline:
    bitmac_per_s: float  # one core
    tile: tuple[int, int]  # activation rows x weight rows of the best loop
    per_tile: dict[tuple[int, int], float]


def _kernel_ir(rows: int, cols: int) -> str:
    """`i64 roof(ptr x, ptr w, i64 reps)`: `reps` times over WORDS words,
    acc[i][j] += popcount(x[i] ^ w[j]) in <LANES x i64> registers; returns
    the sum of the accumulators (so nothing is dead)."""
    v = f"<{LANES} x i64>"
    steps = WORDS // LANES
    lines = [
        "define i64 @roof(ptr %x, ptr %w, i64 %reps) {",
        "entry:",
        "  br label %outer",
        "outer:",
        "  %r = phi i64 [0, %entry], [%r.next, %outer.latch]",
    ]
    for i in range(rows):
        for j in range(cols):
            lines.append(f"  %a{i}_{j} = phi {v} [zeroinitializer, %entry], [%c{i}_{j}, %outer.latch]")
    lines += ["  br label %inner", "inner:", "  %k = phi i64 [0, %outer], [%k.next, %inner]"]
    for i in range(rows):
        for j in range(cols):
            lines.append(f"  %b{i}_{j} = phi {v} [%a{i}_{j}, %outer], [%c{i}_{j}, %inner]")
    for i in range(rows):
        lines.append(f"  %xo{i} = add i64 %k, {i * WORDS}")
        lines.append(f"  %xp{i} = getelementptr inbounds i64, ptr %x, i64 %xo{i}")
        lines.append(f"  %x{i} = load {v}, ptr %xp{i}, align 8")
    for j in range(cols):
        lines.append(f"  %wo{j} = add i64 %k, {j * WORDS}")
        lines.append(f"  %wp{j} = getelementptr inbounds i64, ptr %w, i64 %wo{j}")
        lines.append(f"  %w{j} = load {v}, ptr %wp{j}, align 8")
    for i in range(rows):
        for j in range(cols):
            lines.append(f"  %e{i}_{j} = xor {v} %x{i}, %w{j}")
            lines.append(f"  %p{i}_{j} = call {v} @llvm.ctpop.v{LANES}i64({v} %e{i}_{j})")
            lines.append(f"  %c{i}_{j} = add {v} %b{i}_{j}, %p{i}_{j}")
    lines += [
        f"  %k.next = add i64 %k, {LANES}",
        f"  %k.done = icmp eq i64 %k.next, {steps * LANES}",
        "  br i1 %k.done, label %outer.latch, label %inner",
        "outer.latch:",
        "  %r.next = add i64 %r, 1",
        "  %r.done = icmp eq i64 %r.next, %reps",
        "  br i1 %r.done, label %exit, label %outer",
        "exit:",
    ]
    total = "zeroinitializer"
    for n, (i, j) in enumerate((i, j) for i in range(rows) for j in range(cols)):
        lines.append(f"  %s{n} = add {v} {total}, %c{i}_{j}")
        total = f"%s{n}"
    lines += [
        f"  %sum = call i64 @llvm.vector.reduce.add.v{LANES}i64({v} {total})",
        "  ret i64 %sum",
        "}",
        f"declare {v} @llvm.ctpop.v{LANES}i64({v})",
        f"declare i64 @llvm.vector.reduce.add.v{LANES}i64({v})",
    ]
    return "\n".join(lines) + "\n"


def _measure_tile(rows: int, cols: int, seconds: float) -> float:
    """bit-MAC/s of one tile's loop on one core: the best of several timed runs."""
    from bnnc.codegen import JitModule
    from bnnc.machine_code import optimize
    from bnnc.target import resolve_target

    target = resolve_target("host")
    engine = JitModule(optimize(_kernel_ir(rows, cols), target, opt_level=2), target)
    fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(engine.address_of("roof"))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2**63, size=rows * WORDS, dtype=np.int64)
    w = rng.integers(0, 2**63, size=cols * WORDS, dtype=np.int64)
    bits_per_rep = rows * cols * WORDS * 64
    expected = sum(
        int(np.unpackbits((x[i * WORDS:(i + 1) * WORDS] ^ w[j * WORDS:(j + 1) * WORDS]).view(np.uint8)).sum())
        for i in range(rows) for j in range(cols)
    )
    reps = 64
    while True:  # calibrate to ~1/10 of the budget per run
        start = time.perf_counter()
        got = fn(x.ctypes.data, w.ctypes.data, reps)
        if time.perf_counter() - start > seconds / 10:
            break
        reps *= 2
    if got != expected * reps:
        raise RuntimeError(f"roofline loop {rows}x{cols} computed {got}, expected {expected * reps}")
    best = float("inf")
    for _ in range(7):
        start = time.perf_counter()
        fn(x.ctypes.data, w.ctypes.data, reps)
        best = min(best, time.perf_counter() - start)
    return bits_per_rep * reps / best


TILES = ((4, 4), (6, 4), (4, 6), (8, 2), (3, 8))


def measure(seconds: float = 1.0) -> Roofline:
    """The host's ceiling: the best of a few register tiles (LLVM's register
    allocation decides which one fits this CPU's register file)."""
    per_tile = {t: _measure_tile(*t, seconds / len(TILES)) for t in TILES}
    tile = max(per_tile, key=lambda t: per_tile[t])
    return Roofline(per_tile[tile], tile, per_tile)


def main() -> None:
    roof = measure()
    for (r, c), v in roof.per_tile.items():
        print(f"tile {r}x{c}: {v / 1e9:8.1f} Gbit-MAC/s")
    print(f"roofline (one core): {roof.bitmac_per_s / 1e9:.1f} Gbit-MAC/s, tile {roof.tile[0]}x{roof.tile[1]}")


if __name__ == "__main__":
    main()
