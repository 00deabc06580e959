"""reconcile-unrealized-casts: remove the `builtin.unrealized_conversion_cast`
chains the convert-*-to-llvm passes leave (a value cast to its llvm type and
back), replacing their uses by the chain's input.

Why bnnc has its own: xDSL's pass of this name visits every op of the module
through the pattern walker, twice (its second sweep only finds that nothing
is left), although only the casts can match: ~1.5 s of Bi-Real-Net-18's
~17 s of passes on a loaded machine. This one applies xDSL's own pattern
(`ReconcileUnrealizedCastsPattern`, so the chains removed and the values
that replace them are the same) to just the casts, in the walk order the
walker would visit them, skipping a cast an earlier chain removed; it sweeps
again while a sweep changed something, as the walker does. The output is
identical to xDSL's; a chain that is not the identity stays, as there.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, UnrealizedConversionCastOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter
from xdsl.transforms.reconcile_unrealized_casts import ReconcileUnrealizedCastsPattern

from bnnc.passes._llvm_common import kind_filter


def _sweep(module: ModuleOp, pattern: ReconcileUnrealizedCastsPattern) -> bool:
    """One pass over the module's casts; whether anything changed."""
    changed = False
    is_cast = kind_filter((UnrealizedConversionCastOp,))
    for cast in [o for o in module.walk() if is_cast(o)]:
        if cast.parent is None:  # erased with an earlier cast's chain
            continue
        rewriter = PatternRewriter(cast)
        pattern.match_and_rewrite(cast, rewriter)
        changed |= rewriter.has_done_action
    return changed


@dataclass(frozen=True)
class ReconcileUnrealizedCastsPass(ModulePass):
    name = "reconcile-unrealized-casts"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        pattern = ReconcileUnrealizedCastsPattern(warn_on_failure=True)
        while _sweep(op, pattern):
            pass
