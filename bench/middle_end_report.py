"""What the middle end removes: for whole BNNs, the bnn IR as imported
(faithful to the PyTorch graph) against the IR after the default graph passes.

Columns: bnn ops (constants excluded); full passes over activations (ops that
read or write a non-constant activation tensor, i.e. each is one sweep over
memory); float ops left between consecutive binary convs; binary convs with a
fused epilogue; weight bytes of the binary layers (float model vs packed) and of
everything. Run: python bench/middle_end_report.py
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from xdsl.dialects import arith
from xdsl.dialects.builtin import ModuleOp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnnc.context import make_context  # noqa: E402
from bnnc.dialects import bnn  # noqa: E402
from bnnc.dialects.dense import to_numpy  # noqa: E402
from bnnc.frontend.torch_import import export_module, import_program  # noqa: E402
from bnnc.pipeline import GRAPH_PASSES, run_passes  # noqa: E402

BINARY = (bnn.BConv2dOp, bnn.BDenseOp)


def _ops(module: ModuleOp) -> list:
    return [op for op in module.walk() if op.dialect_name() == "bnn"]


def _constant_bytes(module: ModuleOp) -> int:
    return sum(to_numpy(op.value).nbytes for op in module.walk() if isinstance(op, arith.ConstantOp) and hasattr(op.value, "data"))


def _binary_weight_bytes(module: ModuleOp) -> int:
    total = 0
    for op in module.walk():
        if isinstance(op, (*BINARY, bnn.Conv2dOp, bnn.LinearOp)) and isinstance(op.weight.owner, arith.ConstantOp):
            if isinstance(op, BINARY) or _feeds_from_sign(op):
                total += to_numpy(op.weight.owner.value).nbytes
    return total


def _feeds_from_sign(op) -> bool:
    src = op.input.owner
    while isinstance(src, bnn.PadOp):
        src = src.input.owner
    return isinstance(src, bnn.SignOp)


def _is_binary(op) -> bool:
    """A binary conv/dense: after the passes, bconv2d/bdense; as imported, a
    float conv/linear of a binarised input."""
    if isinstance(op, BINARY):
        return True
    return isinstance(op, (bnn.Conv2dOp, bnn.LinearOp)) and _feeds_from_sign(op)


def _float_ops_between_binary(module: ModuleOp) -> int:
    """Float ops on the path from one binary conv to the next (the sign and the
    pack that feed a binary conv count too: they are a sweep over activations)."""
    count = 0
    for op in _ops(module):
        if _is_binary(op) or isinstance(op, bnn.BMaxPool2dOp):
            continue
        if any(_reaches(o.owner, up=True) for o in op.operands) and _reaches_down(op):
            count += 1
    return count


def _reaches(op, up: bool, depth: int = 6) -> bool:
    if op is None or not hasattr(op, "dialect_name") or depth == 0:
        return False
    if _is_binary(op):
        return True
    return any(_reaches(o.owner, up, depth - 1) for o in getattr(op, "operands", ()))


def _reaches_down(op, depth: int = 6) -> bool:
    if depth == 0 or not op.results:
        return False
    for u in op.results[0].uses:
        if _is_binary(u.operation) or _reaches_down(u.operation, depth - 1):
            return True
    return False


def summarize(module: ModuleOp) -> dict[str, int]:
    ops = _ops(module)
    return {
        "ops": len(ops),
        "passes": len(ops),
        "between": _float_ops_between_binary(module),
        "fused": sum(
            1 for op in ops if isinstance(op, bnn.BConv2dOp) and (op.multiplier or op.bias or op.threshold or op.slope)
        ),
        "bconvs": sum(1 for op in ops if isinstance(op, bnn.BConv2dOp)),
        "binary_weights": _binary_weight_bytes(module),
        "all_weights": _constant_bytes(module),
    }


def report(name: str, model: torch.nn.Module, x: torch.Tensor) -> str:
    module = import_program(export_module(model.eval(), (x,)))
    before = summarize(module)
    run_passes(module, ",".join(GRAPH_PASSES), make_context())
    after = summarize(module)
    float_bytes = sum(p.numel() * 4 for p in model.state_dict().values() if p.dtype == torch.float32)
    ratio = before["binary_weights"] / max(after["binary_weights"], 1)
    return (
        f"{name:<12} {before['ops']:>5} -> {after['ops']:<5} {before['passes']:>5} -> {after['passes']:<5} "
        f"{before['between']:>4} -> {after['between']:<4} {after['fused']:>3}/{after['bconvs']:<3} "
        f"{before['binary_weights']:>10} -> {after['binary_weights']:<9} ({ratio:4.1f}x) "
        f"{float_bytes:>10} -> {after['all_weights']:<10}"
    )


def main() -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)
    import bnn_models

    from bench import networks

    print(f"graph passes: {', '.join(GRAPH_PASSES)}")
    print(
        f"{'network':<12} {'bnn ops':>13} {'act. passes':>13} {'float btw':>11} {'fused':>7} "
        f"{'binary weight bytes':>29} {'all weight bytes (float model -> compiled)':>24}"
    )
    rows = [
        ("bireal", *bnn_models.make_bireal(0)),
        ("resnete", *bnn_models.make_resnete(0)),
        ("densenet", *bnn_models.make_densenet(0)),
    ]
    for name, model, x in rows:
        print(report(name, model, x))
    for name in ("birealnet18", "binaryresnete18", "binarydensenet28"):
        if hasattr(networks, name):
            print(report(name, getattr(networks, name)(), torch.randn(1, 3, 224, 224)))
    np.set_printoptions()
    return 0


if __name__ == "__main__":
    sys.exit(main())
