"""Code-generation targets as data: a triple, a CPU name, an LLVM feature
string, and what follows from them (vector width, popcount instructions).

`resolve_target` is the one place a user-supplied target name / CPU /
feature string is checked; everything downstream trusts a `Target`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from bnnc.errors import TargetError

KNOWN_TARGETS: tuple[str, ...] = ("host", "x86_64", "aarch64", "armv7", "riscv64", "cortex-m4", "cortex-m7")

_DEFAULTS: dict[str, tuple[str, str, str]] = {
    # name: (triple, default cpu, default features)
    "x86_64": ("x86_64-unknown-linux-gnu", "x86-64-v3", ""),
    "aarch64": ("aarch64-unknown-linux-gnu", "generic", "+neon"),
    # 32-bit Raspberry Pi OS and other armhf Linux: armv7-a, hard-float VFPv4 + NEON
    # (Cortex-A7 is the oldest Pi with NEON; A53/A72 run the same code in AArch32).
    "armv7": ("armv7-unknown-linux-gnueabihf", "cortex-a7", "+neon,+vfp4"),
    # rv64gc (RVA20U64) + Zbb (scalar cpop; in RVA22U64 and on current boards).
    # The vector build adds "+v,+zvbb" (VLEN >= 128 implied by +v, vcpop.v).
    "riscv64": ("riscv64-unknown-linux-gnu", "generic-rv64", "+m,+a,+f,+d,+c,+zbb"),
    # Bare-metal Cortex-M (thumbv7em, no OS): the CPU brings its FPU (cortex-m4:
    # fpv4-sp-d16, cortex-m7: fp-armv8-d16); eabihf passes floats in FPU registers
    # (spelled with all four parts: LLVM reads "thumbv7em-none-eabihf" as OS
    # "eabihf" with no environment, i.e. the soft-float calling convention).
    "cortex-m4": ("thumbv7em-unknown-none-eabihf", "cortex-m4", ""),
    "cortex-m7": ("thumbv7em-unknown-none-eabihf", "cortex-m7", ""),
}

# One LLVM feature: "+name" or "-name", names like avx512vpopcntdq, prefer-256-bit, v8.2a, sse4.1.
_FEATURE_RE = re.compile(r"^[+-][A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Target:
    name: str
    triple: str
    cpu: str
    features: str

    def _enabled(self) -> dict[str, bool]:
        state: dict[str, bool] = {}
        for f in self.features.split(","):
            f = f.strip()
            if f:
                state[f[1:]] = f[0] == "+"
        return state

    def _has(self, feature: str) -> bool:
        """Whether `feature` is on: explicit feature string first, then what LLVM
        enables for the CPU by default."""
        explicit = self._enabled()
        if feature in explicit:
            return explicit[feature]
        return feature in _cpu_default_features(self.triple, self.cpu)

    @property
    def arch(self) -> str:
        return self.triple.split("-", 1)[0]

    @property
    def is_x86(self) -> bool:
        return self.arch in ("x86_64", "amd64")

    @property
    def is_aarch64(self) -> bool:
        return self.arch in ("aarch64", "arm64")

    @property
    def is_arm32(self) -> bool:
        return self.arch.startswith(("armv7", "arm", "thumbv7"))

    @property
    def is_riscv64(self) -> bool:
        return self.arch == "riscv64"

    @property
    def has_neon(self) -> bool:
        """AArch64 always has it (unless "-neon"); Armv7 when the CPU or "+neon" says so."""
        if self.is_aarch64:
            return self._enabled().get("neon", True)
        return self.is_arm32 and self._has("neon")

    @property
    def has_rvv(self) -> bool:
        """RISC-V vector extension 1.0 (application profile: "+v")."""
        return self.is_riscv64 and self._has("v")

    @property
    def rvv_min_vlen(self) -> int:
        """The VLEN the code may assume: the largest "+zvl<N>b" in the features,
        else 128 (what "+v" implies). LLVM lowers fixed-length vectors of up to
        this many bits to RVV at LMUL 1."""
        explicit = [int(m.group(1)) for f, on in self._enabled().items() if on and (m := re.fullmatch(r"zvl(\d+)b", f))]
        return max(explicit, default=128)

    @property
    def pointer_bits(self) -> int:
        """Width of a pointer and of C's size_t (what libc calls such as aligned_alloc take)."""
        return 32 if self.is_arm32 else 64

    @property
    def is_bare_metal(self) -> bool:
        """No OS (a `-none-` triple): no heap, no threads, no libc but mem*; the
        model runs in a caller-provided arena (the plan-memory pass)."""
        return "-none" in self.triple

    @property
    def has_avx2(self) -> bool:
        return self.is_x86 and self._has("avx2")

    @property
    def has_avx512f(self) -> bool:
        return self.is_x86 and self._has("avx512f")

    @property
    def has_vpopcntdq(self) -> bool:
        return self.is_x86 and self._has("avx512vpopcntdq")

    @property
    def vector_bits(self) -> int:
        """Widest vector register the generated code should use."""
        if self.is_x86:
            if self.has_avx512f and not self._has("prefer-256-bit"):
                return 512
            if self.has_avx2 or self.has_avx512f:
                return 256
            # No vector popcount: one word per "vector", i.e. scalar popcnt.
            return 64
        if self.is_aarch64:
            return 128  # NEON (SVE is not targeted)
        if self.is_arm32:
            return 128 if self.has_neon else 64  # NEON q registers, else scalar words
        if self.is_riscv64:
            # RVV registers are scalable; the kernels use fixed-length vectors of
            # the guaranteed minimum VLEN (LMUL 1). Without +v: 64-bit words (cpop).
            return self.rvv_min_vlen if self.has_rvv else 64
        return 128

    @property
    def vector_registers(self) -> int:
        """Registers of `vector_bits` the register-tile model may fill: 32 for
        AArch64 NEON, AVX-512 and RVV (v0 is also the mask register, but the
        kernels use no masks); 16 for AVX2 / SSE and for ARMv7 NEON (q0-q15).
        The scalar riscv64 build keeps its words in the 31 x registers, which
        also hold the loop's pointers and indices: 16 (a 2 x 4 tile) spilled
        least in the 3x3 conv's hot block of 12, 16, 20 and 24 (LLVM 20)."""
        if self.is_aarch64 or self.has_avx512f or self.has_rvv:
            return 32
        return 16

    @property
    def popcount_accumulator_bits(self) -> int:
        """Lane width the binary kernels accumulate popcounts in. NEON's `cnt`
        counts bytes and `uadalp .8h` adds byte pairs into 16-bit lanes in one
        instruction, so aarch64 accumulates in 16-bit lanes (widened to 64 bits
        once per bounded chunk of K): eor + cnt + uadalp, 3 SIMD ops per 128
        bit-MACs instead of 5 for a 64-bit popcount. x86 (VPOPCNTQ, popcnt, the
        AVX2 nibble LUT) counts whole 64-bit words.
        Armv7 NEON has the same pair (`vcnt.8` + `vpadal.u8`). RISC-V counts
        whole 64-bit words (`cpop`, `vcpop.v` on e64)."""
        return 16 if self.has_neon else 64

    @property
    def is_host(self) -> bool:
        import llvmlite.binding as llvm

        _init_llvm()
        return self.triple == llvm.get_process_triple() and self.cpu == llvm.get_host_cpu_name()


