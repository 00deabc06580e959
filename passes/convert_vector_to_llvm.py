"""convert-vector-to-llvm: 1-D vector ops -> llvm dialect.

Why it exists: xDSL 0.74 has no vector-to-llvm lowering, and bnnc's
micro-kernels are written with explicit vectors (popcount over vector<Nxi64>,
float output transforms with vector.fma and vector.reduction).
Lowerings follow MLIR's VectorToLLVM:

- vector.broadcast of a scalar -> insertelement into undef + shufflevector
  with an all-zero mask (LLVM's splat idiom); broadcast to the same type folds.
- vector.reduction <kind> -> `llvm.vector.reduce.<kind>.<vty>` intrinsics
  (add/mul/and/or/xor/smin/smax/umin/umax/fmin/fmax/fminimum/fmaximum); float
  add/mul use llvm.intr.vector.reduce.fadd/fmul with the accumulator (or the
  neutral -0.0 / 1.0) as start value and the op's fast-math flags (without
  `reassoc` LLVM keeps the sequential order); an integer or min/max
  accumulator is combined after the reduction.
- vector.shuffle of two 1-D vectors -> llvm.shufflevector (the same mask, as i32).
- vector.fma -> llvm.intr.fma; vector.bitcast -> llvm.bitcast;
  vector.extract / vector.insert of a 1-D vector at a static or dynamic
  position -> llvm.extractelement / llvm.insertelement.

vector.load / vector.store belong to convert-memref-to-llvm (they address a
memref). Multi-dimensional vectors are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import llvm, vector
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    ModuleOp,
    VectorType,
    i32,
)
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern
from xdsl.utils.exceptions import PassFailedException

from bnnc.dialects.llvm_extra import ExtractElementOp
from bnnc.passes._llvm_common import (
    cast_all,
    cast_to_llvm,
    index_bitwidth,
    index_type,
    intrinsic_suffix,
    llvm_type,
    replace_with_llvm,
    rewrite_walk,
)

# reduction kind -> (llvm.vector.reduce.* name, how to combine with the accumulator)
_REDUCTIONS: dict[str, tuple[str, type[Operation] | str]] = {
    "add": ("llvm.vector.reduce.add", llvm.AddOp),
    "mul": ("llvm.vector.reduce.mul", llvm.MulOp),
    "and": ("llvm.vector.reduce.and", llvm.AndOp),
    "or": ("llvm.vector.reduce.or", llvm.OrOp),
    "xor": ("llvm.vector.reduce.xor", llvm.XOrOp),
    "minsi": ("llvm.vector.reduce.smin", "llvm.smin"),
    "maxsi": ("llvm.vector.reduce.smax", "llvm.smax"),
    "minui": ("llvm.vector.reduce.umin", "llvm.umin"),
    "maxui": ("llvm.vector.reduce.umax", "llvm.umax"),
    "minnumf": ("llvm.vector.reduce.fmin", "llvm.minnum"),
    "maxnumf": ("llvm.vector.reduce.fmax", "llvm.maxnum"),
    "minimumf": ("llvm.vector.reduce.fminimum", "llvm.minimum"),
    "maximumf": ("llvm.vector.reduce.fmaximum", "llvm.maximum"),
}


def _fail(msg: str) -> PassFailedException:
    return PassFailedException(f"convert-vector-to-llvm: {msg}")


def _one_d(t: object) -> VectorType:
    if not isinstance(t, VectorType) or t.get_num_dims() != 1 or t.get_num_scalable_dims():
        raise _fail(f"only fixed 1-D vectors are supported, got {t}")
    return t


def _kind(op: vector.ReductionOp) -> str:
    data = op.kind.data
    if isinstance(data, frozenset | set | tuple | list):
        (flag,) = data
        return flag.value
    return getattr(data, "value", str(data))


def _position(rewriter: PatternRewriter, op: Operation, static: DenseArrayBase, dynamic) -> SSAValue:
    values = list(static.iter_values())
    if len(values) != 1:
        raise _fail(f"{op.name}: only a single position into a 1-D vector is supported")
    if values[0] == DYNAMIC_INDEX:
        if len(dynamic) != 1:
            raise _fail(f"{op.name}: a dynamic position needs one index operand, got {len(dynamic)}")
        return cast_to_llvm(rewriter, dynamic[0])
    size = _vector_size(op)
    if not 0 <= values[0] < size:
        raise _fail(f"{op.name}: position {values[0]} is outside a vector of {size} elements")
    c = llvm.ConstantOp(IntegerAttr(values[0], index_type()), index_type())
    rewriter.insert(c)
    return c.result


def _vector_size(op: Operation) -> int:
    """The element count of the 1-D vector a vector.extract / vector.insert indexes."""
    vt = op.vector.type if isinstance(op, vector.ExtractOp) else op.dest.type
    return _one_d(vt).get_shape()[0]


# Every op class VectorToLLVM acts on (rewrite_walk gives the others only DCE).
VECTOR_KINDS: tuple[type[Operation], ...] = (
    vector.BroadcastOp, vector.ReductionOp, vector.ShuffleOp, vector.FMAOp, vector.BitcastOp, vector.ExtractOp,
    vector.InsertOp,
)


class VectorToLLVM(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if isinstance(op, vector.BroadcastOp):
            vt = _one_d(llvm_type(op.vector.type))
            (src,) = cast_all(rewriter, [op.source])
            if src.type == vt:
                replace_with_llvm(rewriter, op, [], [src])
                return
            if isinstance(src.type, VectorType):
                raise _fail(f"broadcast from {op.source.type} to {op.vector.type}")
            undef = llvm.UndefOp(vt)
            zero = llvm.ConstantOp(IntegerAttr(0, 32), i32)
            ins = llvm.InsertElementOp(undef.res, src, zero.result)
            mask = DenseArrayBase.from_list(i32, [0] * vt.get_shape()[0])
            shuf = llvm.ShuffleVectorOp(ins.res, undef.res, mask, vt)
            replace_with_llvm(rewriter, op, [undef, zero, ins, shuf])
        elif isinstance(op, vector.ReductionOp):
            vt = _one_d(llvm_type(op.vector.type))
            (vec,) = cast_all(rewriter, [op.vector])
            acc = cast_to_llvm(rewriter, op.acc) if op.acc is not None else None
            elem = vt.element_type
            kind = _kind(op)
            fm = op.fastmath if op.fastmath is not None else None
            if kind in ("add", "mul") and not isinstance(elem, IntegerType):
                ops: list[Operation] = []
                if acc is None:
                    start = llvm.ConstantOp(FloatAttr(-0.0 if kind == "add" else 1.0, elem), elem)
                    ops.append(start)
                    acc = start.result
                cls = llvm.VectorReduceFAddOp if kind == "add" else llvm.VectorReduceFMulOp
                red = cls(acc, vec, llvm.FastMathAttr([f.value for f in fm.data]) if fm is not None else None)
                replace_with_llvm(rewriter, op, [*ops, red])
                return
            if kind not in _REDUCTIONS:
                raise _fail(f"reduction kind '{kind}'")
            name, combine = _REDUCTIONS[kind]
            red = llvm.CallIntrinsicOp(f"{name}.{intrinsic_suffix(vt)}", [vec], [elem])
            ops = [red]
            if acc is not None:
                if isinstance(combine, str):
                    ops.append(llvm.CallIntrinsicOp(f"{combine}.{intrinsic_suffix(elem)}", [red.results[0], acc], [elem]))
                else:
                    ops.append(combine(red.results[0], acc))
            replace_with_llvm(rewriter, op, ops)
        elif isinstance(op, vector.ShuffleOp):
            vt = _one_d(llvm_type(op.result.type))
            _one_d(op.v1.type)
            a, b = cast_all(rewriter, [op.v1, op.v2])
            mask = DenseArrayBase.from_list(i32, list(op.mask.get_values()))
            replace_with_llvm(rewriter, op, [llvm.ShuffleVectorOp(a, b, mask, vt)])
        elif isinstance(op, vector.FMAOp):
            _one_d(op.lhs.type)
            a, b, c = cast_all(rewriter, op.operands)
            replace_with_llvm(rewriter, op, [llvm.FMAOp(a, b, c)])
        elif isinstance(op, vector.BitcastOp):
            (src,) = cast_all(rewriter, op.operands)
            replace_with_llvm(rewriter, op, [llvm.BitcastOp(src, llvm_type(op.results[0].type))])
        elif isinstance(op, vector.ExtractOp):
            _one_d(op.vector.type)
            if isinstance(op.result.type, VectorType):
                raise _fail("vector.extract of a sub-vector")
            pos = _position(rewriter, op, op.static_position, op.dynamic_position)
            (vec,) = cast_all(rewriter, [op.vector])
            replace_with_llvm(rewriter, op, [ExtractElementOp(vec, pos)])
        elif isinstance(op, vector.InsertOp):
            _one_d(op.dest.type)
            if isinstance(op.source.type, VectorType):
                raise _fail("vector.insert of a sub-vector")
            pos = _position(rewriter, op, op.static_position, op.dynamic_position)
            vec, val = cast_all(rewriter, [op.dest, op.source])
            replace_with_llvm(rewriter, op, [llvm.InsertElementOp(vec, val, pos)])


@dataclass(frozen=True)
class ConvertVectorToLLVMPass(ModulePass):
    name = "convert-vector-to-llvm"

    index_bitwidth: int = 64
    """Width of `index` in LLVM: 32 on 32-bit targets (MLIR's index-bitwidth)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        with index_bitwidth(self.index_bitwidth):
            kept = rewrite_walk(op, [VectorToLLVM()], VECTOR_KINDS)
            names = {o.name for o in kept if o.dialect_name() == "vector"}
            leftover = sorted(names - {"vector.load", "vector.store"})
            if leftover:
                raise _fail(f"cannot lower {leftover}")
