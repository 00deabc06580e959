"""bnnc quick start: export the example BNN with torch.export, compile it with
bnnc, check the outputs against PyTorch and time both."""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import bnnc  # noqa: E402
from example_bnn import make_example  # noqa: E402


def median_ms(fn, runs: int = 30) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> int:
    warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)  # torch.export's own
    torch.set_num_threads(1)
    model, x = make_example()
    out_dir = Path(__file__).parent / "out"
    out_dir.mkdir(exist_ok=True)
    model_file = out_dir / "example_birealnet.pt2"
    torch.export.save(torch.export.export(model, (x,)), model_file)
    print(f"exported {model_file}")

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


if __name__ == "__main__":
    sys.exit(main())