_initialised = False


def _init_llvm() -> None:
    """Initialise llvmlite's targets once (never `llvm.initialize()`: deprecated)."""
    global _initialised
    if _initialised:
        return
    import llvmlite.binding as llvm

    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    _initialised = True


@lru_cache(maxsize=None)
def _cpu_default_features(triple: str, cpu: str) -> frozenset[str]:
    """Features LLVM turns on by default for `cpu` (only knowable for the host CPU
    through llvmlite; for named CPUs we use a small table of x86-64 levels)."""
    import llvmlite.binding as llvm

    _init_llvm()
    if cpu == llvm.get_host_cpu_name() and triple.split("-")[0] == llvm.get_process_triple().split("-")[0]:
        host = llvm.get_host_cpu_features()
        return frozenset(k for k, v in host.items() if v)
    levels = {
        "x86-64-v2": {"sse4.2", "popcnt"},
        "x86-64-v3": {"sse4.2", "popcnt", "avx", "avx2", "fma", "bmi2"},
        "x86-64-v4": {"sse4.2", "popcnt", "avx", "avx2", "fma", "bmi2", "avx512f", "avx512bw", "avx512vl"},
        "icelake-server": {"avx2", "avx512f", "avx512vpopcntdq", "avx512bw", "avx512vl", "popcnt"},
        "sapphirerapids": {"avx2", "avx512f", "avx512vpopcntdq", "avx512bw", "avx512vl", "popcnt"},
        "znver4": {"avx2", "avx512f", "avx512vpopcntdq", "avx512bw", "avx512vl", "popcnt"},
        "haswell": {"avx2", "popcnt", "fma"},
        "skylake": {"avx2", "popcnt", "fma"},
        "znver2": {"avx2", "popcnt", "fma"},
        "znver3": {"avx2", "popcnt", "fma"},
        "skylake-avx512": {"avx2", "avx512f", "avx512bw", "avx512vl", "popcnt"},
        # Arm CPUs whose NEON LLVM enables without "+neon" in the features.
        "cortex-a7": {"neon", "vfp4"},
        "cortex-a15": {"neon", "vfp4"},
        "cortex-a53": {"neon", "vfp4"},
        "cortex-a72": {"neon", "vfp4"},
        "cortex-a76": {"neon"},
        "neoverse-n1": {"neon"},
        "apple-m1": {"neon"},
    }
    return frozenset(levels.get(cpu, set()))


