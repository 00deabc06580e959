"""The binary conv's hot loop under llvm-mca: AArch64 (Cortex-A76, Cortex-A55)
and x86 (Ice Lake server), next to the ideal loop and (x86) the measured layer.

    python bench/arm_mca.py                    # 64, 128, 256, 512 channels; all columns
    python bench/arm_mca.py --channels 64 256  # some layers
    python bench/arm_mca.py --no-x86           # AArch64 only (no x86 compile, no timing)
    python bench/arm_mca.py --no-measure       # x86 model only, no JIT timing
    python bench/arm_mca.py --dump DIR         # also write each extracted loop as DIR/<target>-<C>.s

There is no ARM hardware here, so the AArch64 kernel is judged by llvm-mca
(Debian `llvm`; LLVM 14 models the A76 with its Cortex-A57 tables). For each
3x3 stride-1 pad-1 binary conv layer (bench/run.py's packed layer: packed in,
thresholds, packed out) the script compiles the layer as
`bnnc compile --emit=asm -target=aarch64` would, takes the hot inner loop (the
loop, from a label to the branch back to it, holding the most popcounts),
runs `llvm-mca -iterations=1000` on it and prints

    bit-MAC/cycle = bit-MACs per iteration / (total cycles / iterations)

where an iteration's bit-MACs are the bits its popcounts count (128 per
`cnt v.16b`, 512 per `vpopcntq zmm`, 64 per scalar `popcnt`). The ideal column
is llvm-mca on a synthetic loop of independent `eor` + `cnt` + `uadalp .8h`
(x86: `vpxorq` + `vpopcntq` + `vpaddq` on zmm) with no loads or overhead: the
bound of the instruction mix on the model's pipes (85.3 on the A76 model).

For x86 the loop comes from `-target=x86_64 -cpu=icelake-server` with 512-bit
vectors, and the measured column is the same layer JIT-compiled for the host,
timed single-thread (median), at ANCHOR_GHZ from bench/run.py: so the model can
be checked against this machine.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

LAYERS = [(64, 56), (128, 28), (256, 14), (512, 7)]  # channels, spatial size (bench/run.py, ANCHORS.md)
ITERATIONS = 1000

# (label, compile target, cpu, features, llvm-mca triple, llvm-mca cpus)
AARCH64 = ("aarch64", "aarch64", None, None, "aarch64", ("cortex-a76", "cortex-a55"))
X86 = ("x86_64", "x86_64", "icelake-server", "-prefer-256-bit", "x86_64", ("icelake-server",))

_POPCOUNT = [
    (re.compile(r"^\s*cnt\s+v\d+\.16b"), 128),
    (re.compile(r"^\s*cnt\s+v\d+\.8b"), 64),
    (re.compile(r"^\s*vpopcntq\s.*%zmm"), 512),
    (re.compile(r"^\s*vpopcntq\s.*%ymm"), 256),
    (re.compile(r"^\s*vpopcntq\s.*%xmm"), 128),
    (re.compile(r"^\s*popcnt[lq]?\s"), 64),
]
_LABEL = re.compile(r"^(\.?L[\w$.]+|[A-Za-z_][\w$.]*):")
_BRANCH = re.compile(r"^\s*(b(\.\w+)?|cbn?z|tbn?z|j\w+)\s+(.*)$")


def layer_ir(c: int, hw: int, seed: int = 0) -> str:
    """bench/run.py's packed layer (random weights, thresholds and the
    zero-padding correction table)."""
    from run import packed_layer_ir

    from bnnc.dialects import bitpack

    rng = np.random.default_rng(seed + c)
    wpacked = bitpack.pack_conv_weight(rng.random((c, c, 3, 3)) < 0.5)
    correction = bitpack.padding_correction(wpacked, c)
    threshold = rng.integers(-c, c + 1, size=c).astype(np.int64)
    return packed_layer_ir(c, hw, wpacked, threshold, correction)


def compile_asm(text: str, target: str, cpu: str | None, features: str | None) -> str:
    """What `bnnc compile --emit=asm -target=... -cpu=... -features=...` writes."""
    from xdsl.parser import Parser

    import bnnc.context
    import bnnc.driver
    from bnnc.codegen import emit_assembly
    from bnnc.driver import CompileOptions

    module = Parser(bnnc.context.make_context(), text).parse_module()
    options = CompileOptions(name="forward", target=target, cpu=cpu, features=features, num_threads=1)
    built = bnnc.driver.build(module, options=options)
    return emit_assembly(built.llvm_module, built.target)


def tile_step(target: str, cpu: str | None, features: str | None, channels: int) -> int:
    """Popcounts per K step of the layer's full register tile (pixels x vectors)."""
    from bnnc.passes._microkernel import choose_popcount_tile
    from bnnc.target import resolve_target

    t = resolve_target(target, cpu, features)
    tile = choose_popcount_tile(t.vector_bits, t.vector_registers, channels, t.popcount_accumulator_bits)
    return tile.pixels * tile.vectors


