"""From the llvm dialect to machine code.

- `to_llvmlite_ir`: llvm-dialect module -> LLVM IR text. Built on
  `xdsl.backend.llvm.convert` (whose op converter we reuse), extended here for
  what it lacks: `llvm.extractelement`, `llvm.uitofp` / `llvm.fptosi` /
  `llvm.fptoui` (ops upstream xDSL's llvm dialect does not define, so bnnc
  defines them below), function linkage, zero-initialised and aligned globals.
- `optimize`: parse + verify the IR, set triple/datalayout, run the new pass
  manager at -O3 for the target machine.
- `emit_object` / `emit_assembly`: for any `Target` (cross-compiling works).
- `JitModule`: MCJIT on the host, engine kept alive, `address_of(symbol)`.

This module also holds the few pieces the convert-*-to-llvm passes share (the
type mapping of bnnc's ABI and the cast helpers), because they are the
backend's contract: `index` is i64 and every memref is a bare `!llvm.ptr`.
"""

from __future__ import annotations

from collections.abc import Sequence

import llvmlite.binding as llvm
import llvmlite.ir as ir
from xdsl.backend.llvm import convert as _xconv
from xdsl.backend.llvm.convert_op import convert_op as _upstream_convert_op
from xdsl.backend.llvm.convert_op import create_constant
from xdsl.backend.llvm.convert_op import declare_intrinsic as _xdeclare_intrinsic
from xdsl.backend.llvm.convert_type import convert_type
from xdsl.dialects import llvm as xllvm
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    IndexType,
    IntegerType,
    MemRefType,
    ModuleOp,
    StringAttr,
    UnrealizedConversionCastOp,
    VectorType,
)
from xdsl.ir import Attribute, Block, Operation, SSAValue
from xdsl.irdl import IRDLOperation, irdl_op_definition, operand_def, result_def, traits_def
from xdsl.pattern_rewriter import PatternRewriter
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.traits import NoMemoryEffect

from bnnc.errors import TargetError
from bnnc.parallel_runtime import define_thread_pool
from bnnc.target import Target, _init_llvm

# --------------------------------------------------------------------------
# llvm-dialect ops upstream xDSL 0.74 lacks (MLIR names and semantics).
# --------------------------------------------------------------------------


@irdl_op_definition
class UIToFPOp(xllvm.GenericCastOp):
    name = "llvm.uitofp"


@irdl_op_definition
class FPToSIOp(xllvm.GenericCastOp):
    name = "llvm.fptosi"


@irdl_op_definition
class FPToUIOp(xllvm.GenericCastOp):
    name = "llvm.fptoui"


@irdl_op_definition
class ExtractElementOp(IRDLOperation):
    """`llvm.extractelement %vec[%idx : i64] : vector<8xi64>` (MLIR's op)."""

    name = "llvm.extractelement"
    vector = operand_def(VectorType)
    position = operand_def(IntegerType)
    res = result_def(Attribute)
    traits = traits_def(NoMemoryEffect())
    assembly_format = "$vector `[` $position `:` type($position) `]` attr-dict `:` type($vector) `->` type($res)"

    def __init__(self, vector: SSAValue | Operation, position: SSAValue | Operation):
        vt = SSAValue.get(vector).type
        assert isinstance(vt, VectorType)
        super().__init__(operands=[vector, position], result_types=[vt.element_type])


EXTRA_LLVM_OPS: tuple[type[IRDLOperation], ...] = (UIToFPOp, FPToSIOp, FPToUIOp, ExtractElementOp)

# --------------------------------------------------------------------------
# The type mapping shared by the convert-*-to-llvm passes.
# --------------------------------------------------------------------------

I64 = IntegerType(64)


def llvm_type(t: Attribute) -> Attribute:
    """The llvm-dialect type of a builtin type under bnnc's conventions:
    index -> i64, memref<...> -> !llvm.ptr (bare pointer), vector<..xindex> -> vector<..xi64>."""
    if isinstance(t, IndexType):
        return I64
    if isinstance(t, MemRefType):
        return xllvm.LLVMPointerType()
    if isinstance(t, VectorType) and isinstance(t.element_type, IndexType):
        return VectorType(I64, t.get_shape(), t.scalable_dims)
    return t


