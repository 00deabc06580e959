"""What the convert-*-to-llvm passes share (bnnc's counterpart of MLIR's
LLVMCommon): the type conversion of bnnc's ABI and the cast helpers.

The conventions are the backend's contract: `index` is an integer of the
target's pointer width (i64, or i32 on 32-bit targets: the passes' option
`index_bitwidth`, MLIR's `index-bitwidth`), every memref is a bare
`!llvm.ptr`, and a value whose type changes is bridged with
`builtin.unrealized_conversion_cast`, which `reconcile-unrealized-casts`
removes once every conversion has run. This module builds llvm-dialect IR
only; the translation to LLVM IR (llvmlite) is `bnnc.codegen`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from xdsl.dialects import llvm as xllvm
from xdsl.dialects.builtin import (
    DenseArrayBase,
    Float16Type,
    Float32Type,
    Float64Type,
    IndexType,
    IntegerAttr,
    IntegerType,
    MemRefType,
    ModuleOp,
    UnitAttr,
    UnrealizedConversionCastOp,
    VectorType,
    i32,
)
from xdsl.ir import Attribute, Block, BlockArgument, Operation, OpResult, SSAValue
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.transforms.dead_code_elimination import is_trivially_dead

I64 = IntegerType(64)

# The width `index` converts to while a convert pass runs (the pass's
# `index_bitwidth` option, set by `index_bitwidth(...)`): the type converter's
# one parameter, as in MLIR's LowerToLLVMOptions, without threading it through
# every helper. Outside a pass it is 64.
_INDEX_BITS: ContextVar[int] = ContextVar("bnnc_index_bitwidth", default=64)

# The casts `cast_to_llvm` made in the running conversion, by (value, type):
# one cast per value serves all its uses (a loop index feeds many addresses),
# instead of one per use that reconcile-unrealized-casts deletes again (~28k
# of ~44k created ops in Bi-Real-Net-18, each built and walked several times).
_CASTS: ContextVar[dict[tuple[SSAValue, Attribute], SSAValue] | None] = ContextVar("bnnc_llvm_casts", default=None)
# The index constants `index_constant` made in the running conversion, by
# (function, value): the strides of every address (~3.5k in Bi-Real-Net-18).
_CONSTANTS: ContextVar[dict[tuple[Operation, int], SSAValue] | None] = ContextVar("bnnc_llvm_constants", default=None)


@contextmanager
def index_bitwidth(bits: int) -> Iterator[None]:
    """Convert `index` to i<bits> inside the block (one conversion pass's run,
    which also scopes its cast cache). 32 on 32-bit targets keeps loop
    counters and addresses in one register (i64 would take a pair)."""
    if bits not in (32, 64):
        raise ValueError(f"index_bitwidth must be 32 or 64, not {bits}")
    token, casts, constants = _INDEX_BITS.set(bits), _CASTS.set({}), _CONSTANTS.set({})
    try:
        yield
    finally:
        _CONSTANTS.reset(constants)
        _CASTS.reset(casts)
        _INDEX_BITS.reset(token)


def unrealized_cast(value: SSAValue, to: Attribute) -> UnrealizedConversionCastOp:
    """`builtin.unrealized_conversion_cast value : T to to`, the same op as
    `UnrealizedConversionCastOp.get([value], [to])` built without IRDL's
    argument checking (a third of the time; the conversions make ~10k)."""
    return UnrealizedConversionCastOp.create(operands=(value,), result_types=(to,))


_NO_OVERFLOW_FLAGS = IntegerAttr(0, 32)


def index_arith(kind: type[xllvm.ArithmeticBinOpOverflow], lhs: SSAValue, rhs: SSAValue) -> Operation:
    """`llvm.add` / `sub` / `mul` / `shl` of two values of one integer type
    without overflow flags: the op `kind(lhs, rhs)` builds, without IRDL's
    argument checking (the address arithmetic of every load and store)."""
    return kind.create(operands=(lhs, rhs), result_types=(lhs.type,), properties={"overflowFlags": _NO_OVERFLOW_FLAGS})


_INDEX_TYPES = {32: IntegerType(32), 64: I64}


def index_type() -> IntegerType:
    """The llvm type of `index` in the running conversion (one shared
    instance per width: building an IntegerType costs a verification, and
    the conversions ask ~20k times)."""
    return _INDEX_TYPES[_INDEX_BITS.get()]


_SSA_INDEX = DenseArrayBase.from_list(i32, [xllvm.GEP_USE_SSA_VAL])
_NO_WRAP = IntegerAttr(0, 32)


def gep_inbounds(ptr: SSAValue, index: SSAValue, element: Attribute) -> Operation:
    """`getelementptr inbounds element, ptr, index`: the op
    `GEPOp(ptr, [GEP_USE_SSA_VAL], element, ssa_indices=[index], inbounds=True)`
    builds, without IRDL's argument checking (one per load and store)."""
    return xllvm.GEPOp.create(
        operands=(ptr, index),
        result_types=(xllvm.LLVMPointerType(),),
        properties={"rawConstantIndices": _SSA_INDEX, "elem_type": element, "noWrapFlags": _NO_WRAP, "inbounds": UnitAttr()},
    )


