"""The persistent compile cache (bnnc.compile_cache) and compile progress
(bnnc.progress): hits and misses, what the key depends on, corrupt entries,
concurrent compiles, BNNC_CACHE_DIR / --no-cache, and a quiet stderr in pipes.

Every test uses its own temporary BNNC_CACHE_DIR (conftest.py turns the cache
off for the rest of the suite with BNNC_NO_CACHE)."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import bnnc
from bnnc import compile_cache, driver
from bnnc.driver import CompileOptions
from bnnc.progress import Progress

REPO = Path(__file__).resolve().parents[1]


class TinyBnn(nn.Module):
    """BN -> sign -> binary 3x3 conv (alpha) -> BN: one binary layer, compiles fast."""

    def __init__(self, c: int = 8):
        super().__init__()
        self.bn0 = nn.BatchNorm2d(c)
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)

    def forward(self, x):
        w = self.conv.weight
        alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
        y = F.conv2d(torch.sign(self.bn0(x)), torch.sign(w) * alpha, None, 1, 1)
        return self.bn1(y)


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    m = TinyBnn().eval()
    with torch.no_grad():
        for bn in (m.bn0, m.bn1):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 1.5)
    return m


X = torch.randn(1, 8, 6, 6, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache directory that bnnc uses (and the cache switched on)."""
    d = tmp_path / "cache"
    monkeypatch.setenv("BNNC_CACHE_DIR", str(d))
    monkeypatch.delenv("BNNC_NO_CACHE", raising=False)
    return d


@pytest.fixture
def pt2(tmp_path) -> Path:
    path = tmp_path / "tiny.pt2"
    torch.export.save(torch.export.export(_model(), (X,)), path)
    return path


def _entries(d: Path) -> list[Path]:
    return sorted(d.rglob("*.bnncc")) if d.exists() else []


def _no_compiling(monkeypatch) -> None:
    """Make any import, lowering or JIT-from-module fail: only a hit can succeed."""

    def boom(*args, **kwargs):
        raise AssertionError("compiled although the cache should have hit")

    monkeypatch.setattr(driver, "import_model", boom)
    monkeypatch.setattr(driver, "lower", boom)
    monkeypatch.setattr("bnnc.codegen.JitModule", boom)


def _expected(model: nn.Module = None) -> np.ndarray:
    with torch.no_grad():
        return (model or _model())(X).numpy()


# ---------------------------------------------------------------------------
# hits and misses
# ---------------------------------------------------------------------------


def test_pt2_file_hits_without_loading_it(cache, pt2, tmp_path, monkeypatch):
    first = bnnc.compile(str(pt2))
    entries = _entries(cache)
    assert len(entries) == 2  # the IR entry and the file alias
    np.testing.assert_allclose(first(X).numpy(), _expected(), rtol=1e-5, atol=1e-5)
    # The same model saved again (other zip bytes, other file name) hits too.
    again = tmp_path / "again.pt2"
    torch.export.save(torch.export.export(_model(), (X,)), again)
    assert again.read_bytes() != pt2.read_bytes()
    _no_compiling(monkeypatch)
    second = bnnc.compile(str(again))
    assert np.array_equal(second(X).numpy(), first(X).numpy())
    assert second.signature == first.signature
    assert _entries(cache) == entries


def test_module_hits_by_its_ir(cache, monkeypatch):
    first = bnnc.compile(_model(), (X,))
    assert len(_entries(cache)) == 1  # no file: only the IR key
    monkeypatch.setattr(driver, "lower", lambda *a, **k: pytest.fail("lowered on a hit"))
    second = bnnc.compile(_model(), (X,))
    assert np.array_equal(second(X).numpy(), first(X).numpy())
    np.testing.assert_allclose(second(X).numpy(), _expected(), rtol=1e-5, atol=1e-5)


def test_cached_code_computes_what_the_uncached_jit_does(cache):
    cached = bnnc.compile(_model(), (X,))
    hit = bnnc.compile(_model(), (X,))
    plain = bnnc.compile(_model(), (X,), cache=False)
    assert np.array_equal(cached(X).numpy(), plain(X).numpy())
    assert np.array_equal(hit(X).numpy(), plain(X).numpy())


