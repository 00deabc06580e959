"""bnnc vs Larq Compute Engine's own interpreter on the same .tflite files.

    bash scripts/lce_env.sh                         # LCE 0.16's interpreter, once
    TF_USE_LEGACY_KERAS=1 /tmp/lce-conv/bin/python scripts/make_tflite_fixtures.py --bench /tmp/lce-zoo
    python bench/lce_table.py /tmp/lce-zoo          # every .tflite file in the folder
    python bench/lce_table.py /tmp/lce-zoo/QuickNet.tflite --runs 20

For each model: LCE's interpreter with one thread in its fastest mode (each of
its kernel choices -- default, indirect BGEMM, XNNPack for the float layers,
both -- is timed briefly and the fastest is kept), and bnnc with
``num_threads=1``, both running the file on the same random input. LCE runs in
its own process (its environment needs numpy<2; see scripts/lce_env.sh), fed
one command at a time, so the two sides alternate in rounds and share the
machine's load. Each side's time is the median over rounds of per-round
medians (after warm-up); bnnc's entry point is called on preallocated buffers
and LCE's ``LiteInterpreter.predict`` (set input, invoke, copy output) directly.
The outputs are compared too (max |difference| relative to max |output|),
bnnc's with LCE's in the timed mode and with LCE's reference bconv kernel
(``use_reference_bconv``): LCE 0.16's optimised kernels compute a different
function on some zero-padded models (docs/tflite.md), its reference kernel is
the one that agrees with the Keras model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import direct_caller, median_ms  # noqa: E402

import bnnc  # noqa: E402

DEFAULT_LCE_ENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bnnc-lce-env"
MODES = {  # name -> (use_indirect_bgemm, use_xnnpack)
    "default": (False, False),
    "indirect": (True, False),
    "xnnpack": (False, True),
    "indirect+xnnpack": (True, True),
}

# The LCE worker: imports only the interpreter (the package's __init__ would
# import the converter and TensorFlow), then answers one JSON command per line.
WORKER = r"""
import importlib.util, json, statistics, sys, time, types
import numpy as np
spec = importlib.util.find_spec("larq_compute_engine")
pkg = types.ModuleType("larq_compute_engine")
pkg.__path__ = list(spec.submodule_search_locations)
sys.modules["larq_compute_engine"] = pkg
from larq_compute_engine.tflite.python.interpreter import Interpreter
cache = {}
for line in sys.stdin:
    cmd = json.loads(line)
    key = (cmd["model"], cmd["indirect"], cmd["xnnpack"], cmd.get("reference", False))
    if key not in cache:
        it = Interpreter(open(cmd["model"], "rb").read(), num_threads=1, use_reference_bconv=key[3],
                         use_indirect_bgemm=cmd["indirect"], use_xnnpack=cmd["xnnpack"])
        cache[key] = it.interpreter
    lite = cache[key]
    x = [np.load(cmd["input"])]
    if cmd["runs"] == 0:
        np.save(cmd["output"], np.asarray(lite.predict(x)[0], np.float32))
        print(json.dumps({"ok": True}), flush=True)
        continue
    for _ in range(cmd["warmup"]):
        lite.predict(x)
    times = []
    for _ in range(cmd["runs"]):
        t0 = time.perf_counter()
        lite.predict(x)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"ms": statistics.median(times) * 1e3}), flush=True)
