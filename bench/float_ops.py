"""bnnc vs PyTorch eager on the float ops between binary layers: softmax,
gelu, tanh, sigmoid, layer / group / instance norm, amax and reshape-heavy
graphs. Both run on the same thread count, calls interleaved (so machine
noise hits both alike); medians of --repeat runs, side by side.

    .venv/bin/python bench/float_ops.py [--threads 1] [--repeat 50] [--only softmax,gelu]

Why: these ops are memory- or transcendental-bound; the ratio column shows
where bnnc's loops (vectorised polynomials, flat copies, integer-keyed
max reductions) stand against PyTorch's hand-vectorised kernels.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Fn(nn.Module):
    """A function as a module, with optional constant parameters."""

    def __init__(self, fn: Callable[..., torch.Tensor], *params: torch.Tensor):
        super().__init__()
        self.fn = fn
        self.p = nn.ParameterList([nn.Parameter(p, requires_grad=False) for p in params])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x, *self.p)


@dataclass(frozen=True)
class Case:
    name: str
    shape: tuple[int, ...]
    model: Callable[[], nn.Module]


def _cases() -> list[Case]:
    g = torch.Generator().manual_seed(0)
    w768, b768 = torch.randn(768, generator=g), torch.randn(768, generator=g)
    w64, b64 = torch.randn(64, generator=g), torch.randn(64, generator=g)
    return [
        Case("softmax", (12, 197, 197), lambda: Fn(lambda x: F.softmax(x, -1))),
        Case("log_softmax", (12, 197, 197), lambda: Fn(lambda x: F.log_softmax(x, -1))),
        Case("gelu", (4, 197, 768), lambda: Fn(F.gelu)),
        Case("gelu_tanh", (4, 197, 768), lambda: Fn(lambda x: F.gelu(x, approximate="tanh"))),
        Case("tanh", (4, 197, 768), lambda: Fn(torch.tanh)),
        Case("sigmoid", (4, 197, 768), lambda: Fn(torch.sigmoid)),
        Case("exp", (4, 197, 768), lambda: Fn(torch.exp)),
        Case("erf", (4, 197, 768), lambda: Fn(torch.erf)),
        Case("layer_norm", (8, 197, 768), lambda: Fn(lambda x, w, b: F.layer_norm(x, (768,), w, b), w768, b768)),
        Case("group_norm", (1, 64, 56, 56), lambda: Fn(lambda x, w, b: F.group_norm(x, 32, w, b), w64, b64)),
        Case("instance_norm", (4, 64, 56, 56), lambda: Fn(lambda x: F.instance_norm(x))),
        Case("amax_last", (12, 197, 197), lambda: Fn(lambda x: x.amax(-1))),
        Case("amin_hw", (8, 64, 56, 56), lambda: Fn(lambda x: x.amin((2, 3)))),
        Case("sum_last", (12, 197, 197), lambda: Fn(lambda x: x.sum(-1))),
        Case("reshape_relu", (8, 64, 56, 56), lambda: Fn(lambda x: torch.relu(x.reshape(8, 64, 49, 64)) * 2.0)),
        Case("flatten_tanh", (8, 64, 28, 28), lambda: Fn(lambda x: torch.tanh(x.flatten(1)) + 1.0)),
    ]


def _median_ms(samples: list[float]) -> float:
    return float(np.median(samples)) * 1e3


def run(threads: int, repeat: int, only: set[str] | None) -> list[tuple[str, tuple[int, ...], float, float]]:
    import bnnc

    torch.set_num_threads(threads)
    rows = []
    for case in _cases():
        if only and case.name not in only:
            continue
        x = torch.randn(case.shape, generator=torch.Generator().manual_seed(1))
        model = case.model().eval()
        compiled = bnnc.compile(model, (x,), num_threads=threads)
        xn = x.numpy()
        with torch.no_grad():
            want = model(x).numpy()
        got = np.asarray(compiled(xn))
        if not np.allclose(got, want, rtol=1e-4, atol=1e-5):
            raise AssertionError(f"{case.name}: bnnc and PyTorch disagree ({np.abs(got - want).max():.3g})")
        ours, theirs = [], []
        with torch.no_grad():
            for _ in range(3):
                compiled(xn), model(x)
            for _ in range(repeat):
                t0 = time.perf_counter()
                compiled(xn)
                t1 = time.perf_counter()
                model(x)
                t2 = time.perf_counter()
                ours.append(t1 - t0)
                theirs.append(t2 - t1)
        rows.append((case.name, case.shape, _median_ms(ours), _median_ms(theirs)))
        print(f"{case.name:14s} {'x'.join(map(str, case.shape)):>12s}  bnnc {rows[-1][2]:8.3f} ms  "
              f"torch {rows[-1][3]:8.3f} ms  bnnc/torch {rows[-1][2] / rows[-1][3]:6.2f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--only", default="", help="comma-separated case names")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(","))) or None
    print(f"threads={args.threads} repeat={args.repeat} (medians; ratio < 1: bnnc faster)")
    run(args.threads, args.repeat, only)


if __name__ == "__main__":
    main()