def cast_to_llvm(
    rewriter: PatternRewriter | None, value: SSAValue, before: Operation | None = None, want: Attribute | None = None
) -> SSAValue:
    """`value` as its llvm type: itself, the input of the cast that produced it,
    or a new `builtin.unrealized_conversion_cast` inserted before the matched op
    (or before `before`). reconcile-unrealized-casts removes the pairs at the end."""
    want = want if want is not None else llvm_type(value.type)
    if value.type == want:
        return value
    owner = value.owner
    if isinstance(owner, UnrealizedConversionCastOp) and len(owner.inputs) == 1 and owner.inputs[0].type == want:
        return owner.inputs[0]
    cast = UnrealizedConversionCastOp.get([value], [want])
    if rewriter is not None and before is None:
        rewriter.insert(cast)
    else:
        assert before is not None
        Rewriter.insert_op(cast, InsertPoint.before(before))
    return cast.results[0]


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
            back = UnrealizedConversionCastOp.get([new], [old.type])
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
        cast = UnrealizedConversionCastOp.get([new_arg], [old_type])
        if block.first_op is None:
            block.add_op(cast)
        else:
            Rewriter.insert_op(cast, InsertPoint.at_start(block))
        new_arg.replace_uses_with_if(cast.results[0], lambda use: use.operation is not cast)


def intrinsic_suffix(t: Attribute) -> str:
    """LLVM's overload suffix: i64, f32, v8i64, v4f32."""
    from xdsl.dialects.builtin import Float16Type, Float32Type, Float64Type

    if isinstance(t, VectorType):
        return f"v{t.get_shape()[0]}{intrinsic_suffix(t.element_type)}"
    if isinstance(t, IntegerType):
        return f"i{t.width.data}"
    if isinstance(t, IndexType):
        return "i64"
    names = {Float16Type: "f16", Float32Type: "f32", Float64Type: "f64"}
    if type(t) in names:
        return names[type(t)]
    raise NotImplementedError(f"no LLVM intrinsic suffix for {t}")


# --------------------------------------------------------------------------
# llvm dialect -> LLVM IR text
# --------------------------------------------------------------------------


def _convert_op(
    op: Operation,
    builder: ir.IRBuilder,
    val_map: dict[SSAValue, ir.Value],
    block_map: dict[Block, ir.Block] | None = None,
) -> None:
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

    _ESCAPES = [chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:02X}" for b in range(256)]

    def __init__(self, data: bytes):
        super().__init__(ir.ArrayType(ir.IntType(8), len(data)), None)
        self._data = data

    def get_reference(self) -> str:
        return f'c"{"".join(map(self._ESCAPES.__getitem__, self._data))}"'


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


def to_llvmlite_ir(module: ModuleOp, triple: str = "") -> str:
    """Translate an llvm-dialect module (only llvm.func / llvm.mlir.global at top
    level) to LLVM IR text. Upstream's per-op converter is reused through a
    dispatcher that adds the ops it lacks; function linkage is applied.
    `triple` (or the module's llvm.target_triple) picks the thread pool's
    spin-wait hint."""
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
    for f in funcs:
        if f.body.blocks:
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
    define_thread_pool(llvm_module, llvm_module.triple or triple)
    return str(llvm_module)


# --------------------------------------------------------------------------
# LLVM IR -> optimised module -> object / assembly / JIT
# --------------------------------------------------------------------------


def _target_machine(target: Target, *, opt_level: int = 3, jit: bool = False) -> llvm.TargetMachine:
    _init_llvm()
    try:
        t = llvm.Target.from_triple(target.triple)
    except RuntimeError as e:
        raise TargetError(f"LLVM has no backend for triple '{target.triple}': {e}") from e
    return t.create_target_machine(
        cpu=target.cpu,
        features=target.features,
        opt=opt_level,
        reloc="pic",
        codemodel="jitdefault" if jit else "default",
        jit=jit,
    )


def optimize(ir_text: str, target: Target, *, opt_level: int = 3) -> llvm.ModuleRef:
    """Parse and verify `ir_text`, set the target's triple and data layout, and
    run LLVM's new-pass-manager pipeline at `opt_level` for the target machine."""
    _init_llvm()
    mod = llvm.parse_assembly(ir_text)
    mod.verify()
    tm = _target_machine(target, opt_level=opt_level)
    mod.triple = target.triple
    mod.data_layout = str(tm.target_data)
    if opt_level > 0:
        pto = llvm.PipelineTuningOptions(speed_level=min(opt_level, 3))
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
    mod.verify()
    return mod


def emit_object(mod: llvm.ModuleRef, target: Target) -> bytes:
    """A relocatable (PIC) object file for `target`."""
    return _target_machine(target).emit_object(mod)


def emit_assembly(mod: llvm.ModuleRef, target: Target) -> str:
    """Assembly text for `target` (AT&T syntax on x86)."""
    return _target_machine(target).emit_assembly(mod)


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
        self._tm = _target_machine(target, jit=True)
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
