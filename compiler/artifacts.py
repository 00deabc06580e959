"""Deployable artifacts: an ELF object plus a C header, or a shared library.

The C ABI (documented in the generated header):
    void NAME(const float *in0, ..., float *out0, ...);
Every buffer is dense row-major float32 of the shapes in the header; the caller
allocates inputs and outputs. The entry point allocates its scratch buffers
with aligned_alloc/free, keeps no global mutable state (weights are read-only
constants), and so is reentrant: concurrent calls on different buffers are safe.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from bnnc import __version__
from bnnc.artifact_facts import ArtifactFacts, measure  # (ArtifactFacts: part of this module's API)
from bnnc.errors import TargetError
from bnnc.runtime.signature import ARENA_ALIGNMENT, Signature
from bnnc.target import Target

# Where to get a linker for each architecture.
_PROVIDERS = {
    "x86_64": "the Debian package gcc (apt-get install gcc) or, on a non-x86 host, gcc-x86-64-linux-gnu",
    "aarch64": "the Debian package gcc-aarch64-linux-gnu (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)",
    "arm": "the Debian package gcc-arm-linux-gnueabihf (apt-get install gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)",
    "riscv64": "the Debian package gcc-riscv64-linux-gnu (apt-get install gcc-riscv64-linux-gnu libc6-dev-riscv64-cross)",
}


def _dims(shape: tuple[int, ...]) -> str:
    return ", ".join(map(str, shape)) or "1"


def _threads_note(facts: ArtifactFacts) -> str:
    """Whether the artifact creates threads (bnnc compile --num-threads)."""
    if facts.creates_threads:
        return (
            "The first call starts a pool of worker threads (pthread_create) that splits its layers' work;"
            "\n * the workers sleep (futex) between calls and are joined by the artifact's destructor at"
            "\n * dlclose or exit. A call made while another call holds the pool runs on its own thread."
        )
    return "Each call runs on the calling thread only (no threads are created)."


def _scratch_lines(signature: Signature, scratch: str) -> list[str]:
    """How the call gets its scratch memory: a caller-provided arena (a static
    memory plan) or its own allocations."""
    if signature.arena_bytes is not None:
        return [
            f" * Scratch memory: the last argument, `arena`, {signature.arena_bytes} bytes"
            f" ({signature.name.upper()}_ARENA_BYTES)",
            f" * aligned to {ARENA_ALIGNMENT} bytes, owned by the caller, e.g. a static buffer. The buffers",
            " * of all layers share it by liveness (a static plan: its size is the peak of",
            " * live buffers). The call allocates nothing; the arena's contents need no",
            " * initialisation and are garbage afterwards. Concurrent calls need distinct arenas.",
        ]
    return [
        f" * Scratch memory: {scratch}.",
        " * The call allocates it itself with aligned_alloc(64, n) and frees it with",
        " * free() before returning; the caller provides none. Allocation failure is not",
        " * checked: make sure the heap can hold it.",
    ]


def _arena_defines(signature: Signature) -> list[str]:
    if signature.arena_bytes is None:
        return []
    up = signature.name.upper()
    return [f"#define {up}_ARENA_BYTES {signature.arena_bytes}", f"#define {up}_ARENA_ALIGN {ARENA_ALIGNMENT}"]


def c_header(signature: Signature, target: Target, facts: ArtifactFacts | None = None) -> str:
    """The header that documents an artifact's C ABI."""
    facts = facts or ArtifactFacts()
    name = signature.name
    up = name.upper()
    guard = f"BNNC_{up}_H"
    n_in, n_out = len(signature.inputs), len(signature.outputs)
    if facts.scratch_bytes is None:
        scratch = f"{facts.scratch_allocations} scratch buffer(s), some of run-time size"
    elif facts.scratch_allocations == 0:
        scratch = "no scratch memory"
    else:
        scratch = (
            f"{facts.scratch_allocations} buffer(s), {facts.scratch_bytes} bytes in total\n"
            " * (an upper bound on the peak: buffers are freed as soon as they are dead)"
        )
    # 32-bit targets call the compiler runtime for what they lack in hardware
    # (armv7: __aeabi_l2f converts an i64 accumulator to float); gcc links it.
    # (__aeabi_memcpy/memset/memclr/memmove are the ARM run-time ABI's names of
    # the mem* functions: the C library's, like memcpy.)
    helpers = [s for s in facts.libc_symbols if s.startswith("__aeabi_") and not s.startswith("__aeabi_mem")]
    libc_only = [s for s in facts.libc_symbols if s not in helpers]
    libc = ", ".join(libc_only) if facts.libc_symbols else "(not measured)"
    state = (
        "there is no global mutable state: weights and the signature are read-only constants"
        if not facts.mutable_globals
        else f"Global mutable state: {', '.join(facts.mutable_globals)} (calls are NOT reentrant)"
    )
    lines = [
        f"/* Generated by bnnc {__version__} for target {target.name}: triple {target.triple},",
        f" * cpu {target.cpu}, features {target.features or '(default)'}. Do not edit. */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        "/*",
        f" * {name}: run the compiled model once (a synchronous call that returns when done).",
        " *",
        " * Arguments: one pointer per input, then one per output. Every buffer is a",
        " * dense, row-major (C-contiguous) float32 array, allocated and owned by the",
        " * caller; outputs are overwritten, inputs only read. Buffers must not overlap.",
    ]
    if signature.dynamic_batch:
        lines += [
            " * A dynamic-batch model: the first argument, n >= 1, is the batch size, and",
            " * every buffer holds n samples of the per-sample shape below (leading 1),",
            " * so n times its size; results are identical at every n.",
        ]
    for i, spec in enumerate(signature.inputs):
        lines.append(
            f" *   in{i}:  input  {i}, {spec.dtype}[{_dims(spec.shape)}] ({spec.numel} floats, {4 * spec.numel} bytes)"
        )
    for i, spec in enumerate(signature.outputs):
        lines.append(
            f" *   out{i}: output {i}, {spec.dtype}[{_dims(spec.shape)}] ({spec.numel} floats, {4 * spec.numel} bytes)"
        )
    lines += [
        " *",
        *_scratch_lines(signature, scratch),
        " *",
        f" * Thread safety: {state},",
        " * so concurrent calls from several threads with distinct buffers are safe.",
        f" * {_threads_note(facts)}",
        " *",
        f" * Undefined symbols (all from libc): {libc}.",
        *([f" * Compiler-runtime helpers (libgcc, which gcc links by default): {', '.join(helpers)}."] if helpers else []),
        " */",
        signature.c_prototype(),
        "",
        f"#define {up}_NUM_INPUTS {n_in}",
        f"#define {up}_NUM_OUTPUTS {n_out}",
        f"#define {up}_DYNAMIC_BATCH {int(signature.dynamic_batch)}",
    ]
    for i, spec in enumerate(signature.inputs):
        lines.append(f"#define {up}_IN{i}_NUMEL {spec.numel}")
    for i, spec in enumerate(signature.outputs):
        lines.append(f"#define {up}_OUT{i}_NUMEL {spec.numel}")
    lines += [
        f"#define {up}_SCRATCH_BYTES {facts.scratch_bytes if facts.scratch_bytes is not None else -1}",
        *_arena_defines(signature),
        "",
        *signature.c_generic_abi(),
        "#ifdef __cplusplus",
        "}",
        "#endif",
        f"#endif /* {guard} */",
        "",
    ]
    return "\n".join(lines)