"""


class LceWorker:
    """LCE's interpreter in its own Python (the LCE environment)."""

    def __init__(self, python: Path):
        if not python.exists():
            raise SystemExit(f"lce_table: no LCE environment at {python}; run `bash scripts/lce_env.sh` first")
        self.proc = subprocess.Popen([str(python), "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, **cmd) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        while True:  # LCE prints some warnings on stdout: skip what is not the answer
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit("lce_table: the LCE interpreter process died")
            if line.startswith("{"):
                return json.loads(line)
            print(f"# LCE: {line.rstrip()}", file=sys.stderr)

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait()


WARMUP_CALLS = 50


def bench_model(path: Path, lce: LceWorker, runs: int, rounds: int, work: Path) -> dict:
    row: dict = {"model": path.stem, "size_mb": path.stat().st_size / 1e6}
    t0 = time.perf_counter()
    fast = bnnc.compile(str(path), num_threads=1)
    row["compile_s"] = time.perf_counter() - t0
    shape = fast.signature.inputs[0].shape
    x = np.random.default_rng(0).normal(0, 1, shape).astype(np.float32)
    xin, yout = work / f"{path.stem}.in.npy", work / f"{path.stem}.lce.npy"
    np.save(xin, x)
    base = {"model": str(path), "input": str(xin), "output": str(yout), "warmup": 2}

    # LCE's fastest single-thread mode
    probe = {}
    for name, (indirect, xnn) in MODES.items():
        probe[name] = lce.ask(**base, indirect=indirect, xnnpack=xnn, runs=max(3, runs // 4))["ms"]
    mode = min(probe, key=probe.get)
    indirect, xnn = MODES[mode]
    row["lce_mode"], row["lce_probe_ms"] = mode, probe

    got = fast(x)
    for key, reference in (("", False), ("_ref", True)):
        # the reference kernel ignores indirect BGEMM (and LCE warns when both are set)
        lce.ask(**base, indirect=indirect and not reference, xnnpack=xnn, reference=reference, runs=0)
        want = np.load(yout)
        row["rel_diff" + key] = float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-30))
        same = got.reshape(got.shape[0], -1).argmax(-1) == want.reshape(want.shape[0], -1).argmax(-1)
        row["argmax_equal" + key] = bool(same.all())

    call = direct_caller(fast, [x])
    # bnnc's first ~30 calls of a process run up to 2x slower (the allocator
    # settles: each call allocates and frees its intermediates), so both sides
    # are timed in steady state: LCE after its own warm-up, bnnc after these
    median_ms(call, WARMUP_CALLS, warmup=0)
    per = max(1, runs // rounds)
    b, lt = [], []
    for _ in range(rounds):  # alternate, so both sides see the same load
        b.append(median_ms(call, per, warmup=1))
        lt.append(lce.ask(**base, indirect=indirect, xnnpack=xnn, runs=per)["ms"])
    row["bnnc_ms"], row["lce_ms"] = statistics.median(b), statistics.median(lt)
    row["speedup"] = row["lce_ms"] / row["bnnc_ms"]
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path, help=".tflite files or folders of them")
    ap.add_argument("--lce-python", type=Path, default=DEFAULT_LCE_ENV / "bin" / "python")
    ap.add_argument("--runs", type=int, default=30, help="timed runs per side (split over the rounds)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = ap.parse_args(argv)
    files = [f for p in args.models for f in (sorted(p.glob("*.tflite")) if p.is_dir() else [p])]
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"bnnc-lce-table-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    lce = LceWorker(args.lce_python)
    rows = []
    try:
        for f in files:
            row = bench_model(f, lce, args.runs, args.rounds, work)
            rows.append(row)
            print(f"# {row['model']}: compile {row['compile_s']:.1f} s, LCE probe (ms) "
                  + ", ".join(f"{k} {v:.1f}" for k, v in row["lce_probe_ms"].items()), file=sys.stderr, flush=True)
    finally:
        lce.close()
    print(f"\nbatch 1, single thread, median ms over {args.rounds} rounds of {max(1, args.runs // args.rounds)} runs per side")
    print("| model | file MB | LCE 0.16 ms (mode) | bnnc ms | LCE / bnnc | max rel. diff: timed mode "
          "| LCE reference kernel | same argmax (both) |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    yes = {True: "yes", False: "NO"}
    for r in rows:
        print(f"| {r['model']} | {r['size_mb']:.1f} | {r['lce_ms']:.1f} ({r['lce_mode']}) | {r['bnnc_ms']:.1f} "
              f"| {r['speedup']:.2f}x | {r['rel_diff']:.1e} | {r['rel_diff_ref']:.1e} "
              f"| {yes[r['argmax_equal']]}, {yes[r['argmax_equal_ref']]} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
