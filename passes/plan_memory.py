"""plan-memory: a static memory plan. Every `memref.alloc` becomes a
`memref.view` into one caller-provided arena, and buffers whose lifetimes do
not overlap share its bytes, so the arena is the peak of live buffers, not
their sum. No `memref.alloc` / `memref.dealloc` is left: the compiled code
calls no allocator (bare-metal targets, callers that must not allocate).

Why it is correct:
- Liveness is measured on the ops of each function's top-level block (an
  alloc nested in a loop counts from the top-level op that contains it): a
  buffer lives from its alloc to the later of its dealloc and its last use
  through any view of it (subview, cast, collapse/expand_shape, ...). The
  interval is closed, so a layer's output and the inputs it reads, which
  are live at its call, never share bytes.
- Placement is greedy first-fit, largest buffer first: each buffer takes the
  lowest 64-byte-aligned offset that overlaps no already-placed buffer whose
  interval intersects its own. Disjoint bytes for intersecting intervals is
  all that correctness needs; the greedy order only affects the size.
- A private function (a layer kernel) that allocates gets its own plan and
  one more parameter, a `memref<S x i8>` scratch region, before the thread
  parameters; each call site passes a view of the caller's arena that is
  live during the call only. A threaded kernel (called with `bnnc.threads`)
  runs its blocks concurrently, so it gets S bytes per block and block b
  uses bytes [b*S, (b+1)*S).
- A public function (an entry point) gets the arena as its last parameter,
  `memref<A x i8>` (A may be 0: the caller may then pass any pointer), and
  the attribute `bnnc.arena_bytes = A`. The arena must be aligned to
  ARENA_ALIGNMENT bytes, as the allocations were.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, func, memref
from xdsl.dialects.builtin import IndexType, IntegerAttr, MemRefType, ModuleOp, i8, i64
from xdsl.ir import Block, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.utils.exceptions import PassFailedException

from bnnc.passes._parallel_contract import BLOCKS_ATTR, THREADS_ATTR, count_error
from bnnc.passes.convert_memref_to_llvm import byte_size

ARENA_ALIGNMENT = 64
ARENA_ATTR = "bnnc.arena_bytes"


def _fail(msg: str) -> PassFailedException:
    return PassFailedException(f"plan-memory: {msg}")


@dataclass
class Buffer:
    """One allocation: its byte size and the closed interval of top-level op
    indices during which it is live; `offset` is filled in by `place`."""

    size: int
    start: int
    end: int
    offset: int = -1


def place(buffers: list[Buffer], alignment: int = ARENA_ALIGNMENT) -> int:
    """Give every buffer an offset (first fit, largest first); return the arena size."""
    placed: list[Buffer] = []
    for buf in sorted(buffers, key=lambda b: (-b.size, b.start, b.end)):
        busy = sorted(
            (p.offset, p.offset + p.size) for p in placed if p.start <= buf.end and buf.start <= p.end
        )
        offset = 0
        for lo, hi in busy:
            if offset + buf.size <= lo:
                break
            offset = max(offset, _align(hi, alignment))
        buf.offset = offset
        placed.append(buf)
    return max((_align(b.offset + b.size, alignment) for b in placed), default=0)


def _align(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


def _alloc_bytes(op: memref.AllocOp) -> int:
    mtype = op.memref.type
    assert isinstance(mtype, MemRefType)
    if not mtype.has_static_shape() or op.dynamic_sizes:
        raise _fail(f"{mtype} is dynamically shaped; a static plan needs static sizes")
    return max(1, mtype.element_count() * byte_size(mtype.element_type))


def _top_level(op: Operation, block: Block) -> Operation:
    while op.parent_block() is not block:
        parent = op.parent_op()
        if parent is None:
            raise _fail(f"{op.name} is outside the function it was planned in")
        op = parent
    return op


def _live_end(value: SSAValue, block: Block, index: dict[Operation, int]) -> int:
    """The index of the last top-level op that uses `value` or a view of it."""
    end = -1
    work = [value]
    while work:
        v = work.pop()
        for use in v.uses:
            user = use.operation
            end = max(end, index[_top_level(user, block)])
            if user.results and any(isinstance(r.type, MemRefType) for r in user.results):
                work.extend(r for r in user.results if isinstance(r.type, MemRefType))
    return end


def _scratch_type(size: int) -> MemRefType:
    return MemRefType(i8, [size])


def _view(rewriter_point: InsertPoint, arena: SSAValue, shift: SSAValue | int, typ: MemRefType) -> memref.ViewOp:
    ops: list[Operation] = []
    if isinstance(shift, int):
        const = arith.ConstantOp(IntegerAttr(shift, IndexType()))
        ops.append(const)
        shift = const.result
    view = memref.ViewOp(arena, shift, [], typ)
    Rewriter.insert_op([*ops, view], rewriter_point)
    return view


def _plan_function(fn: func.FuncOp, scratch_of: dict[str, int], blocks_of: dict[str, int]) -> tuple[int, list]:
    """Plan `fn`'s allocs and its calls' scratch regions; return the size and what to rewrite."""
    block = fn.body.block
    index = {op: i for i, op in enumerate(block.ops)}
    allocs: list[tuple[memref.AllocOp, Buffer]] = []
    calls: list[tuple[func.CallOp, Buffer]] = []
    for op in fn.walk():
        if isinstance(op, memref.AllocOp):
            top = index[_top_level(op, block)]
            end = _live_end(op.memref, block, index)
            allocs.append((op, Buffer(_alloc_bytes(op), top, max(top, end))))
        elif isinstance(op, func.CallOp) and scratch_of.get(op.callee.string_value(), 0):
            callee = op.callee.string_value()
            if op.parent_block() is not block:
                raise _fail(f"a call of @{callee} (which needs scratch memory) inside a loop")
            i = index[op]
            calls.append((op, Buffer(scratch_of[callee] * blocks_of.get(callee, 1), i, i)))
    size = place([b for _, b in allocs] + [b for _, b in calls])
    return size, [allocs, calls]


def _callers(module: ModuleOp) -> dict[str, list[func.CallOp]]:
    result: dict[str, list[func.CallOp]] = {}
    for op in module.walk():
        if isinstance(op, func.CallOp):
            result.setdefault(op.callee.string_value(), []).append(op)
    return result


def _blocks(name: str, calls: list[func.CallOp]) -> int:
    """Concurrent blocks of a kernel: 1 unthreaded, else its calls' block count."""
    counts = set()
    for call in calls:
        threads = call.attributes.get(THREADS_ATTR)
        blocks = call.attributes.get(BLOCKS_ATTR, threads)
        count = blocks.value.data if isinstance(blocks, IntegerAttr) else 1
        if (error := count_error(BLOCKS_ATTR, count, name)) is not None:
            raise _fail(error)
        counts.add(count)
    if len(counts) > 1:
        raise _fail(f"@{name} is called with different block counts {sorted(counts)}")
    return counts.pop() if counts else 1


