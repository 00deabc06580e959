"""convert-cf-to-llvm: cf.br / cf.cond_br -> llvm.br / llvm.cond_br.

Why it exists: xDSL 0.74 has convert-scf-to-cf but no cf-to-llvm, so the loops
of every bnnc kernel would stop at the cf dialect. Run it after
convert-scf-to-cf. Block arguments of the branch targets get their llvm types
(index -> i64 or i32, memref -> !llvm.ptr) here, as MLIR's conversion does; entry
blocks are left to convert-func-to-llvm. cf.switch and cf.assert are not
lowered (xDSL's LLVM translation has no switch); the pass fails on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import cf, llvm
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern
from xdsl.utils.exceptions import PassFailedException

from bnnc.passes._llvm_common import cast_to_llvm, convert_block_args, index_bitwidth, kind_filter


class CfToLLVM(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if isinstance(op, cf.BranchOp):
            args = [cast_to_llvm(rewriter, v, want=a.type) for v, a in zip(op.arguments, op.successor.args, strict=True)]
            rewriter.replace(op, [llvm.BrOp(op.successor, *args)], [])
        elif isinstance(op, cf.ConditionalBranchOp):
            then_b, else_b = op.then_block, op.else_block
            targs = [cast_to_llvm(rewriter, v, want=a.type) for v, a in zip(op.then_arguments, then_b.args, strict=True)]
            eargs = [cast_to_llvm(rewriter, v, want=a.type) for v, a in zip(op.else_arguments, else_b.args, strict=True)]
            cond = cast_to_llvm(rewriter, op.cond)
            rewriter.replace(op, [llvm.CondBrOp(cond, then_b, targs, else_b, eargs)], [])


def _branch_targets(branches: list[Operation]) -> list[Block]:
    seen: dict[int, Block] = {}
    for op in branches:
        for b in op.successors:
            seen.setdefault(id(b), b)
    return list(seen.values())


@dataclass(frozen=True)
class ConvertCfToLLVMPass(ModulePass):
    name = "convert-cf-to-llvm"

    index_bitwidth: int = 64
    """Width of `index` in LLVM: 32 on 32-bit targets (MLIR's index-bitwidth)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        # One walk finds the branches and any other cf op (the rewrites add
        # neither), instead of three over the module's ~30k ops.
        branches: list[Operation] = []
        others: set[str] = set()
        is_branch = kind_filter((cf.BranchOp, cf.ConditionalBranchOp))
        for o in op.walk():
            if is_branch(o):
                branches.append(o)
            elif o.name.startswith("cf."):
                others.add(o.name)
        with index_bitwidth(self.index_bitwidth):
            for block in _branch_targets(branches):
                if block.parent is not None and block is not block.parent.blocks[0]:
                    convert_block_args(block)
            pattern = CfToLLVM()
            for branch in branches:
                pattern.match_and_rewrite(branch, PatternRewriter(branch))
            if others:
                raise PassFailedException(
                    f"convert-cf-to-llvm: cannot lower {sorted(others)}; supported: cf.br, cf.cond_br"
                )
