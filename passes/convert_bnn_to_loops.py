"""convert-bnn-to-loops: bufferize a tensor-level bnn function and lower every
bnn op to scf loop nests over memrefs.

The function `@f(tensors...) -> (tensors...)` becomes `@f(inputs..., outputs...)`
over static memrefs (destination-passing style: the caller owns the result
buffers). Constant tensors become private `memref.global`s; intermediates are
`memref.alloc`ed and freed after their last use.

Binary ops pack their input's signs into i64 words along channels (bit 1 = -1),
then accumulate popcount(x xor w) per tap: dot = Cin - 2 * disagreements. Padded
taps read the pad word (+1 = 0, -1 = all valid bits) or, for zero padding, are
skipped. These are the correct reference kernels; fast kernels come from
later tiling/vectorisation passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from xdsl.context import Context
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    FunctionType,
    IndexType,
    IntegerAttr,
    ModuleOp,
    TensorType,
    i64,
)
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException

from bnnc.dialects.dense import to_numpy
from bnnc.passes import _progress
from bnnc.passes._loop_builder import LoopBuilder, memref_shape
from bnnc.passes._lower_binary import BINARY_LOWERINGS, BINARY_THREADED
from bnnc.passes._lower_compare import COMPARE_LOWERINGS, COMPARE_THREADED
from bnnc.passes._lower_float import FLOAT_LOWERINGS, FLOAT_THREADED
from bnnc.passes._lower_float_conv import FLOAT_CONV_LOWERINGS, FLOAT_CONV_THREADED
from bnnc.passes._lower_linalg import LINALG_LOWERINGS, LINALG_THREADED
from bnnc.passes._lower_linear import LINEAR_LOWERINGS, LINEAR_THREADED
from bnnc.passes._lower_math import MATH_LOWERINGS, MATH_THREADED
from bnnc.passes._lower_movement import MOVEMENT_LOWERINGS, MOVEMENT_THREADED
from bnnc.passes._lower_pack import PACK_LOWERINGS, PACK_THREADED
from bnnc.passes._lower_reduce import REDUCE_LOWERINGS, REDUCE_THREADED
from bnnc.passes._lowering import Lowerer, Lowering, WorkOf, memref_of
from bnnc.passes._parallel_contract import BLOCKS_ATTR, THREADS_ATTR

_V = TypeVar("_V")


def _merge(*tables: dict[type[Operation], _V]) -> dict[type[Operation], _V]:
    """One table from the per-family ones; an op in two of them is a bug
    (one entry would silently override the other)."""
    merged: dict[type[Operation], _V] = {}
    for table in tables:
        overlap = merged.keys() & table.keys()
        assert not overlap, f"ops in two lowering tables: {sorted(op.name for op in overlap)}"
        merged.update(table)
    return merged


LOWERINGS: dict[type[Operation], Lowering] = _merge(
    FLOAT_LOWERINGS,
    FLOAT_CONV_LOWERINGS,
    LINEAR_LOWERINGS,
    BINARY_LOWERINGS,
    PACK_LOWERINGS,
    COMPARE_LOWERINGS,
    LINALG_LOWERINGS,
    MATH_LOWERINGS,
    MOVEMENT_LOWERINGS,
    REDUCE_LOWERINGS,
)


def _last_uses(ops: list[Operation]) -> dict[Operation, list[SSAValue]]:
    """For each op, the values whose last use it is."""
    last: dict[SSAValue, Operation] = {}
    for op in ops:
        for v in op.operands:
            last[v] = op
    result: dict[Operation, list[SSAValue]] = {}
    for v, op in last.items():
        result.setdefault(op, []).append(v)
    return result


# Ops whose kernels split their work between threads (via Lowerer.row_range),
# with how much work each is: float MACs, 64-bit popcount steps x 16, or
# elements moved for the memory-bound ops.
THREADED_WORK: dict[type[Operation], WorkOf] = _merge(
    BINARY_THREADED,
    PACK_THREADED,
    FLOAT_CONV_THREADED,
    LINEAR_THREADED,
    FLOAT_THREADED,
    COMPARE_THREADED,
    LINALG_THREADED,
    MATH_THREADED,
    MOVEMENT_THREADED,
    REDUCE_THREADED,
)
# Below this much work (about 10 us) a layer runs on the calling thread alone:
# handing a layer to the thread pool costs a few microseconds
# (bnnc.parallel_runtime). An element of a memory-bound op costs about as
# much as 3 float MACs; Bi-Real-Net-18 on 2 cores ran fastest with this
# threshold (measured between 0.1M and 50M).
MIN_THREADED_WORK = 150_000
# A threaded layer is cut into this many blocks per thread, which the threads
# claim as they go. More blocks would balance better when the host slows one
# thread down, but every block repeats its kernel's setup (padded input rows,
# border fill, an allocation): on Bi-Real-Net-18 with 2 threads, 1 block per
# thread ran 3.9 ms, 2 blocks 4.2 ms, 4 blocks 4.4 ms.
BLOCKS_PER_THREAD = 1


def _worth_threads(op: Operation, min_work: int) -> bool:
    work_of = THREADED_WORK.get(type(op))
    return work_of is not None and work_of(op) >= min_work


def _kernel(lowerer: Lowerer, op: Operation, fn_name: str, args: list[SSAValue], out: SSAValue, num_threads: int) -> None:
    """Lower `op` into its own private function and call it: functions keep
    each CFG small (cheap to verify and to optimise) and name the layer.
    Threaded kernels take (block, blocks) last and compute their block's
    share; their call carries `bnnc.threads` and `bnnc.blocks`, which
    lower-parallel-calls turns into blocks run by a thread pool."""
    threaded = num_threads > 1 and _worth_threads(op, lowerer.thread_min_work)
    arg_types = [a.type for a in args] + [out.type] + ([IndexType(), IndexType()] if threaded else [])
    block = Block(arg_types=arg_types)
    saved, lowerer.lb = lowerer.lb, LoopBuilder(block)
    blocks = num_threads * BLOCKS_PER_THREAD
    if threaded:
        lowerer.thread, lowerer.threads, lowerer.blocks = block.args[-2], block.args[-1], blocks
    try:
        LOWERINGS[type(op)](lowerer, op, list(block.args[: len(args)]), block.args[len(args)])
        lowerer.lb.insert(func.ReturnOp())
    finally:
        lowerer.lb, lowerer.thread, lowerer.threads, lowerer.blocks = saved, None, None, 1
    kernel = func.FuncOp(fn_name, FunctionType.from_lists(arg_types, []), Region(block), visibility="private")
    kernel.location = op.location
    lowerer.module.body.block.add_op(kernel)
    extra = [lowerer.lb.index(0), lowerer.lb.index(blocks)] if threaded else []
    call = func.CallOp(fn_name, [*args, out, *extra], [])
    if threaded:
        call.attributes[THREADS_ATTR] = IntegerAttr(num_threads, i64)
        call.attributes[BLOCKS_ATTR] = IntegerAttr(blocks, i64)
    lowerer.lb.insert(call)


def _lower_function(
    module: ModuleOp,
    fn: func.FuncOp,
    counter: list[int],
    vector_bits: int,
    registers: int,
    num_threads: int,
    thread_min_work: int = MIN_THREADED_WORK,
    popcount_bits: int = 64,
) -> None:
    ftype = fn.function_type
    in_types = [memref_of(t) for t in ftype.inputs.data]
    out_types = [memref_of(t) for t in ftype.outputs.data]
    block = Block(arg_types=[*in_types, *out_types])
    lb = LoopBuilder(block)
    old_block = fn.body.block
    ret = old_block.last_op
    assert isinstance(ret, func.ReturnOp)
    outs = list(block.args[len(in_types) :])
    lowerer = Lowerer(module, lb, {}, {}, counter, vector_bits, registers)
    lowerer.thread_min_work = thread_min_work
    lowerer.popcount_bits = popcount_bits
    for old, new in zip(old_block.args, block.args):
        lowerer.buffers[old] = new
        new.name_hint = old.name_hint

    # A returned value computed by an op is written straight into its output buffer.
    dest: dict[SSAValue, SSAValue] = {}
    for value, out in zip(ret.arguments, outs):
        if isinstance(value.owner, Operation) and not isinstance(value.owner, arith.ConstantOp) and value not in dest:
            dest[value] = out

    body_ops = [op for op in old_block.ops if op is not ret]
    last_uses = _last_uses(body_ops)
    owned: set[SSAValue] = set()
    layers, done = sum(not isinstance(op, arith.ConstantOp) for op in body_ops), 0  # (for the progress line)
    for index, op in enumerate(body_ops):
        if isinstance(op, arith.ConstantOp):
            value = op.value
            if not isinstance(value, DenseIntOrFPElementsAttr):
                raise PassFailedException(
                    f"convert-bnn-to-loops: only dense tensor constants are supported, got {value}"
                )
            array = to_numpy(value)
            lowerer.constants[op.result] = array
            lowerer.buffers[op.result] = lowerer.global_buffer(array)
            continue
        if type(op) not in LOWERINGS:
            raise PassFailedException(f"convert-bnn-to-loops: no lowering for {op.name}")
        result = op.results[0]
        out = dest.get(result)
        if out is None:
            out = lb.alloc(result.type.get_shape(), result.type.element_type)
            owned.add(result)
        if result.name_hint:
            out.name_hint = result.name_hint
        kernel_name = f"{fn.sym_name.data}_{index}_{op.name.split('.')[-1]}"
        done += 1
        _progress.layer(done, layers, kernel_name, op.location)
        _kernel(lowerer, op, kernel_name, [lowerer.buffers[v] for v in op.operands], out, num_threads)
        lowerer.buffers[result] = out
        for dead in last_uses.get(op, []):
            if dead in owned and dead not in ret.arguments:
                lb.dealloc(lowerer.buffers[dead])
    # Outputs not written in place (function arguments, constants, repeats) are copied.
    for value, out in zip(ret.arguments, outs):
        if dest.get(value) is not out:
            src = lowerer.buffers[value]
            with lb.loops(memref_shape(out)) as ivs:
                lb.store(lb.load(src, ivs), out, ivs)
    used = last_uses_values(last_uses)
    for value in owned:
        if value in ret.arguments or value not in used:
            lb.dealloc(lowerer.buffers[value])
    lb.insert(func.ReturnOp())

    new_fn = func.FuncOp(fn.sym_name.data, FunctionType.from_lists([*in_types, *out_types], []), Region(block))
    for name, attr in fn.attributes.items():
        if name not in ("sym_name", "function_type"):
            new_fn.attributes[name] = attr
    new_fn.attributes["bnnc.num_inputs"] = arith.IntegerAttr(len(in_types), i64)
    module.body.block.insert_op_before(new_fn, fn)
    module.body.block.erase_op(fn)


def last_uses_values(last_uses: dict[Operation, list[SSAValue]]) -> set[SSAValue]:
    return {v for values in last_uses.values() for v in values}


@dataclass(frozen=True)
class ConvertBnnToLoopsPass(ModulePass):
    """Options: the target's vector unit, from which the kernels' register
    tiles are chosen (see _microkernel.choose_tile), and the thread count
    of the conv kernels (see lower-parallel-calls)."""

    name = "convert-bnn-to-loops"

    vector_bits: int = 128
    registers: int = 16
    num_threads: int = 1
    thread_min_work: int = MIN_THREADED_WORK
    # Lane width binary kernels accumulate popcounts in (16 on aarch64: see
    # Target.popcount_accumulator_bits; _microkernel.accumulate_popcount).
    popcount_bits: int = 64

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.popcount_bits not in (8, 16, 32, 64):
            raise PassFailedException(f"convert-bnn-to-loops: popcount_bits must be 8, 16, 32 or 64, got {self.popcount_bits}")
        counter: list[int] = []
        for fn in list(op.ops):
            if isinstance(fn, func.FuncOp) and not fn.is_declaration:
                types = [*fn.function_type.inputs.data, *fn.function_type.outputs.data]
                if any(isinstance(t, TensorType) for t in types):
                    _lower_function(
                        op,
                        fn,
                        counter,
                        self.vector_bits,
                        self.registers,
                        self.num_threads,
                        self.thread_min_work,
                        self.popcount_bits,
                    )