_ORDERING_NONE = IntegerAttr(0, 64)


def llvm_load(ptr: SSAValue, result_type: Attribute, alignment: int | None = None) -> Operation:
    """The op `llvm.LoadOp(ptr, result_type, alignment)` builds (non-atomic),
    without IRDL's argument checking (one per memref / vector load)."""
    props: dict[str, Attribute] = {"ordering": _ORDERING_NONE}
    if alignment is not None:
        props["alignment"] = IntegerAttr(alignment, 64)
    return xllvm.LoadOp.create(operands=(ptr,), result_types=(result_type,), properties=props)


def llvm_store(value: SSAValue, ptr: SSAValue, alignment: int | None = None) -> Operation:
    """The op `llvm.StoreOp(value, ptr, alignment)` builds (non-atomic, not
    volatile, temporal), without IRDL's argument checking."""
    props: dict[str, Attribute] = {"ordering": _ORDERING_NONE}
    if alignment is not None:
        props["alignment"] = IntegerAttr(alignment, 64)
    return xllvm.StoreOp.create(operands=(value, ptr), result_types=(), properties=props)


def llvm_type(t: Attribute) -> Attribute:
    """The llvm-dialect type of a builtin type under bnnc's conventions:
    index -> i64 (i32 under index_bitwidth(32)), memref<...> -> !llvm.ptr
    (bare pointer), vector<..xindex> -> vector<..xi64>."""
    if isinstance(t, IndexType):
        return index_type()
    if isinstance(t, MemRefType):
        return xllvm.LLVMPointerType()
    if isinstance(t, VectorType) and isinstance(t.element_type, IndexType):
        return VectorType(index_type(), t.get_shape(), t.scalable_dims)
    return t


def cast_to_llvm(
    rewriter: PatternRewriter | None, value: SSAValue, before: Operation | None = None, want: Attribute | None = None
) -> SSAValue:
    """`value` as its llvm type: itself, the input of the cast that produced it,
    or a `builtin.unrealized_conversion_cast`. Inside a conversion
    (`index_bitwidth`) the cast goes right after `value`'s definition, where it
    dominates every use, and is reused for them all; outside one, before the
    matched op (or before `before`). reconcile-unrealized-casts removes the
    pairs at the end; the casts' places do not show in its output."""
    want = want if want is not None else llvm_type(value.type)
    if value.type == want:
        return value
    owner = value.owner
    if isinstance(owner, UnrealizedConversionCastOp) and len(owner.inputs) == 1 and owner.inputs[0].type == want:
        return owner.inputs[0]
    cache = _CASTS.get()
    if cache is not None:
        known = cache.get((value, want))
        if known is not None:
            return known
    cast = unrealized_cast(value, want)
    if cache is not None and isinstance(value, OpResult | BlockArgument):
        if isinstance(value, OpResult):
            Rewriter.insert_op(cast, InsertPoint.after(value.op))
        elif value.block.first_op is None:
            value.block.add_op(cast)
        else:
            Rewriter.insert_op(cast, InsertPoint.at_start(value.block))
        cache[(value, want)] = cast.results[0]
    elif rewriter is not None and before is None:
        rewriter.insert(cast)
    else:
        assert before is not None
        Rewriter.insert_op(cast, InsertPoint.before(before))
    return cast.results[0]


