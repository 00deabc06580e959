"""Lowerings of the bnn reduce ops (dialects/bnn_reduce.py) to loop nests.

One scheme serves bnn.reduce, bnn.softmax and bnn.normalize. The input's axes
are grouped into runs that are all reduced or all kept (and, for normalize,
that its weight and bias either have in full or broadcast), so every run is
one contiguous axis of a collapsed view (`memref.collapse_shape`, no copy).
The kept runs, except a kept innermost run, index "rows"; threads split the
rows, and every pass over a row reads only that row's statistics, so a
block computes its rows from start to end without waiting for other blocks.

Inside a row:
  * innermost run reduced (layer norm, softmax over the last axis, global
    pooling): the contiguous run is read as vectors of `vector_bits / 32`
    lanes, each lane a partial result, combined at the end (a strict float
    loop would stay scalar);
  * innermost run kept (softmax over channels of NCHW): the row's results
    are accumulated elementwise over the reduced runs into a buffer, an
    inner loop over contiguous memory that LLVM vectorises.
Sums are therefore added in another order than PyTorch's (itself a blocked,
vectorised order): results agree within float rounding.

max / min propagate NaN, as PyTorch does. `arith.maximumf` (llvm.maximum)
would, but it is a long instruction sequence on x86 (NaN and signed-zero
fix-ups on the critical path: 8x slower than a sum), and xDSL's arith.cmpf /
select have no vector form for a compare-and-select. The vector loop works
on the bits instead: key(b) = b ^ ((b >> 31) & 0x7fffffff) orders f32 bit
patterns b as signed integers exactly as the floats are ordered (-0 < +0),
so max is one integer max per vector (pmaxsd / smax, 1-cycle latency); a
second integer max of |b| catches NaNs (|b| > 0x7f800000), folded back once
per row. min is -max(-x) (the sign bit flipped on the way in and out).
Scalar tails, a kept innermost run and the final combination use the exact
float form `a is NaN ? a : (a > b ? a : b)`.
"""

from __future__ import annotations

import math as pymath
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from xdsl.dialects import math, memref
from xdsl.dialects.builtin import ArrayAttr, IntegerAttr, MemRefType, VectorType, f32, i32, i64
from xdsl.ir import Operation, SSAValue
from xdsl.utils.exceptions import PassFailedException

from bnnc.dialects import bnn
from bnnc.passes._loop_builder import IndexLike, LoopBuilder, memref_shape
from bnnc.passes._lowering import Lowerer, Lowering, WorkOf

# (lb, value, x index, statistics index) -> value: what a pass reduces or stores.
MapFn = Callable[[LoopBuilder, SSAValue, list[IndexLike], list[IndexLike]], SSAValue]


Combine = Callable[[LoopBuilder, SSAValue, SSAValue], SSAValue]


@dataclass(frozen=True)
class Combiner:
    """An associative reduction: its identity and how two scalar partials
    combine. `keyed` reductions (max, min) run their vector loop on integer
    keys (see the module docstring); `negate` makes max a min."""

    identity: float
    combine: Combine
    keyed: bool = False
    negate: bool = False


def _pick_nan(pred: str) -> Combine:
    """NaN if a or b is NaN, else the larger (`ogt`) / smaller (`olt`)."""

    def combine(lb: LoopBuilder, a: SSAValue, b: SSAValue) -> SSAValue:
        return lb.select(lb.cmpf(a, a, "uno"), a, lb.select(lb.cmpf(a, b, pred), a, b))

    return combine


SUM = Combiner(0.0, LoopBuilder.addf)
MAX = Combiner(float("-inf"), _pick_nan("ogt"), keyed=True)
MIN = Combiner(float("inf"), _pick_nan("olt"), keyed=True, negate=True)

SIGN, MAGNITUDE, INF_BITS = -(2**31), 0x7FFFFFFF, 0x7F800000
KEY_OF_MINUS_INF = -1 - INF_BITS  # key(bits(-inf)): below every other non-NaN key


def _ints(lb: LoopBuilder, value: int, like: SSAValue) -> SSAValue:
    return lb.splat(value, like.type) if isinstance(like.type, VectorType) else lb.constant(value, i32)


def _key(lb: LoopBuilder, b: SSAValue) -> SSAValue:
    """Signed-integer order of f32 bits (an involution: it also decodes)."""
    return lb.xor(b, lb.and_(lb.shrsi(b, _ints(lb, 31, b)), _ints(lb, MAGNITUDE, b)))


