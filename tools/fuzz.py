"""bnnc's differential fuzzer: random BNN graphs, compiled and checked against PyTorch.

    python tools/fuzz.py --seed 7 --count 200 --time-limit 3600 --out fuzz-out

Graph i of seed s is graph_recipes.random_recipe(s, i) (every binarizer
spelling, weight form, padding mode, group count, pooling placement, residual
and concat, float ops between binary layers); it is compiled with
`check_bounds=True` at a thread count drawn from 1..--threads, in half the
graphs with every float-result layer channels-last (`+nhwc`), run on two
inputs and compared with PyTorch eager by the tie-aware oracle
(test/differential.py). Every --aarch64-every-th graph is also compiled to an
aarch64 object and run under qemu-aarch64, every --onnx-every-th one also
exported with torch.onnx and compiled from the .onnx file. Checks run in a worker process
(tools/fuzz_worker.py), so a crash or a bounds trap is caught and reported
with the worker's stderr. A failure is shrunk (tools/fuzz_shrink.py) and
written to --out as a standalone repro script (tools/fuzz_repro.py).

Prints one line per graph and a summary; exits 1 if any graph failed
(mismatch, crash, bounds trap, error, timeout), 0 otherwise. Refusals
(bnnc.UnsupportedError) are counted, not failures: bnnc may refuse, never
miscompile.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "test"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz_repro import write_repro
from fuzz_shrink import Shrinker
from graph_recipes import random_recipe

FAILURES = ("mismatch", "crash", "bounds", "error", "timeout")
BOUNDS_MARK = "bnnc: bounds check failed"


class Worker:
    """A tools/fuzz_worker.py process; restarted after it dies or hangs."""

    def __init__(self, timeout: float, env: dict[str, str]):
        self.timeout, self.env = timeout, env
        self.proc: subprocess.Popen | None = None
        self.stderr_path = ""

    def _start(self) -> None:
        fd, self.stderr_path = tempfile.mkstemp(prefix="bnnc-fuzz-worker-", suffix=".log")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve().parent / "fuzz_worker.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=fd, text=True, env=self.env,
        )
        os.close(fd)

    def _stderr_tail(self) -> str:
        try:
            text = Path(self.stderr_path).read_text(errors="replace")
        except OSError:
            return ""
        lines = [ln for ln in text.splitlines() if "Warning" not in ln and "return cls.__new__" not in ln]
        return "\n".join(lines[-20:])

    def _reset(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
        if self.stderr_path:
            Path(self.stderr_path).unlink(missing_ok=True)
        self.proc = None

    def check(self, request: dict) -> dict:
        """The worker's answer, or a crash / bounds / timeout verdict if it died."""
        if self.proc is None or self.proc.poll() is not None:
            self._reset()
            self._start()
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        Path(self.stderr_path).write_text("")  # only this request's stderr
        start = time.perf_counter()
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = _readline(self.proc, self.timeout)
        if line:
            return json.loads(line)
        seconds = round(time.perf_counter() - start, 3)
        if self.proc.poll() is None:  # hung
            self._reset()
            return {"status": "timeout", "detail": f"no answer within {self.timeout:.0f} s", "seconds": seconds}
        code = self.proc.returncode
        tail = self._stderr_tail()
        self._reset()
        name = signal.Signals(-code).name if code < 0 and -code in signal.Signals._value2member_map_ else str(code)
        status = "bounds" if BOUNDS_MARK in tail else "crash"
        return {"status": status, "detail": f"worker died ({name})\n{tail}", "seconds": seconds}

    def close(self) -> None:
        if self.proc is not None and self.proc.stdin:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        self._reset()


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    """One line of proc's stdout, or '' if it closes or `timeout` passes."""
    import selectors

    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            return ""
        return proc.stdout.readline()
    finally:
        sel.close()


@dataclass
class Stats:
    graphs: int = 0
    statuses: Counter = field(default_factory=Counter)
    threads: Counter = field(default_factory=Counter)
    aarch64: int = 0
    onnx: int = 0
    explained: int = 0
    failures: list[str] = field(default_factory=list)

    def summary(self, seed: int, wall: float) -> str:
        st = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items()))
        th = " ".join(f"{k}:{v}" for k, v in sorted(self.threads.items()))
        head = (
            f"fuzz summary: seed {seed}, {self.graphs} graphs in {wall:.0f} s ({st}); "
            f"{self.aarch64} also on aarch64 under qemu, {self.onnx} also through ONNX export; {self.explained} matched only via the tie-aware explanation"
        )
        lines = [head, f"  threads used: {th}"]
        lines += [f"  FAILED: {f}" for f in self.failures]
        return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tools/fuzz.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=None, help="run seed (default: random, printed)")
    p.add_argument("--start", type=int, default=0, help="index of the first graph of the seed")
    p.add_argument("--count", type=int, default=None, help="graphs to run (default: until --time-limit)")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS", help="stop starting graphs after this")
    p.add_argument("--threads", type=int, default=8, help="largest thread count drawn (1..N)")
    p.add_argument("--aarch64-every", type=int, default=10, metavar="K",
                   help="also run every K-th graph as an aarch64 object under qemu (0: never)")
    p.add_argument("--onnx-every", type=int, default=5, metavar="K",
                   help="also export every K-th graph with torch.onnx and compile the .onnx (0: never)")
    p.add_argument("--out", default="fuzz-out", help="directory for repro scripts")
    p.add_argument("--timeout", type=float, default=900, help="seconds one graph may take")
    p.add_argument("--shrink-budget", type=int, default=60, help="recipe checks the shrinker may spend per failure")
    p.add_argument("--no-shrink", action="store_true", help="write failures as found")
    p.add_argument("--recipe", default=None, metavar="FILE.json",
                   help="check this recipe (a repro's .json) instead of generated ones, --count times")
    p.add_argument("--inject", default=None, help=argparse.SUPPRESS)  # tests: see fuzz_worker
    args = p.parse_args(argv)
    if args.count is None and args.time_limit is None:
        p.error("give --count, --time-limit or both")
    if args.threads < 1:
        p.error("--threads must be at least 1")
    return args


