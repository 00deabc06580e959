"""Hostile and broken input, round 2 (issue 12): whatever a user feeds bnnc,
it answers with exit 2 and one `bnnc: error:` line, never a traceback, a crash
signal, a hang or a huge allocation.

- Thousands of random mutations of valid IR (the lit tests' .mlir files and
  the IR `bnnc compile --emit=bnn|loops` prints for a small model) go through
  `bnnc opt` and `bnnc compile`, in process, in a worker subprocess with an
  address-space limit (so a huge allocation fails loudly instead of eating the
  machine) and a per-input alarm (so a hang is reported with its input); a
  smaller sample runs the real `python -m bnnc.cli` to check exit codes and signals.
- Shapes whose element count overflows int64 or needs terabytes, in IR types,
  splat constants, --input-shape and compiled-model calls.
- ONNX external data outside the model's folder, TFLite buffers past the end.
- `.npy` inputs for `bnnc run`: pickled object arrays (never unpickled),
  wrong dtype or shape, truncated files, headers that lie about their size.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
LIT = HERE / "lit"

# ---------------------------------------------------------------------------
# outcome checks
# ---------------------------------------------------------------------------


def outcome_problem(rc: int, err: str) -> str | None:
    """What is wrong with how bnnc ended (None: a clean success or one clean user error)."""
    if "Traceback" in err:
        return "traceback on stderr"
    if rc == 0:
        return None
    if rc != 2:
        return f"exit code {rc}" + (" (internal error)" if "internal error" in err else "")
    if err.count("bnnc: error:") != 1:
        return f"{err.count('bnnc: error:')} 'bnnc: error:' lines"
    if "internal error" in err:
        return "internal error reported as a user error"
    return None


def assert_user_error(rc: int, err: str, *needles: str) -> str:
    """Exit 2, exactly one `bnnc: error:` message containing every needle, no traceback."""
    assert rc == 2, err
    assert outcome_problem(rc, err) is None, err
    message = err[err.index("bnnc: error:") :]
    for needle in needles:
        assert needle in message, f"{needle!r} not in:\n{err}"
    return message


def run_main(*args: Any) -> tuple[int, str, str]:
    """`bnnc.cli.main` in process with captured stdout/stderr (SystemExit -> its code)."""
    import contextlib
    import io

    from bnnc.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in args])
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def run_sub(*args: Any, limit_bytes: int | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real command line in a fresh process (optionally with an address-space limit)."""
    env = dict(os.environ)
    env.pop("BNNC_TRACEBACK", None)

    def limit() -> None:
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return subprocess.run(
        [sys.executable, "-m", "bnnc.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        preexec_fn=limit,
    )


# ---------------------------------------------------------------------------
# a small model and its IR (the seeds next to the lit files)
# ---------------------------------------------------------------------------


def _small_net():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class BinaryConv(nn.Conv2d):
        def forward(self, x):
            w = self.weight
            alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
            return F.conv2d(x, torch.sign(w) * alpha, None, self.stride, self.padding)

    class Net(nn.Module):
        """fp stem -> BN -> sign -> binary conv -> BN -> max pool -> avg pool -> linear."""

        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.bn0 = nn.BatchNorm2d(8)
            self.conv = BinaryConv(8, 8, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(8)
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            x = self.bn0(self.stem(x))
            x = self.bn(self.conv(torch.sign(x)))
            x = F.max_pool2d(x, 2)
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    torch.manual_seed(0)
    model = Net().eval()
    with torch.no_grad():
        for bn in (model.bn0, model.bn):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2)
    return model


SHAPE = (1, 3, 6, 6)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    import torch

    d = tmp_path_factory.mktemp("hostile")
    model = _small_net()
    x = torch.randn(*SHAPE)
    f: dict[str, Any] = {"dir": d, "x": x, "ref": model(x).detach().numpy()}
    f["pt2"] = d / "net.pt2"
    torch.export.save(torch.export.export(model, (x,)), f["pt2"])
    for stage in ("bnn", "loops"):
        f[stage] = d / f"net.{stage}.mlir"
        rc, _, err = run_main("compile", f["pt2"], f"--emit={stage}", "-o", f[stage])
        assert rc == 0, err
    np.save(d / "x.npy", x.numpy())
    f["x.npy"] = d / "x.npy"
    return f


# ---------------------------------------------------------------------------
# IR mutation
# ---------------------------------------------------------------------------

_TOKEN = re.compile(r"%[\w.#$-]+|@[\w.$-]+|#[\w.$-]+|\^[\w.$-]+|-?\d+\.\d*(?:e[+-]?\d+)?|-?\d+|\"[^\"\n]*\"|\w+(?:\.\w+)*|\S")
_NUMBER = re.compile(r"(?<![\w%@#^])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")
_DIM = re.compile(r"(?<=[<x])\d+(?=x)")
_ATTR = re.compile(r"\b(\w+) = ([^,{}]+?)(?=[,}])")

INTERESTING = [
    "0", "1", "-1", "2", "3", "7", "8", "63", "64", "65", "-2", "255", "1024", "2147483647", "2147483648",
    "4294967296", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "18446744073709551616",
    "99999999999999999999999999", "0.0", "-0.0", "0.5", "1e38", "1e39", "1.0e-45", "nan", "inf", "0x7FC00000",
]
TYPES = ["f32", "i64", "i32", "i1", "f16", "f64", "index", "i8", "tensor<1xf32>", "memref<4xi64>", "none"]


def split_functions(text: str) -> list[str]:
    """The top-level functions of printed IR, each as its own module (smaller seeds)."""
    out, current = [], None
    for line in text.splitlines():
        if line.startswith("  func.func"):
            current = [line]
        elif current is not None:
            current.append(line)
            if line == "  }":
                out.append("builtin.module {\n" + "\n".join(current) + "\n}\n")
                current = None
    return out


def _lit_seeds() -> list[dict[str, str]]:
    """Every `// -----` chunk of the lit .mlir files, with the passes its RUN line names."""
    seeds = []
    for path in sorted(LIT.rglob("*.mlir")):
        text = path.read_text()
        m = re.search(r"-p '?([\w,{}= -]+?)'?(?: \||\s*$| --)", text)
        passes = m.group(1).strip() if m else ""
        for i, chunk in enumerate(text.split("// -----")):
            body = "\n".join(line for line in chunk.splitlines() if not line.lstrip().startswith("//"))
            if "func.func" not in body and "llvm.func" not in body:
                continue
            seeds.append({"name": f"{path.relative_to(LIT)}#{i}", "text": body + "\n", "passes": passes})
    return seeds


LOOPS_TO_LLVM = (
    "convert-scf-to-cf,convert-memref-to-llvm,convert-vector-to-llvm,convert-math-to-llvm,"
    "convert-arith-to-llvm,convert-cf-to-llvm,convert-func-to-llvm,lower-parallel-calls,reconcile-unrealized-casts"
)


def all_seeds(files: dict[str, Path]) -> list[dict[str, str]]:
    seeds = _lit_seeds()
    seeds.append({"name": "net.bnn", "text": files["bnn"].read_text(), "passes": "convert-bnn-to-loops"})
    for i, fn in enumerate(split_functions(files["loops"].read_text())):
        seeds.append({"name": f"net.loops#{i}", "text": fn, "passes": LOOPS_TO_LLVM})
    return seeds


def mutate(text: str, rng: random.Random) -> str | bytes:
    """One to three random edits: byte flips, token swaps, deleted/duplicated/swapped
    lines, changed numbers, shapes, attributes and types, truncation."""
    data: str | bytes = text
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if isinstance(data, bytes):
            break
        kind = rng.randrange(12)
        lines = data.split("\n")
        tokens = [m for m in _TOKEN.finditer(data)]
        if kind == 0:  # byte flip (sometimes into invalid UTF-8)
            raw = bytearray(data.encode())
            pos = rng.randrange(len(raw))
            raw[pos] = rng.randrange(256) if rng.random() < 0.2 else rng.randrange(32, 127)
            try:
                data = raw.decode()
            except UnicodeDecodeError:
                data = bytes(raw)
        elif kind == 1 and len(lines) > 1:  # delete a line
            del lines[rng.randrange(len(lines))]
            data = "\n".join(lines)
        elif kind == 2:  # duplicate a line
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            data = "\n".join(lines)
        elif kind == 3 and len(lines) > 1:  # swap two lines
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            data = "\n".join(lines)
        elif kind in (4, 5) and len(tokens) > 1:  # swap two tokens / replace one with another
            a, b = sorted(rng.sample(tokens, 2), key=lambda m: m.start())
            ta, tb = a.group(0), b.group(0)
            if kind == 4:
                data = data[: a.start()] + tb + data[a.end() : b.start()] + ta + data[b.end() :]
            else:
                data = data[: a.start()] + tb + data[a.end() :]
        elif kind == 6 and tokens:  # delete a token
            t = rng.choice(tokens)
            data = data[: t.start()] + data[t.end() :]
        elif kind in (7, 8):  # change a number
            nums = list(_NUMBER.finditer(data))
            if nums:
                t = rng.choice(nums)
                data = data[: t.start()] + rng.choice(INTERESTING) + data[t.end() :]
        elif kind == 9:  # change one dimension of a shaped type
            dims = list(_DIM.finditer(data))
            if dims:
                t = rng.choice(dims)
                new = rng.choice(["0", "1", "2", "3", "5", "64", "65", "4294967296", "9223372036854775807", "?"])
                data = data[: t.start()] + new + data[t.end() :]
        elif kind == 10:  # change or drop an attribute of an op
            attrs = list(_ATTR.finditer(data))
            if attrs:
                t = rng.choice(attrs)
                choice = rng.random()
                if choice < 0.3:
                    data = data[: t.start()] + data[t.end() :]
                elif choice < 0.6:
                    data = data[: t.start(2)] + rng.choice(["0 : i64", "-1 : i64", "array<i64>", "array<i64: 0, 0>",
                                                            "array<i64: -1, 2, 3>", "true", "\"x\"", "1.0 : f32",
                                                            "9223372036854775807 : i64"]) + data[t.end(2) :]
                else:
                    other = rng.choice(attrs)
                    data = data[: t.start(1)] + other.group(1) + data[t.end(1) :]
        elif kind == 11:  # change an element type, or truncate
            if rng.random() < 0.7:
                ts = [m for m in re.finditer(r"\b(f32|i64|i32|i1|index)\b", data)]
                if ts:
                    t = rng.choice(ts)
                    data = data[: t.start()] + rng.choice(TYPES) + data[t.end() :]
            else:
                data = data[: rng.randrange(len(data))]
    return data


# ---------------------------------------------------------------------------
# the in-process fuzz worker (runs in a subprocess: rlimit, alarm, crash isolation)
# ---------------------------------------------------------------------------


class _Hang(BaseException):
    """Raised by the alarm; a BaseException so the CLI's `except Exception` cannot swallow it."""


def fuzz_worker(config_path: str) -> None:
    """Run `count` mutants through the CLI in this process; write one JSON report.

    Before each mutant the input and its command are on disk (`current.json`),
    so if this process dies of a signal the test still knows which input did it."""
    import contextlib
    import io
    import signal
    import traceback

    os.environ["BNNC_TRACEBACK"] = "1"  # internal errors propagate: we record the traceback
    config = json.loads(Path(config_path).read_text())
    work = Path(config["work"])
    seeds = json.loads(Path(config["seeds"]).read_text())
    rng = random.Random(config["seed"])
    limit = config["address_space"]
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from bnnc.cli import main
    from bnnc.opt import opt_main

    def on_alarm(signum, frame):
        raise _Hang()

    signal.signal(signal.SIGALRM, on_alarm)
    results: dict[str, Any] = {"runs": 0, "exit0": 0, "exit2": 0, "failures": []}
    path = work / "mutant.mlir"
    for n in range(config["count"]):
        seed = rng.choice(seeds)
        mutant = mutate(seed["text"], rng)
        if isinstance(mutant, bytes):
            path.write_bytes(mutant)
        else:
            path.write_text(mutant)
        if config["mode"] == "opt":
            argv = ["opt", str(path)] + (["-p", seed["passes"]] if seed["passes"] and rng.random() < 0.85 else [])
        else:
            emit = rng.choice(["bnn", "bnn", "loops", "loops", "llvm"])
            names = re.findall(r"func\.func (?:private )?@([\w.$-]+)", seed["text"])
            argv = ["compile", str(path), f"--emit={emit}", "-o", os.devnull]
            if len(names) > 1:
                argv += ["--name", names[0]]
        (work / "current.json").write_text(json.dumps({"n": n, "seed": seed["name"], "argv": argv}))
        out, err = io.StringIO(), io.StringIO()
        tb = ""
        signal.alarm(config["timeout"])
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = main(argv)
        except _Hang:
            rc, tb = -1, f"hang: no answer within {config['timeout']} s"
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException:  # an internal error (BNNC_TRACEBACK=1 re-raises it)
            rc, tb = 3, traceback.format_exc()
        finally:
            signal.alarm(0)
        results["runs"] += 1
        results["exit0" if rc == 0 else "exit2" if rc == 2 else "other"] = results.get(
            "exit0" if rc == 0 else "exit2" if rc == 2 else "other", 0
        ) + 1
        problem = outcome_problem(rc, err.getvalue()) if not tb else (tb.splitlines()[-1] if rc == 3 else tb)
        if problem is not None:
            saved = work / f"failure{len(results['failures'])}.mlir"
            saved.write_bytes(path.read_bytes())
            results["failures"].append(
                {"seed": seed["name"], "argv": argv, "file": str(saved), "rc": rc, "problem": problem,
                 "stderr": err.getvalue()[-1500:], "traceback": tb[-3000:]}
            )
    results["max_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    Path(config["report"]).write_text(json.dumps(results))
    del opt_main


def run_fuzz(files: dict[str, Path], tmp_path: Path, mode: str, count: int, seed: int) -> dict[str, Any]:
    """Start the worker; report a crash signal or a hang of the whole worker with its input."""
    work = tmp_path / mode
    work.mkdir()
    seeds = all_seeds(files)
    if mode == "compile":  # graph-level IR only: compile starts from bnn IR
        seeds = [s for s in seeds if "bnn." in s["text"] and "llvm." not in s["text"] and "scf." not in s["text"]]
    (work / "seeds.json").write_text(json.dumps(seeds))
    config = {
        "work": str(work), "seeds": str(work / "seeds.json"), "seed": seed, "count": count, "mode": mode,
        "timeout": 60, "address_space": 6 << 30, "report": str(work / "report.json"),
    }
    (work / "config.json").write_text(json.dumps(config))
    code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import test_hostile_inputs as t; t.fuzz_worker({str(work / 'config.json')!r})"
    env = dict(os.environ)
    env.pop("BNNC_TRACEBACK", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800, env=env)
    if proc.returncode != 0 or not (work / "report.json").exists():
        current = (work / "current.json").read_text() if (work / "current.json").exists() else "?"
        pytest.fail(
            f"fuzz worker died with exit {proc.returncode} (negative: signal) on {current}; "
            f"input kept at {work / 'mutant.mlir'}\nstderr:\n{proc.stderr[-3000:]}"
        )
    report = json.loads((work / "report.json").read_text())
    print(f"{mode}: {report['runs']} mutants, {report.get('exit0', 0)} valid, {report.get('exit2', 0)} refused, "
          f"max RSS {report['max_rss_kb'] // 1024} MiB, {len(report['failures'])} failures")
    return report


def _explain(failures: list[dict[str, Any]]) -> str:
    lines = []
    for f in failures[:8]:
        lines.append(f"--- {f['seed']} -> bnnc {' '.join(f['argv'])} (kept: {f['file']})\n{f['problem']}\n"
                     f"{f['stderr'][-600:]}\n{f['traceback'][-1500:]}")
    return f"{len(failures)} mutants broke the error contract:\n" + "\n".join(lines)


OPT_MUTANTS = 1200
COMPILE_MUTANTS = 500


def test_mutated_ir_opt(files, tmp_path):
    """bnnc opt (with the pass each seed's lit test runs) on OPT_MUTANTS mutants."""
    report = run_fuzz(files, tmp_path, "opt", OPT_MUTANTS, seed=12)
    assert report["runs"] == OPT_MUTANTS
    assert report.get("exit2", 0) > OPT_MUTANTS // 4  # the mutations do break things
    assert not report["failures"], _explain(report["failures"])
    assert report["max_rss_kb"] < 3 << 20, "the fuzz worker's memory grew past 3 GiB"


def test_mutated_ir_compile(files, tmp_path):
    """bnnc compile (.mlir input, --emit=bnn|loops|llvm) on COMPILE_MUTANTS mutants of graph IR."""
    report = run_fuzz(files, tmp_path, "compile", COMPILE_MUTANTS, seed=1212)
    assert report["runs"] == COMPILE_MUTANTS
    assert report.get("exit2", 0) > COMPILE_MUTANTS // 4
    assert not report["failures"], _explain(report["failures"])
    assert report["max_rss_kb"] < 3 << 20, "the fuzz worker's memory grew past 3 GiB"


SUBPROCESS_MUTANTS = 8


def test_mutated_ir_real_command_line(files, tmp_path):
    """A sample through `python -m bnnc.cli`: real exit codes, no signal, no traceback."""
    rng = random.Random(7)
    seeds = all_seeds(files)
    bnn_seeds = [s for s in seeds if "bnn." in s["text"] and "llvm." not in s["text"] and "scf." not in s["text"]]
    for n in range(SUBPROCESS_MUTANTS):
        seed = rng.choice(seeds if n % 2 == 0 else bnn_seeds)
        mutant = mutate(seed["text"], rng)
        path = tmp_path / f"m{n}.mlir"
        path.write_bytes(mutant if isinstance(mutant, bytes) else mutant.encode())
        if n % 2 == 0:
            argv = ["opt", path] + (["-p", seed["passes"]] if seed["passes"] else [])
        else:
            argv = ["compile", path, "--emit=loops", "-o", os.devnull]
            names = re.findall(r"func\.func (?:private )?@([\w.$-]+)", seed["text"])
            if len(names) > 1:
                argv += ["--name", names[0]]
        r = run_sub(*argv, limit_bytes=6 << 30, timeout=300)
        assert r.returncode >= 0, f"killed by signal {-r.returncode}: {seed['name']} -> {path}"
        assert outcome_problem(r.returncode, r.stderr) is None, f"{seed['name']} -> {argv}:\n{r.stderr[-2000:]}"


# ---------------------------------------------------------------------------
# absurd shapes
# ---------------------------------------------------------------------------

HUGE_TYPES = {
    "overflow": "tensor<4294967296x4294967296xf32>",  # 2^64 elements: overflows int64
    "terabytes": "tensor<1x1024x1024x1048576xf32>",  # 4 TiB
    "i64_overflow": "tensor<9223372036854775807x2xi64>",
}


def _huge_ir(kind: str, where: str) -> str:
    t = HUGE_TYPES[kind]
    if where == "argument":
        return f"func.func @f(%x: {t}) -> {t} {{\n  %y = bnn.relu %x : {t}\n  func.return %y : {t}\n}}\n"
    # a splat constant: the parser would expand it element by element
    return (f"func.func @f(%x: tensor<1x8xf32>) -> tensor<1x8xf32> {{\n  %c = arith.constant dense<1.0> : {t}\n"
            "  %y = bnn.relu %x : tensor<1x8xf32>\n  func.return %y : tensor<1x8xf32>\n}\n")


MEMORY_CAP = 3 << 30  # address space of the subprocesses below: a huge allocation fails instead of succeeding


@pytest.mark.parametrize("kind", sorted(HUGE_TYPES))
@pytest.mark.parametrize("where", ["argument", "splat"])
def test_huge_ir_types_in_process(tmp_path, kind, where):
    """Every entry point refuses them with one error line, before parsing allocates."""
    path = tmp_path / f"{kind}_{where}.mlir"
    path.write_text(_huge_ir(kind, where))
    for argv in (["opt", path], ["opt", path, "-p", "convert-bnn-to-loops"], ["compile", path, "--emit=bnn"],
                 ["compile", path, "--emit=obj", "-o", tmp_path / "o.o"]):
        rc, _, err = run_main(*argv)
        assert_user_error(rc, err, "too large", path.name)


@pytest.mark.parametrize(
    "attr, named",
    [
        ("array<i69: 1, 2>", "i69"),  # xDSL: NotImplementedError "Format not implemented for i69"
        ("0xFFFFFFFFFFFFFF : f32", "too big"),  # hex float wider than f32: OverflowError in int.to_bytes
        ("3.0e40 : f16", "too large"),  # OverflowError packing an f16
    ],
)
def test_unparsable_attribute_in_ir(tmp_path, attr, named):
    """Attributes xDSL's parser fails on with an exception that is not a ParseError
    (each found as a mutant of a lit file): every entry point gives one error line
    naming the file."""
    path = tmp_path / "attr.mlir"
    path.write_text('func.func @f() -> () {\n  "test.op"() {a = %s} : () -> ()\n  func.return\n}\n' % attr)
    for argv in (["opt", path], ["compile", path, "--emit=bnn"]):
        rc, _, err = run_main(*argv)
        assert_user_error(rc, err, named, path.name)


def test_big_splat_refused_before_parsing(tmp_path):
    """A splat of 2^31 elements fits the 1 TiB limit but would be a 16 GiB list in the parser."""
    path = tmp_path / "splat.mlir"
    path.write_text("func.func @f(%x: tensor<1xf32>) -> tensor<1xf32> {\n  %c = arith.constant dense<0.0> : "
                    "tensor<2048x1024x1024xf32>\n  func.return %x : tensor<1xf32>\n}\n")
    r = run_sub("opt", path, limit_bytes=MEMORY_CAP)
    assert_user_error(r.returncode, r.stderr, "splat", "too large")


@pytest.mark.parametrize("kind", ["overflow", "terabytes"])
def test_huge_ir_subprocess_memory_bounded(tmp_path, kind):
    """The real command line under a 3 GiB address-space cap: exit 2, small RSS."""
    path = tmp_path / "huge.mlir"
    path.write_text(_huge_ir(kind, "splat"))
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_CAP}, {MEMORY_CAP}))
        from bnnc.cli import main
        rc = main(["compile", {str(path)!r}, "--emit=loops", "-o", "/dev/null"])
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking
        # parent (pytest, ~1 GiB late in the suite); execve starts a new VmHWM
        hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
        print("RSS", hwm, file=sys.stderr)
        sys.exit(rc)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert_user_error(r.returncode, r.stderr, "too large")
    rss_kb = int(re.search(r"RSS (\d+)", r.stderr).group(1))
    assert rss_kb < 1 << 20, f"max RSS {rss_kb} KiB"


