"""Checking IR the way a pass sees it, not as text: tests that look at what
the CLI or a frontend produced parse it (which also verifies it) and count
ops by name or inspect their operands, so a comment, a location or an
attribute value that happens to contain an op's name cannot pass for it."""

from __future__ import annotations

from collections import Counter

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser

from bnnc.context import make_context


def parse_ir(text: str) -> ModuleOp:
    """The module printed in `text`, parsed and verified."""
    module = Parser(make_context(), text).parse_module()
    module.verify()
    return module


def _module(ir: str | ModuleOp) -> ModuleOp:
    return ir if isinstance(ir, ModuleOp) else parse_ir(ir)


def op_counts(ir: str | ModuleOp) -> Counter[str]:
    """How many ops of each name the module holds (nested ones included)."""
    return Counter(op.name for op in _module(ir).walk())


def functions(ir: str | ModuleOp) -> dict[str, func.FuncOp]:
    """The module's functions by symbol name."""
    return {op.sym_name.data: op for op in _module(ir).walk() if isinstance(op, func.FuncOp)}
