"""Run a bnnc artifact (.o or .so) out of process, through the C example.

This is how `bnnc run` runs what it cannot load into Python: an artifact for
another architecture (under `qemu-<arch>`), or a host object file. Steps, in a
temporary directory:

1. read the signature embedded in the artifact (`<name>_bnnc_signature`, read
   from the ELF file, so no loading is needed) and write a C header from it;
2. build the C runner (runtime/run_model.c, package data) against the
   artifact with `<arch>-linux-gnu-gcc` (the host `cc` for host artifacts);
3. write the inputs as raw float32, run
   `qemu-<arch> -L /usr/<arch>-linux-gnu ./run_model in0.bin ... out0.bin ...`
   (without qemu for host artifacts), and read the outputs back.

Tools are looked up on PATH. BNNC_QEMU=/path/to/emulator chooses the emulator;
BNNC_QEMU=none turns emulation off (a foreign artifact is then refused).
Cross tools are named after the GNU triple of the architecture (`gnu_triple`:
arm-linux-gnueabihf for 32-bit ARM, `<arch>-linux-gnu` otherwise). A RISC-V
artifact records the extensions it was compiled for (its `.riscv.attributes`
arch string); qemu-riscv64 is started with a `-cpu` that enables them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from bnnc.runtime.artifact_loader import arm_cpu_profile, elf_machine, entry_name, host_arch, read_signature
from bnnc.runtime.errors import InputError, ModelLoadError, TargetError
from bnnc.runtime.signature import Signature

# The C runner, package data of bnnc.runtime (examples/c includes it).
RUNNER_SOURCE = resources.files("bnnc.runtime") / "run_model.c"

# Debian packages that provide the tools, per architecture.
QEMU_PACKAGE = "qemu-user"
CROSS_PACKAGES = {
    "aarch64": "gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
    "x86_64": "gcc-x86-64-linux-gnu",
    "arm": "gcc-arm-linux-gnueabihf libc6-dev-armhf-cross",
    "riscv64": "gcc-riscv64-linux-gnu libc6-dev-riscv64-cross",
}
RUN_TIMEOUT = 900  # seconds; a big model under qemu takes a while

# GNU triples whose name is not `<arch>-linux-gnu`: 32-bit ARM Linux is hard-float (armhf).
_GNU_TRIPLES = {"arm": "arm-linux-gnueabihf"}


def elf_arch(arch: str) -> str:
    """The ELF architecture name (as `elf_machine` spells it) of an LLVM triple's
    arch: armv7 / thumbv7* code is "arm"."""
    return "arm" if arch.startswith(("armv", "thumbv")) else arch


def gnu_triple(arch: str) -> str:
    """Prefix of the cross tools and Debian sysroot name for an ELF architecture."""
    return _GNU_TRIPLES.get(arch, f"{arch}-linux-gnu")


def sysroot(arch: str) -> str:
    """Where Debian's cross libc for `arch` lives (qemu's -L)."""
    return f"/usr/{gnu_triple(arch)}"


def riscv_extensions(path: str) -> list[str]:
    """The extensions in a RISC-V ELF file's arch attribute ("rv64i2p1_m2p0_..._zbb1p0"),
    lower case without versions: ["i", "m", ..., "zbb"]; [] if it has none."""
    data = Path(path).read_bytes()
    m = re.search(rb"rv(?:32|64)([a-z0-9_]+)\0", data)
    if m is None:
        return []
    exts: list[str] = []
    for part in m.group(1).decode().split("_"):
        if part[:1] in "sxz" and part:
            exts.append(re.sub(r"\d+p\d+$", "", part))
        else:  # the single-letter run, e.g. "i2p1" or "imafdc"
            exts += [c for c in re.sub(r"\d+p\d+", "", part)]
    return exts


# qemu-user's complaint about a -cpu property it lacks (an extension it cannot emulate).
_UNKNOWN_CPU_PROPERTY = re.compile(r"can't apply global \S+\.(\w+)=\S+: Property '\S+' not found")


def qemu_cpu_args(path: str, arch: str) -> list[str]:
    """qemu-user `-cpu` options the artifact needs. qemu-arm and qemu-aarch64
    emulate their most capable CPU by default (NEON included); qemu-riscv64's
    default rv64 lacks the vector extension, so ask for what the file uses:
    V with its minimum VLEN (Zvl<N>b, 128 for plain V) and Zbb / Zvbb."""
    if arch != "riscv64":
        return []
    exts = riscv_extensions(path)
    props = ["rv64"]
    if "v" in exts:
        vlen = max([int(e[3:-1]) for e in exts if re.fullmatch(r"zvl\d+b", e)], default=128)
        props += ["v=true", f"vlen={vlen}", "vext_spec=v1.0"]
    props += [f"{e}=true" for e in ("zba", "zbb", "zbs", "zvbb") if e in exts]
    return ["-cpu", ",".join(props)]


def find_emulator(arch: str) -> str | None:
    """The user-mode emulator for `arch`, or None (BNNC_QEMU overrides PATH)."""
    chosen = os.environ.get("BNNC_QEMU")
    if chosen is not None:
        if chosen.lower() in ("", "none", "0", "off"):
            return None
        return shutil.which(chosen)
    return shutil.which(f"qemu-{arch}")


def find_compiler(arch: str) -> str | None:
    candidates = [f"{gnu_triple(arch)}-gcc"]
    if arch == host_arch():
        candidates = ["cc", "gcc", *candidates]
    for tool in candidates:
        if (path := shutil.which(tool)) is not None:
            return path
    return None


def how_to_run(path: str, arch: str) -> str:
    """The manual recipe, for error messages."""
    stem = Path(path).with_suffix("")
    return (
        f"to run it by hand: make -C examples/c MODEL={path} CROSS={gnu_triple(arch)}- && "
        f"qemu-{arch} {''.join(a + ' ' for a in qemu_cpu_args(path, arch))}"
        f"-L {sysroot(arch)} examples/c/run_model in.bin out.bin "
        f"(raw float32 files; shapes in {stem}.h; see docs/deploying.md)"
    )


def check_tools(path: str, arch: str) -> tuple[str, str | None]:
    """(compiler, emulator or None for host code), or a clear error saying what to install."""
    emulator = None
    if arch != host_arch():
        emulator = find_emulator(arch)
        if emulator is None:
            raise ModelLoadError(
                f"{path} is built for {arch} and this machine is {host_arch()}; running it needs the "
                f"emulator qemu-{arch}, which is not installed or disabled (BNNC_QEMU={os.environ.get('BNNC_QEMU')!s}). "
                f"Install the Debian package {QEMU_PACKAGE} (apt-get install {QEMU_PACKAGE}) and "
                f"{CROSS_PACKAGES.get(arch, f'a {arch} cross compiler')}, or run it on a {arch} machine; "
                + how_to_run(path, arch)
            )
    compiler = find_compiler(arch)
    if compiler is None:
        raise ModelLoadError(
            f"running {path} ({arch}) builds the C example with {gnu_triple(arch)}-gcc, which is not installed: "
            f"apt-get install {CROSS_PACKAGES.get(arch, 'gcc')}"
        )
    return compiler, emulator


def _check_inputs(signature: Signature, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    if len(inputs) != len(signature.inputs):
        raise InputError(f"the model takes {len(signature.inputs)} input(s), {len(inputs)} given")
    arrays = []
    for i, (x, spec) in enumerate(zip(inputs, signature.inputs)):
        x = np.asarray(x)
        if x.dtype != np.float32:
            raise InputError(f"input {i}: expected dtype float32 ({spec.describe()}), got {x.dtype}")
        expected = _batched(spec.shape, signature, np.shape(inputs[0])[:1])
        if tuple(x.shape) != expected or (signature.dynamic_batch and expected[0] < 1):
            raise InputError(f"input {i}: expected shape {list(expected)}, got {list(x.shape)}")
        arrays.append(np.ascontiguousarray(x))
    return arrays


def _batched(shape: tuple[int, ...], signature: Signature, batch: tuple[int, ...]) -> tuple[int, ...]:
    """A per-sample shape at the batch size of input 0 for a dynamic-batch model (run_model.c
    reads N off the size of input 0's file); a fixed-batch model's shape as it is."""
    return (*(batch or (0,)), *shape[1:]) if signature.dynamic_batch else tuple(shape)


def build_runner(path: str, workdir: str, name: str | None = None) -> tuple[Path, Signature, str, str | None]:
    """Build run_model against the artifact in `workdir`: (program, signature, arch, emulator)."""
    arch = elf_machine(path)
    if arch == "arm" and arm_cpu_profile(path) == "M":
        raise TargetError(
            f"{path} is a bare-metal Cortex-M object (-target=cortex-m4/cortex-m7): it runs in firmware, not "
            "under qemu-user; link it with the harness in examples/cortex-m and run it on "
            "qemu-system-arm -M mps2-an386 (docs/cortex-m.md)"
        )
    name = entry_name(path, name)
    signature = read_signature(path, name)
    compiler, emulator = check_tools(path, arch)
    work = Path(workdir)
    artifact = work / Path(path).name
    shutil.copyfile(path, artifact)
    header = work / f"{name}_abi.h"
    header.write_text("\n".join([signature.c_prototype(), *signature.c_generic_abi()]))
    source = work / "run_model.c"
    source.write_bytes(RUNNER_SOURCE.read_bytes())
    program = work / "run_model"
    cmd = [compiler, "-O2", "-include", str(header), str(source), str(artifact), "-lm", "-o", str(program)]
    if artifact.suffix == ".so":
        cmd[-2:-2] = ["-Wl,-rpath,$ORIGIN"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
    if result.returncode != 0:
        raise ModelLoadError(f"building the C example against {path} failed:\n$ {' '.join(cmd)}\n{result.stderr.strip()}")
    return program, signature, arch, emulator


def run_artifact(path: str, inputs: Sequence[np.ndarray], name: str | None = None) -> list[np.ndarray]:
    """Run the artifact at `path` on `inputs` (float32 arrays of the signature's
    shapes) through the C example, under qemu when it is foreign; return the outputs."""
    with tempfile.TemporaryDirectory(prefix="bnnc-run-") as tmp:
        program, signature, arch, emulator = build_runner(path, tmp, name)
        arrays = _check_inputs(signature, inputs)
        in_files, out_files = [], []
        for i, x in enumerate(arrays):
            f = Path(tmp) / f"in{i}.bin"
            x.astype("<f4").tofile(f)  # every supported target is little-endian
            in_files.append(str(f))
        out_files = [str(Path(tmp) / f"out{i}.bin") for i in range(len(signature.outputs))]
        cmd = [str(program), *in_files, *out_files]
        if emulator is not None:
            cmd = [emulator, *qemu_cpu_args(path, arch), "-L", sysroot(arch), *cmd]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise TargetError(f"running {path} took longer than {RUN_TIMEOUT} s: {' '.join(cmd)}") from None
        if result.returncode != 0 and emulator is not None and (m := _UNKNOWN_CPU_PROPERTY.search(result.stderr)):
            raise TargetError(
                f"{path} uses the {arch} extension '{m.group(1)}', which this {Path(emulator).name} does not "
                f"emulate (it has no '{m.group(1)}' cpu property; QEMU 8.2 and later emulate Zvbb): run it on "
                f"hardware or a newer qemu (BNNC_QEMU=/path/to/qemu-{arch}), or compile it without +{m.group(1)}"
            )
        if result.returncode != 0:
            raise TargetError(
                f"running {path} failed (exit code {result.returncode}):\n$ {' '.join(cmd)}\n{result.stderr.strip()}"
            )
        outputs = []
        for f, spec in zip(out_files, signature.outputs):
            data = np.fromfile(f, dtype="<f4")
            shape = _batched(spec.shape, signature, arrays[0].shape[:1])
            if data.size != int(np.prod(shape)):
                raise TargetError(f"{path} wrote {data.size} floats for an output of {int(np.prod(shape))}")
            outputs.append(data.astype(np.float32).reshape(shape))
        return outputs
