"""lower-parallel-calls: run an `llvm.call` marked `bnnc.threads = N` on N threads.

The callee's last two parameters are (thread index, thread count), both i64;
every thread runs the callee on its share of the work (the kernels partition
their output rows by thread index, so results do not depend on N).

The call becomes: an on-stack array of N argument blocks (8-byte slots:
pointers and i64, the thread index filled in per block) and one call of
`__bnnc_parallel_for(trampoline, blocks, N, block_bytes)`, where the
trampoline `<callee>.thread(ptr) -> ptr` unpacks a block and calls the callee.
`__bnnc_parallel_for` (defined by bnnc.parallel_runtime at code generation)
starts N-1 pthreads, runs block 0 on the calling thread, runs inline any
block whose thread could not be created, and joins. It needs only libc's
pthread_create/pthread_join (glibc >= 2.34 has them in libc proper).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import llvm as L
from xdsl.dialects.builtin import IntegerAttr, IntegerType, ModuleOp, i64
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern, op_type_rewrite_pattern
from xdsl.utils.exceptions import PassFailedException

THREADS_ATTR = "bnnc.threads"
PTR = L.LLVMPointerType()


def _const(value: int, typ: Attribute = i64) -> L.ConstantOp:
    return L.ConstantOp(IntegerAttr(value, typ), typ)


def _declare(module: ModuleOp, name: str, fty: L.LLVMFunctionType) -> None:
    if not any(isinstance(op, L.FuncOp) and op.sym_name.data == name for op in module.ops):
        module.body.block.add_op(L.FuncOp(name, fty, linkage=L.LinkageAttr("external")))


def _trampoline(module: ModuleOp, callee: L.FuncOp) -> str:
    """`<callee>.thread(ptr args) -> ptr`: unpack the slots, call the callee."""
    name = f"{callee.sym_name.data}.thread"
    if any(isinstance(op, L.FuncOp) and op.sym_name.data == name for op in module.ops):
        return name
    block = Block(arg_types=[PTR])
    args = []
    for i, typ in enumerate(callee.function_type.inputs.data):
        gep = L.GEPOp(block.args[0], [i], i64, inbounds=True)
        load = L.LoadOp(gep.result, i64)
        block.add_ops([gep, load])
        value = load.dereferenced_value
        if isinstance(typ, L.LLVMPointerType):
            cast = L.IntToPtrOp(value)
            block.add_op(cast)
            value = cast.results[0]
        args.append(value)
    block.add_op(L.CallOp(callee.sym_name.data, *args))
    null = L.ZeroOp(result_types=[PTR])
    block.add_ops([null, L.ReturnOp(null.res)])
    fn = L.FuncOp(name, L.LLVMFunctionType([PTR], PTR), linkage=L.LinkageAttr("internal"), body=Region(block))
    module.body.block.add_op(fn)
    return name


PARALLEL_FOR = "__bnnc_parallel_for"


@dataclass
class ParallelCall(RewritePattern):
    module: ModuleOp

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: L.CallOp, rewriter: PatternRewriter) -> None:
        threads_attr = op.attributes.get(THREADS_ATTR)
        if threads_attr is None:
            return
        assert isinstance(threads_attr, IntegerAttr)
        threads = threads_attr.value.data
        del op.attributes[THREADS_ATTR]
        if threads <= 1:
            return
        callee = self._callee(op)
        params = callee.function_type.inputs.data
        if len(params) < 2 or any(not isinstance(p, IntegerType) for p in params[-2:]):
            raise PassFailedException(
                f"lower-parallel-calls: @{callee.sym_name.data} must end with (thread, threads) i64 parameters"
            )
        trampoline = _trampoline(self.module, callee)
        _declare(self.module, PARALLEL_FOR, L.LLVMFunctionType([PTR, PTR, i64, i64]))
        ops: list[Operation] = []
        nslots = len(params)
        total = _const_op(ops, threads * nslots)
        blocks = L.AllocaOp(total, i64, alignment=8)
        ops.append(blocks)
        count = _const_op(ops, threads)
        fixed = list(op.args)[:-2]
        for t in range(threads):
            for i, value in enumerate([*fixed, _const_op(ops, t), count]):
                if isinstance(value.type, L.LLVMPointerType):
                    as_int = L.PtrToIntOp(value, i64)
                    ops.append(as_int)
                    value = as_int.results[0]
                gep = L.GEPOp(blocks.res, [t * nslots + i], i64, inbounds=True)
                ops += [gep, L.StoreOp(value, gep.result)]
        fn_ptr = L.AddressOfOp(trampoline, PTR)
        ops.append(fn_ptr)
        ops.append(L.CallOp(PARALLEL_FOR, fn_ptr.result, blocks.res, count, _const_op(ops, nslots * 8)))
        rewriter.replace(op, ops, [])

    def _callee(self, op: L.CallOp) -> L.FuncOp:
        name = op.callee.string_value() if op.callee is not None else None
        for f in self.module.ops:
            if isinstance(f, L.FuncOp) and f.sym_name.data == name:
                return f
        raise PassFailedException(f"lower-parallel-calls: no function @{name}")


def _const_op(ops: list[Operation], value: int, typ: Attribute = i64) -> SSAValue:
    c = _const(value, typ)
    ops.append(c)
    return c.result


class LowerParallelCallsPass(ModulePass):
    name = "lower-parallel-calls"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(ParallelCall(op), apply_recursively=False).rewrite_module(op)