def _vector_init(lb: LoopBuilder, comb: Combiner, vt: VectorType) -> list[SSAValue]:
    if not comb.keyed:
        return [lb.splat(comb.identity, vt)]
    it = VectorType(i32, vt.get_shape())
    return [lb.splat(KEY_OF_MINUS_INF, it), lb.splat(0, it)]  # max key, max |bits|


def _vector_step(lb: LoopBuilder, comb: Combiner, carried: list[SSAValue], v: SSAValue) -> list[SSAValue]:
    if not comb.keyed:
        return [comb.combine(lb, carried[0], v)]
    best, seen = carried
    b = lb.bitcast(v, best.type)
    if comb.negate:
        b = lb.xor(b, _ints(lb, SIGN, b))
    return [lb.maxsi(best, _key(lb, b)), lb.maxsi(seen, lb.and_(b, _ints(lb, MAGNITUDE, b)))]


def _vector_finish(lb: LoopBuilder, comb: Combiner, partials: list[SSAValue]) -> list[SSAValue]:
    """The vector loop's result as scalars for the final tree: every lane of
    a sum; one value for max / min (NaN if any lane saw one)."""
    if not comb.keyed:
        return [lb.extract(partials[0], i) for i in range(partials[0].type.get_shape()[0])]
    best, seen = partials
    nan = lb.shrsi(lb.subi(_ints(lb, INF_BITS, seen), seen), _ints(lb, 31, seen))  # -1 where a NaN was seen
    not_nan = lb.xor(nan, _ints(lb, -1, nan))
    best = lb.maxsi(best, lb.or_(lb.and_(seen, nan), lb.and_(not_nan, _ints(lb, SIGN, nan))))
    b = _key(lb, lb.reduce_lanes(best, "maxsi"))
    if comb.negate:
        b = lb.xor(b, lb.constant(SIGN, i32))
    return [lb.bitcast(b, f32)]


@dataclass(frozen=True)
class Nest:
    """The collapsed view: runs of axes (`groups`), their sizes, which are reduced."""

    groups: tuple[tuple[int, ...], ...]
    sizes: tuple[int, ...]
    reduced: tuple[bool, ...]

    @property
    def inner_reduced(self) -> bool:
        return self.reduced[-1]

    @property
    def row_groups(self) -> list[int]:
        """Runs indexing rows: the kept ones, except a kept innermost run."""
        last = len(self.sizes) - 1
        return [g for g, r in enumerate(self.reduced) if not r and (g != last or self.inner_reduced)]

    @property
    def free_groups(self) -> list[int]:
        """Runs looped over inside a row, outermost first."""
        rows = set(self.row_groups)
        return [g for g in range(len(self.sizes)) if g not in rows]

    @property
    def stat_sizes(self) -> list[int]:
        """The collapsed shape of per-row statistics (reduced runs of size 1)."""
        return [1 if r else s for s, r in zip(self.sizes, self.reduced)]

    @property
    def count(self) -> int:
        """Elements reduced into one result."""
        return pymath.prod(s for s, r in zip(self.sizes, self.reduced) if r)

    def stat_index(self, xi: Sequence[IndexLike]) -> list[IndexLike]:
        return [0 if r else i for i, r in zip(xi, self.reduced)]


def plan_nest(shape: Sequence[int], dims: Sequence[int], params: Sequence[Sequence[int]] = ()) -> Nest:
    """Group adjacent axes that are alike: reduced or not, and full or
    broadcast in each of `params` (same rank as `shape`). Size-1 axes join
    their neighbour's run (their index is always 0)."""
    rank = len(shape)
    if rank == 0:
        raise PassFailedException("reductions of rank-0 tensors are not supported")
    dims = set(dims)

    def key(axis: int) -> tuple:
        return (axis in dims, tuple(p[axis] == 1 for p in params))

    ids: list[int] = []
    keys: list[tuple] = []
    last_key: tuple | None = None
    for axis in range(rank):
        if shape[axis] == 1:
            ids.append(len(keys) - 1)  # joins the previous run (-1: the first one, fixed below)
            continue
        k = key(axis)
        if k != last_key:
            keys.append(k)
            last_key = k
        ids.append(len(keys) - 1)
    if not keys:  # every axis has size 1: nothing to reduce
        return Nest((tuple(range(rank)),), (1,), (False,))
    ids = [max(i, 0) for i in ids]
    groups = tuple(tuple(a for a in range(rank) if ids[a] == g) for g in range(len(keys)))
    sizes = tuple(pymath.prod(shape[a] for a in grp) for grp in groups)
    return Nest(groups, sizes, tuple(k[0] for k in keys))


