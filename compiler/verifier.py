"""The pass manager's IR verifier: what xDSL's `Operation.verify` checks, in
the same order and with the same errors, at a cost linear in the module.

Why not `module.verify()` itself: after convert-scf-to-cf a function has up
to a few hundred blocks, and xDSL asks `len(region.blocks)` (a walk of the
block list) for the last op of every block and for every empty block; and
every op re-runs its IRDL verification although the ~30k ops of a lowered
Bi-Real-Net-18 come in a few hundred kinds of (op class, operand types,
result types, properties, attributes). Verifying that module took ~1.4 s of
a ~20 s compile.

What is the same: every structural check of `Operation.verify`,
`Block.verify` and `Region.verify` runs on every op, block and region
(erased operands, parent pointers, successors in the same region,
terminators, empty blocks), with the region's block count taken once per
region instead of once per question (the region does not change while it is
verified). An op class that overrides `verify` itself (llvm.trunc, zext,
sext) is verified by its own method. Every op's `verify_` runs, except for an
op whose class is in `_CONTEXT_FREE` and whose key (class, operand types,
result types, properties, attributes) an earlier op of this verification
already passed with: for those classes verification reads nothing else
(no regions, no successors, traits that check nothing or types only, custom
verifiers that read only types and properties), so it would pass again.
The first op that fails is the same op as under `module.verify()` (an
earlier op with its key would have failed first), and the error is raised
the same way (`emit_error`), so the message is the same.
"""

from __future__ import annotations

from collections.abc import Hashable

from xdsl.dialects import llvm
from xdsl.ir import Block, ErasedSSAValue, Operation, Region
from xdsl.irdl.operations import IRDLOperation
from xdsl.traits import IsTerminator, NoMemoryEffect, NoTerminator, Pure, SameOperandsAndResultType
from xdsl.utils.exceptions import VerifyException

from bnnc.dialects import llvm_extra

# Traits whose `verify` reads nothing (Pure, NoMemoryEffect) or only the op's
# operand and result types (SameOperandsAndResultType).
_TYPE_ONLY_TRAITS = (Pure, NoMemoryEffect, SameOperandsAndResultType)
# Custom verifiers read checked to read only the op's types and properties:
# getelementptr (its indices against elem_type), icmp (vector operands give
# vector results), shufflevector (the mask within both vectors),
# call_intrinsic (the name starts with "llvm.").
_AUDITED_VERIFIERS = (llvm.GEPOp, llvm.ICmpOp, llvm.ShuffleVectorOp, llvm.CallIntrinsicOp)


def _context_free(cls: type[Operation]) -> bool:
    """Whether `cls`'s verification depends only on its op's key: an IRDL op
    without regions or successors, whose traits are type-only and whose
    `verify_` is IRDL's alone or one of the audited ones."""
    if not issubclass(cls, IRDLOperation) or cls.verify is not Operation.verify:
        return False
    op_def = cls.get_irdl_definition()
    if op_def.regions or op_def.successors:
        return False
    if not all(isinstance(t, _TYPE_ONLY_TRAITS) for t in op_def.traits):
        return False
    verify_ = cls.__dict__.get("verify_")
    cells = dict(zip(verify_.__code__.co_freevars, verify_.__closure__ or (), strict=True)) if verify_ else {}
    custom = cells["custom_verify"].cell_contents if "custom_verify" in cells else None
    return custom is Operation.verify_ or cls in _AUDITED_VERIFIERS


# The op classes of the llvm dialect (xDSL's and bnnc's extra ops) whose
# verification is a function of their key; decided once, at import.
_CONTEXT_FREE: frozenset[type[Operation]] = frozenset(
    c
    for module in (llvm, llvm_extra)
    for c in vars(module).values()
    if isinstance(c, type)
    and issubclass(c, IRDLOperation)
    and c.__module__ == module.__name__
    and isinstance(getattr(c, "name", None), str)
    and _context_free(c)
)


def verify_module(module: Operation) -> None:
    """Raise what `module.verify()` raises (VerifyException, or ValueError
    for a broken parent pointer or an erased operand), at linear cost."""
    _Verifier().op(module)


