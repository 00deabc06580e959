"""convert-math-to-llvm: math ops -> LLVM intrinsics.

Why it exists: xDSL 0.74 has no math-to-llvm lowering, and bnnc's binary
kernels depend on `math.ctpop` becoming `llvm.ctpop.*` (which LLVM turns into
`popcnt` / `vpopcntq` / NEON `cnt`). Every op maps to an overloaded LLVM
intrinsic called through `llvm.call_intrinsic` with MLIR's intrinsic and
LLVM's mangled name (`llvm.ctpop.i64`, `llvm.ctpop.v8i64`, `llvm.fma.v8f32`),
because xDSL's llvm dialect only defines a handful of `llvm.intr.*` ops.
Ops without an LLVM intrinsic (tanh, erf, atan, ...) are left alone, and the
pass then fails naming them.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import llvm as L
from xdsl.dialects import math
from xdsl.dialects.builtin import IntegerAttr, IntegerType, ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern
from xdsl.utils.exceptions import PassFailedException

from bnnc.codegen import cast_all, intrinsic_suffix, llvm_type, replace_with_llvm

# math op -> (LLVM intrinsic, extra trailing `i1 false` flag operand?)
# The flag is `is_int_min_poison` for llvm.abs and `is_zero_poison` for
# ctlz/cttz: MLIR passes false (defined result for INT_MIN / zero).
_INTRINSICS: dict[type[Operation], tuple[str, bool]] = {
    math.CtPopOp: ("llvm.ctpop", False),
    math.CountLeadingZerosOp: ("llvm.ctlz", True),
    math.CountTrailingZerosOp: ("llvm.cttz", True),
    math.AbsIOp: ("llvm.abs", True),
    math.AbsFOp: ("llvm.fabs", False),
    math.SqrtOp: ("llvm.sqrt", False),
    math.FmaOp: ("llvm.fma", False),
    math.FloorOp: ("llvm.floor", False),
    math.CeilOp: ("llvm.ceil", False),
    math.RoundOp: ("llvm.round", False),
    math.RoundEvenOp: ("llvm.roundeven", False),
    math.TruncOp: ("llvm.trunc", False),
    math.CopySignOp: ("llvm.copysign", False),
    math.PowFOp: ("llvm.pow", False),
    math.ExpOp: ("llvm.exp", False),
    math.Exp2Op: ("llvm.exp2", False),
    math.LogOp: ("llvm.log", False),
    math.Log2Op: ("llvm.log2", False),
    math.Log10Op: ("llvm.log10", False),
    math.SinOp: ("llvm.sin", False),
    math.CosOp: ("llvm.cos", False),
}


class MathToLLVM(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        entry = _INTRINSICS.get(type(op))
        if entry is None:
            return
        intrinsic, has_flag = entry
        args = cast_all(rewriter, op.operands)
        new_ops: list[Operation] = []
        if has_flag:
            flag = L.ConstantOp(IntegerAttr(0, 1), IntegerType(1))
            new_ops.append(flag)
            args.append(flag.result)
        t = llvm_type(op.results[0].type)
        new_ops.append(L.CallIntrinsicOp(f"{intrinsic}.{intrinsic_suffix(t)}", args, [t]))
        replace_with_llvm(rewriter, op, new_ops)


@dataclass(frozen=True)
class ConvertMathToLLVMPass(ModulePass):
    name = "convert-math-to-llvm"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(MathToLLVM(), apply_recursively=False).rewrite_module(op)
        leftover = sorted({o.name for o in op.walk() if o.dialect_name() == "math"})
        if leftover:
            raise PassFailedException(
                f"convert-math-to-llvm: no LLVM intrinsic for {leftover}; "
                f"supported: {sorted(c.name for c in _INTRINSICS)}"
            )
