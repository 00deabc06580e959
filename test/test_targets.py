"""armv7 and riscv64 artifacts (issue 14), run under qemu-user and compared
with PyTorch eager: an exact binary layer and the trained example network (examples/digits_bnn.pt: float stem, binary blocks with
downsampling shortcuts, pooling and a linear head).

- armv7 (armv7-unknown-linux-gnueabihf, cortex-a7, NEON): `qemu-arm -L
  /usr/arm-linux-gnueabihf`, built with `arm-linux-gnueabihf-gcc`.
- riscv64 (rv64gc + Zbb): `qemu-riscv64 -L /usr/riscv64-linux-gnu`, built
  with `riscv64-linux-gnu-gcc`; the RVV build (+v) runs with the `-cpu` that
  `qemu_cpu_args` derives from the file's arch attribute (v=true,vlen=128).

The tools are REQUIRED: when one is missing the tests FAIL (never skip),
saying what scripts/test.sh installs. The hot-loop instructions are checked
by the lit tests in test/lit/targets/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import artifact_models as am
import numpy as np
import pytest
import torch
from differential import assert_matches_torch

from bnnc.artifacts import write_artifact
from bnnc.driver import CompileOptions, build
from bnnc.errors import TargetError
from bnnc.runtime.artifact_loader import elf_machine, read_signature, undefined_symbols
from bnnc.runtime.emulated_run import qemu_cpu_args, riscv_extensions, run_artifact

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
RVV = "+m,+a,+f,+d,+c,+zbb,+v"
TOOLS = {
    "armv7": ("qemu-arm", "arm-linux-gnueabihf-gcc", "arm-linux-gnueabihf-nm", "/usr/arm-linux-gnueabihf/lib"),
    "riscv64": ("qemu-riscv64", "riscv64-linux-gnu-gcc", "riscv64-linux-gnu-nm", "/usr/riscv64-linux-gnu/lib"),
}
PACKAGES = {
    "armv7": "qemu-user gcc-arm-linux-gnueabihf libc6-dev-armhf-cross",
    "riscv64": "qemu-user gcc-riscv64-linux-gnu libc6-dev-riscv64-cross",
}
LIBC_ALLOWED = am.LIBC_ALLOWED


def _need(target: str) -> None:
    *tools, sysroot = TOOLS[target]
    missing = [t for t in tools if shutil.which(t) is None] + ([] if Path(sysroot).is_dir() else [sysroot])
    if missing:
        pytest.fail(
            f"the {target} artifact tests need {', '.join(missing)}: scripts/test.sh installs them "
            f"(apt-get install {PACKAGES[target]})",
            pytrace=False,
        )


def _digits():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import digits_bnn
    finally:
        sys.path.remove(str(EXAMPLES))
    x = torch.from_numpy(np.random.default_rng(7).standard_normal((1, 1, 8, 8)).astype(np.float32))
    return digits_bnn.load_trained(), x, False


def _model(name: str):
    return _digits() if name == "digits" else am.FACTORIES[name]()


_BUILT: dict[tuple, tuple] = {}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("targets")


def _artifact(root: Path, name: str, target: str, kind: str, features: str | None = None):
    """Compile `name` for the target once per module, write it as `kind`."""
    key = (name, target, features)
    if key not in _BUILT:
        m, x, exact = _model(name)
        opts = CompileOptions(target=target, name=name, **({"features": features} if features else {}))
        _BUILT[key] = (build(m, (x,), opts), m, x, exact)
    built, m, x, exact = _BUILT[key]
    d = root / f"{target}{'-' + features.replace(',', '').replace('+', '_') if features else ''}"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.{'o' if kind == 'obj' else 'so'}"
    if not path.exists():
        write_artifact(built.llvm_module, built.target, built.signature, str(path), kind=kind)
    return path, m, x, exact


def _check(model, x, outputs, exact) -> None:
    assert_matches_torch(model, (x,), [torch.from_numpy(o) for o in outputs], exact=True if exact else None, rtol=1e-4)


# (model, artifact kind) per build: a layer compared exactly and the whole
# example network, as an object and as a shared library.
CASES = [
    ("armv7", None, "pure_binary", "obj"),
    ("armv7", None, "digits", "so"),
    ("riscv64", None, "pure_binary", "obj"),
    ("riscv64", None, "digits", "so"),
    ("riscv64", RVV, "pure_binary", "so"),
    ("riscv64", RVV, "digits", "obj"),
]


@pytest.mark.parametrize("target, features, name, kind", CASES)
def test_artifact_matches_torch_under_qemu(root, target, features, name, kind):
    _need(target)
    path, m, x, exact = _artifact(root, name, target, kind, features)
    assert elf_machine(str(path)) == {"armv7": "arm", "riscv64": "riscv64"}[target]
    g = torch.Generator().manual_seed(5)
    for xi in (x, torch.randn(x.shape, generator=g)):
        _check(m, xi, run_artifact(str(path), [xi.numpy()]), exact)


def test_armv7_threaded_artifact_matches_torch(root):
    """--num-threads 3 with every layer split: the pool (futex syscall number,
    32-bit pointers in its argument blocks) works in a 32-bit artifact."""
    _need("armv7")
    m, x, exact = _model("pure_binary")
    built = build(m, (x,), CompileOptions(target="armv7", name="pure_binary", num_threads=3, thread_min_work=0))
    path = root / "armv7-threads" / "pure_binary.so"
    write_artifact(built.llvm_module, built.target, built.signature, str(path), kind="so")
    _check(m, x, run_artifact(str(path), [x.numpy()]), exact)
    assert {"pthread_create", "pthread_join"} <= _nm_undefined(TOOLS["armv7"][2], path)


def _nm_undefined(nm: str, path: Path) -> set[str]:
    out = subprocess.run([nm, "-u", str(path)], capture_output=True, text=True, check=True).stdout
    return {p[-1].split("@")[0] for p in (line.split() for line in out.splitlines()) if len(p) >= 2 and p[-2] == "U"}


def test_armv7_artifact_is_hard_float_elf32_and_imports_only_libc(root):
    """ELF32 EM_ARM with the hard-float flag (Raspberry Pi OS's armhf ABI); the
    object imports libc plus libgcc's __aeabi_l2f (i64 -> float), which gcc
    links into the .so, so the library needs only libc. Our ELF reader finds
    the signature in the 32-bit file."""
    _need("armv7")
    nm = TOOLS["armv7"][2]
    for kind in ("obj", "so"):
        path, *_ = _artifact(root, "digits", "armv7", kind)
        head = path.read_bytes()[:40]
        assert head[4] == 1 and head[5] == 1  # ELFCLASS32, little-endian
        assert int.from_bytes(head[18:20], "little") == 40  # EM_ARM
        if kind == "so":  # the linker sets the flag; an object says so in its build attributes
            assert int.from_bytes(head[36:40], "little") & 0x400  # EF_ARM_ABI_FLOAT_HARD
        attrs = subprocess.run(["arm-linux-gnueabihf-readelf", "-A", str(path)], capture_output=True, text=True).stdout
        assert "Tag_ABI_VFP_args: VFP registers" in attrs and "Tag_Advanced_SIMD_arch: NEON" in attrs, attrs
        imports = _nm_undefined(nm, path)
        assert {s for s in imports if not s.startswith("__aeabi_")} <= LIBC_ALLOWED, imports
        assert {s.split("@")[0] for s in undefined_symbols(str(path))} == imports
        header = path.with_suffix(".h").read_text()
        assert "triple armv7-unknown-linux-gnueabihf,\n * cpu cortex-a7, features +neon,+vfp4" in header
        helpers = sorted(s for s in imports if s.startswith("__aeabi_"))
        if helpers:
            assert f"Compiler-runtime helpers (libgcc, which gcc links by default): {', '.join(helpers)}." in header
        sig = read_signature(str(path))
        assert sig.name == "digits" and sig.inputs[0].shape == (1, 1, 8, 8) and sig.outputs[0].shape == (1, 10)
    path, *_ = _artifact(root, "digits", "armv7", "so")
    assert not any(s.startswith("__aeabi_") for s in _nm_undefined(nm, path))


def test_riscv64_artifact_is_lp64d_and_records_its_extensions(root):
    """EM_RISCV with the double-float ABI flag (what Debian's riscv64 gcc and
    libc use, so gcc links it); the arch attribute names Zbb (and V for the
    vector build), from which `bnnc run` picks qemu's -cpu."""
    _need("riscv64")
    scalar, *_ = _artifact(root, "pure_binary", "riscv64", "obj")
    vector, *_ = _artifact(root, "pure_binary", "riscv64", "so", RVV)
    for path in (scalar, vector):
        head = path.read_bytes()[:52]
        assert head[4] == 2 and int.from_bytes(head[18:20], "little") == 243  # ELFCLASS64, EM_RISCV
        assert int.from_bytes(head[48:52], "little") & 0x6 == 0x4  # EF_RISCV_FLOAT_ABI_DOUBLE
        assert _nm_undefined(TOOLS["riscv64"][2], path) <= LIBC_ALLOWED
    assert "zbb" in riscv_extensions(str(scalar)) and "v" not in riscv_extensions(str(scalar))
    assert qemu_cpu_args(str(scalar), "riscv64") == ["-cpu", "rv64,zbb=true"]
    assert {"v", "zbb", "zvl128b"} <= set(riscv_extensions(str(vector)))
    assert qemu_cpu_args(str(vector), "riscv64") == ["-cpu", "rv64,v=true,vlen=128,vext_spec=v1.0,zbb=true"]


def _qemu_has_zvbb() -> bool:
    r = subprocess.run(["qemu-riscv64", "-cpu", "rv64,zvbb=true", "/bin/true"], capture_output=True, text=True)
    return "not found" not in r.stderr


def test_riscv64_zvbb_build_runs_or_is_refused_clearly(root):
    """The Zvbb build (vcpop.v) asks qemu for zvbb=true. QEMU 8.2+ emulates it
    and the result must match torch; Debian 12's QEMU 7.2 does not, and `bnnc
    run` must then say so in one line instead of failing obscurely."""
    _need("riscv64")
    path, m, x, exact = _artifact(root, "pure_binary", "riscv64", "obj", RVV + ",+zvbb")
    assert "zvbb" in riscv_extensions(str(path))
    assert "zvbb=true" in qemu_cpu_args(str(path), "riscv64")[1]
    if _qemu_has_zvbb():
        _check(m, x, run_artifact(str(path), [x.numpy()]), exact)
    else:
        with pytest.raises(
            TargetError, match=r"uses the riscv64 extension 'zvbb', which this qemu-riscv64 does not emulate"
        ):
            run_artifact(str(path), [x.numpy()])


@pytest.mark.parametrize("target, cross", [("armv7", "arm-linux-gnueabihf-"), ("riscv64", "riscv64-linux-gnu-")])
def test_c_example_makefile_cross_builds_for_the_target(root, tmp_path, target, cross):
    """examples/c builds for the target the documented way and runs under qemu."""
    _need(target)
    path, m, x, exact = _artifact(root, "digits", target, "so")
    prog = tmp_path / "run_model"
    subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(EXAMPLES / "c"),
            f"MODEL={path}",
            f"CROSS={cross}",
            f"OUT={prog}",
            "CFLAGS=-O2 -Wall -Wextra -Werror",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    x.numpy().astype("<f4").tofile(tmp_path / "in.bin")
    qemu, sysroot = TOOLS[target][0], str(Path(TOOLS[target][3]).parent)
    r = subprocess.run(
        [qemu, "-L", sysroot, str(prog), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    _check(m, x, [np.fromfile(tmp_path / "out.bin", dtype="<f4").reshape(1, 10)], exact)


def _bnnc(*args, env=None):
    return subprocess.run([sys.executable, "-m", "bnnc.cli", *map(str, args)], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("target, features", [("armv7", None)])
def test_cli_compile_and_run_equals_the_host_jit(tmp_path, target, features):
    """`bnnc compile -target=T --emit=so` then `bnnc run` (under qemu) gives the
    host JIT's result bit for bit on a binary conv layer. (The RVV build's
    qemu -cpu goes through the same run_artifact in the tests above.)"""
    _need(target)
    mlir = REPO / "test/lit/artifacts/Inputs/bconv.mlir"
    x = np.random.default_rng(3).standard_normal((1, 256, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "bconv.so"
    r = _bnnc(
        "compile", mlir, f"-target={target}", *([f"--features={features}"] if features else []), "--emit=so", "-o", out
    )
    assert r.returncode == 0, r.stderr
    for emu, y in ((target, "y.npy"), ("host", "ref.npy")):
        r = _bnnc("run", out if emu == target else mlir, "--input", tmp_path / "x.npy", "--output", tmp_path / y)
        assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), np.load(tmp_path / "ref.npy"))


def test_help_lists_every_target_with_its_defaults():
    # argparse wraps help at hyphens; a wide terminal keeps the triples whole.
    r = _bnnc("compile", "--help", env=dict(os.environ, COLUMNS="1000"))
    text = " ".join(r.stdout.split())
    for needle in (
        "armv7: armv7-unknown-linux-gnueabihf, --cpu cortex-a7, --features +neon,+vfp4",
        "riscv64: riscv64-unknown-linux-gnu, --cpu generic-rv64, --features +m,+a,+f,+d,+c,+zbb",
        "aarch64: aarch64-unknown-linux-gnu, --cpu generic, --features +neon",
        "x86_64: x86_64-unknown-linux-gnu, --cpu x86-64-v3",
    ):
        assert needle in text, (needle, text)
