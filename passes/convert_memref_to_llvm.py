"""convert-memref-to-llvm: memref ops (and vector.load/vector.store on memrefs)
-> llvm dialect, with the BARE-POINTER convention.

Why it exists: xDSL 0.74 only has convert-memref-to-ptr + convert-ptr-to-llvm,
which address memory with ptrtoint/add/inttoptr; that hides the access pattern
from LLVM and its loop vectoriser leaves the popcount loops scalar (no NEON
`cnt v.16b`). Every memref bnnc creates is statically shaped, so a memref needs
no descriptor: a memref value is a plain `!llvm.ptr` to its first element
(after the view's offset), and an access is

    getelementptr inbounds <elem>, ptr %p, iN <row-major linear index>
    load / store

with the linear index taken from the memref type's strides (identity layout:
row-major; strided layouts from subviews: their static strides). The accesses
of one block share the leading terms they have in common (a micro-kernel's
loads differ in their last index): 12% fewer ops in BinaryDenseNet-28. iN is the
index width (`index_bitwidth`: 64, or 32 on 32-bit targets, where it is also
size_t, the type of aligned_alloc's and memcpy's sizes).

- memref.alloc   -> `call @aligned_alloc(64, size)` (C11; size rounded up to a
  multiple of the alignment as C11 requires; alignment = max(64, the op's
  alignment)); memref.dealloc -> `call @free`. Both are declared on demand.
- memref.alloca  -> llvm.alloca (alignment = the op's, else 64).
- memref.global  -> llvm.mlir.global over a flat !llvm.array, with the dense
  initializer, `constant` kept, internal linkage for private globals, 64-byte
  aligned; memref.get_global -> llvm.mlir.addressof.
- memref.view (plan-memory's arena slices) -> GEP i8 by the byte shift.
- memref.subview / memref.reinterpret_cast with static offsets -> GEP by the
  linear offset (relative to the source pointer); memref.cast, collapse_shape,
  expand_shape -> the same pointer; memref.copy -> llvm.memcpy (identity
  layouts); memref.assume_alignment is dropped.
- vector.load / vector.store -> GEP + load/store of the vector type with
  alignment `vector_alignment` (option; 0 = the element's natural alignment,
  as MLIR does).

Dynamic shapes, dynamic offsets and non-strided layouts are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdsl.context import Context
from xdsl.dialects import llvm, memref, vector
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    DenseIntOrFPElementsAttr,
    Float16Type,
    Float32Type,
    Float64Type,
    IndexType,
    IntegerAttr,
    IntegerType,
    MemRefType,
    ModuleOp,
    NoneAttr,
    StridedLayoutAttr,
    StringAttr,
    VectorType,
)
from xdsl.ir import Attribute, Block, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.utils.exceptions import PassFailedException

from bnnc.passes._llvm_common import (
    cast_all,
    cast_to_llvm,
    gep_inbounds,
    index_arith,
    index_bitwidth,
    index_constant,
    index_type,
    intrinsic_suffix,
    llvm_load,
    llvm_store,
    llvm_type,
    replace_with_llvm,
    rewrite_walk,
)

PTR = llvm.LLVMPointerType()
ALLOC_ALIGNMENT = 64


def _fail(msg: str) -> PassFailedException:
    return PassFailedException(f"convert-memref-to-llvm: {msg}")


def byte_size(t: Attribute) -> int:
    if isinstance(t, IntegerType):
        return max(1, (t.width.data + 7) // 8)
    if isinstance(t, IndexType):
        return index_type().width.data // 8
    sizes = {Float16Type: 2, Float32Type: 4, Float64Type: 8}
    if type(t) in sizes:
        return sizes[type(t)]
    if isinstance(t, VectorType):
        n = 1
        for d in t.get_shape():
            n *= d
        return n * byte_size(t.element_type)
    raise _fail(f"unsupported element type {t}")


def _static(t: Attribute) -> MemRefType:
    if not isinstance(t, MemRefType):
        raise _fail(f"expected a memref, got {t}")
    if not t.has_static_shape():
        raise _fail(f"{t} is dynamically shaped; bnnc memrefs must be static")
    return t


def strides_of(t: MemRefType) -> tuple[int, ...]:
    if not isinstance(t.layout, NoneAttr | StridedLayoutAttr):
        raise _fail(f"{t}: only identity and strided layouts are supported")
    strides = t.get_strides()
    if strides is None or any(s is None for s in strides):
        raise _fail(f"{t} has dynamic strides")
    return tuple(int(s) for s in strides)  # type: ignore[arg-type]


def _const(value: int) -> llvm.ConstantOp:
    """An index-typed (size_t-sized) constant: strides, sizes, counts."""
    t = index_type()
    return llvm.ConstantOp(IntegerAttr(value, t), t)


# Linear indices already built, by (block, ((index, stride), ...) prefix):
# the accesses of one block share their outer terms (a microkernel's loads
# differ in the last index only), so each access adds only what differs.
AddressPrefixes = dict[tuple[Block, tuple[tuple[SSAValue, int], ...]], SSAValue]


def element_pointer(rewriter: PatternRewriter, base: SSAValue, mtype: MemRefType,
                    indices: list[SSAValue], prefixes: AddressPrefixes | None = None) -> SSAValue:
    """Insert `gep inbounds elem, base, linear(indices)` before the matched op.
    With `prefixes`, the longest prefix of the linear index already built in
    this block (before this op: the conversion walks each block in order) is
    reused, and the new prefixes are recorded."""
    ptr = cast_to_llvm(rewriter, base)
    if not indices:
        return ptr
    terms = tuple(zip(indices, strides_of(mtype), strict=True))
    block = rewriter.insertion_point.block
    linear: SSAValue | None = None
    start = 0
    if prefixes is not None:
        for j in range(len(terms), 0, -1):
            linear = prefixes.get((block, terms[:j]))
            if linear is not None:
                start = j
                break
    idx = cast_all(rewriter, indices[start:])
    for n, (i, (_, s)) in enumerate(zip(idx, terms[start:])):
        term = i
        if s != 1:
            mul = index_arith(llvm.MulOp, i, index_constant(rewriter, s))
            rewriter.insert(mul)
            term = mul.results[0]
        if linear is None:
            linear = term
        else:
            add = index_arith(llvm.AddOp, linear, term)
            rewriter.insert(add)
            linear = add.results[0]
        if prefixes is not None:
            prefixes[(block, terms[: start + n + 1])] = linear
    assert linear is not None
    gep = gep_inbounds(ptr, linear, llvm_type(mtype.element_type))
    rewriter.insert(gep)
    return gep.results[0]


def _declare(module: ModuleOp, name: str, fty: llvm.LLVMFunctionType) -> None:
    for op in module.ops:
        if isinstance(op, llvm.FuncOp | memref.GlobalOp) or op.name == "func.func":
            sym = op.properties.get("sym_name")
            if isinstance(sym, StringAttr) and sym.data == name:
                return
    decl = llvm.FuncOp(name, fty, linkage=llvm.LinkageAttr("external"))
    if module.body.block.first_op is None:
        module.body.block.add_op(decl)
    else:
        Rewriter.insert_op(decl, InsertPoint.at_start(module.body.block))


# Every op class MemrefToLLVM acts on (rewrite_walk gives the others only DCE).
MEMREF_KINDS: tuple[type[Operation], ...] = (
    memref.LoadOp, memref.StoreOp, vector.LoadOp, vector.StoreOp, memref.AllocOp, memref.DeallocOp,
    memref.AllocaOp, memref.GlobalOp, memref.GetGlobalOp, memref.SubviewOp, memref.ReinterpretCastOp,
    memref.ViewOp, memref.CastOp, memref.CollapseShapeOp, memref.ExpandShapeOp, memref.AssumeAlignmentOp,
    memref.CopyOp,
)


@dataclass
class MemrefToLLVM(RewritePattern):
    module: ModuleOp
    vector_alignment: int = 0
    prefixes: AddressPrefixes = field(default_factory=dict)

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if isinstance(op, memref.LoadOp):
            mt = _static(op.memref.type)
            p = element_pointer(rewriter, op.memref, mt, list(op.indices), self.prefixes)
            replace_with_llvm(rewriter, op, [llvm_load(p, llvm_type(mt.element_type))])
        elif isinstance(op, memref.StoreOp):
            mt = _static(op.memref.type)
            p = element_pointer(rewriter, op.memref, mt, list(op.indices), self.prefixes)
            rewriter.replace(op, [llvm_store(cast_to_llvm(rewriter, op.value), p)], [])
        elif isinstance(op, vector.LoadOp):
            mt = _static(op.base.type)
            p = element_pointer(rewriter, op.base, mt, list(op.indices), self.prefixes)
            align = self.vector_alignment or byte_size(mt.element_type)
            replace_with_llvm(rewriter, op, [llvm_load(p, llvm_type(op.result.type), align)])
        elif isinstance(op, vector.StoreOp):
            mt = _static(op.base.type)
            p = element_pointer(rewriter, op.base, mt, list(op.indices), self.prefixes)
            align = self.vector_alignment or byte_size(mt.element_type)
            rewriter.replace(op, [llvm_store(cast_to_llvm(rewriter, op.vector), p, align)], [])
        elif isinstance(op, memref.AllocOp):
            mt = _static(op.memref.type)
            align = max(ALLOC_ALIGNMENT, op.alignment.value.data if op.alignment is not None else 0)
            size = mt.element_count() * byte_size(mt.element_type)
            size = max(align, (size + align - 1) // align * align)
            size_t = index_type()  # index is pointer-sized: size_t's width
            _declare(self.module, "aligned_alloc", llvm.LLVMFunctionType([size_t, size_t], PTR))
            a, s = _const(align), _const(size)
            call = llvm.CallOp("aligned_alloc", a.result, s.result, return_type=PTR)
            replace_with_llvm(rewriter, op, [a, s, call], [call.returned])
        elif isinstance(op, memref.DeallocOp):
            _declare(self.module, "free", llvm.LLVMFunctionType([PTR], None))
            rewriter.replace(op, [llvm.CallOp("free", cast_to_llvm(rewriter, op.memref))], [])
        elif isinstance(op, memref.AllocaOp):
            mt = _static(op.memref.type)
            n = _const(mt.element_count())
            align = op.alignment.value.data if op.alignment is not None else ALLOC_ALIGNMENT
            alloca = llvm.AllocaOp(n.result, llvm_type(mt.element_type), alignment=align)
            replace_with_llvm(rewriter, op, [n, alloca])
        elif isinstance(op, memref.GlobalOp):
            mt = _static(op.type)
            gtype = llvm.LLVMArrayType(mt.element_count(), llvm_type(mt.element_type))
            init = op.initial_value
            value = init if isinstance(init, DenseIntOrFPElementsAttr) else None
            private = op.sym_visibility is not None and op.sym_visibility.data == "private"
            is_decl = init is None
            linkage = "internal" if private and not is_decl else "external"
            align = op.alignment.value.data if op.alignment is not None else ALLOC_ALIGNMENT
            new = llvm.GlobalOp(gtype, op.sym_name, linkage, constant=True if op.constant is not None else None,
                             value=value, alignment=align)
            rewriter.replace(op, [new], [])
        elif isinstance(op, memref.GetGlobalOp):
            replace_with_llvm(rewriter, op, [llvm.AddressOfOp(op.name_, PTR)])
        elif isinstance(op, memref.SubviewOp | memref.ReinterpretCastOp):
            src_t = _static(op.source.type)
            if op.offsets:
                raise _fail(f"{op.name} with dynamic offsets")
            offsets = [int(x) for x in op.static_offsets.iter_values()]
            if any(x == DYNAMIC_INDEX for x in offsets):
                raise _fail(f"{op.name} with dynamic offsets")
            if isinstance(op, memref.SubviewOp):
                offset = sum(o * s for o, s in zip(offsets, strides_of(src_t), strict=True))
            else:
                if src_t.get_offset() not in (0, None):
                    raise _fail("memref.reinterpret_cast of a memref with a non-zero offset")
                offset = offsets[0] if offsets else 0
            ptr = cast_to_llvm(rewriter, op.source)
            if offset == 0:
                replace_with_llvm(rewriter, op, [], [ptr])
            else:
                gep = llvm.GEPOp(ptr, [offset], llvm_type(src_t.element_type), inbounds=True)
                replace_with_llvm(rewriter, op, [gep])
        elif isinstance(op, memref.ViewOp):
            if op.sizes:
                raise _fail("memref.view with dynamic sizes")
            (shift,) = cast_all(rewriter, [op.byte_shift])
            gep = llvm.GEPOp(cast_to_llvm(rewriter, op.source), [llvm.GEP_USE_SSA_VAL], IntegerType(8),
                             ssa_indices=[shift], inbounds=True)
            replace_with_llvm(rewriter, op, [gep])
        elif isinstance(op, memref.CastOp | memref.CollapseShapeOp | memref.ExpandShapeOp):
            replace_with_llvm(rewriter, op, [], [cast_to_llvm(rewriter, op.operands[0])])
        elif isinstance(op, memref.AssumeAlignmentOp):
            replace_with_llvm(rewriter, op, [], [cast_to_llvm(rewriter, op.operands[0])] * len(op.results))
        elif isinstance(op, memref.CopyOp):
            src_t, dst_t = _static(op.source.type), _static(op.destination.type)
            for t in (src_t, dst_t):
                if strides_of(t) != MemRefType.strides_for_shape(t.get_shape()):
                    raise _fail("memref.copy of non-contiguous memrefs")
            n = _const(src_t.element_count() * byte_size(src_t.element_type))
            f = llvm.ConstantOp(IntegerAttr(0, 1), IntegerType(1))
            src, dst = cast_to_llvm(rewriter, op.source), cast_to_llvm(rewriter, op.destination)
            memcpy = f"llvm.memcpy.p0.p0.{intrinsic_suffix(index_type())}"
            call = llvm.CallIntrinsicOp(memcpy, [dst, src, n.result, f.result], [])
            rewriter.replace(op, [n, f, call], [])


@dataclass(frozen=True)
class ConvertMemrefToLLVMPass(ModulePass):
    name = "convert-memref-to-llvm"

    vector_alignment: int = 0
    """Alignment in bytes of vector.load/store (0: the element type's size)."""

    index_bitwidth: int = 64
    """Width of `index` in LLVM: 32 on 32-bit targets (MLIR's index-bitwidth)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        with index_bitwidth(self.index_bitwidth):
            kept = rewrite_walk(op, [MemrefToLLVM(op, self.vector_alignment)], MEMREF_KINDS)
            leftover = sorted({o.name for o in kept if o.dialect_name() == "memref"})
            if leftover:
                raise _fail(f"cannot lower {leftover}")