_FEATURE_EXAMPLES = {
    "aarch64": "+neon, +dotprod, +fullfp16, +sve, +v8.2a",
    "x86_64": "+avx2, +avx512f, +avx512vpopcntdq, +popcnt, -prefer-256-bit",
    "armv7": "+neon, +vfp4, +fp16, -neon",
    "riscv64": "+m, +a, +f, +d, +c, +zbb, +v, +zvbb, +zvl256b",
}


def check_features(target: Target) -> None:
    """LLVM only warns on stderr about an unknown feature ('+x' is not a recognized
    feature for this target (ignoring feature)) and drops it; make that an error."""
    import llvmlite.binding as llvm

    from bnnc.target import llvm_stderr

    if not target.features or target.name == "host":
        return

    def emit_empty_function() -> None:
        tm = llvm.Target.from_triple(target.triple).create_target_machine(
            cpu=target.cpu, features=target.features, opt=0
        )
        # Subtarget features are parsed when code is generated for a function.
        tm.emit_assembly(llvm.parse_assembly(f'target triple = "{target.triple}"\ndefine void @f() {{ ret void }}'))

    err = llvm_stderr(emit_empty_function)
    bad = sorted(set(re.findall(r"'([+-]?[^']+)' is not a recognized feature", err)))
    if bad:
        raise TargetError(
            f"unknown feature(s) {', '.join(bad)} for {target.arch}; accepted: LLVM feature names for "
            f"{target.arch} with + or -, e.g. {_FEATURE_EXAMPLES.get(target.arch, '+feature')}"
        )