def index_constant(rewriter: PatternRewriter, value: int) -> SSAValue:
    """An index-typed (pointer-sized) `llvm.mlir.constant`. Inside a
    conversion (`index_bitwidth`) one per function and value, at the top of
    the function's entry block (which dominates every use); it is an
    immediate operand in LLVM IR, so sharing it changes nothing there.
    Outside one, a new constant before the matched op."""
    t = index_type()
    cache = _CONSTANTS.get()
    func = rewriter.insertion_point.block.parent_op()
    while func is not None and func.parent_op() is not None and func.parent_op().parent_op() is not None:
        func = func.parent_op()  # (the op right below the module: the function)
    if cache is None or func is None or func.parent_op() is None or not func.regions[0].blocks:
        const = xllvm.ConstantOp(IntegerAttr(value, t), t)
        rewriter.insert(const)
        return const.result
    known = cache.get((func, value))
    if known is not None:
        return known
    const = xllvm.ConstantOp(IntegerAttr(value, t), t)
    entry = func.regions[0].blocks[0]
    if entry.first_op is None:
        entry.add_op(const)
    else:
        Rewriter.insert_op(const, InsertPoint.at_start(entry))
    cache[(func, value)] = const.result
    return const.result


def rewrite_each(root: Operation, pattern: RewritePattern, kinds: tuple[type[Operation], ...]) -> None:
    """Apply `pattern` once to each op of `kinds` under `root`, in walk order,
    as a PatternRewriteWalker without recursion would: a conversion that
    rewrites a few thousand of a module's ~30k ops (branches, functions)
    then skips queueing, matching and DCE-checking all the others. An error
    of the pattern propagates as it is (PassFailedException: the pass failed)."""
    accepts = kind_filter(kinds)
    for op in [o for o in root.walk() if accepts(o)]:
        pattern.match_and_rewrite(op, PatternRewriter(op))


def kind_filter(kinds: tuple[type[Operation], ...] | Callable[[type[Operation]], bool]) -> Callable[[Operation], bool]:
    """`isinstance(op, kinds)` (or `kinds(type(op))`) decided once per op
    class: xDSL's op classes are ABCs, so every isinstance runs
    ABCMeta.__instancecheck__, and the conversions ask it of ~30k ops, each
    against a dozen kinds. The answer depends on the class only, so it is
    the same answer."""
    test = kinds if callable(kinds) and not isinstance(kinds, tuple) else (lambda cls: issubclass(cls, kinds))
    memo: dict[type[Operation], bool] = {}

    def accepts(op: Operation) -> bool:
        cls = type(op)
        hit = memo.get(cls)
        if hit is None:
            hit = memo[cls] = bool(test(cls))
        return hit

    return accepts


