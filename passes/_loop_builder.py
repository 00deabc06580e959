"""A small builder for scf loop nests over static memrefs.

The bnn lowerings describe kernels as loop nests; this keeps them readable
(`with lb.loops(ubs) as ivs:`) while emitting plain scf/memref/arith/math IR.
Constants are created once per function at its entry.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from xdsl.builder import Builder
from xdsl.dialects import arith, math, memref, scf, vector
from xdsl.dialects.builtin import (
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IndexType,
    IntegerAttr,
    MemRefType,
    VectorType,
    f32,
    i32,
    i64,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.rewriter import InsertPoint

Value = SSAValue
IndexLike = int | SSAValue


_NO_OVERFLOW = arith.IntegerOverflowAttr("none")
# One `index` type for the ~34k index values the kernels ask for (building
# an attribute runs its verifier; equal attributes are interchangeable).
_INDEX = IndexType()


def _int_binop(
    kind: type[arith.AddiOp | arith.SubiOp | arith.MuliOp | arith.ShLIOp], a: SSAValue | Operation, b: SSAValue | Operation
) -> Operation:
    """The op `kind(a, b)` builds (a's type, no overflow flags) without
    IRDL's argument normalisation: the kernels' index arithmetic builds ~11k
    of them for Bi-Real-Net-18, and the normalisation was most of their cost."""
    lhs = SSAValue.get(a)
    return kind.create(operands=(lhs, SSAValue.get(b)), result_types=(lhs.type,), properties={"overflowFlags": _NO_OVERFLOW})


@dataclass
class Loop:
    """An scf.for being built: its induction variable, carried values, and
    the values its body yields (set `next` before the `with` block ends)."""

    op: scf.ForOp
    iv: SSAValue
    carried: list[SSAValue]
    next: list[SSAValue] = field(default_factory=list)

    @property
    def results(self) -> list[SSAValue]:
        return list(self.op.results)


class LoopBuilder:
    def __init__(self, entry: Block):
        self.entry = entry
        self.builder = Builder(InsertPoint.at_end(entry))
        self._constants: dict[tuple[int | str, Attribute], SSAValue] = {}

    # ----------------------------------------------------------- plumbing
    def insert(self, op: Operation) -> Operation:
        self.builder.insert(op)
        return op

    def emit(self, op: Operation) -> SSAValue:
        self.builder.insert(op)
        return op.results[0]

    def constant(self, value: int | float, typ: Attribute) -> SSAValue:
        key = (repr(float(value)) if typ == f32 else int(value), typ)
        if key not in self._constants:
            attr = FloatAttr(float(value), typ) if typ == f32 else IntegerAttr(int(value), typ)
            op = arith.ConstantOp(attr, typ)
            self.builder.insert(op, InsertPoint.at_start(self.entry))
            self._constants[key] = op.result
        return self._constants[key]

    def splat(self, value: int | float, typ: VectorType) -> SSAValue:
        """A constant vector with every lane `value`."""
        return self.vector_constant([value] * typ.get_shape()[0], typ)

    def vector_constant(self, values: Sequence[int | float], typ: VectorType) -> SSAValue:
        key = (repr(tuple(values)), typ)
        if key not in self._constants:
            op = arith.ConstantOp(DenseIntOrFPElementsAttr.from_list(typ, list(values)), typ)
            self.builder.insert(op, InsertPoint.at_start(self.entry))
            self._constants[key] = op.result
        return self._constants[key]

    def index(self, v: IndexLike) -> SSAValue:
        return self.constant(v, _INDEX) if isinstance(v, int) else v

    def i64(self, v: int) -> SSAValue:
        return self.constant(v, i64)

    def f32(self, v: float) -> SSAValue:
        return self.constant(v, f32)

    # -------------------------------------------------------------- loops
    @contextmanager
    def loop(self, ub: IndexLike, lb: IndexLike = 0, step: IndexLike = 1, carried: Sequence[SSAValue] = ()) -> Iterator[Loop]:
        block = Block(arg_types=[_INDEX, *[v.type for v in carried]])
        op = scf.ForOp(self.index(lb), self.index(ub), self.index(step), list(carried), Region(block))
        self.builder.insert(op)
        saved = self.builder.insertion_point
        self.builder.insertion_point = InsertPoint.at_end(block)
        loop = Loop(op, block.args[0], list(block.args[1:]))
        try:
            yield loop
            if len(loop.next) != len(carried):
                raise AssertionError("loop body must yield one value per carried value")
            self.builder.insert(scf.YieldOp(*loop.next))
        finally:
            self.builder.insertion_point = saved

    @contextmanager
    def loops(self, ubs: Sequence[IndexLike]) -> Iterator[list[SSAValue]]:
        """A perfect nest of loops from 0 to each bound, outermost first."""
        with _nest(self, list(ubs), []) as ivs:
            yield ivs

    @contextmanager
    def reduction(self, ubs: Sequence[IndexLike], init: Sequence[SSAValue]) -> Iterator[_Reduction]:
        """A nest carrying `init` through every level; set `red.next` in the
        innermost body; `red.results` hold the final values afterwards."""
        red = _Reduction(list(init))
        with _reduction_nest(self, list(ubs), red, []):
            yield red

    # ------------------------------------------------------------- memory
    def alloc(self, shape: Sequence[int], element_type: Attribute) -> SSAValue:
        return self.emit(memref.AllocOp.get(element_type, 64, list(shape)))

    def alloca_entry(self, shape: Sequence[int], element_type: Attribute) -> SSAValue:
        """A small stack buffer allocated once at function entry (not per iteration)."""
        op = memref.AllocaOp.get(element_type, 64, list(shape))
        self.builder.insert(op, InsertPoint.at_start(self.entry))
        return op.results[0]

    def dealloc(self, buffer: SSAValue) -> None:
        self.insert(memref.DeallocOp.get(buffer))

    def load(self, buffer: SSAValue, indices: Sequence[IndexLike]) -> SSAValue:
        return self.emit(memref.LoadOp.get(buffer, [self.index(i) for i in indices]))

    def store(self, value: SSAValue, buffer: SSAValue, indices: Sequence[IndexLike]) -> None:
        self.insert(memref.StoreOp.get(value, buffer, [self.index(i) for i in indices]))

    def vload(self, buffer: SSAValue, indices: Sequence[IndexLike], typ: VectorType) -> SSAValue:
        # the op vector.LoadOp(buffer, indices, typ) builds, without IRDL's argument normalisation
        operands = (SSAValue.get(buffer), *(self.index(i) for i in indices))
        return self.emit(vector.LoadOp.create(operands=operands, result_types=(typ,)))

    def vstore(self, value: SSAValue, buffer: SSAValue, indices: Sequence[IndexLike]) -> None:
        # the op vector.StoreOp(value, buffer, indices) builds (no properties), likewise
        operands = (SSAValue.get(value), SSAValue.get(buffer), *(self.index(i) for i in indices))
        self.insert(vector.StoreOp.create(operands=operands))

    def broadcast(self, scalar: SSAValue, typ: VectorType) -> SSAValue:
        return self.emit(vector.BroadcastOp(scalar, typ))

    def extract(self, vec: SSAValue, lane: int) -> SSAValue:
        typ = vec.type
        assert isinstance(typ, VectorType)
        return self.emit(vector.ExtractOp(vec, [lane], typ.element_type))

    def shuffle(self, a: SSAValue, b: SSAValue, mask: Sequence[int]) -> SSAValue:
        """vector.shuffle: lane i of the result is lane mask[i] of a ++ b."""
        typ = a.type
        assert isinstance(typ, VectorType)
        result = VectorType(typ.element_type, [len(mask)])
        return self.emit(vector.ShuffleOp(a, b, DenseArrayBase.from_list(i64, list(mask)), result_type=result))

    def transpose(self, rows: Sequence[SSAValue]) -> list[SSAValue]:
        """The L x L transpose of L vectors of L lanes (L a power of two):
        result[i][j] = rows[j][i]. log2(L) butterfly stages of L two-input
        shuffles, each swapping the off-diagonal s x s blocks of every
        2s x 2s block (LLVM lowers them to unpack / permute instructions:
        L log2 L shuffles per L^2 elements instead of a scalar per element)."""
        vs = list(rows)
        n = len(vs)
        assert n and n & (n - 1) == 0 and all(v.type == vs[0].type for v in vs)
        assert isinstance(vs[0].type, VectorType) and vs[0].type.get_shape() == (n,)
        s = 1
        while s < n:
            low = [lane if not lane & s else n + lane - s for lane in range(n)]
            high = [lane + s if not lane & s else n + lane for lane in range(n)]
            for p in range(n):
                if not p & s:
                    vs[p], vs[p + s] = self.shuffle(vs[p], vs[p + s], low), self.shuffle(vs[p], vs[p + s], high)
            s *= 2
        return vs

    def reduce(self, vec: SSAValue, kind: str) -> SSAValue:
        return self.emit(vector.ReductionOp(vec, vector.CombiningKindAttr(vector.CombiningKindFlag(kind))))

    def reduce_lanes(self, vec: SSAValue, kind: str) -> SSAValue:
        """vector.reduction of every lane into one scalar of the element type
        (xDSL 0.74's ReductionOp constructor types its result as the vector)."""
        typ = vec.type
        assert isinstance(typ, VectorType)
        op = vector.ReductionOp.create(
            operands=[vec],
            result_types=[typ.element_type],
            properties={"kind": vector.CombiningKindAttr(vector.CombiningKindFlag(kind))},
        )
        return self.emit(op)

    # --------------------------------------------------------- arithmetic
    def addi(self, a: IndexLike, b: IndexLike) -> SSAValue:
        if isinstance(b, int) and b == 0:
            return self.index(a)
        return self.emit(_int_binop(arith.AddiOp, self.index(a), self.index(b)))

    def subi(self, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.emit(_int_binop(arith.SubiOp, a, b))

    def iadd(self, a: SSAValue, b: SSAValue) -> SSAValue:
        """Integer add of same-typed values (scalars or vectors)."""
        return self.emit(_int_binop(arith.AddiOp, a, b))

    def xor(self, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.emit(arith.XOrIOp(a, b))

    def or_(self, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.emit(arith.OrIOp(a, b))

    def shl(self, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.emit(_int_binop(arith.ShLIOp, a, b))

    def muli(self, a: IndexLike, b: IndexLike) -> SSAValue:
        if isinstance(b, int) and b == 1:
            return self.index(a)
        return self.emit(_int_binop(arith.MuliOp, self.index(a), self.index(b)))

    def divui(self, a: IndexLike, b: IndexLike) -> SSAValue:
        return self.emit(arith.DivUIOp(self.index(a), self.index(b)))

    def remui(self, a: IndexLike, b: IndexLike) -> SSAValue:
        return self.emit(arith.RemUIOp(self.index(a), self.index(b)))

    def affine(self, terms: Sequence[tuple[IndexLike, int]], offset: int = 0) -> SSAValue:
        """sum(v * c for v, c in terms) + offset, on index values."""
        acc: SSAValue | None = None
        for v, c in terms:
            if c == 0:
                continue
            t = self.muli(v, c)
            acc = t if acc is None else self.addi(acc, t)
        if acc is None:
            return self.index(offset)
        return self.addi(acc, offset) if offset else acc

    def cmpi(self, a: SSAValue, b: IndexLike, pred: str) -> SSAValue:
        if isinstance(b, int):
            b = self.constant(b, a.type)
        return self.emit(arith.CmpiOp(a, b, pred))

    def and_(self, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.emit(arith.AndIOp(a, b))

    def select(self, cond: SSAValue, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.emit(arith.SelectOp(cond, a, b))

    def clamp_index(self, v: SSAValue, hi: int) -> SSAValue:
        """min(max(v, 0), hi) on index values, for loads guarded by a select."""
        v = self.emit(arith.MaxSIOp(v, self.index(0)))
        return self.emit(arith.MinSIOp(v, self.index(hi)))

    def in_range(self, v: SSAValue, size: int) -> SSAValue:
        """0 <= v < size."""
        return self.and_(self.cmpi(v, 0, "sge"), self.cmpi(v, size, "slt"))

    def addf(self, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.emit(arith.AddfOp(a, b))

    def subf(self, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.emit(arith.SubfOp(a, b))

    def mulf(self, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.emit(arith.MulfOp(a, b))

    def divf(self, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.emit(arith.DivfOp(a, b))

    def cmpf(self, a: SSAValue, b: SSAValue | float, pred: str) -> SSAValue:
        if isinstance(b, float | int):
            b = self.f32(float(b))
        return self.emit(arith.CmpfOp(a, b, pred))

    def fma(self, a: SSAValue, b: SSAValue, c: SSAValue) -> SSAValue:
        """a * b + c with one rounding (llvm.fma), as PyTorch's CPU kernels compute."""
        return self.emit(math.FmaOp(a, b, c))

    def absf(self, a: SSAValue) -> SSAValue:
        return self.emit(math.AbsFOp(a))

    def ctpop(self, a: SSAValue) -> SSAValue:
        return self.emit(math.CtPopOp(a))

    def shrsi(self, a: SSAValue, b: SSAValue) -> SSAValue:
        """Arithmetic shift right (scalars or vectors): sign masks for branch-free selects."""
        return self.emit(arith.ShRSIOp(a, b))

    def negative_sign_bit(self, v: SSAValue) -> SSAValue:
        """An i32 vector whose top bit is set exactly in the lanes where the
        f32 vector `v` is < 0.0 (-0.0 and NaN are not), from integer ops on
        the bits (xDSL's vector compares and selects are scalar-only). x < 0
        exactly for the bits u in [0x80000001 (the negative subnormal nearest
        0), 0xFF800000 (-inf)]: t = u - 0x80000001 (mod 2^32) is then below
        0x7F800000, and (t - 0x7F800000) & ~t has its top bit set exactly
        then (the subtraction borrows and t's top bit is clear). Shift it
        right logically for 0/1, arithmetically for a mask."""
        ity = VectorType(i32, v.type.get_shape())
        t = self.iadd(self.bitcast(v, ity), self.splat(0x7FFFFFFF, ity))  # + 0x7FFFFFFF = - 0x80000001
        return self.and_(self.subi(t, self.splat(0x7F800000, ity)), self.xor(t, self.splat(-1, ity)))

    def shrui(self, a: SSAValue, b: SSAValue) -> SSAValue:
        """Logical shift right (scalars or vectors)."""
        return self.emit(arith.ShRUIOp(a, b))

    def maxsi(self, a: SSAValue, b: SSAValue) -> SSAValue:
        """Signed integer max of same-typed scalars or vectors (one instruction on every target)."""
        return self.emit(arith.MaxSIOp(a, b))

    def bitcast(self, a: SSAValue, typ: Attribute) -> SSAValue:
        """The same bits as another type of the same width (f32 <-> i32, lane by lane)."""
        return self.emit(arith.BitcastOp(a, typ))

    def sitofp(self, a: SSAValue, *, fits_i32: bool = False) -> SSAValue:
        """Signed integer -> f32. `fits_i32`: the caller knows the i64 value fits
        in 32 bits, so convert from i32 (same result; 32-bit targets such as
        Cortex-M have the instruction for it, but call a runtime helper,
        __aeabi_l2f / __floatdisf, for i64)."""
        typ = a.type
        if fits_i32 and typ == i64:
            a = self.emit(arith.TruncIOp(a, i32))
        target = VectorType(f32, typ.get_shape()) if isinstance(typ, VectorType) else f32
        return self.emit(arith.SIToFPOp(a, target))

    def index_to_i64(self, a: SSAValue) -> SSAValue:
        return self.emit(arith.IndexCastOp(a, i64))

    def bool_to_i64(self, a: SSAValue) -> SSAValue:
        return self.emit(arith.ExtUIOp(a, i64))


@dataclass
class _Reduction:
    carried: list[SSAValue]
    next: list[SSAValue] = field(default_factory=list)
    results: list[SSAValue] = field(default_factory=list)
    ivs: list[SSAValue] = field(default_factory=list)


@contextmanager
def _nest(lb: LoopBuilder, ubs: list[IndexLike], ivs: list[SSAValue]) -> Iterator[list[SSAValue]]:
    if not ubs:
        yield ivs
        return
    with lb.loop(ubs[0]) as loop:
        with _nest(lb, ubs[1:], ivs + [loop.iv]) as inner:
            yield inner


@contextmanager
def _reduction_nest(lb: LoopBuilder, ubs: list[IndexLike], red: _Reduction, ivs: list[SSAValue]) -> Iterator[None]:
    if not ubs:
        red.ivs = ivs
        yield
        return
    init = red.carried
    with lb.loop(ubs[0], carried=init) as loop:
        red.carried = loop.carried
        with _reduction_nest(lb, ubs[1:], red, ivs + [loop.iv]):
            yield
        loop.next = red.next
    red.next = loop.results
    red.results = loop.results
    red.carried = init


def memref_shape(value: SSAValue) -> tuple[int, ...]:
    typ = value.type
    assert isinstance(typ, MemRefType)
    return tuple(typ.get_shape())


def memref_element(value: SSAValue) -> Attribute:
    """The element type of a memref value."""
    typ = value.type
    assert isinstance(typ, MemRefType)
    return typ.element_type