@pytest.mark.parametrize("shape", ["100000,100000,100000", "4294967296,4294967296", "1,3,-6,6", "1,3,600000,600000"])
def test_huge_input_shape(files, shape):
    """--input-shape is checked before any example tensor is allocated (a .pt2 and a .mlir model)."""
    for model in (files["pt2"], files["bnn"]):
        rc, _, err = run_main("compile", model, f"--input-shape={shape}", "--emit=bnn")
        assert_user_error(rc, err, "--input-shape", shape)


def test_huge_input_shape_torchscript_subprocess(files, tmp_path):
    """A TorchScript model needs real example inputs: 1 TiB of them is refused, not allocated."""
    import torch

    script = tmp_path / "net.pt"
    torch.jit.script(_small_net()).save(str(script))
    r = run_sub("compile", script, "--input-shape", "1,3,300000,300000", "--emit=bnn", limit_bytes=6 << 30)
    assert_user_error(r.returncode, r.stderr, "--input-shape", "1,3,300000,300000")


def test_compiled_model_refuses_huge_views_without_copying(files):
    """A wrong-shaped expanded view (petabytes if copied) is refused before .contiguous()."""
    import torch

    import bnnc

    fast = bnnc.compile(_small_net(), (files["x"],))
    huge_t = torch.zeros(1).expand(1 << 20, 1 << 20, 1 << 10, 1)
    with pytest.raises(bnnc.InputError, match="expected shape"):
        fast(huge_t)
    huge_np = np.broadcast_to(np.zeros(1, np.float32), (1 << 20, 1 << 20, 1 << 10, 1))
    with pytest.raises(bnnc.InputError, match="expected shape"):
        fast(huge_np)
    with pytest.raises(bnnc.InputError, match=r"got \[\]"):  # a 0-d array is not silently made 1-d
        fast(np.zeros((), np.float32))


