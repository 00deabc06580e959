"""Deployable artifacts (issue 5): objects / shared libraries for aarch64 and
x86_64, run through the C example (examples/c) and compared with PyTorch eager.

aarch64 artifacts run on this x86 machine under `qemu-aarch64 -L
/usr/aarch64-linux-gnu`, built with `aarch64-linux-gnu-gcc`. These tools are
REQUIRED: when one is missing the tests FAIL (they are never skipped), saying
that `.ci/run` installs them (apt-get install qemu-user gcc-aarch64-linux-gnu
libc6-dev-arm64-cross). That holds locally and in CI alike, so a green run
always means the aarch64 code really ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

import artifact_models as am
from differential import assert_matches_torch

from bnnc.artifacts import write_artifact
from bnnc.driver import CompileOptions, build
from bnnc.errors import ModelLoadError
from bnnc.runtime.artifact_loader import elf_machine, load_artifact, read_signature, undefined_symbols
from bnnc.runtime.emulated_run import RUNNER_SOURCE, run_artifact

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_DIR = REPO / "examples" / "c"
CROSS_TOOLS = ("qemu-aarch64", "aarch64-linux-gnu-gcc", "aarch64-linux-gnu-nm")
LIBC_ALLOWED = am.LIBC_ALLOWED


@pytest.fixture(scope="session")
def cross_tools() -> None:
    missing = [t for t in CROSS_TOOLS if shutil.which(t) is None]
    if missing or not Path("/usr/aarch64-linux-gnu/lib").is_dir():
        pytest.fail(
            f"the aarch64 artifact tests need {', '.join(missing) or '/usr/aarch64-linux-gnu'}: "
            ".ci/run installs them (apt-get install qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross)",
            pytrace=False,
        )


_BUILDS: dict[tuple[str, str], tuple] = {}


def _model(name: str):
    m, x, exact = am.FACTORIES[name]()
    return m, x, exact


def _artifact(
    tmp_root: Path, name: str, target: str, kind: str, **opts
) -> tuple[Path, torch.nn.Module, torch.Tensor, bool]:
    """Compile model `name` for `target` once (cached), write it as `kind`."""
    key = (name, target, tuple(sorted(opts.items())))
    if key not in _BUILDS:
        m, x, exact = _model(name)
        _BUILDS[key] = (build(m, (x,), CompileOptions(target=target, name=name, **opts)), m, x, exact)
    built, m, x, exact = _BUILDS[key]
    d = tmp_root / f"{target}-{'-'.join(f'{k}{v}' for k, v in sorted(opts.items()))}"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.{'o' if kind == 'obj' else 'so'}"
    if not path.exists():
        write_artifact(built.llvm_module, built.target, built.signature, str(path), kind=kind)
    return path, m, x, exact


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


def _inputs(x: torch.Tensor) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    return [x, torch.randn(x.shape, generator=g)]


def _check(model, x, outputs, exact):
    assert_matches_torch(model, (x,), [torch.from_numpy(o) for o in outputs], exact=True if exact else None, rtol=1e-4)


MODELS = list(am.FACTORIES)


# ---------------------------------------------------------------------------
# Numerics: aarch64 under qemu, x86_64 natively
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["obj", "so"])
@pytest.mark.parametrize("name", MODELS)
def test_aarch64_artifact_matches_torch_under_qemu(cross_tools, root, name, kind):
    path, m, x, exact = _artifact(root, name, "aarch64", kind)
    assert elf_machine(str(path)) == "aarch64"
    for xi in _inputs(x):
        _check(m, xi, run_artifact(str(path), [xi.numpy()]), exact)


@pytest.mark.parametrize("kind", ["obj", "so"])
@pytest.mark.parametrize("name", MODELS)
def test_x86_64_artifact_matches_torch_natively(root, name, kind):
    if elf_machine(sys.executable) != "x86_64":
        pytest.fail("the x86_64 artifact tests run natively and need an x86_64 host")
    path, m, x, exact = _artifact(root, name, "x86_64", kind)
    if kind == "so":
        cm = load_artifact(str(path))  # in process, through ctypes
        run = lambda xi: [np.asarray(cm(xi.numpy()))]  # noqa: E731
    else:
        run = lambda xi: run_artifact(str(path), [xi.numpy()])  # noqa: E731 (C example, no emulator)
    for xi in _inputs(x):
        _check(m, xi, run(xi), exact)


@pytest.mark.parametrize("target", ["aarch64", "x86_64"])
def test_threaded_artifact_matches_torch_and_imports_only_pthreads(cross_tools, root, target):
    """--num-threads 3 with every layer split: the pool's workers run inside the
    artifact (under qemu for aarch64), results equal torch's, the only new
    imports are pthread_create/pthread_join/sched_yield, syscall (the futex
    the workers sleep on) and getpid (a forked child starts its own workers),
    and the header says the model keeps threads."""
    path, m, x, exact = _artifact(root, "bireal_net", target, "so", num_threads=3, thread_min_work=0)
    for xi in _inputs(x):
        _check(m, xi, run_artifact(str(path), [xi.numpy()]), exact)
    imports = _nm_undefined("aarch64-linux-gnu-nm" if target == "aarch64" else "nm", path)
    threads = {"pthread_create", "pthread_join", "sched_yield", "syscall", "getpid"}
    assert threads <= imports and imports - threads <= LIBC_ALLOWED, imports
    assert "The first call starts a pool of worker threads" in path.with_suffix(".h").read_text()


def test_aarch64_specialised_cpu_and_features(cross_tools, root):
    """--cpu cortex-a72 --features +neon,+dotprod code runs under qemu (its default cpu is 'max')."""
    path, m, x, exact = _artifact(root, "pure_binary", "aarch64", "obj", cpu="cortex-a72", features="+neon,+dotprod")
    _check(m, x, run_artifact(str(path), [x.numpy()]), exact)
    assert "cpu cortex-a72, features +neon,+dotprod" in path.with_suffix(".h").read_text()


# ---------------------------------------------------------------------------
# The artifact itself: ELF, imports, header
# ---------------------------------------------------------------------------


def _nm_undefined(nm: str, path: Path) -> set[str]:
    out = subprocess.run([nm, "-u", str(path)], capture_output=True, text=True, check=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[-2] == "U":  # "w" (weak) hooks of a linked .so are not imports
            syms.add(parts[-1].split("@")[0])
    return syms


@pytest.mark.parametrize("kind", ["obj", "so"])
def test_aarch64_artifact_is_self_contained_aarch64_elf(cross_tools, root, kind):
    path, *_ = _artifact(root, "bireal_net", "aarch64", kind)
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and head[4] == 2 and head[5] == 1  # 64-bit little-endian
    assert int.from_bytes(head[16:18], "little") == (1 if kind == "obj" else 3)  # ET_REL / ET_DYN
    assert int.from_bytes(head[18:20], "little") == 183  # EM_AARCH64
    imports = _nm_undefined("aarch64-linux-gnu-nm", path)
    assert imports and imports <= LIBC_ALLOWED, imports
    header = path.with_suffix(".h").read_text()
    assert f"Undefined symbols (all from libc): {', '.join(sorted(imports))}." in header
    assert {s.split("@")[0] for s in undefined_symbols(str(path))} == imports
    if kind == "so":
        needed = subprocess.run(["aarch64-linux-gnu-readelf", "-d", str(path)], capture_output=True, text=True).stdout
        assert "Shared library: [libc.so.6]" in needed and needed.count("(NEEDED)") == 1, needed
    # the signature is embedded and readable without loading the file
    sig = read_signature(str(path))
    assert sig.name == "bireal_net" and sig.inputs[0].shape == (1, 3, 32, 32) and sig.outputs[0].shape == (1, 10)


def test_header_documents_the_abi(root):
    path, *_ = _artifact(root, "odd_shapes", "x86_64", "obj")
    h = path.with_suffix(".h").read_text()
    for needle in [
        "Generated by bnnc 0.1.0 for target x86_64: triple x86_64-unknown-linux-gnu",
        "cpu x86-64-v3",
        "void odd_shapes(const float *in0, float *out0);",
        "in0:  input  0, float32[1, 5, 17, 13] (1105 floats, 4420 bytes)",
        "out0: output 0, float32[1, 7] (7 floats, 28 bytes)",
        "Scratch memory:",
        "aligned_alloc(64, n)",
        "Thread safety: there is no global mutable state",
        "#define ODD_SHAPES_SCRATCH_BYTES",
        "extern const char odd_shapes_bnnc_signature[];",
    ]:
        assert needle in h, needle
    imports = _nm_undefined("nm", path)
    assert imports <= LIBC_ALLOWED and f"(all from libc): {', '.join(sorted(imports))}." in h


def test_header_of_a_threaded_artifact_says_it_creates_threads(root):
    """write_artifact rebuilt the measured facts with the libc symbols and lost
    creates_threads, so a threaded artifact's header said no threads are created."""
    threaded, *_ = _artifact(root, "odd_shapes", "x86_64", "obj", num_threads=2, thread_min_work=0)
    single, *_ = _artifact(root, "odd_shapes", "x86_64", "obj")
    assert "pthread_create" in _nm_undefined("nm", threaded)
    threaded_h = threaded.with_suffix(".h").read_text()
    assert "no threads are created" not in threaded_h and "pool of worker threads" in threaded_h
    # the pool's state is taken by one call at a time: calls stay reentrant
    assert "there is no global mutable state" in threaded_h and "NOT reentrant" not in threaded_h
    assert "no threads are created" in single.with_suffix(".h").read_text()


