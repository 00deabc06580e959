"""remove-dead-arguments: drop the memref parameters a private function never
reads, and the operands its calls pass for them.

convert-bnn-to-loops gives a kernel every operand of its layer, and some
kernels read their own repacked copy of a constant instead (a linear layer
reads its weights transposed into panels): the original weights are then
passed and never read. In one LLVM module, dead-argument elimination drops
them and the global they came from; but the JIT and artifact builds split
the module into parts (bnnc.llvm_split), where a layer function is external
and its parameters must stay, and Bi-Real-Net-18 kept its 2 MB of float
classifier weights twice. Removing the parameters here leaves the global
unused, so it stays internal and LLVM drops it in every build.

A `memref.get_global` that only fed a removed operand is erased with it.
Only private functions all of whose uses are `func.call`s are changed, and
only their memref parameters: a threaded kernel's trailing (thread,
threads) index parameters are lower-parallel-calls' contract, used or not.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func, memref
from xdsl.dialects.builtin import ArrayAttr, MemRefType, ModuleOp, SymbolRefAttr
from xdsl.ir import Attribute, Operation
from xdsl.passes import ModulePass


def _symbol_refs(op: Operation) -> set[str]:
    """Root names of the symbol references among `op`'s attributes and
    properties (exact type tests: isinstance on xDSL's generic attribute
    classes is slow, and this runs on every op of a module)."""
    found: set[str] = set()
    stack: list[Attribute] = [*op.attributes.values(), *op.properties.values()]
    while stack:
        attr = stack.pop()
        kind = type(attr)
        if kind is SymbolRefAttr:
            found.add(attr.root_reference.data)  # type: ignore[attr-defined]
        elif kind is ArrayAttr:
            stack.extend(attr.data)  # type: ignore[attr-defined]
    return found


def _remove(fn: func.FuncOp, dead: list[int], calls: list[func.CallOp]) -> None:
    block = fn.body.blocks[0]
    for i in reversed(dead):
        block.erase_arg(block.args[i])
    if fn.arg_attrs is not None:
        fn.arg_attrs = ArrayAttr([a for i, a in enumerate(fn.arg_attrs.data) if i not in dead])
    fn.update_function_type()
    for call in calls:
        gone = [call.operands[i] for i in dead]
        call.operands = [v for i, v in enumerate(call.operands) if i not in dead]
        for value in set(gone):  # (a value passed for two removed parameters is erased once)
            producer = value.owner
            if isinstance(producer, memref.GetGlobalOp) and not producer.memref.uses:
                producer.parent_block().erase_op(producer)


@dataclass(frozen=True)
class RemoveDeadArgumentsPass(ModulePass):
    name = "remove-dead-arguments"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        calls: dict[str, list[func.CallOp]] = {}
        other_uses: set[str] = set()
        for o in op.walk():
            if isinstance(o, func.CallOp):
                calls.setdefault(o.callee.root_reference.data, []).append(o)
            elif not isinstance(o, func.FuncOp):
                other_uses |= _symbol_refs(o)
        for fn in [f for f in op.ops if isinstance(f, func.FuncOp)]:
            name = fn.sym_name.data
            if fn.sym_visibility is None or fn.sym_visibility.data != "private" or not fn.body.blocks:
                continue
            if name in other_uses:
                continue
            dead = [
                i for i, arg in enumerate(fn.body.blocks[0].args)
                if isinstance(arg.type, MemRefType) and not arg.uses
            ]
            if dead:
                _remove(fn, dead, calls.get(name, []))
