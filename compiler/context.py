"""The xDSL context bnnc parses and rewrites IR in."""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects import get_all_dialects

from bnnc.dialects import BNN
from bnnc.dialects.llvm_extra import EXTRA_LLVM_OPS


def make_context() -> Context:
    """A context with every upstream xDSL dialect and the bnn dialect."""
    ctx = Context()
    for name, factory in get_all_dialects().items():
        if name != BNN.name:
            ctx.register_dialect(name, factory)
    ctx.load_dialect(BNN)
    # llvm ops upstream xDSL lacks, which bnnc's convert-*-to-llvm passes emit.
    for op in EXTRA_LLVM_OPS:
        ctx.load_op(op)
    return ctx
