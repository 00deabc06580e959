"""Third-party BNN model zoos, compiled by bnnc and compared with PyTorch eager.

The models are the real thing, built by their own packages (pinned in
pyproject.toml's `test` extra): Brevitas' bnn_pynq CNV / TFC / SFC / LFC in
their 1W1A configurations (FINN's BNN-PYNQ networks), a small Brevitas
QuantIdentity -> QuantConv2d -> BatchNorm2d block in two spellings, and
bitorch's model zoo (LeNet, ResNetE-18, DenseNet-28, MeliusNet-22,
QuickNetSmall, ResNet-18 v1) at small input sizes. Weights are the packages'
random initialisation (nothing is downloaded); batch norms get non-trivial
random statistics (bench/third_party_table.py builds them).

One test per model checks that

* bnnc compiles it (the steps of `bnnc.compile`: import, pipeline, JIT) and
  the compiled model computes what PyTorch computes (test/differential.py's
  oracle) on the example input, a fresh one and a scaled one;
* after the graph-level pipeline (`bnnc compile --emit=bnn`) every conv/linear
  layer whose input and weights are 1-bit in the PyTorch model is a binary op
  (bnn.bconv2d / bnn.bdense), the layers with 1-bit weights on multi-bit input
  (CNV's first conv) are float convs whose weights hold two values per output
  channel, and no layer was lost.

Each quantizer library spells binarisation its own way in core ATen; the
spellings are documented on the factories in bench/third_party_table.py and
`python bench/third_party_table.py` prints the per-model table.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch
from differential import assert_matches_torch

from bnnc.driver import CompileOptions, build, import_model, jit, lower

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import third_party_table as tp

NAMES = list(tp.MODELS)


@pytest.fixture(autouse=True)
def _quiet_single_threaded_torch():
    # Brevitas and bitorch warn about deprecated torch APIs on every forward.
    # One intra-op thread: on a shared 2-core machine PyTorch's thread pool
    # makes these eager runs ~10x slower (results do not depend on it).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", NAMES)
def test_third_party_model(name):
    """bnnc compiles the model, the compiled model computes what PyTorch
    computes, and its 1-bit conv/linear layers became binary ops."""
    spec = tp.MODELS[name]
    model, x = spec.make(0)
    assert tp.torch_layer_count(model) == spec.layers, "the factory no longer builds the model described"

    # What bnnc.compile does (import, pipeline, LLVM, JIT), with the imported
    # module also taken through the graph pipeline alone to count its layers.
    options = CompileOptions()
    module = import_model(model, (x,))
    counts = tp.count_layers(lower(module.clone(), options, "bnn"))
    got = (
        f"{name}: {counts.binary} binary (bnn.bconv2d/bnn.bdense), {counts.binary_weight} binary-weight, "
        f"{counts.float} float conv/linear ({counts.runtime_weights} with weights computed at run time)"
    )
    print(got)
    cm = jit(build(module, (x,), options))

    # the example input, a fresh one and a scaled one (other sign patterns, and
    # values outside the [-1, 1] clamps of Brevitas' quantizers)
    for xi in (x, torch.randn_like(x), torch.randn_like(x) * 3.0):
        assert_matches_torch(model, (xi,), cm(xi))

    assert counts.binary == spec.expected_binary, (
        f"{got}; expected {spec.expected_binary} binary of {spec.layers} conv/linear layers ({spec.note})"
    )
    assert counts.binary_weight == spec.expected_binary_weight, (
        f"{got}; expected {spec.expected_binary_weight} binary-weight layer(s) ({spec.note})"
    )
    assert counts.total == spec.layers, f"{got}; the PyTorch model has {spec.layers} conv/linear layers"