def test_cache_false_reads_and_writes_nothing(cache, pt2, monkeypatch):
    bnnc.compile(str(pt2), cache=False)
    assert _entries(cache) == []
    bnnc.compile(str(pt2))
    assert len(_entries(cache)) == 2
    monkeypatch.setattr(compile_cache, "load", lambda key: pytest.fail("read the cache"))
    bnnc.compile(str(pt2), cache=False)


def test_no_cache_environment_variable(cache, pt2, monkeypatch):
    monkeypatch.setenv("BNNC_NO_CACHE", "1")
    bnnc.compile(str(pt2))
    assert _entries(cache) == []


# ---------------------------------------------------------------------------
# the key
# ---------------------------------------------------------------------------


def _file_key(path, options, **kw) -> str:
    return compile_cache.source_key(str(path), kw.pop("inputs", None), options, trust=kw.pop("trust", False), purpose="jit")


@pytest.mark.parametrize(
    "change",
    [
        {"num_threads": 2},
        {"check_bounds": True},
        {"pipeline": "bnn=fold-weight-binarization;loops=convert-bnn-to-loops"},
        {"name": "other"},
        {"opt_level": 1},
        {"thread_min_work": 7},
        {"verify_each": True},
        {"cpu": "x86-64-v2"},
        {"features": "-avx512f"},
    ],
)
def test_key_depends_on_each_option(cache, pt2, change):
    base = CompileOptions(num_threads=1)
    changed = CompileOptions(**{"num_threads": 1, **change})
    assert _file_key(pt2, base) == _file_key(pt2, CompileOptions(num_threads=1))
    assert _file_key(pt2, base) != _file_key(pt2, changed)
    module = driver.import_model(str(pt2))
    assert compile_cache.ir_key(module, base, purpose="jit") != compile_cache.ir_key(module, changed, purpose="jit")


def test_key_depends_on_model_inputs_trust_purpose_and_plugins(cache, pt2, tmp_path):
    options = CompileOptions(num_threads=1)
    other = tmp_path / "other.pt2"
    torch.export.save(torch.export.export(_model(seed=1), (X,)), other)
    assert _file_key(pt2, options) != _file_key(other, options)
    assert _file_key(pt2, options) != _file_key(pt2, options, trust=True)
    assert _file_key(pt2, options) != _file_key(pt2, options, inputs=(torch.zeros(1, 8, 7, 7),))
    assert _file_key(pt2, options) != compile_cache.source_key(str(pt2), None, options, trust=False, purpose="obj")
    a = driver.import_model(_model(), (X,))
    b = driver.import_model(_model(seed=1), (X,))
    assert compile_cache.ir_key(a, options, purpose="jit") != compile_cache.ir_key(b, options, purpose="jit")
    plugin = tmp_path / "plugin.py"
    plugin.write_text("# version 1\n")
    with_plugin = CompileOptions(num_threads=1, plugins=(str(plugin),))
    before = _file_key(pt2, with_plugin)
    plugin.write_text("# version 2\n")
    assert _file_key(pt2, with_plugin) != before
    assert before != _file_key(pt2, options)