def _popcount_bits(line: str) -> int:
    for pattern, bits in _POPCOUNT:
        if pattern.match(line):
            return bits
    return 0


def hot_loop(asm: str, arch: str, per_step: int = 1) -> tuple[list[str], int]:
    """The instructions of the innermost loop (label .. branch back to it)
    of the full register tile (its popcounts a multiple of `per_step`, the
    tile's pixels x vectors) with the most popcount bits per iteration, and
    those bits (ties: the shorter loop)."""
    comment = "//" if arch == "aarch64" else "#"
    lines = [raw.split(comment)[0].rstrip() for raw in asm.splitlines()]
    labels = {}
    for i, line in enumerate(lines):
        m = _LABEL.match(line)
        if m:
            labels[m.group(1)] = i
    loops = []  # (label line, back-branch line)
    for j, line in enumerate(lines):
        m = _BRANCH.match(line)
        if m:
            i = labels.get(m.group(3).split(",")[-1].strip())
            if i is not None and i < j:
                loops.append((i, j))
    best: tuple[int, int, int, int] | None = None  # (-bits, length, start, end)
    for i, j in loops:
        if any(i <= a and b < j for a, b in loops if (a, b) != (i, j)):
            continue  # not innermost
        counts = [_popcount_bits(x) for x in lines[i + 1 : j + 1]]
        bits, count = sum(counts), sum(1 for c in counts if c)
        if count % per_step:
            continue  # not the full tile's loop (a one-pixel border or remainder tile)
        if bits and (best is None or (-bits, j - i) < best[:2]):
            best = (-bits, j - i, i, j)
    if best is None:
        raise RuntimeError("no loop with popcounts found in the assembly")
    _, _, i, j = best
    body = [x for x in lines[i + 1 : j + 1] if x.strip() and not x.lstrip().startswith(".")]
    return [lines[i], *body], -best[0]


def ideal_loop(arch: str) -> tuple[list[str], int]:
    """Independent xor + popcount + accumulate triples, no loads: the bound."""
    body = [".Lideal:"]
    for g in range(6):  # 6 groups of 4 independent triples, temporaries alternate between two sets
        temps = [4 * (g % 2) + i for i in range(4)]
        accs = [8 + (4 * g + i) % 20 for i in range(4)]  # v8-v27 (v28-v31 hold the operands)
        if arch == "aarch64":
            body += [f"eor v{t}.16b, v{30 + i % 2}.16b, v{28 + g % 2}.16b" for i, t in enumerate(temps)]
            body += [f"cnt v{t}.16b, v{t}.16b" for t in temps]
            body += [f"uadalp v{a}.8h, v{t}.16b" for t, a in zip(temps, accs)]
        else:
            body += [f"vpxorq %zmm{30 + i % 2}, %zmm{28 + g % 2}, %zmm{t}" for i, t in enumerate(temps)]
            body += [f"vpopcntq %zmm{t}, %zmm{t}" for t in temps]
            body += [f"vpaddq %zmm{t}, %zmm{a}, %zmm{a}" for t, a in zip(temps, accs)]
    body += ["subs x0, x0, #1", "b.ne .Lideal"] if arch == "aarch64" else ["decq %rdi", "jne .Lideal"]
    return body, 24 * (128 if arch == "aarch64" else 512)


