"""convert-math-to-llvm: math ops -> LLVM intrinsics (and f32 polynomials).

Why it exists: xDSL 0.74 has no math-to-llvm lowering, and bnnc's binary
kernels depend on `math.ctpop` becoming `llvm.ctpop.*` (which LLVM turns into
`popcnt` / `vpopcntq` / NEON `cnt`). Every op maps to an overloaded LLVM
intrinsic called through `llvm.call_intrinsic` with MLIR's intrinsic and
LLVM's mangled name (`llvm.ctpop.i64`, `llvm.ctpop.v8i64`, `llvm.fma.v8f32`),
because xDSL's llvm dialect only defines a handful of `llvm.intr.*` ops.
On f32 (scalars and vectors), exp, log, log1p, expm1, tanh and erf are
expanded in place into branch-free arithmetic (passes/_vector_math.py):
LLVM has no vector math library here, so `llvm.exp.v16f32` would be 16 calls
of `expf` and a loop calling `tanhf` would never vectorise. On f64 they stay
intrinsics or libm calls. Functions LLVM has no intrinsic for (erf, log1p,
expm1, cbrt on f64, cbrt on f32) become calls of libm's `erf` / `cbrtf` / ...
(vectors one call per lane), declared in the module: the JIT resolves them
in the running process (which has libm loaded) and an artifact leaves them
undefined for the linker (`-lm`).
`math.rsqrt` is 1 / sqrt(x) (two roundings), as MLIR lowers it. Any other
math op is left alone, and the pass then fails naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import llvm, math
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    ModuleOp,
    VectorType,
    f32,
    f64,
)
from xdsl.ir import Attribute, Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern
from xdsl.utils.exceptions import PassFailedException

from bnnc.dialects.llvm_extra import ExtractElementOp
from bnnc.passes._llvm_common import cast_all, intrinsic_suffix, llvm_type, replace_with_llvm, rewrite_each
from bnnc.passes._vector_math import FUNCTIONS as POLYNOMIALS
from bnnc.passes._vector_math import Emitter
from bnnc.passes.convert_memref_to_llvm import _declare as declare_function

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
    math.TanhOp: ("llvm.tanh", False),
    math.TanOp: ("llvm.tan", False),
    math.SinhOp: ("llvm.sinh", False),
    math.CoshOp: ("llvm.cosh", False),
    math.AsinOp: ("llvm.asin", False),
    math.AcosOp: ("llvm.acos", False),
    math.AtanOp: ("llvm.atan", False),
}

# math op -> libm function (the f64 name; f32 appends "f"): no LLVM intrinsic.
_LIBM: dict[type[Operation], str] = {
    math.ErfOp: "erf",
    math.Log1pOp: "log1p",
    math.ExpM1Op: "expm1",
    math.CbrtOp: "cbrt",
}


def _libm_name(base: str, t: Attribute) -> str:
    element = t.element_type if isinstance(t, VectorType) else t
    if element == f32:
        return base + "f"
    if element == f64:
        return base
    raise PassFailedException(f"convert-math-to-llvm: no libm {base} for {t}")


def _libm_call(module: ModuleOp, op: Operation, rewriter: PatternRewriter) -> None:
    """A scalar call of the libm function, or one call per lane of a vector."""
    (x,) = cast_all(rewriter, op.operands)
    t = llvm_type(op.results[0].type)
    name = _libm_name(_LIBM[type(op)], t)
    element = t.element_type if isinstance(t, VectorType) else t
    declare_function(module, name, llvm.LLVMFunctionType([element], element))
    if not isinstance(t, VectorType):
        replace_with_llvm(rewriter, op, [llvm.CallOp(name, x, return_type=element)])
        return
    # start from zeros: xDSL's llvmlite translation has no `llvm.mlir.undef`
    new_ops: list[Operation] = [llvm.ConstantOp(DenseIntOrFPElementsAttr.from_list(t, [0.0] * t.get_shape()[0]), t)]
    acc = new_ops[0].results[0]
    for lane in range(t.get_shape()[0]):
        pos = llvm.ConstantOp(IntegerAttr(lane, 64), IntegerType(64))
        lane_x = ExtractElementOp(x, pos)
        call = llvm.CallOp(name, lane_x, return_type=element)
        ins = llvm.InsertElementOp(acc, call.results[0], pos)
        new_ops += [pos, lane_x, call, ins]
        acc = ins.results[0]
    replace_with_llvm(rewriter, op, new_ops, [acc])


# math op -> its f32 expansion in _vector_math
_POLYNOMIAL: dict[type[Operation], str] = {
    math.ExpOp: "exp",
    math.LogOp: "log",
    math.Log1pOp: "log1p",
    math.ExpM1Op: "expm1",
    math.TanhOp: "tanh",
    math.ErfOp: "erf",
}


def _is_f32(t: Attribute) -> bool:
    return (t.element_type if isinstance(t, VectorType) else t) == f32


def _polynomial(op: Operation, rewriter: PatternRewriter) -> None:
    """The f32 function as arithmetic on the operand's type (no calls)."""
    (x,) = cast_all(rewriter, op.operands)
    emitter = Emitter(llvm_type(op.results[0].type))
    result = POLYNOMIALS[_POLYNOMIAL[type(op)]](emitter, x)
    replace_with_llvm(rewriter, op, emitter.ops, [result])


