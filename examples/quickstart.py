"""bnnc quick start.

1. A trained BNN (examples/digits_bnn.py, weights in examples/digits_bnn.pt,
   trained by examples/train_digits_bnn.py on scikit-learn's bundled digits):
   compile it with bnnc, compare accuracy and predictions with PyTorch on the
   held-out split, time both, and compare the model's size as PyTorch stores
   it with bnnc's packed weights.
2. The random-weight example BNN (examples/example_bnn.py) for the speed
   figure: export it with torch.export, compile the .pt2, check the outputs
   against PyTorch and time both.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from xdsl.dialects import arith
from xdsl.dialects.builtin import ModuleOp

sys.path.insert(0, str(Path(__file__).parent))
from digits_bnn import WEIGHTS, load_split, load_trained  # noqa: E402
from example_bnn import make_example  # noqa: E402

import bnnc  # noqa: E402
from bnnc.dialects import bnn  # noqa: E402
from bnnc.dialects.dense import to_numpy  # noqa: E402
from bnnc.driver import CompileOptions, import_model, lower  # noqa: E402

BINARY_OPS = (bnn.BConv2dOp, bnn.BDenseOp)


def median_ms(fn: Callable[[], object], runs: int = 30) -> float:
    """Median wall time of `fn()` in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def graph_ir(model: torch.nn.Module, x: torch.Tensor) -> ModuleOp:
    """The bnn-dialect IR bnnc compiles `model` to, after its graph passes
    (binary layers recognised, packed and fused): the stage `--emit=bnn` prints."""
    module = import_model(model, (x,))
    return lower(module, CompileOptions(), "bnn")


def weight_bytes(module: ModuleOp) -> tuple[int, int]:
    """(bytes of all weight constants, bytes of the binary layers' packed
    weights) in bnnc's graph IR."""
    total = sum(
        to_numpy(op.value).nbytes for op in module.walk() if isinstance(op, arith.ConstantOp) and hasattr(op.value, "data")
    )
    binary = sum(
        to_numpy(op.weight.owner.value).nbytes
        for op in module.walk()
        if isinstance(op, BINARY_OPS) and isinstance(op.weight.owner, arith.ConstantOp)
    )
    return total, binary


