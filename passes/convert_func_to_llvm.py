"""convert-func-to-llvm: func.func / func.return / func.call -> llvm.func /
llvm.return / llvm.call.

Why it exists: xDSL 0.74 has no func-to-llvm lowering. It is the last
op-lowering pass of the chain because it fixes the signatures: with bnnc's
bare-pointer convention a memref argument or result becomes `!llvm.ptr` and
`index` becomes i64, or i32 with index_bitwidth=32
(`bnnc.passes._llvm_common.llvm_type`), so a compiled kernel is called from
C / ctypes with plain data pointers.

Linkage: public functions and external declarations (malloc, free, ...) are
`external`; `private` functions with a body become `internal` so LLVM may
inline and drop them. Functions with several results are refused (MLIR packs
them in a struct; bnnc's kernels return through memrefs).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func, llvm
from xdsl.dialects.builtin import FunctionType, ModuleOp
from xdsl.ir import Operation, Region
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern
from xdsl.utils.exceptions import PassFailedException

from bnnc.passes._llvm_common import (
    cast_all,
    convert_block_args,
    index_bitwidth,
    llvm_type,
    replace_with_llvm,
    rewrite_each,
)


def llvm_function_type(ft: FunctionType, what: str) -> llvm.LLVMFunctionType:
    outs = list(ft.outputs.data)
    if len(outs) > 1:
        raise PassFailedException(f"convert-func-to-llvm: {what} returns {len(outs)} values; at most one is supported")
    return llvm.LLVMFunctionType([llvm_type(t) for t in ft.inputs.data], llvm_type(outs[0]) if outs else None)


def _discardable(op: Operation) -> dict:
    """Dialect-prefixed attributes (e.g. bnnc.threads) travel with the op, as MLIR's
    discardable attributes do."""
    return {k: v for k, v in op.attributes.items() if "." in k}


class FuncToLLVM(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if isinstance(op, func.FuncOp):
            fty = llvm_function_type(op.function_type, f"@{op.sym_name.data}")
            is_decl = not op.body.blocks
            private = op.sym_visibility is not None and op.sym_visibility.data == "private"
            linkage = "internal" if private and not is_decl else "external"
            body = Region()
            if not is_decl:
                convert_block_args(op.body.blocks[0])
                op.body.move_blocks(body)
            new = llvm.FuncOp(op.sym_name.data, fty, linkage=llvm.LinkageAttr(linkage), body=body)
            new.attributes.update(_discardable(op))
            rewriter.replace(op, [new], [])
        elif isinstance(op, func.ReturnOp):
            args = cast_all(rewriter, op.operands)
            rewriter.replace(op, [llvm.ReturnOp(args[0] if args else None)], [])
        elif isinstance(op, func.CallOp):
            args = cast_all(rewriter, op.arguments)
            outs = [llvm_type(r.type) for r in op.results]
            if len(outs) > 1:
                raise PassFailedException("convert-func-to-llvm: calls with several results are not supported")
            call = llvm.CallOp(op.callee, *args, return_type=outs[0] if outs else None)
            call.attributes.update(_discardable(op))
            replace_with_llvm(rewriter, op, [call], list(call.results))


@dataclass(frozen=True)
class ConvertFuncToLLVMPass(ModulePass):
    name = "convert-func-to-llvm"

    index_bitwidth: int = 64
    """Width of `index` in LLVM: 32 on 32-bit targets (MLIR's index-bitwidth)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        with index_bitwidth(self.index_bitwidth):
            rewrite_each(op, FuncToLLVM(), (func.FuncOp, func.ReturnOp, func.CallOp))
