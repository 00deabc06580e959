"""bnnc drives the llvm stage's rewrites itself, to save compile time
(`_llvm_common.rewrite_walk` for convert-memref/vector/arith-to-llvm, its own
convert-scf-to-cf and reconcile-unrealized-casts over xDSL's patterns); each
must leave exactly the IR xDSL's pattern walker leaves. This runs the llvm
stage both ways on the loop IR of real models, pass by pass, and compares
the printed IR after every pass."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from bnn_models import make_binary_mlp, make_odd_shapes
from xdsl.dialects.builtin import ModuleOp
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriteWalker, RewritePattern
from xdsl.transforms.convert_scf_to_cf import ConvertScfToCf
from xdsl.transforms.reconcile_unrealized_casts import ReconcileUnrealizedCastsPass

from bnnc.context import make_context
from bnnc.driver import CompileOptions, import_model, lower
from bnnc.passes._llvm_common import index_bitwidth
from bnnc.passes.convert_arith_to_llvm import ArithToLLVM, ConstantToLLVM
from bnnc.passes.convert_memref_to_llvm import MemrefToLLVM
from bnnc.passes.convert_vector_to_llvm import VectorToLLVM
from bnnc.pipeline import LLVM_PASSES, _passes_of

CTX = make_context()


def _walker(patterns: Callable[[ModuleOp], Sequence[RewritePattern]]) -> Callable[[ModuleOp], None]:
    """The pass as xDSL's non-recursive walker with DCE would run it."""

    def run(module: ModuleOp) -> None:
        with index_bitwidth(64):
            walker = PatternRewriteWalker(GreedyRewritePatternApplier(list(patterns(module))), apply_recursively=False)
            walker.rewrite_module(module)

    return run


UPSTREAM: dict[str, Callable[[ModuleOp], None]] = {
    "convert-scf-to-cf": lambda m: ConvertScfToCf().apply(CTX, m),
    "convert-memref-to-llvm": _walker(lambda m: [MemrefToLLVM(m)]),
    "convert-vector-to-llvm": _walker(lambda m: [VectorToLLVM()]),
    "convert-arith-to-llvm": _walker(lambda m: [ConstantToLLVM(), ArithToLLVM()]),
    "reconcile-unrealized-casts": lambda m: ReconcileUnrealizedCastsPass().apply(CTX, m),
}


@pytest.mark.parametrize(
    "make, options",
    [
        (make_odd_shapes, CompileOptions(num_threads=2, check_bounds=True)),
        (make_binary_mlp, CompileOptions(num_threads=1)),
    ],
    ids=["odd-shapes-threads-bounds", "binary-mlp"],
)
def test_llvm_stage_is_what_xdsl_walkers_give(make, options: CompileOptions) -> None:
    model, x = make()
    ours = import_model(model, (x,))
    lower(ours, options, "loops")
    theirs = ours.clone()
    passes = _passes_of(",".join(LLVM_PASSES))
    assert set(UPSTREAM) <= {p.name for p in passes}
    for p in passes:
        p.apply(CTX, ours)
        UPSTREAM.get(p.name, lambda m, p=p: p.apply(CTX, m))(theirs)
        assert str(ours) == str(theirs), f"{p.name} differs from xDSL's walker"