def collapse(lb: LoopBuilder, value: SSAValue, nest: Nest) -> SSAValue:
    """`value` viewed with the nest's runs as axes (the same memory)."""
    if all(len(g) == 1 for g in nest.groups):
        return value
    shape = memref_shape(value)
    new_shape = [pymath.prod(shape[a] for a in g) for g in nest.groups]
    reassociation = ArrayAttr([ArrayAttr([IntegerAttr(a, i64) for a in g]) for g in nest.groups])
    op = memref.CollapseShapeOp(
        operands=[value],
        result_types=[MemRefType(value.type.element_type, new_shape)],
        properties={"reassociation": reassociation},
    )
    return lb.emit(op)


def _like(lb: LoopBuilder, scalar: SSAValue, like: SSAValue) -> SSAValue:
    """`scalar` broadcast to `like`'s vector type (or itself for scalars)."""
    return lb.broadcast(scalar, like.type) if isinstance(like.type, VectorType) else scalar


def _const(lb: LoopBuilder, value: float, like: SSAValue) -> SSAValue:
    return lb.splat(value, like.type) if isinstance(like.type, VectorType) else lb.f32(value)


def _load(lb: LoopBuilder, buffer: SSAValue, index: list[IndexLike], like: SSAValue) -> SSAValue:
    """A load shaped like `like`: a vector of consecutive elements or a scalar."""
    if isinstance(like.type, VectorType):
        return lb.vload(buffer, index, like.type)
    return lb.load(buffer, index)


def _store(lb: LoopBuilder, value: SSAValue, buffer: SSAValue, index: list[IndexLike]) -> None:
    if isinstance(value.type, VectorType):
        lb.vstore(value, buffer, index)
    else:
        lb.store(value, buffer, index)


@contextmanager
def _rows(lowerer: Lowerer, nest: Nest) -> Iterator[list[IndexLike]]:
    """Loop over this thread's rows; yields the index with the row runs set."""
    lb = lowerer.lb
    groups = nest.row_groups
    begin, end = lowerer.row_range(pymath.prod(nest.sizes[g] for g in groups))
    with lb.loop(end, begin) as row:
        idx: list[IndexLike] = [0] * len(nest.sizes)
        for k, g in enumerate(groups):
            stride = pymath.prod(nest.sizes[h] for h in groups[k + 1 :])
            q = lb.divui(row.iv, stride) if stride != 1 else row.iv
            idx[g] = lb.remui(q, nest.sizes[g]) if k else q
        yield idx


@contextmanager
def _row_elements(lb: LoopBuilder, nest: Nest, idx: list[IndexLike]) -> Iterator[list[IndexLike]]:
    """Loop over every input element of a row (innermost run contiguous)."""
    free = nest.free_groups
    with lb.loops([nest.sizes[g] for g in free]) as ivs:
        xi = list(idx)
        for g, iv in zip(free, ivs):
            xi[g] = iv
        yield xi


@contextmanager
def _row_stats(lb: LoopBuilder, nest: Nest, idx: list[IndexLike]) -> Iterator[list[IndexLike]]:
    """Loop over the statistics of a row: one, or the kept innermost run."""
    if nest.inner_reduced:
        yield nest.stat_index(idx)
        return
    with lb.loop(nest.sizes[-1]) as k:
        yield [*nest.stat_index(idx)[:-1], k.iv]


def _tree(lb: LoopBuilder, values: list[SSAValue], comb: Combiner) -> SSAValue:
    """Pairwise combination (a balanced tree: fewer roundings in a row)."""
    while len(values) > 1:
        pairs = [comb.combine(lb, values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)]
        values = pairs + (values[-1:] if len(values) % 2 else [])
    return values[0]


