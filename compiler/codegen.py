"""From the llvm dialect to machine code.

- `to_llvmlite_ir`: llvm-dialect module -> LLVM IR text. Built on
  `xdsl.backend.llvm.convert` (whose op converter we reuse), extended here for
  what it lacks: `llvm.extractelement`, `llvm.uitofp` / `llvm.fptosi` /
  `llvm.fptoui` (ops upstream xDSL's llvm dialect does not define, so bnnc
  defines them in `bnnc.dialects.llvm_extra`), function linkage,
  zero-initialised and aligned globals, and the thread pool's bodies.
- `optimize`: parse + verify the IR, set triple/datalayout, run the new pass
  manager at -O3 for the target machine.
- `emit_object` / `emit_assembly`: for any `Target` (cross-compiling works).
- `JitModule`: MCJIT on the host, engine kept alive, `address_of(symbol)`.

The convert-*-to-llvm passes that produce the llvm dialect share their type
conversion in `bnnc.passes._llvm_common`; nothing in passes/ imports this
module (or llvmlite).
"""

from __future__ import annotations

import llvmlite.binding as llvm
import llvmlite.ir as ir
from xdsl.backend.llvm import convert as _xconv
from xdsl.backend.llvm.convert_op import convert_op as _upstream_convert_op
from xdsl.backend.llvm.convert_op import create_constant
from xdsl.backend.llvm.convert_op import declare_intrinsic as _xdeclare_intrinsic
from xdsl.backend.llvm.convert_type import convert_type
from xdsl.dialects import llvm as xllvm
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, ModuleOp, StringAttr
from xdsl.ir import Block, Operation, SSAValue

from bnnc import progress
from bnnc.dialects.llvm_extra import ExtractElementOp, FPToSIOp, FPToUIOp, UIToFPOp
from bnnc.errors import TargetError
from bnnc.machine_code import emit_assembly, emit_object, narrow_size_t, optimize, target_machine  # noqa: F401  (bnnc.codegen's API)
from bnnc.parallel_runtime import define_thread_pool
from bnnc.runtime.signature import llvm_string_literal
from bnnc.target import Target, _init_llvm

# --------------------------------------------------------------------------
# llvm dialect -> LLVM IR text
# --------------------------------------------------------------------------


# The op classes `_convert_op` handles itself (the cases below); whether an
# op's class is one is decided once per class (xDSL op classes are ABCs, so
# each `case` is an ABCMeta isinstance; ~26k ops in Bi-Real-Net-18).
_OWN_CASES = (
    UIToFPOp,
    FPToSIOp,
    FPToUIOp,
    ExtractElementOp,
    xllvm.StoreOp,
    xllvm.ConstantOp,
    xllvm.VectorReduceFAddOp,
    xllvm.VectorReduceFMulOp,
)
_HAS_OWN_CASE: dict[type[Operation], bool] = {}