def _check_features(features: str) -> None:
    for f in features.split(","):
        f = f.strip()
        if f and not _FEATURE_RE.match(f):
            raise TargetError(
                f"malformed feature '{f}' in '{features}': expected a comma-separated list of "
                "'+feature' / '-feature' (e.g. '+avx2,-prefer-256-bit' or '+neon')"
            )


def _check_cpu(triple: str, cpu: str) -> None:
    """LLVM only warns (on stderr) about an unknown CPU, so check explicitly:
    an unknown CPU makes the subtarget fall back to a feature-less generic model,
    (llvmlite 0.50 exposes no CPU list to check against)."""
    if cpu in ("generic", ""):
        return
    if not _cpu_is_known(triple, cpu):
        raise TargetError(
            f"unknown cpu '{cpu}' for {triple}; accepted: an LLVM CPU name for this "
            "architecture (e.g. 'x86-64-v3', 'skylake', 'znver3' for x86_64; 'generic', "
            "'cortex-a72', 'neoverse-n1', 'apple-m1' for aarch64), or 'generic'"
        )


@lru_cache(maxsize=None)
def _cpu_is_known(triple: str, cpu: str) -> bool:
    """LLVM prints "'x' is not a recognized processor for this target" on stderr
    for an unknown CPU and carries on. Capture fd 2 while creating a target
    machine to see whether it complained. (Do not emit code with such a
    machine: LLVM then aborts the process.)"""
    import llvmlite.binding as llvm

    def make_machine() -> None:
        llvm.Target.from_triple(triple).create_target_machine(cpu=cpu, features="", opt=0)

    return "not a recognized processor" not in llvm_stderr(make_machine)


def llvm_stderr(action: Callable[[], object]) -> str:
    """What LLVM wrote to fd 2 while `action` ran. LLVM reports an unknown CPU
    or feature only as a warning on stderr (no API returns it), so the target
    checks run the call with fd 2 redirected to a temporary file."""
    import os
    import tempfile

    _init_llvm()
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            action()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode(errors="replace")


def resolve_target(name: str, cpu: str | None = None, features: str | None = None) -> Target:
    """Check a target name / CPU / feature string and return the `Target`.

    - "host": llvmlite's process triple, the host CPU name and its full feature
      list; on x86 "-prefer-256-bit" is appended so LLVM uses 512-bit registers
      where the CPU has them.
    - "x86_64": x86_64-unknown-linux-gnu, default cpu x86-64-v3.
    - "aarch64": aarch64-unknown-linux-gnu, default cpu "generic", features "+neon".
    - "armv7": armv7-unknown-linux-gnueabihf, cpu "cortex-a7", features "+neon,+vfp4".
    - "riscv64": riscv64-unknown-linux-gnu, cpu "generic-rv64", features
      "+m,+a,+f,+d,+c,+zbb" (rv64gc + Zbb); add "+v,+zvbb" for RVV.
    `features` replaces the default feature string (for "host" it is appended).
    """
    import llvmlite.binding as llvm

    _init_llvm()
    if name not in KNOWN_TARGETS:
        raise TargetError(f"unknown target '{name}'; accepted: {', '.join(KNOWN_TARGETS)}")
    if features is not None:
        _check_features(features)
    if name == "host":
        triple = llvm.get_process_triple()
        host_cpu = llvm.get_host_cpu_name()
        feats = llvm.get_host_cpu_features().flatten()
        if triple.startswith(("x86_64", "i686", "i386")):
            feats = ",".join(f for f in [feats, "-prefer-256-bit"] if f)
        if features:
            feats = ",".join(f for f in [feats, features] if f)
        chosen_cpu = cpu or host_cpu
        if cpu is not None:
            _check_cpu(triple, cpu)
        return Target("host", triple, chosen_cpu, feats)
    triple, default_cpu, default_features = _DEFAULTS[name]
    chosen_cpu = cpu if cpu is not None else default_cpu
    _check_cpu(triple, chosen_cpu)
    return Target(name, triple, chosen_cpu, features if features is not None else default_features)


_HELP_NOTES = {"riscv64": " (add +v,+zvbb for RVV vectors with vcpop.v)"}


def describe_targets() -> str:
    """One line per known target with its default CPU and features (for
    `bnnc compile --help`), read from the same table `resolve_target` uses."""
    lines = ["host: this machine (JIT and native artifacts; its CPU and all its features)"]
    for name in KNOWN_TARGETS:
        if name in _DEFAULTS:
            triple, cpu, feats = _DEFAULTS[name]
            line = f"{name}: {triple}, --cpu {cpu}, --features {feats or '(those of the CPU)'}"
            lines.append(line + _HELP_NOTES.get(name, ""))
    return "; ".join(lines)