def _rsqrt(op: math.RsqrtOp, rewriter: PatternRewriter) -> None:
    """1 / sqrt(x), as MLIR's math-to-llvm (no approximate reciprocal)."""
    (x,) = cast_all(rewriter, op.operands)
    t = llvm_type(op.results[0].type)
    element = t.element_type if isinstance(t, VectorType) else t
    one = llvm.ConstantOp(
        DenseIntOrFPElementsAttr.from_list(t, [1.0] * t.get_shape()[0])
        if isinstance(t, VectorType)
        else FloatAttr(1.0, element),
        t,
    )
    root = llvm.CallIntrinsicOp(f"llvm.sqrt.{intrinsic_suffix(t)}", [x], [t])
    replace_with_llvm(rewriter, op, [one, root, llvm.FDivOp(one.result, root.results[0])])


@dataclass
class MathToLLVM(RewritePattern):
    module: ModuleOp

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if type(op) in _POLYNOMIAL and _is_f32(op.results[0].type):
            _polynomial(op, rewriter)
            return
        if type(op) in _LIBM:
            _libm_call(self.module, op, rewriter)
            return
        if isinstance(op, math.RsqrtOp):
            _rsqrt(op, rewriter)
            return
        entry = _INTRINSICS.get(type(op))
        if entry is None:
            return
        intrinsic, has_flag = entry
        args = cast_all(rewriter, op.operands)
        new_ops: list[Operation] = []
        if has_flag:
            flag = llvm.ConstantOp(IntegerAttr(0, 1), IntegerType(1))
            new_ops.append(flag)
            args.append(flag.result)
        t = llvm_type(op.results[0].type)
        new_ops.append(llvm.CallIntrinsicOp(f"{intrinsic}.{intrinsic_suffix(t)}", args, [t]))
        replace_with_llvm(rewriter, op, new_ops)


@dataclass(frozen=True)
class ConvertMathToLLVMPass(ModulePass):
    name = "convert-math-to-llvm"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        rewrite_each(op, MathToLLVM(op), (*_POLYNOMIAL, *_LIBM, math.RsqrtOp, *_INTRINSICS))
        leftover = sorted({o.name for o in op.walk() if o.dialect_name() == "math"})
        if leftover:
            raise PassFailedException(
                f"convert-math-to-llvm: no LLVM intrinsic for {leftover}; "
                f"supported: {sorted(c.name for c in (*_INTRINSICS, *_LIBM, math.RsqrtOp))}"
            )
