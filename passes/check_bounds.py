"""check-bounds: guard every memory access of the loop IR with an index check
that stops the program with the access's location.

Why it exists: the lowerings compute every index themselves (padded input
rows, register tiles, thread blocks, gather tables), and an off-by-one that
reads a neighbouring buffer can still give the right answer on one input.
A bounds-checked build (`bnnc compile/run --check-bounds`,
`bnnc.compile(..., check_bounds=True)`, the fuzzer) turns such an access into
an immediate, located failure instead of a silent one.

It runs on the loop IR (after convert-bnn-to-loops, before
dedupe-layer-functions) and rewrites

- `memref.load` / `memref.store`: each index `i_d` must satisfy
  `0 <= i_d < dim_d` of the memref's static shape (one unsigned compare, so
  a negative index fails too);
- `vector.load` / `vector.store`: the same for the first lane, and for the
  last lane on the trailing dims the vector spans (`i_d + len_d - 1`);
- `memref.subview` / `memref.reinterpret_cast` whose static extent does not
  fit the source: a failure wherever the view is created.

Indices that are constants inside the bounds need no check. A failing access
calls the generated `__bnnc_bounds_fail(where, what)`, which writes both
messages to stderr with `write(2, ...)` and calls `abort()` (so the build
needs a hosted libc: host JIT, Linux artifacts). `where` is the access's own
location if it has one, else its function's (a layer's module path and
source line) and the function; `what` names the op and the memref type. Both are
NUL-padded `memref.global`s of one common length, so every call has the same
signature; a function's `where` is its only per-layer constant, which
dedupe-layer-functions lifts to a parameter like any other global.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, func, memref, scf, vector
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    FileLineColLoc,
    IndexType,
    IntegerAttr,
    IntegerType,
    MemRefType,
    ModuleOp,
    NameLoc,
    StringAttr,
    TensorType,
    UnitAttr,
    UnknownLoc,
    i32,
    i64,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

FAIL_FN = "__bnnc_bounds_fail"
MESSAGE_PREFIX = "__bnnc_bounds_msg_"
i8 = IntegerType(8)


def describe_location(loc: Attribute) -> str | None:
    """`name (file:line:col)` for the locations frontends attach; None if unknown."""
    if isinstance(loc, UnknownLoc):
        return None
    if isinstance(loc, FileLineColLoc):
        return f"{loc.filename.data}:{loc.line.data}:{loc.column.data}"
    if isinstance(loc, NameLoc):
        inner = describe_location(loc.location)
        return f"'{loc.desc.data}'" + (f" ({inner})" if inner else "")
    return str(loc)


def _constant_index(v: SSAValue) -> int | None:
    op = v.owner
    if isinstance(op, arith.ConstantOp) and isinstance(op.value, IntegerAttr):
        return op.value.value.data
    return None


@dataclass
class _Site:
    """One access: the op, the memref type, and per checked dim (index, extra lanes)."""

    op: Operation
    mtype: MemRefType
    checks: list[tuple[int, SSAValue, int]]  # (dim, index, last lane offset)


def _site(op: Operation) -> _Site | None:
    if isinstance(op, memref.LoadOp | memref.StoreOp):
        mt, idx, lanes = op.memref.type, list(op.indices), ()
    elif isinstance(op, vector.LoadOp):
        mt, idx, lanes = op.base.type, list(op.indices), op.result.type.get_shape()
    elif isinstance(op, vector.StoreOp):
        mt, idx, lanes = op.base.type, list(op.indices), op.vector.type.get_shape()
    else:
        return None
    assert isinstance(mt, MemRefType)
    shape = mt.get_shape()
    extra = [0] * (len(shape) - len(lanes)) + [n - 1 for n in lanes]
    checks = []
    for d, (i, size, e) in enumerate(zip(idx, shape, extra)):
        c = _constant_index(i)
        if size >= 0 and c is not None and 0 <= c and c + e < size:
            continue  # provably inside
        checks.append((d, i, e))
    return _Site(op, mt, checks)


def _view_out_of_bounds(op: Operation) -> str | None:
    """Why a static view does not fit its source, or None."""
    if isinstance(op, memref.SubviewOp):
        src = op.source.type
        assert isinstance(src, MemRefType)
        offs, sizes, strides = op.static_offsets.get_values(), op.static_sizes.get_values(), op.static_strides.get_values()
        for d, (o, n, s, dim) in enumerate(zip(offs, sizes, strides, src.get_shape())):
            if min(o, n, s, dim) < 0:
                continue  # dynamic: not statically known
            if n and o + (n - 1) * s >= dim:
                return f"subview dim {d}: offset {o} + ({n} - 1) * stride {s} >= {dim}"
        return None
    if isinstance(op, memref.ReinterpretCastOp):
        src, res = op.source.type, op.result.type
        assert isinstance(src, MemRefType) and isinstance(res, MemRefType)
        total = 1
        for n in src.get_shape():
            total *= n
        layout = res.get_strides() or []
        offset = op.static_offsets.get_values()[0] if op.static_offsets.get_values() else 0
        last = offset + sum((n - 1) * s for n, s in zip(res.get_shape(), layout))
        if total >= 0 and offset >= 0 and min(res.get_shape(), default=1) > 0 and last >= total:
            return f"reinterpret_cast reaches element {last} of {total}"
    return None


class _Messages:
    """Interns message strings as NUL-padded globals of one common length
    (known once every message of the module has been collected)."""

    def __init__(self, texts: list[str]) -> None:
        self.length = max((len(t.encode()) for t in texts), default=0) + 1
        self.mtype = MemRefType(i8, [self.length])
        self.names: dict[str, str] = {}

    def get(self, text: str) -> memref.GetGlobalOp:
        name = self.names.setdefault(text, f"{MESSAGE_PREFIX}{len(self.names)}")
        return memref.GetGlobalOp(name, self.mtype)

    def globals(self) -> list[Operation]:
        ops: list[Operation] = []
        for text, name in self.names.items():
            data = list(text.encode()) + [0] * (self.length - len(text.encode()))
            init = DenseIntOrFPElementsAttr.from_list(TensorType(i8, [self.length]), data)
            ops.append(memref.GlobalOp.get(StringAttr(name), self.mtype, init, constant=UnitAttr()))
        return ops


def _fail_function(mtype: MemRefType) -> list[Operation]:
    """__bnnc_bounds_fail(where, what): write both to stderr, then abort()."""
    block = Block(arg_types=[mtype, mtype])
    fd = arith.ConstantOp(IntegerAttr(2, i32))
    ops: list[Operation] = [fd]
    for msg in block.args:
        n = func.CallOp("strlen", [msg], [i64])
        ops += [n, func.CallOp("write", [fd.result, msg, n.results[0]], [i64])]
    ops += [func.CallOp("abort", [], []), func.ReturnOp()]
    block.add_ops(ops)
    return [
        func.FuncOp(FAIL_FN, ([mtype, mtype], []), Region(block), visibility="private"),
        func.FuncOp.external("strlen", [mtype], [i64]),
        func.FuncOp.external("write", [i32, mtype, i64], [i64]),
        func.FuncOp.external("abort", [], []),
    ]


def _fail_call(messages: _Messages, where: str, what: str) -> list[Operation]:
    a, b = messages.get(where), messages.get(what)
    return [a, b, func.CallOp(FAIL_FN, [a.results[0], b.results[0]], [])]


def _what(site: _Site) -> str:
    return f"out-of-bounds {site.op.name} of {site.mtype}\n"


def _guard(site: _Site, messages: _Messages, where: str, what: str) -> None:
    """Insert `if (any index out of range) __bnnc_bounds_fail(...)` before the access."""
    ops: list[Operation] = []
    bad: SSAValue | None = None
    for d, i, extra in site.checks:
        idx = i
        if extra:
            k = arith.ConstantOp(IntegerAttr(extra, IndexType()))
            add = arith.AddiOp(i, k.result)
            ops += [k, add]
            idx = add.result
        dim = arith.ConstantOp(IntegerAttr(site.mtype.get_shape()[d], IndexType()))
        cmp = arith.CmpiOp(idx, dim.result, "uge")
        ops += [dim, cmp]
        if bad is None:
            bad = cmp.result
        else:
            ori = arith.OrIOp(bad, cmp.result)
            ops.append(ori)
            bad = ori.result
    assert bad is not None
    body = [*_fail_call(messages, where, what), scf.YieldOp()]
    ops.append(scf.IfOp(bad, [], Region(Block(body))))
    Rewriter.insert_op(ops, InsertPoint.before(site.op))


def _where(op: Operation, fn: func.FuncOp) -> str:
    loc = describe_location(op.location) or describe_location(fn.location)
    return f"bnnc: bounds check failed in @{fn.sym_name.data}" + (f" at {loc}" if loc else "") + ": "


@dataclass(frozen=True)
class CheckBoundsPass(ModulePass):
    name = "check-bounds"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        # (access site or view, where, what): collected first, since every
        # message global has the length of the longest message
        found: list[tuple[_Site | Operation, str, str]] = []
        for fn in [f for f in op.body.block.ops if isinstance(f, func.FuncOp)]:
            if not fn.body.blocks or fn.sym_name.data == FAIL_FN:
                continue
            for inner in fn.walk():
                site = _site(inner)
                if site is not None and site.checks:
                    found.append((site, _where(inner, fn), _what(site)))
                    continue
                reason = _view_out_of_bounds(inner)
                if reason is not None:
                    found.append((inner, _where(inner, fn), f"{reason}\n"))
        if not found:
            return
        messages = _Messages([t for _, where, what in found for t in (where, what)])
        for item, where, what in found:
            if isinstance(item, _Site):
                _guard(item, messages, where, what)
            else:
                Rewriter.insert_op(_fail_call(messages, where, what), InsertPoint.before(item))
        op.body.block.add_ops([*messages.globals(), *_fail_function(messages.mtype)])