def _rewrite(arena: SSAValue, parts: list, block_stride: SSAValue | None) -> None:
    """Replace allocs by views of `arena` (shifted by `block_stride` per block
    when given), drop deallocs, pass scratch views to calls."""
    allocs, calls = parts

    def shift_at(point_op: Operation, offset: int) -> SSAValue | int:
        if block_stride is None:
            return offset
        c = arith.ConstantOp(IntegerAttr(offset, IndexType()))
        add = arith.AddiOp(block_stride, c.result)
        Rewriter.insert_op([c, add], InsertPoint.before(point_op))
        return add.result

    for op, buf in allocs:
        view = _view(InsertPoint.before(op), arena, shift_at(op, buf.offset), op.memref.type)
        for use in list(op.memref.uses):
            if isinstance(use.operation, memref.DeallocOp):
                Rewriter.erase_op(use.operation)
        op.memref.replace_all_uses_with(view.result)
        Rewriter.erase_op(op)
    for call, buf in calls:
        view = _view(InsertPoint.before(call), arena, shift_at(call, buf.offset), _scratch_type(buf.size))
        n_thread = 2 if THREADS_ATTR in call.attributes else 0
        args = list(call.arguments)
        at = len(args) - n_thread
        call.operands = [*args[:at], view.result, *args[at:]]


def _add_arg(fn: func.FuncOp, typ: MemRefType, position: int) -> SSAValue:
    block = fn.body.block
    arg = block.insert_arg(typ, position)
    inputs = list(fn.function_type.inputs.data)
    inputs.insert(position, typ)
    fn.function_type = func.FunctionType.from_lists(inputs, list(fn.function_type.outputs.data))
    return arg


@dataclass(frozen=True)
class PlanMemoryPass(ModulePass):
    name = "plan-memory"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        funcs = [f for f in op.ops if isinstance(f, func.FuncOp) and not f.is_declaration]
        callers = _callers(op)
        kernels = [f for f in funcs if f.sym_visibility is not None and f.sym_visibility.data == "private"]
        entries = [f for f in funcs if f not in kernels]
        scratch_of: dict[str, int] = {}
        blocks_of: dict[str, int] = {}
        for fn in kernels:
            name = fn.sym_name.data
            if any(isinstance(o, func.CallOp) and scratch_of.get(o.callee.string_value()) for o in fn.walk()):
                raise _fail(f"@{name} calls a function that needs scratch memory; only entry points may")
            size, parts = _plan_function(fn, {}, {})
            if size == 0:
                continue
            blocks = _blocks(name, callers.get(name, []))
            threaded = any(THREADS_ATTR in c.attributes for c in callers.get(name, []))
            n_args = len(fn.body.block.args)
            position = n_args - 2 if threaded else n_args
            arena = _add_arg(fn, _scratch_type(size * blocks), position)
            stride = None
            if threaded:
                block_index = fn.body.block.args[-2]
                c = arith.ConstantOp(IntegerAttr(size, IndexType()))
                mul = arith.MuliOp(block_index, c.result)
                Rewriter.insert_op([c, mul], InsertPoint.at_start(fn.body.block))
                stride = mul.result
            _rewrite(arena, parts, stride)
            scratch_of[name] = size
            blocks_of[name] = blocks
        for fn in entries:
            size, parts = _plan_function(fn, scratch_of, blocks_of)
            arena = _add_arg(fn, _scratch_type(size), len(fn.body.block.args))
            arena.name_hint = "arena"
            _rewrite(arena, parts, None)
            fn.attributes[ARENA_ATTR] = IntegerAttr(size, i64)
        leftover = sorted({o.name for o in op.walk() if isinstance(o, memref.AllocOp | memref.DeallocOp)})
        if leftover:
            raise _fail(f"could not plan {leftover} (outside any function?)")