def mca(body: list[str], triple: str, cpu: str) -> dict[str, float]:
    """llvm-mca's cycles per iteration (and the resource pressure summary)."""
    with tempfile.NamedTemporaryFile("w", suffix=".s", delete=False) as f:
        if triple.startswith("x86"):
            f.write(".att_syntax\n")
        f.write("\n".join(body) + "\n")
        path = f.name
    try:
        out = subprocess.run(
            [
                "llvm-mca",
                f"-mtriple={triple}",
                f"-mcpu={cpu}",
                f"-iterations={ITERATIONS}",
                "-timeline=false",
                "-bottleneck-analysis",
                path,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        Path(path).unlink()
    cycles = float(re.search(r"Total Cycles:\s+(\d+)", out).group(1))
    iters = float(re.search(r"Iterations:\s+(\d+)", out).group(1))
    return {"cycles_per_iter": cycles / iters, "report": out}


def measured_x86(text: str, c: int, hw: int, runs: int = 30) -> float:
    """The layer JIT-compiled for the host, single thread: bit-MAC per cycle
    at bench/run.py's ANCHOR_GHZ (the Intel class's clock under load)."""
    from run import ANCHOR_GHZ, WORD, direct_caller, median_ms
    from xdsl.parser import Parser

    import bnnc.context
    from bnnc.driver import CompileOptions, build, jit

    module = Parser(bnnc.context.make_context(), text).parse_module()
    model = jit(build(module, options=CompileOptions(name="forward", num_threads=1)))
    x = np.random.default_rng(1).integers(-(1 << 62), 1 << 62, size=(1, c // WORD, hw, hw), dtype=np.int64)
    ms = median_ms(direct_caller(model, [x]), runs)
    return hw * hw * c * c * 9 / (ms * 1e-3) / (ANCHOR_GHZ * 1e9)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, nargs="*", help="layers by channel count (default 64 128 256 512)")
    ap.add_argument("--no-x86", action="store_true", help="AArch64 only")
    ap.add_argument("--no-measure", action="store_true", help="no host timing of the x86 layer")
    ap.add_argument("--dump", type=Path, help="write the extracted loops (and llvm-mca reports) here")
    ap.add_argument("--bottlenecks", action="store_true", help="print llvm-mca's resource pressure for each loop")
    args = ap.parse_args(argv)
    if not shutil.which("llvm-mca"):
        print("llvm-mca not found: apt-get install -y llvm", file=sys.stderr)
        return 2
    layers = [(c, hw) for c, hw in LAYERS if not args.channels or c in args.channels]
    layers += [(c, 7) for c in (args.channels or []) if c not in dict(LAYERS)]
    targets = [AARCH64] + ([] if args.no_x86 else [X86])
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)

    ideal = {}
    for label, _, _, _, triple, cpus in targets:
        body, bits = ideal_loop(label)
        for cpu in cpus:
            ideal[cpu] = bits / mca(body, triple, cpu)["cycles_per_iter"]

    rows = []
    for c, hw in layers:
        text = layer_ir(c, hw)
        row: dict[str, object] = {"layer": f"{c}ch@{hw}x{hw}"}
        for label, target, cpu, features, triple, cpus in targets:
            asm = compile_asm(text, target, cpu, features)
            body, bits = hot_loop(asm, label, tile_step(target, cpu, features, c))
            row[f"{label}_insns"] = len(body) - 1
            row[f"{label}_spills"] = sum(1 for x in body if re.search(r"\[sp|\(%rsp\)", x))
            for mcpu in cpus:
                result = mca(body, triple, mcpu)
                row[mcpu] = bits / result["cycles_per_iter"]
                if args.bottlenecks:
                    print(f"--- {row['layer']} {mcpu}\n{_pressure(result['report'])}")
                if args.dump:
                    (args.dump / f"{label}-{c}-{mcpu}.mca.txt").write_text(result["report"])
            if args.dump:
                (args.dump / f"{label}-{c}.s").write_text("\n".join(body) + "\n")
        if not args.no_x86 and not args.no_measure:
            row["x86_measured"] = measured_x86(text, c, hw)
        rows.append(row)
        _print_row(row, ideal, targets, first=len(rows) == 1, measured=not args.no_x86 and not args.no_measure)
    return 0


def _pressure(report: str) -> str:
    """The bottleneck and resource-pressure-per-iteration part of a report."""
    keep = []
    for block in report.split("\n\n"):
        if block.startswith(("Cycles with backend pressure", "Resources:", "Resource pressure per iteration")):
            keep.append(block)
    return "\n\n".join(keep)


def _print_row(row, ideal, targets, first: bool, measured: bool) -> None:
    cols = [cpu for *_rest, cpus in targets for cpu in cpus]
    if first:
        print("bit-MAC/cycle of the 3x3 binary conv's hot loop under llvm-mca (ideal loop in brackets)")
        head = f"{'layer':<12}" + "".join(f"{c:>24}" for c in cols)
        if measured:
            head += f"{'x86 measured':>14}"
        head += f"{'loop insns / spills':>22}"
        print(head)
    line = f"{row['layer']:<12}" + "".join(f"{row[c]:>14.1f} ({ideal[c]:5.1f})  " for c in cols)
    if measured:
        line += f"{row['x86_measured']:>14.1f}"
    line += "   " + ", ".join(f"{t[0]} {row[t[0] + '_insns']}/{row[t[0] + '_spills']}" for t in targets)
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