def _request(args: argparse.Namespace, index: int) -> dict:
    if args.recipe:
        given = json.loads(Path(args.recipe).read_text())
        return {"recipe": given["recipe"], "threads": given.get("threads", 1),
                "thread_min_work": given.get("thread_min_work"), "aarch64": given.get("aarch64", False),
                "onnx": given.get("onnx", False), "nhwc": given.get("nhwc", False), "jobs": given.get("jobs"),
                "inject": args.inject}
    recipe = random_recipe(args.seed, index)
    rng = random.Random(f"bnnc-fuzz-threads:{args.seed}:{index}")
    aarch64 = bool(args.aarch64_every) and index % args.aarch64_every == args.aarch64_every - 1
    onnx = bool(args.onnx_every) and index % args.onnx_every == args.onnx_every // 2
    threads = rng.randint(1, args.threads)
    # every layer threaded (0) in most graphs: they are too small for the default threshold
    min_work = rng.choice([0, 0, 0, None])
    nhwc = rng.choice([True, False])
    # how the JIT code is built: a module split into 1-3 parts compiled in
    # parallel (bnnc.compile's way), or one module MCJIT compiles (None)
    jobs = rng.choice([1, 2, 3, None])
    return {"recipe": recipe, "threads": threads, "thread_min_work": min_work, "aarch64": aarch64, "onnx": onnx,
            "nhwc": nhwc, "jobs": jobs, "inject": args.inject}


def _handle_failure(args, worker: Worker, stats: Stats, index: int, request: dict, answer: dict) -> None:
    kind = answer["status"]
    recipe = request["recipe"]
    if not args.no_shrink:
        def fails(candidate: dict) -> bool:
            return worker.check({**request, "recipe": candidate})["status"] == kind

        shrinker = Shrinker(fails, budget=args.shrink_budget)
        small = shrinker.shrink(recipe)
        if small != recipe:
            again = worker.check({**request, "recipe": small})
            if again["status"] == kind:
                recipe, answer = small, again
        print(f"  shrunk to {len(recipe['blocks'])} block(s) in {shrinker.tries} checks", flush=True)
    path = write_repro(Path(args.out), kind=kind, request={**request, "recipe": recipe}, seed=args.seed,
                       index=index, detail=answer["detail"], repo=REPO)
    stats.failures.append(f"graph {index}: {kind} -> {path}")
    print(f"  repro: {path}", flush=True)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM stops the run like Ctrl-C: the worker is closed and the summary printed."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "little")
    print(f"fuzz: seed {args.seed} (rerun: python tools/fuzz.py --seed {args.seed} --start N --count 1)", flush=True)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    worker = Worker(args.timeout, env)
    stats = Stats()
    start = time.perf_counter()
    index = args.start
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            if args.count is not None and stats.graphs >= args.count:
                break
            if args.time_limit is not None and time.perf_counter() - start >= args.time_limit:
                break
            request = _request(args, index)
            answer = worker.check(request)
            stats.graphs += 1
            stats.statuses[answer["status"]] += 1
            stats.threads[request["threads"]] += 1
            stats.aarch64 += request["aarch64"] and answer["status"] == "ok"
            stats.onnx += answer["status"] == "ok" and answer.get("onnx", False)
            stats.explained += answer["status"] == "ok" and answer.get("explained", False)
            blocks = ",".join(b["kind"] if b["kind"] != "float" else b["op"] for b in request["recipe"]["blocks"])
            print(
                f"graph {index}: {answer['status']} {answer.get('seconds', 0):.1f}s threads={request['threads']}"
                f"{' (every layer)' if request['threads'] > 1 and request['thread_min_work'] == 0 else ''}"
                f"{' +nhwc' if request.get('nhwc') else ''}{'' if request.get('jobs') is None else ' jobs=' + str(request['jobs'])}"
                f"{' +aarch64' if request['aarch64'] else ''}{' +onnx' if request['onnx'] else ''} [{blocks}]",
                flush=True,
            )
            if answer["status"] in FAILURES:
                print("  " + answer["detail"].strip().replace("\n", "\n  ")[:3000], flush=True)
                _handle_failure(args, worker, stats, index, request, answer)
            index += 1
    except KeyboardInterrupt:
        print(f"fuzz: interrupted during graph {index}", flush=True)
    finally:
        worker.close()
    print(stats.summary(args.seed, time.perf_counter() - start), flush=True)
    return 1 if stats.failures else 0


if __name__ == "__main__":
    sys.exit(main())
