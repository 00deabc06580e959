"""convert-scf-to-cf: scf.for / scf.if / scf.index_switch -> blocks and cf
branches (MLIR's SCFToControlFlow).

Why bnnc has its own: xDSL's pass of this name runs its three lowering
patterns through the recursive pattern walker, which queues, DCE-checks and
matches every op of the module and then sweeps the whole module a second
time to find nothing left: ~1 s of Bi-Real-Net-18's ~9 s of passes. This one
applies the same xDSL patterns (`ForLowering`, `IfLowering`,
`SwitchLowering`, so every block, branch and comparison is the same) to just
the structured ops, in the order the walker reaches them (pre-order: an outer
loop is lowered before the loops its body holds, which keep their order).
The walker's DCE, which erases ops that are trivially dead, is done as it
would: a structured op dead when reached is erased, not lowered; the other
ops after the lowering, erasing trivially dead ops until none is left (the
lowering itself makes no op dead: a loop's results become block arguments),
so both erase the same ops: those already dead and those dead because of them.
The output is identical to xDSL's.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import scf
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern
from xdsl.rewriter import Rewriter
from xdsl.transforms.convert_scf_to_cf import ForLowering, IfLowering, SwitchLowering
from xdsl.transforms.dead_code_elimination import is_trivially_dead

_PATTERNS: dict[type[Operation], RewritePattern] = {
    scf.ForOp: ForLowering(),
    scf.IfOp: IfLowering(),
    scf.IndexSwitchOp: SwitchLowering(),
}


def erase_dead_ops(module: ModuleOp) -> None:
    """Erase trivially dead ops until none is left (uses before definitions:
    a dead chain goes in one sweep)."""
    while True:
        dead = [op for op in module.body.walk(reverse=True) if is_trivially_dead(op)]
        if not dead:
            return
        for op in dead:
            if op.parent is not None and is_trivially_dead(op):
                Rewriter.erase_op(op)


@dataclass(frozen=True)
class ConvertScfToCfPass(ModulePass):
    name = "convert-scf-to-cf"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        gone: set[int] = set()  # ops inside a dead structured op erased whole
        for structured in [o for o in op.walk() if type(o) in _PATTERNS]:
            if id(structured) in gone:
                continue
            if is_trivially_dead(structured):  # the walker erases it instead
                gone.update(id(o) for o in structured.walk())
                Rewriter.erase_op(structured)
                continue
            _PATTERNS[type(structured)].match_and_rewrite(structured, PatternRewriter(structured))
        erase_dead_ops(op)
