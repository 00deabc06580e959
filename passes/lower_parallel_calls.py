"""lower-parallel-calls: run an `llvm.call` marked `bnnc.threads = N` (and
optionally `bnnc.blocks = B`, default N) as B blocks on a pool of N threads.

The callee's last two parameters are (block index, block count), both i64;
each block computes its share of the work (the kernels partition their
output by block index, so results do not depend on N or on which thread
runs a block).

A function with threaded calls gets one thread pool that outlives its calls:
the pool's state is a zero-initialised internal global `@<fn>.pool`; the
function's entry takes it with `__bnnc_pool_acquire(pool, N)` (N the largest
of its calls; the first call starts the workers, and a call made while
another holds the pool gets null and runs its blocks alone), every return
first calls `__bnnc_pool_release` (the workers go to sleep), and each
threaded call becomes an on-stack array of B argument blocks (8-byte slots:
pointers and i64, the block index filled in per block) and one
`__bnnc_parallel_for(pool, trampoline, blocks, B, block_bytes)`, where the
trampoline `<callee>.thread(ptr) -> ptr` unpacks a block and calls the callee.
The pool functions (their contract in bnnc.passes._parallel_contract, their
bodies and the destructor that joins the workers defined at code generation
by bnnc.parallel_runtime) need only libc's pthread_create / pthread_join /
sched_yield / syscall (futex); a worker that cannot be started leaves its
blocks to the others.
"""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects import llvm
from xdsl.dialects.builtin import IntegerAttr, IntegerType, ModuleOp, i64
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter
from xdsl.utils.exceptions import PassFailedException

from bnnc.passes._parallel_contract import (
    ACQUIRE,
    BLOCKS_ATTR,
    PARALLEL_FOR,
    RELEASE,
    STOP,
    THREADS_ATTR,
    count_error,
    pool_global,
    pool_words,
)

PTR = llvm.LLVMPointerType()


def _const(value: int, typ: Attribute = i64) -> llvm.ConstantOp:
    return llvm.ConstantOp(IntegerAttr(value, typ), typ)


def _declare(module: ModuleOp, name: str, fty: llvm.LLVMFunctionType) -> None:
    if not any(isinstance(op, llvm.FuncOp) and op.sym_name.data == name for op in module.ops):
        module.body.block.add_op(llvm.FuncOp(name, fty, linkage=llvm.LinkageAttr("external")))


def _trampoline(module: ModuleOp, callee: llvm.FuncOp) -> str:
    """`<callee>.thread(ptr args) -> ptr`: unpack the slots, call the callee."""
    name = f"{callee.sym_name.data}.thread"
    if any(isinstance(op, llvm.FuncOp) and op.sym_name.data == name for op in module.ops):
        return name
    block = Block(arg_types=[PTR])
    args = []
    for i, typ in enumerate(callee.function_type.inputs.data):
        gep = llvm.GEPOp(block.args[0], [i], i64, inbounds=True)
        load = llvm.LoadOp(gep.result, i64)
        block.add_ops([gep, load])
        value = load.dereferenced_value
        if isinstance(typ, llvm.LLVMPointerType):
            cast = llvm.IntToPtrOp(value)
            block.add_op(cast)
            value = cast.results[0]
        elif isinstance(typ, IntegerType) and typ.width.data < 64:  # i32 index on 32-bit targets
            narrow = llvm.TruncOp(value, typ)
            block.add_op(narrow)
            value = narrow.results[0]
        args.append(value)
    block.add_op(llvm.CallOp(callee.sym_name.data, *args))
    null = llvm.ZeroOp(result_types=[PTR])
    block.add_ops([null, llvm.ReturnOp(null.res)])
    fn = llvm.FuncOp(name, llvm.LLVMFunctionType([PTR], PTR), linkage=llvm.LinkageAttr("internal"), body=Region(block))
    module.body.block.add_op(fn)
    return name


def _threads_of(op: llvm.CallOp, name: str = THREADS_ATTR) -> int | None:
    attr = op.attributes.get(name)
    if not isinstance(attr, IntegerAttr):
        return None
    callee = op.callee.string_value() if op.callee is not None else "?"
    if (error := count_error(name, attr.value.data, callee)) is not None:
        raise PassFailedException(f"lower-parallel-calls: {error}")
    return attr.value.data


def _callee(module: ModuleOp, op: llvm.CallOp) -> llvm.FuncOp:
    name = op.callee.string_value() if op.callee is not None else None
    for f in module.ops:
        if isinstance(f, llvm.FuncOp) and f.sym_name.data == name:
            return f
    raise PassFailedException(f"lower-parallel-calls: no function @{name}")