def test_key_depends_on_bnnc_source_and_versions(cache, pt2, tmp_path, monkeypatch):
    """A change to any of bnnc's source files (or its version) invalidates entries."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(compile_cache, "_bnnc_source_dirs", lambda: [src])
    keys = []
    for mutate in (
        lambda: None,
        lambda: (src / "a.py").write_text("x = 2\n"),
        lambda: (src / "b.py").write_text(""),
        lambda: monkeypatch.setattr(bnnc, "__version__", "9.9.9"),
    ):
        mutate()
        compile_cache.environment_digest.cache_clear()
        keys.append(_file_key(pt2, CompileOptions(num_threads=1)))
    compile_cache.environment_digest.cache_clear()
    assert len(set(keys)) == len(keys)


def test_real_source_hash_covers_the_compiler_and_passes():
    names = {p.name for p in compile_cache._bnnc_source_dirs()}
    assert {"compiler", "dialects", "passes", "runtime"} <= names


# ---------------------------------------------------------------------------
# corrupt entries
# ---------------------------------------------------------------------------


def _corruptions(data: bytes) -> dict[str, bytes]:
    return {
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "flipped payload byte": data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:],
        "bad magic": b"XXXXXXXX" + data[8:],
        "garbage header": data[:12] + b"{not json" + data[21:],
        "huge header length": data[:8] + b"\xff\xff\xff\xff" + data[12:],
    }


@pytest.mark.parametrize("kind", list(_corruptions(b"0" * 64)))
def test_corrupt_entry_is_ignored_and_rebuilt(cache, kind):
    first = bnnc.compile(_model(), (X,))
    (entry,) = _entries(cache)
    good = entry.read_bytes()
    entry.write_bytes(_corruptions(good)[kind])
    key = entry.name.removesuffix(".bnncc")
    assert compile_cache.load(key) is None
    again = bnnc.compile(_model(), (X,))
    assert np.array_equal(again(X).numpy(), first(X).numpy())
    assert compile_cache.load(key) is not None  # rebuilt and rewritten
    assert entry.read_bytes() == good


def test_entry_under_another_key_is_refused(cache, pt2):
    bnnc.compile(_model(), (X,))
    (entry,) = _entries(cache)
    key = entry.name.removesuffix(".bnncc")
    assert compile_cache.load(key) is not None
    wrong = "f" * 64
    target = cache / wrong[:2] / f"{wrong}.bnncc"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(entry.read_bytes())
    assert compile_cache.load(wrong) is None


def test_corrupt_alias_is_rebuilt(cache, pt2):
    bnnc.compile(str(pt2))
    key = _file_key(pt2, CompileOptions())
    alias = compile_cache._path(key)
    alias.write_bytes(alias.read_bytes()[:-3])
    assert compile_cache.load(key) is None
    bnnc.compile(str(pt2))
    assert compile_cache.load(key) is not None


def test_unwritable_cache_dir_still_compiles(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("BNNC_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.delenv("BNNC_NO_CACHE", raising=False)
    fast = bnnc.compile(_model(), (X,))
    np.testing.assert_allclose(fast(X).numpy(), _expected(), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# directories, concurrency, CLI
# ---------------------------------------------------------------------------


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("BNNC_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.cache_dir() == tmp_path / "xdg" / "bnnc"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compile_cache.cache_dir() == tmp_path / "home" / ".cache" / "bnnc"
    monkeypatch.setenv("BNNC_CACHE_DIR", str(tmp_path / "mine"))
    assert compile_cache.cache_dir() == tmp_path / "mine"


_WORKER = textwrap.dedent(
    """
    import sys, numpy as np, bnnc
    f = bnnc.compile(sys.argv[1])
    x = np.random.RandomState(0).randn(*f.signature.inputs[0].shape).astype(np.float32)
    np.save(sys.argv[2], f(x))
    """
)


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "BNNC_NO_CACHE"}
    env["BNNC_CACHE_DIR"] = str(cache)
    return env


def test_three_concurrent_compiles(cache, pt2, tmp_path):
    env = _env(cache)
    outs = [tmp_path / f"y{i}.npy" for i in range(3)]
    procs = [
        subprocess.Popen([sys.executable, "-W", "ignore::FutureWarning", "-c", _WORKER, str(pt2), str(o)], env=env, stderr=subprocess.PIPE)
        for o in outs
    ]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    assert all(e == b"" for e in errors), errors  # nothing on a pipe: no progress line
    ys = [np.load(o) for o in outs]
    assert all(np.array_equal(ys[0], y) for y in ys[1:])
    assert len(_entries(cache)) == 2
    assert not [p for p in cache.rglob("*") if p.name.startswith(".tmp-")]
    # and a fourth process hits what they wrote
    subprocess.run([sys.executable, "-c", _WORKER, str(pt2), str(tmp_path / "y3.npy")], env=env, check=True)
    assert np.array_equal(np.load(tmp_path / "y3.npy"), ys[0])


def test_cli_run_uses_the_cache_and_no_cache_skips_it(cache, pt2, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, X.numpy())
    env = _env(cache)
    cmd = [sys.executable, "-W", "ignore::FutureWarning", "-m", "bnnc.cli", "run", str(pt2), "--input", str(x), "--output", str(tmp_path / "y.npy")]
    done = subprocess.run([*cmd, "--no-cache"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert _entries(cache) == []
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert len(_entries(cache)) >= 1
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), _expected(), rtol=1e-5, atol=1e-5)


# A `bnnc compile` in a new process in which any compiling fails: only a hit succeeds.
_COMPILE_NO_LOWERING = (
    "import sys, bnnc.driver as d\n"
    "def boom(*a, **k): raise AssertionError('compiled although the cache should have hit')\n"
    "d.lower = d.import_model = boom\n"
    "from bnnc.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_cli_artifacts_use_the_cache(cache, pt2, tmp_path):
    """--emit=obj|so: a second compile of a .pt2 in a new process loads the
    object from the cache without importing the model (obj and so share the
    entry) and writes the same artifact and header; --no-cache does not read it."""
    env = _env(cache)
    cli = [sys.executable, "-W", "ignore::FutureWarning", "-m", "bnnc.cli"]
    no_compiling = [sys.executable, "-W", "ignore::FutureWarning", "-c", _COMPILE_NO_LOWERING]
    first = tmp_path / "first.o"
    done = subprocess.run([*cli, "compile", str(pt2), "--emit=obj", "-o", str(first)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    entries = _entries(cache)
    assert len(entries) == 2  # the IR entry and the file alias
    for out in (tmp_path / "second.o", tmp_path / "lib.so"):
        done = subprocess.run(
            [*no_compiling, "compile", str(pt2), "--emit=" + ("obj" if out.suffix == ".o" else "so"), "-o", str(out)], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    assert _entries(cache) == entries
    assert (tmp_path / "second.o").read_bytes() == first.read_bytes()
    header = first.with_suffix(".h").read_text()
    assert (tmp_path / "second.h").read_text() == header
    assert "_SCRATCH_BYTES" in header and "(not measured)" not in header
    # the .so linked from the cached object computes the model
    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x, X.numpy())
    ran = subprocess.run([*cli, "run", str(tmp_path / "lib.so"), "--input", str(x), "--output", str(y)], env=env, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    np.testing.assert_allclose(np.load(y), _expected(), rtol=1e-5, atol=1e-5)
    # --no-cache compiles (here, where compiling fails) and writes nothing
    done = subprocess.run(
        [*no_compiling, "compile", str(pt2), "--emit=obj", "-o", str(tmp_path / "third.o"), "--no-cache"], env=env, capture_output=True, text=True
    )
    assert done.returncode != 0 and "compiled although the cache should have hit" in done.stderr
    assert _entries(cache) == entries


def test_artifact_entries_are_keyed_by_target(cache, pt2):
    """An aarch64 artifact is its own entry (the key holds the resolved
    target), hit without importing the model."""
    compile_cache.artifact_build(str(pt2), CompileOptions(target="aarch64"), lambda: driver.import_model(str(pt2)))
    assert len(_entries(cache)) == 2
    signature, code, facts = compile_cache.artifact_build(
        str(pt2), CompileOptions(target="aarch64"), lambda: pytest.fail("imported on a hit")
    )
    assert all(part[:4] == b"\x7fELF" and part[18] == 183 for part in code)  # EM_AARCH64
    assert signature.name == "forward" and not facts.creates_threads
    host_key = compile_cache.source_key(str(pt2), None, CompileOptions(), trust=False, purpose="object")
    assert compile_cache.load(host_key) is None


# ---------------------------------------------------------------------------
# progress
# ---------------------------------------------------------------------------


class _FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal(monkeypatch):
    monkeypatch.delenv("BNNC_PROGRESS", raising=False)
    pipe = io.StringIO()
    Progress(pipe).stage("passes", "loops")
    assert pipe.getvalue() == ""
    tty = _FakeTty()
    p = Progress(tty)
    p.stage("passes", "loops")
    assert "bnnc: passes: loops" in tty.getvalue()
    p.done()
    assert tty.getvalue().endswith("\r\x1b[K")
    monkeypatch.setenv("BNNC_PROGRESS", "0")
    quiet = _FakeTty()
    Progress(quiet).stage("passes")
    assert quiet.getvalue() == ""


def test_progress_shown_on_a_real_terminal_and_erased(cache, tmp_path):
    """Under a pseudo-terminal the stages appear on stderr; the last thing
    written erases the line."""
    master, slave = pty.openpty()
    code = "import bnnc, sys; sys.path.insert(0, sys.argv[2]); from test_compile_cache import _model, X; bnnc.compile(_model(), (X,))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "x", str(Path(__file__).parent)],
        env=_env(cache), stderr=slave, stdout=subprocess.DEVNULL,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=600) == 0
    text = b"".join(chunks).decode(errors="replace")
    for stage in ("bnnc: import", "bnnc: passes: loops", "bnnc: LLVM IR", "bnnc: LLVM optimisation and code generation"):
        assert stage in text, text
    assert text.endswith("\r\x1b[K"), repr(text[-40:])
