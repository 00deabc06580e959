"""dedupe-layer-functions: merge kernel functions that differ only in the
constants they read.

convert-bnn-to-loops gives every layer its own private function, and the
layer's weights, thresholds and tables are `memref.global`s that function
reads with `memref.get_global`. Many layers of a network are the same kernel
on other constants (Bi-Real-Net-18: 12 of its 16 binary convs share 4
shapes; its adds and packs repeat too), and every copy costs compile time in
each later pass and in LLVM. This pass keeps one function per group of
kernels identical up to the globals they reference, turns those globals into
parameters, and has every call site pass its own layer's globals.

The lifted parameters go after the kernel's memref parameters and before any
trailing `index` parameters, so a threaded kernel still ends with
(thread, threads) as lower-parallel-calls expects. Call attributes (such as
`bnnc.threads`) and locations stay on the calls; the kept function keeps its
name and location. Functions with no twin are left untouched.

Assumes what convert-bnn-to-loops produces: private functions are only used
through `func.call`.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func, memref
from xdsl.dialects.builtin import IndexType, ModuleOp, SymbolRefAttr
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass


@dataclass
class _Kernel:
    """A candidate function, its structural key, and the globals it reads
    (names and types in order of first appearance)."""

    fn: func.FuncOp
    key: Hashable
    globals: list[tuple[str, Attribute]]


class _Fingerprint:
    """A hashable description of a function body: ops, types, attributes and
    use-def edges, with SSA values and blocks numbered by position and global
    names by order of first appearance (so only which globals are used where
    matters, not their names)."""

    def __init__(self) -> None:
        self.values: dict[SSAValue, int] = {}
        self.blocks: dict[Block, int] = {}
        self.globals: dict[str, tuple[int, Attribute]] = {}
        self.items: list[Hashable] = []

    def region(self, region: Region) -> None:
        self.items.append(("region", len(region.blocks)))
        for block in region.blocks:
            self.blocks[block] = len(self.blocks)
        for block in region.blocks:
            for arg in block.args:
                self.values[arg] = len(self.values)
            self.items.append(("block", tuple(arg.type for arg in block.args)))
            for op in block.ops:
                self.op(op)
            self.items.append(("end",))

    def op(self, op: Operation) -> None:
        properties: list[tuple[str, Hashable]] = sorted(op.properties.items())
        if isinstance(op, memref.GetGlobalOp):
            name = op.name_.string_value()
            index, _ = self.globals.setdefault(name, (len(self.globals), op.memref.type))
            properties = [("name", ("global", index))]
        self.items.append(
            (
                op.name,
                tuple(self.values[v] for v in op.operands),
                tuple(r.type for r in op.results),
                tuple(properties),
                tuple(sorted(op.attributes.items())),
                tuple(self.blocks[b] for b in op.successors),
            )
        )
        for result in op.results:
            self.values[result] = len(self.values)
        for region in op.regions:
            self.region(region)


def _is_private(fn: func.FuncOp) -> bool:
    return fn.sym_visibility is not None and fn.sym_visibility.data == "private"


def _kernel(fn: func.FuncOp) -> _Kernel:
    fp = _Fingerprint()
    fp.region(fn.body)
    header = (
        tuple(sorted((k, v) for k, v in fn.properties.items() if k != "sym_name")),
        tuple(sorted(fn.attributes.items())),
    )
    globals_ = [(name, typ) for name, (_, typ) in fp.globals.items()]
    return _Kernel(fn, (header, tuple(fp.items)), globals_)


def _lift_position(fn: func.FuncOp) -> int:
    """Where the lifted parameters go: before the trailing index parameters."""
    inputs = fn.function_type.inputs.data
    position = len(inputs)
    while position > 0 and isinstance(inputs[position - 1], IndexType):
        position -= 1
    return position


def _lift_globals(kept: _Kernel, position: int) -> None:
    """Replace the kept function's get_global ops by new parameters."""
    block = kept.fn.body.blocks[0]
    params = {name: block.insert_arg(typ, position + i) for i, (name, typ) in enumerate(kept.globals)}
    for op in list(kept.fn.walk()):
        if isinstance(op, memref.GetGlobalOp):
            op.memref.replace_all_uses_with(params[op.name_.string_value()])
            op.parent_block().erase_op(op)
    kept.fn.update_function_type()


def _redirect(call: func.CallOp, kernel: _Kernel, kept_name: str, position: int) -> None:
    """Call the kept function, passing this layer's globals."""
    loads = [memref.GetGlobalOp(name, typ) for name, typ in kernel.globals]
    call.parent_block().insert_ops_before(loads, call)
    args = list(call.arguments)
    call.operands = [*args[:position], *(load.memref for load in loads), *args[position:]]
    call.callee = SymbolRefAttr(kept_name)


@dataclass(frozen=True)
class DedupeLayerFunctionsPass(ModulePass):
    name = "dedupe-layer-functions"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        groups: dict[Hashable, list[_Kernel]] = {}
        for fn in op.ops:
            if isinstance(fn, func.FuncOp) and not fn.is_declaration and _is_private(fn):
                kernel = _kernel(fn)
                groups.setdefault(kernel.key, []).append(kernel)
        groups = {key: kernels for key, kernels in groups.items() if len(kernels) > 1}
        if not groups:
            return

        calls: dict[str, list[func.CallOp]] = {}
        for call in op.walk():
            if isinstance(call, func.CallOp):
                calls.setdefault(call.callee.string_value(), []).append(call)

        for kernels in groups.values():
            kept = kernels[0]
            kept_name = kept.fn.sym_name.data
            position = _lift_position(kept.fn)
            for kernel in kernels:
                for call in calls.get(kernel.fn.sym_name.data, []):
                    _redirect(call, kernel, kept_name, position)
            _lift_globals(kept, position)
            for kernel in kernels[1:]:
                op.body.block.erase_op(kernel.fn)