def _convert_op(
    op: Operation,
    builder: ir.IRBuilder,
    val_map: dict[SSAValue, ir.Value],
    block_map: dict[Block, ir.Block] | None = None,
) -> None:
    own = _HAS_OWN_CASE.get(type(op))
    if own is None:
        own = _HAS_OWN_CASE[type(op)] = issubclass(type(op), _OWN_CASES)
    if not own:  # (no case below would match)
        _upstream_convert_op(op, builder, val_map, block_map)
        return
    match op:
        case UIToFPOp() | FPToSIOp() | FPToUIOp():
            fn = {UIToFPOp: builder.uitofp, FPToSIOp: builder.fptosi, FPToUIOp: builder.fptoui}[type(op)]
            val_map[op.results[0]] = fn(val_map[op.operands[0]], convert_type(op.results[0].type))
        case ExtractElementOp():
            val_map[op.res] = builder.extract_element(val_map[op.vector], val_map[op.position])
        case xllvm.StoreOp():
            # llvmlite still types pointers: retype the address to the stored
            # value's type (a no-op with LLVM's opaque pointers).
            value, ptr = val_map[op.value], val_map[op.ptr]
            if getattr(ptr.type, "pointee", value.type) != value.type:
                ptr = builder.bitcast(ptr, value.type.as_pointer())
            store = builder.store(value, ptr)
            if op.alignment:
                store.align = op.alignment.value.data
        case xllvm.ConstantOp() if isinstance(op.value, DenseIntOrFPElementsAttr) and isinstance(
            op.result.type, xllvm.LLVMArrayType
        ):
            val_map[op.result] = ir.Constant(convert_type(op.result.type), op.value.get_values())
        case xllvm.VectorReduceFAddOp() | xllvm.VectorReduceFMulOp() if (
            op.fastmathFlags is not None and op.fastmathFlags.data
        ):
            # upstream drops the fast-math flags (so `reassoc` is lost and the
            # reduction stays sequential); keep them on the call.
            start, vec = val_map[op.operands[0]], val_map[op.operands[1]]
            kind = "fadd" if isinstance(op, xllvm.VectorReduceFAddOp) else "fmul"
            fnty = ir.FunctionType(start.type, [start.type, vec.type])
            fn = _xdeclare_intrinsic(builder.module, f"llvm.vector.reduce.{kind}", vec.type, fnty)
            val_map[op.results[0]] = builder.call(fn, [start, vec], fastmath=[f.value for f in op.fastmathFlags.data])
        case _:
            _upstream_convert_op(op, builder, val_map, block_map)


class _BytesConstant(ir.Constant):
    """An i8-array constant printed straight from raw bytes (llvmlite formats
    constants element by element, which takes seconds for megabytes of weights)."""

    def __init__(self, data: bytes):
        super().__init__(ir.ArrayType(ir.IntType(8), len(data)), None)
        self._data = data

    def get_reference(self) -> str:
        return llvm_string_literal(self._data)


def _set_bytes_initializer(gvar: ir.GlobalVariable, op: xllvm.GlobalOp) -> None:
    """A dense array global holds the attribute's little-endian bytes; with opaque
    pointers every access names its element type, so an i8 array of the same
    size and alignment is equivalent. Splats are expanded."""
    value = op.value
    assert isinstance(value, DenseIntOrFPElementsAttr)
    data = value.data.data
    n = op.global_type.size.data
    if len(value) == 1 and n != 1:
        data = data * n
    gvar.value_type = ir.ArrayType(ir.IntType(8), len(data))
    gvar.initializer = _BytesConstant(bytes(data))


def _convert_global(op: xllvm.GlobalOp, module: ir.Module) -> None:
    gvar = ir.GlobalVariable(
        module, convert_type(op.global_type), name=op.sym_name.data, addrspace=op.addr_space.value.data
    )
    gvar.linkage = op.linkage.linkage.data
    if op.constant is not None:
        gvar.global_constant = True
    if op.alignment is not None:
        gvar.align = op.alignment.value.data
    if op.value is None:
        if gvar.linkage != "external":
            gvar.initializer = ir.Constant(gvar.value_type, None)  # zeroinitializer
    elif isinstance(op.value, StringAttr):
        raw = op.value.data.encode("utf-8")
        gvar.initializer = ir.Constant(ir.ArrayType(ir.IntType(8), len(raw)), bytearray(raw))
    elif isinstance(op.value, DenseIntOrFPElementsAttr) and isinstance(op.global_type, xllvm.LLVMArrayType):
        _set_bytes_initializer(gvar, op)
    else:
        gvar.initializer = create_constant(op.global_type, op.value)


def _convert_func(op: xllvm.FuncOp, module: ir.Module) -> None:
    """As upstream's `_convert_func`, but converting ops through `_convert_op`."""
    func = module.get_global(op.sym_name.data)
    block_map: dict[Block, ir.Block] = {}
    val_map: dict[SSAValue, ir.Value] = {}
    for i, block in enumerate(op.body.blocks):
        block_map[block] = func.append_basic_block(name=block.name_hint or "")
        if i == 0:
            for arg, llvm_arg in zip(block.args, func.args, strict=True):
                val_map[arg] = llvm_arg
    for i, block in enumerate(op.body.blocks):
        if i and block.args:
            builder = ir.IRBuilder(block_map[block])
            for arg in block.args:
                val_map[arg] = builder.phi(convert_type(arg.type))
    for block in op.body.blocks:
        builder = ir.IRBuilder(block_map[block])
        if block_map[block].instructions:
            builder.position_after(block_map[block].instructions[-1])
        for inner in block.ops:
            _convert_op(inner, builder, val_map, block_map)