def test_header_compiles_as_c_and_cxx_without_warnings(root):
    path, *_ = _artifact(root, "odd_shapes", "x86_64", "obj")
    for compiler, lang in (("cc", "c"), ("c++", "c++")):
        if shutil.which(compiler) is None:
            pytest.fail(f"{compiler} is needed (apt-get install build-essential)")
        r = subprocess.run(
            [
                compiler,
                "-x",
                lang,
                "-fsyntax-only",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-include",
                str(path.with_suffix(".h")),
                "-",
            ],
            input="int main(void) { return 0; }\n",
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------------------
# The C example, built the documented way (Makefile), native and cross
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["obj", "so"])
def test_c_example_makefile_cross_builds_and_runs_under_qemu(cross_tools, root, tmp_path, kind):
    path, m, x, exact = _artifact(root, "densenet_block", "aarch64", kind)
    prog = tmp_path / "run_model"
    subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(EXAMPLE_DIR),
            f"MODEL={path}",
            "CROSS=aarch64-linux-gnu-",
            f"OUT={prog}",
            "CFLAGS=-O2 -Wall -Wextra -Werror",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    x.numpy().astype("<f4").tofile(tmp_path / "in.bin")
    r = subprocess.run(
        [
            "qemu-aarch64",
            "-L",
            "/usr/aarch64-linux-gnu",
            str(prog),
            str(tmp_path / "in.bin"),
            str(tmp_path / "out.bin"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    sig = read_signature(str(path))
    out = np.fromfile(tmp_path / "out.bin", dtype="<f4").reshape(sig.outputs[0].shape)
    _check(m, x, [out], exact)


def test_c_example_native_and_usage_errors(root, tmp_path):
    path, m, x, exact = _artifact(root, "pure_binary", "x86_64", "obj")
    prog = tmp_path / "run_model"
    subprocess.run(
        ["make", "-s", "-C", str(EXAMPLE_DIR), f"MODEL={path}", f"OUT={prog}", "CFLAGS=-O2 -Wall -Wextra -Werror"],
        check=True,
        capture_output=True,
        text=True,
    )
    x.numpy().tofile(tmp_path / "in.bin")
    subprocess.run([str(prog), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")], check=True)
    _check(m, x, [np.fromfile(tmp_path / "out.bin", dtype=np.float32).reshape(1, 40, 9, 7)], exact)
    usage = subprocess.run([str(prog)], capture_output=True, text=True)
    assert usage.returncode == 2 and "in0: 6048 floats" in usage.stderr
    (tmp_path / "short.bin").write_bytes(b"\0" * 8)
    short = subprocess.run(
        [str(prog), str(tmp_path / "short.bin"), str(tmp_path / "o.bin")], capture_output=True, text=True
    )
    assert short.returncode == 1 and "expected exactly 6048 float32 values" in short.stderr


def test_c_runner_is_package_data():
    """`bnnc run` builds the runner from the installed package (a wheel has no
    examples/), and examples/c builds the same file, not a copy."""
    runner = resources.files("bnnc.runtime") / "run_model.c"
    assert runner.is_file() and "BNNC_MODEL" in runner.read_text()
    assert RUNNER_SOURCE.read_bytes() == runner.read_bytes()
    example = (EXAMPLE_DIR / "run_model.c").read_text()
    assert '#include "../../runtime/run_model.c"' in example and "main(" not in example


# ---------------------------------------------------------------------------
# The CLI: compile for aarch64, run under qemu; refusals
# ---------------------------------------------------------------------------


def _bnnc(*args, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "bnnc.cli", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd
    )


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    m, x, exact = _model("odd_shapes")
    torch.export.save(torch.export.export(m, (x,)), d / "odd.pt2")
    np.save(d / "x.npy", x.numpy())
    return d, m, x, exact


@pytest.mark.parametrize("emit", ["so", "obj"])
def test_cli_compile_aarch64_and_run_under_qemu(cross_tools, saved_model, emit):
    d, m, x, exact = saved_model
    out = d / f"odd_a64.{'so' if emit == 'so' else 'o'}"
    r = _bnnc("compile", d / "odd.pt2", "-target=aarch64", f"--emit={emit}", "-o", out)
    assert r.returncode == 0, r.stderr
    assert out.exists() and out.with_suffix(".h").exists()
    assert "void odd(const float *in0, float *out0);" in out.with_suffix(".h").read_text()  # --name default: file stem
    y = d / f"y_{emit}.npy"
    r = _bnnc("run", out, "--input", d / "x.npy", "--output", y)
    assert r.returncode == 0, r.stderr
    _check(m, x, [np.load(y)], exact)


def _path_without_tools(tmp_path: Path) -> dict:
    """An environment whose PATH has python but no qemu, gcc or binutils."""
    only = tmp_path / "bin"
    only.mkdir(exist_ok=True)
    if not (only / "python3").exists():
        os.symlink(sys.executable, only / "python3")
    env = dict(os.environ, PATH=str(only))
    env.pop("BNNC_QEMU", None)
    return env


def test_run_refuses_aarch64_artifact_without_qemu(cross_tools, root, tmp_path):
    path, m, x, exact = _artifact(root, "pure_binary", "aarch64", "so")
    np.save(tmp_path / "x.npy", x.numpy())
    for env in (_path_without_tools(tmp_path), dict(os.environ, BNNC_QEMU="none")):
        r = _bnnc("run", path, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy", env=env)
        assert r.returncode == 2, r.stderr
        assert "built for aarch64" in r.stderr and "qemu-aarch64" in r.stderr, r.stderr
        assert "apt-get install qemu-user" in r.stderr and "qemu-aarch64 -L /usr/aarch64-linux-gnu" in r.stderr, (
            r.stderr
        )
        assert not (tmp_path / "y.npy").exists()
    # and in process: never dlopen'ed
    with pytest.raises(ModelLoadError, match="built for aarch64 and this machine is x86_64"):
        load_artifact(str(path))


def test_so_without_a_cross_linker_names_the_package(tmp_path):
    r = _bnnc(
        "compile",
        REPO / "test/lit/artifacts/Inputs/bconv.mlir",
        "-target=aarch64",
        "--emit=so",
        "-o",
        tmp_path / "b.so",
        env=_path_without_tools(tmp_path),
    )
    assert r.returncode == 2
    assert "needs a linker" in r.stderr and "gcc-aarch64-linux-gnu" in r.stderr and "--emit=obj" in r.stderr, r.stderr
    assert not (tmp_path / "b.so").exists()
    # the object needs nothing but llvmlite
    r = _bnnc(
        "compile",
        REPO / "test/lit/artifacts/Inputs/bconv.mlir",
        "-target=aarch64",
        "--emit=obj",
        "-o",
        tmp_path / "b.o",
        env=_path_without_tools(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    assert elf_machine(str(tmp_path / "b.o")) == "aarch64"


@pytest.mark.parametrize(
    "args, message",
    [
        (["-target=mips"], "unknown target 'mips'; accepted: host, x86_64, aarch64"),
        (["-target=aarch64", "--cpu=cortex-a999"], "unknown cpu 'cortex-a999'"),
        (["-target=x86_64", "--cpu=cortex-a72"], "unknown cpu 'cortex-a72'"),
        (["-target=aarch64", "--features=+nosuch"], "unknown feature(s) +nosuch for aarch64; accepted"),
        (["-target=x86_64", "--features=+avx2,+nosuch"], "unknown feature(s) +nosuch for x86_64; accepted"),
    ],
)
def test_unknown_target_cpu_feature_is_a_clear_error(tmp_path, args, message):
    r = _bnnc("compile", REPO / "test/lit/artifacts/Inputs/bconv.mlir", *args, "--emit=obj", "-o", tmp_path / "b.o")
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not (tmp_path / "b.o").exists()