# ---------------------------------------------------------------------------
# ONNX external data, TFLite buffers
# ---------------------------------------------------------------------------


def _onnx_model_with_external(tmp_path: Path, location: str, offset: int = 0, length: int | None = None) -> Path:
    import onnx
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    for key, value in [("location", location), ("offset", str(offset))] + ([("length", str(length))] if length is not None else []):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    node = helper.make_node("Add", ["x", "w"], ["y"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    d = tmp_path / "models"
    d.mkdir(exist_ok=True)
    path = d / "ext.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin", "link.bin"])
def test_onnx_external_data_outside_folder(tmp_path, location):
    (tmp_path / "secret.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    path = _onnx_model_with_external(tmp_path, location)
    (path.parent / "link.bin").symlink_to(tmp_path / "secret.bin")
    rc, _, err = run_main("compile", path, "--emit=bnn")
    assert_user_error(rc, err, path.name)
    assert "outside" in err or "escapes" in err or "folder" in err or "directory" in err, err


@pytest.mark.parametrize("offset, length", [(0, 1 << 40), (1 << 62, 16), (8, 16)])
def test_onnx_external_data_past_end(tmp_path, offset, length):
    path = _onnx_model_with_external(tmp_path, "w.bin", offset, length)
    (path.parent / "w.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    r = run_sub("compile", path, "--emit=bnn", limit_bytes=MEMORY_CAP)
    assert_user_error(r.returncode, r.stderr, path.name)


TFLITE_CHAIN = HERE / "data" / "tflite" / "binary_chain.tflite"


def _first_data_buffer(data: bytes):
    import tflite

    m = tflite.Model.GetRootAsModel(data, 0)
    return next(m.Buffers(i) for i in range(m.BuffersLength()) if m.Buffers(i).DataLength() > 0)


@pytest.mark.parametrize("how", ["length", "uoffset", "uoffset_wraps"])
def test_tflite_buffer_past_end(tmp_path, how):
    """A constant buffer whose data vector's length, or the offset to it, points past the
    end of the file: `bnnc compile` exits 2 with one line, allocating nothing."""
    import struct

    data = TFLITE_CHAIN.read_bytes()
    buf = bytearray(data)
    b = _first_data_buffer(data)
    field = b._tab.Pos + b._tab.Offset(4)  # where the table stores the uoffset to its data vector
    vector = b._tab.Vector(b._tab.Offset(4))  # the vector's first byte (its length is 4 before)
    if how == "length":
        struct.pack_into("<I", buf, vector - 4, 0x7FFFFFF0)
    elif how == "uoffset":
        struct.pack_into("<I", buf, field, len(buf) + 4096 - field)
    else:
        struct.pack_into("<I", buf, field, 0xFFFFFFF0)
    path = tmp_path / f"{how}.tflite"
    path.write_bytes(bytes(buf))
    r = run_sub("compile", path, "--emit=bnn", limit_bytes=MEMORY_CAP)
    assert_user_error(r.returncode, r.stderr, path.name)


# ---------------------------------------------------------------------------
# .npy inputs for bnnc run
# ---------------------------------------------------------------------------


class MakesMarker:
    """Unpickling this creates a file: what a malicious pickle could do."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _write_header(path: Path, shape: tuple[int, ...], descr: str = "<f4", body: bytes = b"") -> Path:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": shape})
        f.write(body)
    return path


@pytest.fixture(scope="module")
def shared_lib(files) -> Path:
    so = files["dir"] / "net.so"
    rc, _, err = run_main("compile", files["pt2"], "--emit=so", "-o", so)
    assert rc == 0, err
    return so


def _npy_cases(d: Path, marker: Path) -> dict[str, tuple[Path, list[str]]]:
    """name -> (file, what the error must say besides the file name)."""
    good = (d / "x.npy").read_bytes()
    cases: dict[str, tuple[Path, list[str]]] = {}
    evil = d / "evil.npy"
    np.save(evil, np.array([MakesMarker(marker), 1], dtype=object), allow_pickle=True)
    cases["pickle"] = (evil, ["float32"])
    np.save(d / "f64.npy", np.zeros(SHAPE))
    cases["float64"] = (d / "f64.npy", ["float32", "float64"])
    np.save(d / "i32.npy", np.zeros(SHAPE, np.int32))
    cases["int32"] = (d / "i32.npy", ["float32", "int32"])
    np.save(d / "big_endian.npy", np.zeros(SHAPE, ">f4"))
    cases["big_endian"] = (d / "big_endian.npy", ["float32", ">f4"])
    np.save(d / "struct.npy", np.zeros(SHAPE, dtype=[("a", "<f4")]))
    cases["struct"] = (d / "struct.npy", ["float32"])
    np.save(d / "shape.npy", np.zeros((1, 3, 7, 6), np.float32))
    cases["shape"] = (d / "shape.npy", ["[1, 3, 6, 6]", "[1, 3, 7, 6]"])
    np.save(d / "scalar.npy", np.float32(1))
    cases["scalar"] = (d / "scalar.npy", ["[1, 3, 6, 6]"])
    (d / "trunc_data.npy").write_bytes(good[: len(good) - 20])
    cases["truncated_data"] = (d / "trunc_data.npy", ["truncated"])
    (d / "trunc_header.npy").write_bytes(good[:40])
    cases["truncated_header"] = (d / "trunc_header.npy", [".npy"])
    (d / "empty.npy").write_bytes(b"")
    cases["empty"] = (d / "empty.npy", [".npy"])
    cases["huge_header"] = (_write_header(d / "huge.npy", (1 << 40,), body=b"\0" * 64), ["truncated"])
    cases["overflow_header"] = (_write_header(d / "ovf.npy", (1 << 62, 1 << 62), body=b"\0" * 64), ["truncated"])
    cases["negative_header"] = (_write_header(d / "neg.npy", (-1,), body=b"\0" * 64), [".npy"])
    cases["bad_descr"] = (_write_header(d / "descr.npy", SHAPE, descr="<q9", body=b"\0" * 432), [".npy"])
    (d / "garbage.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': ]]]]  \n")
    cases["garbage_header"] = (d / "garbage.npy", [".npy"])
    return cases


@pytest.mark.parametrize("model_key", ["so", "pt2", "bnn"])
def test_run_hostile_npy(files, shared_lib, tmp_path, model_key):
    """Every bad .npy: exit 2, one line naming the file; the pickle never runs; no output written."""
    model = {"so": shared_lib, "pt2": files["pt2"], "bnn": files["bnn"]}[model_key]
    marker = tmp_path / "PWNED"
    out = tmp_path / "y.npy"
    for name, (path, needles) in _npy_cases(files["dir"], marker).items():
        if model_key != "so" and name not in ("pickle", "float64", "shape", "truncated_data", "huge_header"):
            continue  # (each run of a .pt2/.mlir compiles the model: a representative few)
        rc, _, err = run_main("run", model, "--input", path, "--output", out)
        assert_user_error(rc, err, path.name, *needles)
        assert not marker.exists(), f"{name}: the pickle payload ran"
        assert not out.exists()


def test_run_hostile_npy_subprocess(files, shared_lib, tmp_path):
    """The real command line under a 3 GiB cap: pickle never runs, lying headers allocate nothing."""
    marker = tmp_path / "PWNED"
    cases = _npy_cases(files["dir"], marker)
    for name in ("pickle", "huge_header", "struct", "shape"):
        path, needles = cases[name]
        r = run_sub("run", shared_lib, "--input", path, "--output", tmp_path / "y.npy", limit_bytes=MEMORY_CAP)
        assert_user_error(r.returncode, r.stderr, path.name, *needles)
        assert not marker.exists()


def test_run_good_npy_still_works(files, shared_lib, tmp_path):
    """The checks do not refuse good inputs (incl. a Fortran-ordered array)."""
    np.save(tmp_path / "xf.npy", np.asfortranarray(files["x"].numpy()))
    for src in (files["x.npy"], tmp_path / "xf.npy"):
        rc, _, err = run_main("run", shared_lib, "--input", src, "--output", tmp_path / "y.npy")
        assert rc == 0, err
        np.testing.assert_allclose(np.load(tmp_path / "y.npy"), files["ref"], rtol=1e-4, atol=1e-4)