def to_llvmlite_ir(module: ModuleOp, triple: str = "", profile_entry: str | None = None) -> str:
    """Translate an llvm-dialect module (only llvm.func / llvm.mlir.global at top
    level) to LLVM IR text (see `to_llvmlite_module`)."""
    return str(to_llvmlite_module(module, triple, profile_entry))


def to_llvmlite_module(module: ModuleOp, triple: str = "", profile_entry: str | None = None) -> ir.Module:
    """Translate an llvm-dialect module to an llvmlite IR module. Upstream's
    per-op converter is reused through a dispatcher that adds the ops it
    lacks; function linkage is applied, and every layer function (internal)
    is `noinline`. `triple` (or the module's llvm.target_triple) picks the
    thread pool's spin-wait hint. With `profile_entry`, that function times
    each of its layer calls (add_layer_timers); without it the output is unchanged."""
    llvm_module = ir.Module()
    triple_attr = module.attributes.get("llvm.target_triple")
    if isinstance(triple_attr, StringAttr):
        llvm_module.triple = triple_attr.data
    globals_: list[xllvm.GlobalOp] = []
    funcs: list[xllvm.FuncOp] = []
    for op in module.ops:
        if isinstance(op, xllvm.GlobalOp):
            globals_.append(op)
        elif isinstance(op, xllvm.FuncOp):
            funcs.append(op)
        else:
            raise NotImplementedError(
                f"to_llvmlite_ir: top-level op '{op.name}' is not in the llvm dialect; "
                "run the convert-*-to-llvm passes and reconcile-unrealized-casts first"
            )
    for g in globals_:
        _convert_global(g, llvm_module)
    for f in funcs:
        _xconv._declare_func(f, llvm_module)
    defined = [f for f in funcs if f.body.blocks]
    for i, f in enumerate(defined):
        progress.item(f"function {i + 1}/{len(defined)} {f.sym_name.data}")
        _convert_func(f, llvm_module)
    for f in funcs:
        fn = llvm_module.get_global(f.sym_name.data)
        linkage = f.linkage.linkage.data
        if f.body.blocks and linkage != "external":
            fn.linkage = linkage
            # One function per layer stays one function: LLVM optimises each
            # on its own (much faster than one inlined giant) and profiles
            # name the layer.
            fn.attributes.add("noinline")
    # (an ir.Module without a triple says "unknown-unknown-unknown", which is truthy)
    define_thread_pool(llvm_module, triple_attr.data if isinstance(triple_attr, StringAttr) else triple)
    if profile_entry is not None:
        add_layer_timers(llvm_module, profile_entry)
    return llvm_module


# Per-layer timing (bnnc profile). The counters are globals the runtime reads:
# PROFILE_NS[i] accumulates the nanoseconds of the entry function's i-th layer
# call, PROFILE_LAYERS holds the count, PROFILE_PARALLEL[i] (i8) is 1 where
# the layer runs on the thread pool.
PROFILE_NS, PROFILE_LAYERS = "__bnnc_profile_ns", "__bnnc_profile_layers"
PROFILE_PARALLEL = "__bnnc_profile_parallel"
_CLOCK_MONOTONIC = 1  # Linux, on x86_64 and AArch64 alike


def _layer_calls(fn: ir.Function) -> list[ir.instructions.CallInstr]:
    """The calls of `fn` that run a layer, in program order: calls of its
    kernels (convert-bnn-to-loops names them `<fn>_<index>_<op>`) and of the
    thread pool's parallel-for; not libc (malloc/free) nor the pool's set-up."""
    from bnnc.passes._parallel_contract import PARALLEL_FOR

    calls = []
    for block in fn.blocks:
        for inst in block.instructions:
            if isinstance(inst, ir.instructions.CallInstr) and isinstance(inst.callee, ir.Function):
                name = inst.callee.name
                if name == PARALLEL_FOR or (name.startswith(f"{fn.name}_") and not inst.callee.is_declaration):
                    calls.append(inst)
    return calls


