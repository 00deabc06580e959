"""The IR stages of a pipeline and the kinds of output `--emit` can ask for,
as plain data in a module that imports nothing: the CLI builds its parser
from them, so `bnnc --help` loads neither xDSL, llvmlite nor torch."""

from __future__ import annotations

# The IR stages, in order: graph-level bnn, loops (scf/memref), llvm dialect.
STAGES = ("bnn", "loops", "llvm")

# Then the outputs after the IR ones: LLVM IR text, assembly, object, shared library.
EMIT_KINDS = (*STAGES, "ll", "asm", "obj", "so")
