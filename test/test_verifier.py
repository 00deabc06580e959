"""bnnc's pass-manager verifier (compiler/verifier.py) against xDSL's
`Operation.verify`: on a lowered model and on broken copies of it, both
accept the same modules and raise the same exception with the same message
(the fast verifier must catch every broken lowering the slow one catches)."""

from __future__ import annotations

import bnn_models as bm
import pytest
from xdsl.dialects import llvm
from xdsl.dialects.builtin import DenseArrayBase, IntegerType, ModuleOp, StringAttr, i32
from xdsl.ir import Block, ErasedSSAValue, Operation

from bnnc.driver import CompileOptions, import_model, lower
from bnnc.verifier import _CONTEXT_FREE, verify_module


@pytest.fixture(scope="module")
def lowered() -> ModuleOp:
    model, x = bm.make_odd_shapes()
    module = import_model(model.eval(), (x,))
    lower(module, CompileOptions(target="x86_64"), "llvm")
    return module


def outcome(check, module: ModuleOp) -> tuple[str, str] | None:
    try:
        check(module)
    except Exception as e:  # noqa: BLE001 (the comparison is the point)
        return type(e).__name__, str(e)
    return None


def assert_same(module: ModuleOp, expect_error: bool = True) -> None:
    want = outcome(lambda m: m.verify(), module)
    got = outcome(verify_module, module)
    assert got == want
    assert (want is not None) == expect_error


def ops_of(module: ModuleOp, kind: type[Operation], n: int = 3) -> list[Operation]:
    """The first, middle and last op of `kind` (the last has the key of
    earlier ones: the verifier's memo must not hide its breakage)."""
    found = [o for o in module.walk() if isinstance(o, kind)]
    assert found, kind
    picks = [found[0], found[len(found) // 2], found[-1]]
    return picks[:n]


def test_lowered_module_verifies(lowered: ModuleOp):
    assert_same(lowered, expect_error=False)
    # the memo is used: the lowered module has many ops of the context-free kinds
    assert sum(type(o) in _CONTEXT_FREE for o in lowered.walk()) > 1000


def mutants(module: ModuleOp):
    """(name, mutate) pairs; each mutate breaks its own clone of the module."""

    def retype_result(kind):
        def m(mod):
            for op in ops_of(mod, kind):
                op.results[0]._type = IntegerType(7)  # a broken lowering's type

        return m

    def swap_operand(kind, index):
        def m(mod):
            bad = next(o for o in mod.walk() if isinstance(o, llvm.ConstantOp) and o.result.type == i32)
            ops_of(mod, kind, 1)[0].operands[index] = bad.result

        return m

    def erase_operand(mod):
        op = ops_of(mod, llvm.AddOp, 1)[0]
        op.operands[0] = ErasedSSAValue(op.operands[0].type, op.operands[0])

    def drop_terminator(multi: bool):
        def m(mod):
            for f in mod.walk():
                if isinstance(f, llvm.FuncOp) and f.body.blocks and (len(f.body.blocks) > 1) == multi:
                    f.body.blocks[0].last_op.detach()
                    return
            raise AssertionError("no such function")

        return m

    def add_after_terminator(mod):
        # a copy of a verified llvm.add (same key as ops verified before it) in a bad place
        f = next(f for f in mod.walk() if isinstance(f, llvm.FuncOp) and len(f.body.blocks) > 1)
        add = next(o for o in f.walk() if isinstance(o, llvm.AddOp))
        f.body.blocks[-1].add_op(add.clone())

    def empty_block(mod):
        f = next(f for f in mod.walk() if isinstance(f, llvm.FuncOp) and len(f.body.blocks) == 1)
        for op in reversed(list(f.body.blocks[0].ops)):
            op.detach()

    def foreign_successor(mod):
        funcs = [f for f in mod.walk() if isinstance(f, llvm.FuncOp) and len(f.body.blocks) > 1]
        br = next(o for o in funcs[0].walk() if isinstance(o, llvm.BrOp))
        br.successors[0] = funcs[-1].body.blocks[1] if len(funcs) > 1 else Block()

    def gep_index(mod):
        gep = ops_of(mod, llvm.GEPOp)[-1]
        gep.properties["rawConstantIndices"] = DenseArrayBase.from_list(i32, [0, 5])

    def shuffle_mask(mod):
        op = ops_of(mod, llvm.ShuffleVectorOp)[-1]
        op.properties["mask"] = DenseArrayBase.from_list(i32, [999] * len(op.mask.get_values()))

    def intrinsic_name(mod):
        op = ops_of(mod, llvm.CallIntrinsicOp)[-1]
        op.properties["intrin"] = StringAttr("ctpop")

    def stray_property(mod):
        op = ops_of(mod, llvm.MulOp)[-1]
        op.properties["bogus"] = StringAttr("x")

    def parent_pointer(mod):
        f = next(f for f in mod.walk() if isinstance(f, llvm.FuncOp) and len(f.body.blocks) > 1)
        f.body.blocks[1].parent = next(g for g in mod.walk() if isinstance(g, llvm.FuncOp) and g is not f).body

    return [
        ("add result type", retype_result(llvm.AddOp)),
        ("load result type", retype_result(llvm.LoadOp)),
        ("icmp result type", retype_result(llvm.ICmpOp)),
        ("mul operand", swap_operand(llvm.MulOp, 1)),
        ("gep operand", swap_operand(llvm.GEPOp, 0)),
        ("store operand", swap_operand(llvm.StoreOp, 1)),
        ("erased operand", erase_operand),
        ("no terminator, one block", drop_terminator(False)),
        ("no terminator, many blocks", drop_terminator(True)),
        ("op after terminator", add_after_terminator),
        ("empty block", empty_block),
        ("branch to another region", foreign_successor),
        ("gep index", gep_index),
        ("shuffle mask", shuffle_mask),
        ("intrinsic name", intrinsic_name),
        ("stray property", stray_property),
        ("parent pointer", parent_pointer),
    ]


@pytest.mark.parametrize("index", range(17))
def test_broken_module_same_error(lowered: ModuleOp, index: int):
    _, mutate = mutants(lowered)[index]
    module = lowered.clone()
    mutate(module)
    assert_same(module)


def test_every_mutant_listed(lowered: ModuleOp):
    assert len(mutants(lowered)) == 17