def trained_example() -> int:
    """Accuracy, agreement, timings and sizes of the trained digits BNN."""
    model = load_trained()
    _, _, x_test, y_test = load_split()
    n = len(y_test)
    print(f"== trained BNN: scikit-learn digits, {n} held-out 8x8 images ({WEIGHTS.name}) ==")

    start = time.perf_counter()
    one = bnnc.compile(model, (x_test[:1],), num_threads=1)
    whole = bnnc.compile(model, (x_test,), num_threads=1)
    print(f"bnnc compiled it (batch 1 and batch {n}) in {time.perf_counter() - start:.1f} s")

    with torch.no_grad():
        expected = model(x_test)
    got = whole(x_test)
    got_one = torch.cat([one(x_test[i : i + 1]) for i in range(n)])
    pred_torch, pred_bnnc = expected.argmax(1), got.argmax(1)
    acc_torch = (pred_torch == y_test).sum().item()
    acc_bnnc = (pred_bnnc == y_test).sum().item()
    print(f"accuracy  PyTorch: {acc_torch / n:.2%} ({acc_torch}/{n})   bnnc: {acc_bnnc / n:.2%} ({acc_bnnc}/{n})")
    differ = (pred_torch != pred_bnnc).nonzero().flatten().tolist()
    differ_one = (got_one.argmax(1) != pred_bnnc).sum().item()
    print(
        f"predictions that differ from PyTorch's: {len(differ)} of {n} "
        f"(bnnc batch 1 vs batch {n}: {differ_one}); max |logit difference| {(got - expected).abs().max().item():.3g}"
    )
    status = 0
    for i in differ:
        top2 = expected[i].topk(2).values
        margin = (top2[0] - top2[1]).item()
        tie = margin <= 1e-4 * max(expected[i].abs().max().item(), 1.0)
        print(f"  image {i}: PyTorch's top two logits differ by {margin:.3g} ({'a near tie' if tie else 'NOT a tie'})")
        status |= 0 if tie else 1
    if differ_one:
        status = 1

    with torch.no_grad():
        t_torch_1 = statistics.median(_time_each(lambda i: model(x_test[i : i + 1]), n))
        t_torch_n = median_ms(lambda: model(x_test), runs=20)
    t_bnnc_1 = statistics.median(_time_each(lambda i: one(x_test[i : i + 1]), n))
    t_bnnc_n = median_ms(lambda: whole(x_test), runs=20)
    print(
        f"per image (median of {n}, 1 thread)  PyTorch: {t_torch_1 * 1e3:.0f} us   bnnc: {t_bnnc_1 * 1e3:.0f} us   "
        f"({t_torch_1 / t_bnnc_1:.1f}x)"
    )
    print(
        f"all {n} images (median of 20)       PyTorch: {t_torch_n:.2f} ms   bnnc: {t_bnnc_n:.2f} ms   "
        f"({t_torch_n / t_bnnc_n:.1f}x)"
    )

    module = graph_ir(model, x_test[:1])
    total, packed = weight_bytes(module)
    state = model.state_dict()
    tensor_bytes = sum(t.numel() * t.element_size() for t in state.values())
    binary_float = sum(m.weight.numel() * 4 for m in model.modules() if type(m).__name__ == "BinaryConv")
    n_binary = sum(isinstance(op, BINARY_OPS) for op in module.walk())
    print(
        f"size  PyTorch state_dict: {WEIGHTS.stat().st_size} bytes on disk ({tensor_bytes} bytes of tensors)   "
        f"bnnc weight constants: {total} bytes"
    )
    print(
        f"      the {n_binary} binary layers' weights: {binary_float} bytes as float32 in PyTorch, "
        f"{packed} bytes packed by bnnc (1 bit per weight, a 64-bit word per output channel and tap)"
    )
    if status:
        print("MISMATCH: bnnc's predictions differ from PyTorch's")
    return status


def _time_each(fn: Callable[[int], object], n: int) -> list[float]:
    """Wall time in ms of fn(i) for each i < n, after one warm-up call."""
    fn(0)
    times = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def speed_example() -> int:
    """The random-weight example BNN: export, compile, check, time."""
    model, x = make_example()
    print(f"\n== random-weight Bi-Real-style BNN, input {tuple(x.shape)} (speed) ==")
    out_dir = Path(__file__).parent / "out"
    out_dir.mkdir(exist_ok=True)
    model_file = out_dir / "example_birealnet.pt2"
    torch.export.save(torch.export.export(model, (x,)), model_file)
    print(f"exported {model_file.relative_to(Path(__file__).parents[1])}")

    start = time.perf_counter()
    compiled = bnnc.compile(str(model_file))
    print(f"bnnc compiled it in {time.perf_counter() - start:.1f} s")

    with torch.no_grad():
        expected = model(x)
    got = compiled(x)
    err = (got - expected).abs().max().item()
    scale = expected.abs().max().item()
    print(f"max |bnnc - pytorch| = {err:.3g} (outputs up to {scale:.3g})")
    if err > 1e-4 * max(scale, 1.0):
        print("MISMATCH: bnnc's output differs from PyTorch's")
        return 1
    with torch.no_grad():
        t_torch = median_ms(lambda: model(x))
    t_bnnc = median_ms(lambda: compiled(x))
    print(f"PyTorch fp32 (1 thread): {t_torch:.2f} ms   bnnc: {t_bnnc:.2f} ms   ({t_torch / t_bnnc:.1f}x)")
    return 0


def main() -> int:
    warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)  # torch.export's own
    torch.set_num_threads(1)
    return trained_example() | speed_example()


if __name__ == "__main__":
    sys.exit(main())