def reduce_row(
    lowerer: Lowerer, nest: Nest, idx: list[IndexLike], x: SSAValue, acc: SSAValue, comb: Combiner, fn: MapFn | None = None
) -> None:
    """acc[stats of the row] = comb over the row's reduced elements of fn(x)."""
    lb = lowerer.lb
    fn = fn or (lambda lb_, v, xi, si: v)
    if not nest.inner_reduced:
        with _row_stats(lb, nest, idx) as si:
            lb.store(lb.f32(comb.identity), acc, si)
        with _row_elements(lb, nest, idx) as xi:
            si = nest.stat_index(xi)
            v = fn(lb, lb.load(x, xi), xi, si)
            lb.store(comb.combine(lb, lb.load(acc, si), v), acc, si)
        return
    lanes = max(lowerer.vector_bits // 32, 1)
    inner = nest.sizes[-1]
    nvec, tail = inner // lanes, inner % lanes
    vt = VectorType(f32, [lanes])
    vec_init = _vector_init(lb, comb, vt) if nvec else []
    width = len(vec_init)
    init = vec_init + ([lb.f32(comb.identity)] if tail else [])
    outer = [g for g in nest.free_groups if g != len(nest.sizes) - 1]
    with lb.reduction([nest.sizes[g] for g in outer], init) as red:
        xi = list(idx)
        for g, iv in zip(outer, red.ivs):
            xi[g] = iv
        si = nest.stat_index(xi)
        nxt: list[SSAValue] = []
        if nvec:
            with lb.loop(nvec, carried=red.carried[:width]) as vl:
                at = [*xi[:-1], lb.muli(vl.iv, lanes)]
                vl.next = _vector_step(lb, comb, vl.carried, fn(lb, lb.vload(x, at, vt), at, si))
            nxt += vl.results
        if tail:
            with lb.loop(inner, nvec * lanes, carried=[red.carried[-1]]) as tl:
                at = [*xi[:-1], tl.iv]
                tl.next = [comb.combine(lb, tl.carried[0], fn(lb, lb.load(x, at), at, si))]
            nxt += tl.results
        red.next = nxt
    partials = red.results if outer else red.next
    values = _vector_finish(lb, comb, partials[:width]) if nvec else []
    if tail:
        values.append(partials[-1])
    lb.store(_tree(lb, values, comb), acc, nest.stat_index(idx))


def _scale_stats(
    lb: LoopBuilder, nest: Nest, idx: list[IndexLike], buf: SSAValue, f: Callable[[SSAValue], SSAValue]
) -> None:
    """buf[s] = f(buf[s]) for the row's statistics."""
    with _row_stats(lb, nest, idx) as si:
        lb.store(f(lb.load(buf, si)), buf, si)


@contextmanager
def _scratch(lowerer: Lowerer, nest: Nest, count: int) -> Iterator[list[SSAValue]]:
    """`count` buffers of per-row statistics, freed after the kernel's rows."""
    bufs = [lowerer.lb.alloc(nest.stat_sizes, f32) for _ in range(count)]
    yield bufs
    for b in bufs:
        lowerer.lb.dealloc(b)


def _mean_into(lowerer: Lowerer, nest: Nest, idx: list[IndexLike], x: SSAValue, m: SSAValue) -> None:
    lb = lowerer.lb
    reduce_row(lowerer, nest, idx, x, m, SUM)
    _scale_stats(lb, nest, idx, m, lambda v: lb.divf(v, lb.f32(float(nest.count))))


def _squared_deviations(m: SSAValue) -> MapFn:
    def fn(lb: LoopBuilder, v: SSAValue, xi: list[IndexLike], si: list[IndexLike]) -> SSAValue:
        d = lb.subf(v, _like(lb, lb.load(m, si), v))
        return lb.mulf(d, d)

    return fn


def lower_reduce(lowerer: Lowerer, op: bnn.ReduceOp, args: list[SSAValue], out: SSAValue) -> None:
    """sum / max / min in one pass; mean = sum / N; var and std in two passes
    (mean, then the squared deviations from it) divided by max(0, N - correction)."""
    lb, kind = lowerer.lb, op.kind.data
    nest = plan_nest(memref_shape(args[0]), op.dims.get_values())
    x, y = collapse(lb, args[0], nest), collapse(lb, out, nest)
    if kind in ("sum", "max", "min", "mean"):
        comb = {"sum": SUM, "mean": SUM, "max": MAX, "min": MIN}[kind]
        with _rows(lowerer, nest) as idx:
            reduce_row(lowerer, nest, idx, x, y, comb)
            if kind == "mean":
                _scale_stats(lb, nest, idx, y, lambda v: lb.divf(v, lb.f32(float(nest.count))))
        return
    divisor = float(max(0.0, nest.count - op.correction.value.data))
    with _scratch(lowerer, nest, 1) as (m,), _rows(lowerer, nest) as idx:
        _mean_into(lowerer, nest, idx, x, m)
        reduce_row(lowerer, nest, idx, x, y, SUM, _squared_deviations(m))

        def finish(v: SSAValue) -> SSAValue:
            v = lb.divf(v, lb.f32(divisor))
            return lb.emit(math.SqrtOp(v)) if kind == "std" else v

        _scale_stats(lb, nest, idx, y, finish)


def lower_softmax(lowerer: Lowerer, op: bnn.SoftmaxOp, args: list[SSAValue], out: SSAValue) -> None:
    """PyTorch's order: max; sum of exp(x - max) (softmax keeps each exp in
    the output); then exp * (1 / sum), or (x - max) - log(sum)."""
    lb, log = lowerer.lb, op.log is not None
    nest = plan_nest(memref_shape(args[0]), [op.dim.value.data])
    x, y = collapse(lb, args[0], nest), collapse(lb, out, nest)
    with _scratch(lowerer, nest, 2) as (mx, s), _rows(lowerer, nest) as idx:
        reduce_row(lowerer, nest, idx, x, mx, MAX)

        def exp_shifted(lb_: LoopBuilder, v: SSAValue, xi: list[IndexLike], si: list[IndexLike]) -> SSAValue:
            e = lb_.emit(math.ExpOp(lb_.subf(v, _like(lb_, lb_.load(mx, si), v))))
            if not log:
                _store(lb_, e, y, xi)
            return e

        reduce_row(lowerer, nest, idx, x, s, SUM, exp_shifted)
        if log:
            _scale_stats(lb, nest, idx, s, lambda v: lb.emit(math.LogOp(v)))
        else:
            _scale_stats(lb, nest, idx, s, lambda v: lb.divf(lb.f32(1.0), v))
        with _row_elements(lb, nest, idx) as xi:
            si = nest.stat_index(xi)
            if log:
                v = lb.subf(lb.subf(lb.load(x, xi), lb.load(mx, si)), lb.load(s, si))
            else:
                v = lb.mulf(lb.load(y, xi), lb.load(s, si))
            lb.store(v, y, xi)


def lower_normalize(lowerer: Lowerer, op: bnn.NormalizeOp, args: list[SSAValue], out: SSAValue) -> None:
    """mean, then the biased variance from it (two passes), rstd = 1 /
    sqrt(var + eps), then y = (x * rstd + (-rstd * mean)) * weight + bias."""
    lb = lowerer.lb
    weight = args[1] if op.weight is not None else None
    bias = args[-1] if op.bias is not None else None
    params = [p for p in (weight, bias) if p is not None]
    nest = plan_nest(memref_shape(args[0]), op.dims.get_values(), [memref_shape(p) for p in params])
    x, y = collapse(lb, args[0], nest), collapse(lb, out, nest)
    w = collapse(lb, weight, nest) if weight is not None else None
    b = collapse(lb, bias, nest) if bias is not None else None
    eps = lb.f32(op.epsilon.value.data)
    count = lb.f32(float(nest.count))
    with _scratch(lowerer, nest, 2) as (m, r), _rows(lowerer, nest) as idx:
        _mean_into(lowerer, nest, idx, x, m)
        reduce_row(lowerer, nest, idx, x, r, SUM, _squared_deviations(m))
        with _row_stats(lb, nest, idx) as si:
            rstd = lb.divf(lb.f32(1.0), lb.emit(math.SqrtOp(lb.addf(lb.divf(lb.load(r, si), count), eps))))
            lb.store(rstd, r, si)
            lb.store(lb.mulf(lb.subf(lb.f32(0.0), rstd), lb.load(m, si)), m, si)
        with _row_elements(lb, nest, idx) as xi:
            si = nest.stat_index(xi)
            v = lb.addf(lb.mulf(lb.load(x, xi), lb.load(r, si)), lb.load(m, si))
            if w is not None:
                v = lb.mulf(v, lb.load(w, _param_index(w, xi)))
            if b is not None:
                v = lb.addf(v, lb.load(b, _param_index(b, xi)))
            lb.store(v, y, xi)


def _param_index(param: SSAValue, xi: list[IndexLike]) -> list[IndexLike]:
    """A broadcast operand's index: 0 along its size-1 runs."""
    return [0 if d == 1 else i for d, i in zip(memref_shape(param), xi)]


def _work(passes: int) -> WorkOf:
    """Elements touched: the input once per pass, plus the result."""

    def work(op: Operation) -> int:
        return pymath.prod(op.operands[0].type.get_shape()) * passes + pymath.prod(op.results[0].type.get_shape())

    return work


def _reduce_work(op: Operation) -> int:
    passes = 2 if op.kind.data in ("var", "std") else 1
    return _work(passes)(op)


REDUCE_LOWERINGS: dict[type[Operation], Lowering] = {
    bnn.ReduceOp: lower_reduce,
    bnn.SoftmaxOp: lower_softmax,
    bnn.NormalizeOp: lower_normalize,
}
# Ops whose kernels split their work between threads, with how much work each is.
REDUCE_THREADED: dict[type[Operation], WorkOf] = {
    bnn.ReduceOp: _reduce_work,
    bnn.SoftmaxOp: _work(3),
    bnn.NormalizeOp: _work(3),
}
