"""What the tests of bit-preserving graph passes share (fuse-residual-add,
channels-last): a pipeline without the pass under test, and the check that a
model compiled with and without it gives the same bits."""

from __future__ import annotations

import numpy as np
import torch

import bnnc
from bnnc.pipeline import GRAPH_PASSES


def pipeline_without(*passes: str) -> str:
    """The default bnn stage minus `passes`, as a `pipeline=` override."""
    return "bnn=" + ",".join(p for p in GRAPH_PASSES if p not in passes)


def pipeline_with(**options: dict[str, object]) -> str:
    """The default bnn stage with options on some passes, e.g.
    pipeline_with(**{"channels-last": {"min_elements": 0}})."""

    def spec(p: str) -> str:
        opts = options.get(p)
        return p if not opts else p + "{" + " ".join(f"{k}={v}" for k, v in opts.items()) + "}"

    return "bnn=" + ",".join(spec(p) for p in GRAPH_PASSES)


def assert_same_bits_without(
    model: torch.nn.Module, x: torch.Tensor, without: str, threads: int, pipeline: str | None = None
) -> None:
    """`pipeline` (default: bnnc's) and `without` compile `model` to the same
    bits, and both match PyTorch within float rounding."""
    model.eval()
    xn = x.numpy()
    got = bnnc.compile(model, (x,), pipeline=pipeline, num_threads=threads)(xn)
    reference = bnnc.compile(model, (x,), pipeline=without, num_threads=threads)(xn)
    assert np.array_equal(got, reference)
    with torch.inference_mode():
        want = model(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