def find_linker(target: Target) -> list[str]:
    """The command (a list) that links a shared library for `target`."""
    from bnnc.runtime.artifact_loader import host_arch
    from bnnc.runtime.emulated_run import elf_arch, gnu_triple

    arch = elf_arch(target.arch)
    prefix = gnu_triple(arch)
    candidates = [f"{prefix}-gcc"]
    if arch == host_arch():
        candidates = ["cc", "gcc", *candidates]
    for tool in candidates:
        if (path := shutil.which(tool)) is not None:
            return [path, "-shared", "-Wl,-z,noexecstack"]
    if (ld := shutil.which(f"{prefix}-ld")) is not None:  # binutils alone is enough
        return [ld, "-shared", "-z", "noexecstack"]
    provider = _PROVIDERS.get(arch, f"a {prefix} cross toolchain")
    raise TargetError(
        f"linking a shared library for {arch} needs a linker ({', '.join(candidates)} or {prefix}-ld), "
        f"and none is installed: install {provider}, or use --emit=obj and link the object yourself"
    )


def find_relocatable_linker(target: Target) -> list[str] | None:
    """The command that links objects into one relocatable object for
    `target` (GNU ld -r), or None: an object artifact is then compiled as one
    module."""
    from bnnc.runtime.artifact_loader import host_arch
    from bnnc.runtime.emulated_run import elf_arch, gnu_triple

    if target.is_bare_metal:
        return None
    arch = elf_arch(target.arch)
    candidates = [f"{gnu_triple(arch)}-ld", *(["ld"] if arch == host_arch() else [])]
    for tool in candidates:
        if (path := shutil.which(tool)) is not None:
            return [path, "-r"]
    return None


def write_artifact(
    mod: Any, target: Target, signature: Signature, output: str, *, kind: str,
    compiled: tuple[tuple[bytes, ...], ArtifactFacts] | None = None,
) -> list[str]:
    """Write `output` (an ELF object for kind "obj", a shared library for "so")
    and its C header next to it (same stem, .h); return the paths written.
    `compiled` is the object code (one object, or the parts of a split
    module: linked into one, bnnc.driver.parallel_objects) and the facts of
    `mod` when they are known already (`mod` is then unused)."""
    from bnnc.codegen import emit_object
    from bnnc.runtime.artifact_loader import undefined_symbols

    if kind not in ("obj", "so"):
        raise TargetError(f"unknown artifact kind '{kind}': obj or so")
    out = Path(output)
    header = out.with_suffix(".h")
    if header == out:
        raise TargetError(f"the artifact {out} would overwrite its own header; give it a .o or .so name")
    objects = (emit_object(mod, target),) if compiled is None else compiled[0]
    with tempfile.TemporaryDirectory(prefix="bnnc-") as tmp:
        paths = []
        for i, code in enumerate(objects):
            paths.append(Path(tmp) / (f"{signature.name}.o" if len(objects) == 1 else f"{signature.name}.part{i}.o"))
            paths[-1].write_bytes(code)
        built = paths[0]
        if kind == "so":
            cmd = find_linker(target)
            built = Path(tmp) / f"lib{signature.name}.so"
            # The soname is the file name, so programs linked against it find it by name.
            soname = [f"-Wl,-soname,{out.name}"] if not cmd[0].endswith("-ld") else ["-soname", out.name]
            _link([*cmd, *soname], built, paths, out)
        elif len(paths) > 1:
            cmd = find_relocatable_linker(target)
            if cmd is None:
                raise TargetError(f"linking the {len(paths)} parts of {out} into one object needs GNU ld for "
                                  f"{target.arch}; compile it with jobs=1")
            built = Path(tmp) / f"{signature.name}.o"
            _link(cmd, built, paths, out)
        facts = measure(mod) if compiled is None else compiled[1]
        libc = tuple(sorted({sym.split("@")[0] for sym in undefined_symbols(str(built))}))
        facts = replace(facts, libc_symbols=libc)  # (keeps creates_threads)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, out)
        if kind == "so":
            out.chmod(0o755)
    header.write_text(c_header(signature, target, facts))
    return [str(out), str(header)]


def _link(cmd: list[str], built: Path, objects: list[Path], out: Path) -> None:
    result = subprocess.run([*cmd, "-o", str(built), *map(str, objects)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise TargetError(f"{cmd[0]} failed to link {out}:\n{result.stderr.strip()}")