def rewrite_walk(
    module: ModuleOp,
    patterns: Sequence[RewritePattern],
    kinds: tuple[type[Operation], ...] | Callable[[type[Operation]], bool] | None = None,
) -> list[Operation]:
    """Do what `PatternRewriteWalker(GreedyRewritePatternApplier(patterns),
    apply_recursively=False).rewrite_module(module)` does, op for op: every op
    under the module once, in walk order (ops the rewrites create are not
    visited); an op that is trivially dead when reached is erased (the
    applier's DCE), else the patterns are tried in order until one acts; an
    op erased meanwhile is skipped; a pattern's error is reported on its op.
    Why not the walker: its worklist, listeners and per-op bookkeeping were
    about a third of a whole-module conversion's time (memref, vector and
    arith each visit all ~30k ops of Bi-Real-Net-18). Returns the visited ops
    still in the module (a pass's leftover check reads them instead of walking
    the module again: its rewrites create only llvm ops and casts).
    `kinds` (op classes, or a test of an op's class) promises that the
    patterns act on no other op: the others only get the DCE check."""
    ops = list(module.body.walk())
    erased: set[int] = set()

    def removed(op: Operation) -> None:
        erased.add(id(op))
        if op.regions:
            erased.update(id(o) for o in op.walk())

    rewriter = PatternRewriter(ops[0]) if ops else None
    if rewriter is not None:
        rewriter.operation_removal_handler.append(removed)
    accepts = kind_filter(kinds) if kinds is not None else None
    for op in ops:
        if id(op) in erased:
            continue
        assert rewriter is not None
        if accepts is not None and not accepts(op):
            if is_trivially_dead(op):
                rewriter.erase(op)
            continue
        rewriter.has_done_action = False
        rewriter.current_operation = op
        rewriter.insertion_point = InsertPoint.before(op)
        rewriter.name_hint = None
        try:
            if is_trivially_dead(op):
                rewriter.erase(op)
                continue
            for pattern in patterns:
                pattern.match_and_rewrite(op, rewriter)
                if rewriter.has_done_action:
                    break
        except Exception as err:  # noqa: BLE001 (as the walker: reported on the op, then raised)
            op.emit_error(f"Error while applying pattern: {err}", underlying_error=err)
    return [op for op in ops if id(op) not in erased]


def cast_all(rewriter: PatternRewriter, values: Sequence[SSAValue]) -> list[SSAValue]:
    return [cast_to_llvm(rewriter, v) for v in values]


def replace_with_llvm(
    rewriter: PatternRewriter,
    op: Operation,
    new_ops: Sequence[Operation],
    new_results: Sequence[SSAValue | None] | None = None,
) -> None:
    """Replace `op` by `new_ops`; where a new result's type differs from the old
    result's type (index vs i64, memref vs ptr) add a cast back to the old type."""
    results = list(new_results) if new_results is not None else (list(new_ops[-1].results) if new_ops else [])
    ops = list(new_ops)
    final: list[SSAValue | None] = []
    for old, new in zip(op.results, results, strict=True):
        if new is not None and new.type != old.type:
            back = unrealized_cast(new, old.type)
            ops.append(back)
            new = back.results[0]
        final.append(new)
    rewriter.replace(op, ops, final)


def convert_block_args(block: Block) -> None:
    """Give `block`'s arguments their llvm types in place; old-typed uses read a
    cast inserted at the top of the block."""
    for arg in list(block.args):
        want = llvm_type(arg.type)
        if want == arg.type:
            continue
        old_type = arg.type
        new_arg = Rewriter.replace_value_with_new_type(arg, want)
        if not new_arg.uses:
            continue
        cast = unrealized_cast(new_arg, old_type)
        if block.first_op is None:
            block.add_op(cast)
        else:
            Rewriter.insert_op(cast, InsertPoint.at_start(block))
        new_arg.replace_uses_with_if(cast.results[0], lambda use: use.operation is not cast)


_FLOAT_SUFFIX: dict[type[Attribute], str] = {Float16Type: "f16", Float32Type: "f32", Float64Type: "f64"}


def intrinsic_suffix(t: Attribute) -> str:
    """LLVM's overload suffix: i64, f32, v8i64, v4f32."""
    if isinstance(t, VectorType):
        return f"v{t.get_shape()[0]}{intrinsic_suffix(t.element_type)}"
    if isinstance(t, IntegerType):
        return f"i{t.width.data}"
    if isinstance(t, IndexType):
        return intrinsic_suffix(index_type())
    if type(t) in _FLOAT_SUFFIX:
        return _FLOAT_SUFFIX[type(t)]
    raise NotImplementedError(f"no LLVM intrinsic suffix for {t}")