class _Verifier:
    def __init__(self) -> None:
        self.passed: set[Hashable] = set()

    def op(self, op: Operation, holder: Region | None = None, region_blocks: int = 0) -> None:
        """`op.verify()`; `region_blocks` is the block count of `holder`,
        the region being verified whose block holds `op`."""
        if type(op).verify is not Operation.verify:
            op.verify()
            return
        for operand in op.operands:
            if isinstance(operand, ErasedSSAValue):
                raise ValueError("Erased SSA value is used by the operation")  # noqa: TRY004 (as xDSL)
        parent_block = op.parent
        parent_region = None if parent_block is None else parent_block.parent
        if op.successors:
            if parent_block is None or parent_region is None:
                raise VerifyException(
                    f"Operation {op.name} with block successors does not belong to a block or a region"
                )
            if parent_block.last_op is not op:
                raise VerifyException(f"Operation {op.name} with block successors must terminate its parent block")
            for succ in op.successors:
                if succ.parent != parent_block.parent:
                    raise VerifyException(f"Operation {op.name} is branching to a block of a different region")
        if parent_region is not None and parent_region is not holder:  # (a broken parent pointer)
            region_blocks = sum(1 for _ in parent_region.blocks)
        if parent_block is not None and parent_region is not None and parent_block.last_op == op:
            if region_blocks == 1:
                parent_op = parent_region.parent
                if parent_op is not None and not parent_op.has_trait(NoTerminator) and not op.has_trait(IsTerminator):
                    raise VerifyException(
                        f"Operation {op.name} terminates block in single-block region but is not a terminator"
                    )
            elif region_blocks > 1 and not op.has_trait(IsTerminator):
                raise VerifyException(
                    f"Operation {op.name} terminates block in multi-block region but is not a terminator"
                )
        for region in op.regions:
            self.region(region)
        if not self.known(op):
            try:
                op.verify_()
            except VerifyException as err:
                op.emit_error(f"Operation does not verify: {err}", err)
            self.remember(op)

    def region(self, region: Region) -> None:
        """`region.verify()`."""
        count = sum(1 for _ in region.blocks)
        for block in region.blocks:
            self.block(block, region, count)
            if block.parent != region:
                raise ValueError("Parent pointer of block does not refer to containing region")

    def block(self, block: Block, region: Region, region_blocks: int) -> None:
        """`block.verify()` in `region` of `region_blocks` blocks."""
        for operation in block.ops:
            if operation.parent != block:
                raise ValueError("Parent pointer of operation does not refer to containing region")
            self.op(operation, region, region_blocks)
        if block.first_op is None and (region_parent := block.parent) is not None:
            if region_parent is not region:  # (a broken parent pointer)
                region_blocks = sum(1 for _ in region_parent.blocks)
            parent_op = region_parent.parent
            if parent_op is not None and region_blocks == 1 and not parent_op.has_trait(NoTerminator):
                raise VerifyException(
                    f"Operation {parent_op.name} contains empty block in "
                    "single-block region that expects at least a terminator"
                )

    def known(self, op: Operation) -> bool:
        """Whether an op with `op`'s key already passed `verify_`. First by
        the identity of the key's attributes (they live in the module, which
        does not change while it is verified, so equal ids are the same
        attributes), then by their values (whose hashes are recomputed on
        every call: most ops share their attribute objects)."""
        if type(op) not in _CONTEXT_FREE:
            return False
        if _identity_key(op) in self.passed:
            return True
        key = _value_key(op)
        if key is None or key not in self.passed:
            return False
        self.passed.add(_identity_key(op))
        return True

    def remember(self, op: Operation) -> None:
        """Note that `op` passed `verify_`."""
        if type(op) in _CONTEXT_FREE:
            self.passed.add(_identity_key(op))
            key = _value_key(op)
            if key is not None:
                self.passed.add(key)


def _identity_key(op: Operation) -> Hashable:
    return (
        "id",
        type(op),
        tuple(id(v.type) for v in op.operands),
        tuple(id(r.type) for r in op.results),
        tuple((k, id(v)) for k, v in op.properties.items()),
        tuple((k, id(v)) for k, v in op.attributes.items()),
    )


def _value_key(op: Operation) -> Hashable | None:
    """What verifying `op` reads (its class is context-free), or None when
    an attribute is unhashable (then it is always verified)."""
    key = (
        type(op),
        tuple(v.type for v in op.operands),
        tuple(r.type for r in op.results),
        tuple(op.properties.items()),
        tuple(op.attributes.items()),
    )
    try:
        hash(key)
    except TypeError:
        return None
    return key
