"""convert-arith-to-llvm: arith ops (scalar and 1-D vector) -> llvm dialect.

Why it exists: xDSL 0.74 has no arith-to-llvm lowering (upstream's JIT shells
out to mlir-opt), and bnnc's kernels are arith/scf/memref/vector until the
end. Semantics and names follow MLIR's ArithToLLVM.

Conventions (shared with the other convert-*-to-llvm passes through
`bnnc.passes._llvm_common.llvm_type`): `index` is i64 (i32 with index_bitwidth=32). Operands whose type changes are
bridged with `builtin.unrealized_conversion_cast`, which
`reconcile-unrealized-casts` removes once every pass has run.

One walk converts everything, constants included (the walk reaches a
constant before its uses in a block, so those need no extra casts). No
TypeConversionPattern: xDSL's recursive one loops on `arith.constant 0 : index`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, llvm
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    ModuleOp,
    VectorType,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern
from xdsl.utils.exceptions import PassFailedException

from bnnc.dialects.llvm_extra import FPToSIOp, FPToUIOp, UIToFPOp
from bnnc.passes._llvm_common import (
    cast_all,
    index_arith,
    index_bitwidth,
    intrinsic_suffix,
    llvm_type,
    replace_with_llvm,
    rewrite_walk,
)

# arith binop -> llvm binop class
_BINOPS: dict[type[Operation], type[Operation]] = {
    arith.AddiOp: llvm.AddOp,
    arith.SubiOp: llvm.SubOp,
    arith.MuliOp: llvm.MulOp,
    arith.DivSIOp: llvm.SDivOp,
    arith.DivUIOp: llvm.UDivOp,
    arith.RemSIOp: llvm.SRemOp,
    arith.RemUIOp: llvm.URemOp,
    arith.AndIOp: llvm.AndOp,
    arith.OrIOp: llvm.OrOp,
    arith.XOrIOp: llvm.XOrOp,
    arith.ShLIOp: llvm.ShlOp,
    arith.ShRSIOp: llvm.AShrOp,
    arith.ShRUIOp: llvm.LShrOp,
    arith.AddfOp: llvm.FAddOp,
    arith.SubfOp: llvm.FSubOp,
    arith.MulfOp: llvm.FMulOp,
    arith.DivfOp: llvm.FDivOp,
}

# arith binop -> overloaded LLVM intrinsic (called through llvm.call_intrinsic)
_INTRINSIC_BINOPS: dict[type[Operation], str] = {
    arith.MinSIOp: "llvm.smin",
    arith.MaxSIOp: "llvm.smax",
    arith.MinUIOp: "llvm.umin",
    arith.MaxUIOp: "llvm.umax",
    arith.MinimumfOp: "llvm.minimum",
    arith.MaximumfOp: "llvm.maximum",
    arith.MinnumfOp: "llvm.minnum",
    arith.MaxnumfOp: "llvm.maxnum",
}

# arith cast -> llvm cast class (index is i64 or i32, so index_cast picks by width below)
_CASTS: dict[type[Operation], Callable[[SSAValue, Attribute], Operation]] = {
    arith.ExtSIOp: lambda v, t: llvm.SExtOp(v, t),
    arith.ExtUIOp: lambda v, t: llvm.ZExtOp(v, t),
    arith.TruncIOp: lambda v, t: llvm.TruncOp(v, t),
    arith.SIToFPOp: lambda v, t: llvm.SIToFPOp(v, t),
    arith.UIToFPOp: lambda v, t: UIToFPOp(v, t),
    arith.FPToSIOp: lambda v, t: FPToSIOp(v, t),
    arith.FPToUIOp: lambda v, t: FPToUIOp(v, t),
    arith.ExtFOp: lambda v, t: llvm.FPExtOp(v, t),
    arith.TruncFOp: lambda v, t: llvm.FPTruncOp(v, t),
    arith.BitcastOp: lambda v, t: llvm.BitcastOp(v, t),
}


def _bitwidth(t: Attribute) -> int:
    t = llvm_type(t)
    if isinstance(t, VectorType):
        t = t.element_type
    assert isinstance(t, IntegerType), t
    return t.width.data


class ConstantToLLVM(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, arith.ConstantOp):
            return
        value = op.value
        res_type = llvm_type(op.result.type)
        if isinstance(value, IntegerAttr):
            value = IntegerAttr(value.value.data, res_type)
        elif isinstance(value, FloatAttr):
            pass
        elif isinstance(value, DenseIntOrFPElementsAttr):
            if value.type != res_type:  # vector<..xindex>
                value = DenseIntOrFPElementsAttr.from_list(res_type, value.get_values())
        else:
            raise PassFailedException(f"convert-arith-to-llvm: unsupported constant {value}")
        replace_with_llvm(rewriter, op, [llvm.ConstantOp(value, res_type)])


class ArithToLLVM(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        kind = type(op)
        if kind in _BINOPS:
            lhs, rhs = cast_all(rewriter, op.operands)
            new = _BINOPS[kind]
            # add/sub/mul/shl (~5k in Bi-Real-Net-18): the op new(lhs, rhs) builds, built directly
            built = index_arith(new, lhs, rhs) if issubclass(new, llvm.ArithmeticBinOpOverflow) else new(lhs, rhs)
            replace_with_llvm(rewriter, op, [built])
        elif kind in _INTRINSIC_BINOPS:
            lhs, rhs = cast_all(rewriter, op.operands)
            t = llvm_type(op.results[0].type)
            name = f"{_INTRINSIC_BINOPS[kind]}.{intrinsic_suffix(t)}"
            replace_with_llvm(rewriter, op, [llvm.CallIntrinsicOp(name, [lhs, rhs], [t])])
        elif kind in _CASTS:
            (arg,) = cast_all(rewriter, op.operands)
            replace_with_llvm(rewriter, op, [_CASTS[kind](arg, llvm_type(op.results[0].type))])
        elif isinstance(op, arith.IndexCastOp) or op.name == "arith.index_castui":
            (arg,) = cast_all(rewriter, op.operands)
            res_t = llvm_type(op.results[0].type)
            src_w, dst_w = _bitwidth(arg.type), _bitwidth(res_t)
            unsigned = op.name == "arith.index_castui"
            if src_w == dst_w:
                replace_with_llvm(rewriter, op, [], [arg])
            elif src_w > dst_w:
                replace_with_llvm(rewriter, op, [llvm.TruncOp(arg, res_t)])
            else:
                ext = llvm.ZExtOp(arg, res_t) if unsigned else llvm.SExtOp(arg, res_t)
                replace_with_llvm(rewriter, op, [ext])
        elif isinstance(op, arith.CmpiOp):
            lhs, rhs = cast_all(rewriter, op.operands)
            # arith.cmpi and llvm.icmp number their predicates identically (eq..uge)
            pred = IntegerAttr(op.predicate.value.data, 64)
            replace_with_llvm(rewriter, op, [llvm.ICmpOp(lhs, rhs, pred)])
        elif isinstance(op, arith.CmpfOp):
            lhs, rhs = cast_all(rewriter, op.operands)
            # arith.cmpf and llvm.fcmp number their predicates identically (false..true)
            flag = list(llvm.FCmpPredicateFlag)[op.predicate.value.data]
            replace_with_llvm(rewriter, op, [llvm.FCmpOp(lhs, rhs, flag.value)])
        elif isinstance(op, arith.SelectOp):
            cond, a, b = cast_all(rewriter, op.operands)
            replace_with_llvm(rewriter, op, [llvm.SelectOp(cond, a, b)])
        elif isinstance(op, arith.NegfOp):
            (arg,) = cast_all(rewriter, op.operands)
            replace_with_llvm(rewriter, op, [llvm.FNegOp(arg)])


# Every op class the two patterns act on (rewrite_walk gives the others only DCE).
_KINDS: tuple[type[Operation], ...] = (
    arith.ConstantOp, *_BINOPS, *_INTRINSIC_BINOPS, *_CASTS, arith.IndexCastOp, arith.CmpiOp, arith.CmpfOp,
    arith.SelectOp, arith.NegfOp,
)


def _acted_on(cls: type[Operation]) -> bool:
    return issubclass(cls, _KINDS) or cls.name == "arith.index_castui"


@dataclass(frozen=True)
class ConvertArithToLLVMPass(ModulePass):
    name = "convert-arith-to-llvm"

    index_bitwidth: int = 64
    """Width of `index` in LLVM: 32 on 32-bit targets (MLIR's index-bitwidth)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        with index_bitwidth(self.index_bitwidth):
            kept = rewrite_walk(op, [ConstantToLLVM(), ArithToLLVM()], _acted_on)
            leftover = [o.name for o in kept if o.dialect_name() == "arith"]
            if leftover:
                raise PassFailedException(f"convert-arith-to-llvm: cannot lower {sorted(set(leftover))}")