def add_layer_timers(module: ir.Module, entry: str) -> int:
    """Wrap each layer call of `entry` in clock_gettime(CLOCK_MONOTONIC) reads
    and add the elapsed nanoseconds to its counter; returns the layer count.
    Layer calls follow the bnn ops in order (convert-bnn-to-loops emits one
    call per op, and dedupe-layer-functions keeps every call site), so
    counter i is the i-th non-constant op of the graph (bnnc.summary)."""
    fn = module.get_global(entry)
    calls = _layer_calls(fn)
    i32, i64 = ir.IntType(32), ir.IntType(64)
    counters = ir.GlobalVariable(module, ir.ArrayType(i64, max(len(calls), 1)), name=PROFILE_NS)
    counters.initializer = ir.Constant(counters.value_type, None)
    count = ir.GlobalVariable(module, i64, name=PROFILE_LAYERS)
    count.initializer, count.global_constant = ir.Constant(i64, len(calls)), True
    from bnnc.passes._parallel_contract import PARALLEL_FOR

    flags = [int(call.callee.name == PARALLEL_FOR) for call in calls] or [0]
    parallel = ir.GlobalVariable(module, ir.ArrayType(ir.IntType(8), len(flags)), name=PROFILE_PARALLEL)
    parallel.initializer, parallel.global_constant = ir.Constant(parallel.value_type, flags), True
    timespec = ir.LiteralStructType([i64, i64])
    clock = ir.Function(module, ir.FunctionType(i32, [i32, timespec.as_pointer()]), name="clock_gettime")
    builder = ir.IRBuilder(fn.entry_basic_block)
    builder.position_at_start(fn.entry_basic_block)
    slot = builder.alloca(timespec, name="profile.ts")

    def now() -> ir.Value:
        builder.call(clock, [ir.Constant(i32, _CLOCK_MONOTONIC), slot])
        zero = ir.Constant(i32, 0)
        sec = builder.load(builder.gep(slot, [zero, zero], inbounds=True))
        nsec = builder.load(builder.gep(slot, [zero, ir.Constant(i32, 1)], inbounds=True))
        return builder.add(builder.mul(sec, ir.Constant(i64, 1_000_000_000)), nsec)

    for i, call in enumerate(calls):
        builder.position_before(call)
        start = now()
        builder.position_after(call)
        elapsed = builder.sub(now(), start)
        cell = builder.gep(counters, [ir.Constant(i32, 0), ir.Constant(i32, i)], inbounds=True)
        builder.store(builder.add(builder.load(cell), elapsed), cell)
    return len(calls)


# --------------------------------------------------------------------------
# optimised module -> JIT (optimisation and objects: bnnc.machine_code)
# --------------------------------------------------------------------------


class JitModule:
    """MCJIT-compiles an optimised module for the host. Keep this object alive as
    long as any address from `address_of` is in use. libc symbols the module
    declares (malloc, free, aligned_alloc) resolve against the running process."""

    def __init__(self, mod: llvm.ModuleRef, target: Target | None = None):
        _init_llvm()
        if target is None:
            from bnnc.target import resolve_target

            target = resolve_target("host")
        if target.triple != llvm.get_process_triple():
            raise TargetError(f"cannot JIT for '{target.triple}' on a '{llvm.get_process_triple()}' host")
        self.target = target
        self._tm = target_machine(target, jit=True)
        self._engine = llvm.create_mcjit_compiler(mod, self._tm)
        self._engine.finalize_object()
        self._engine.run_static_constructors()
        self.module = mod

    def address_of(self, symbol: str) -> int:
        addr = self._engine.get_function_address(symbol)
        if not addr:
            addr = self._engine.get_global_value_address(symbol)
        if not addr:
            raise KeyError(f"symbol '{symbol}' not found in the JIT module")
        return addr
