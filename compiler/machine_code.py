"""LLVM IR text -> optimised module -> machine code, with llvmlite only.

Kept apart from `bnnc.codegen` (which translates the llvm dialect and needs
xDSL) so that what only runs LLVM loads fast: the compile cache's loader and
the processes of `bnnc.llvm_jobs`.
"""

from __future__ import annotations

import re

import llvmlite.binding as llvm

from bnnc.errors import TargetError
from bnnc.target import Target, _init_llvm


def target_machine(target: Target, *, opt_level: int = 3, jit: bool = False) -> llvm.TargetMachine:
    """The LLVM target machine for `target`: objects and assembly, or the JIT's."""
    _init_llvm()
    try:
        t = llvm.Target.from_triple(target.triple)
    except RuntimeError as e:
        raise TargetError(f"LLVM has no backend for triple '{target.triple}': {e}") from e
    return t.create_target_machine(
        cpu=target.cpu,
        features=target.features,
        opt=opt_level,
        # Firmware is linked at fixed addresses. JIT code too: MCJIT places
        # each object of a split build (bnnc.llvm_split) where it likes, and
        # resolves absolute relocations between them (its x86-64 PIC large-model
        # GOTOFF64 relocations across objects crash).
        reloc="static" if target.is_bare_metal or jit else "pic",
        codemodel="jitdefault" if jit else "default",
        jit=jit,
    )


# LLVM's loop unrollers (partial and full), off: bnnc's kernels are unrolled
# where it pays (register tiles, K steps), and unrolling the rest too doubled
# LLVM's work: Bi-Real-Net-18's LLVM stage 2.6 -> 1.3 s (2 processes),
# BinaryDenseNet-28's 7.3 -> 6.1 s. The price, measured interleaved in one
# process: Bi-Real-Net-18 and XNOR-Net 3% slower, BinaryDenseNet-28 the same;
# single binary layers the same. Bits are identical either way.
LLVM_LOOP_UNROLLING = False

_ALIGNED_ALLOC = re.compile(r'^declare (\S+) @"?aligned_alloc"?\(i64[^,]*, i64[^)]*\)[^\n]*$', re.MULTILINE)


def narrow_size_t(ir_text: str, target: Target) -> str:
    """aligned_alloc takes size_t, the lowering's `index`. The default pipeline
    converts `index` to the target's pointer width (pipeline.llvm_passes), so
    this is a no-op for it; an llvm stage given with --pipeline and without
    `index_bitwidth=32` passes i64 sizes where size_t is 32 bits (armv7), which
    would split each across two registers. Route such calls through an
    always-inlined shim that truncates (one model's sizes fit in 32 bits there)."""
    m = _ALIGNED_ALLOC.search(ir_text)
    if target.pointer_bits == 64 or m is None:
        return ir_text
    ptr = m.group(1)
    body = ir_text[: m.start()] + ir_text[m.end() :]
    body = re.sub(r'@"?aligned_alloc"?\(', '@"__bnnc_aligned_alloc"(', body)
    shim = (
        f'define internal {ptr} @"__bnnc_aligned_alloc"(i64 %a, i64 %n) alwaysinline {{\n'
        "  %a32 = trunc i64 %a to i32\n  %n32 = trunc i64 %n to i32\n"
        f"  %p = call {ptr} @aligned_alloc(i32 %a32, i32 %n32)\n  ret {ptr} %p\n}}\n"
        f"declare {ptr} @aligned_alloc(i32, i32)\n"
    )
    return f"{body}\n{shim}"


def optimize(ir_text: str, target: Target, *, opt_level: int = 3) -> llvm.ModuleRef:
    """Parse and verify `ir_text`, set the target's triple and data layout, and
    run LLVM's new-pass-manager pipeline at `opt_level` for the target machine."""
    _init_llvm()
    mod = llvm.parse_assembly(narrow_size_t(ir_text, target))
    mod.verify()
    tm = target_machine(target, opt_level=opt_level)
    mod.triple = target.triple
    mod.data_layout = str(tm.target_data)
    if opt_level > 0:
        pto = llvm.PipelineTuningOptions(speed_level=min(opt_level, 3))
        pto.loop_unrolling = LLVM_LOOP_UNROLLING
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
    mod.verify()
    return mod


def emit_object(mod: llvm.ModuleRef, target: Target) -> bytes:
    """A relocatable (PIC) object file for `target`."""
    return target_machine(target).emit_object(mod)


def emit_assembly(mod: llvm.ModuleRef, target: Target) -> str:
    """Assembly text for `target` (AT&T syntax on x86)."""
    return target_machine(target).emit_assembly(mod)