def _const_op(ops: list[Operation], value: int, typ: Attribute = i64) -> SSAValue:
    c = _const(value, typ)
    ops.append(c)
    return c.result


def _parallel_call(module: ModuleOp, op: llvm.CallOp, pool: SSAValue, threads: int) -> list[Operation]:
    """The ops replacing a threaded call: `threads` argument blocks (the
    call's bnnc.blocks) and a __bnnc_parallel_for on the pool."""
    callee = _callee(module, op)
    params = callee.function_type.inputs.data
    if len(params) < 2 or any(not isinstance(p, IntegerType) for p in params[-2:]):
        raise PassFailedException(
            f"lower-parallel-calls: @{callee.sym_name.data} must end with (thread, threads) i64 parameters"
        )
    trampoline = _trampoline(module, callee)
    ops: list[Operation] = []
    nslots = len(params)
    blocks = llvm.AllocaOp(_const_op(ops, threads * nslots), i64, alignment=8)
    ops.append(blocks)
    count = _const_op(ops, threads)
    fixed = list(op.args)[:-2]
    for t in range(threads):
        for i, value in enumerate([*fixed, _const_op(ops, t), count]):
            if isinstance(value.type, llvm.LLVMPointerType):
                as_int = llvm.PtrToIntOp(value, i64)
                ops.append(as_int)
                value = as_int.results[0]
            elif isinstance(value.type, IntegerType) and value.type.width.data < 64:
                wide = llvm.SExtOp(value, i64)
                ops.append(wide)
                value = wide.results[0]
            gep = llvm.GEPOp(blocks.res, [t * nslots + i], i64, inbounds=True)
            ops += [gep, llvm.StoreOp(value, gep.result)]
    fn_ptr = llvm.AddressOfOp(trampoline, PTR)
    ops.append(fn_ptr)
    ops.append(llvm.CallOp(PARALLEL_FOR, pool, fn_ptr.result, blocks.res, count, _const_op(ops, nslots * 8)))
    return ops


def _lower_function(module: ModuleOp, fn: llvm.FuncOp) -> None:
    """Run fn's threaded calls on fn's pool, taken for the duration of each call."""
    threaded: list[tuple[llvm.CallOp, int]] = []
    capacity = 1
    for op in list(fn.walk()):
        if isinstance(op, llvm.CallOp) and (threads := _threads_of(op)) is not None:
            blocks = _threads_of(op, BLOCKS_ATTR) or threads
            for name in (THREADS_ATTR, BLOCKS_ATTR):
                op.attributes.pop(name, None)
            if threads > 1:
                threaded.append((op, blocks))
                capacity = max(capacity, threads)
    if not threaded:
        return
    state = pool_global(fn.sym_name.data)
    words = llvm.LLVMArrayType(pool_words(capacity), i64)
    module.body.block.insert_op_before(llvm.GlobalOp(words, state, "internal", alignment=64), fn)
    entry = fn.body.blocks[0]
    setup: list[Operation] = []
    address = llvm.AddressOfOp(state, PTR)
    setup.append(address)
    acquire = llvm.CallOp(ACQUIRE, address.result, _const_op(setup, capacity), return_type=PTR)
    setup.append(acquire)
    entry.insert_ops_before(setup, entry.first_op)
    pool = acquire.returned
    for ret in [op for op in fn.walk() if isinstance(op, llvm.ReturnOp)]:
        ret.parent_block().insert_op_before(llvm.CallOp(RELEASE, pool), ret)
    for op, blocks in threaded:
        Rewriter.replace_op(op, _parallel_call(module, op, pool, blocks), [])


class LowerParallelCallsPass(ModulePass):
    name = "lower-parallel-calls"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        functions = [f for f in op.ops if isinstance(f, llvm.FuncOp) and f.body.blocks]
        if not any(isinstance(c, llvm.CallOp) and _threads_of(c) for f in functions for c in f.walk()):
            return
        _declare(op, ACQUIRE, llvm.LLVMFunctionType([PTR, i64], PTR))
        _declare(op, PARALLEL_FOR, llvm.LLVMFunctionType([PTR, PTR, PTR, i64, i64]))
        _declare(op, RELEASE, llvm.LLVMFunctionType([PTR]))
        _declare(op, STOP, llvm.LLVMFunctionType([PTR]))
        for f in functions:
            _lower_function(op, f)
