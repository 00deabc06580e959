"""The quick start's trained BNN (examples/digits_bnn.py, weights in
examples/digits_bnn.pt): the committed weights load, bnnc compiles the binary
layers as binary ops, and the compiled model makes PyTorch's predictions on
every held-out image with at least the accuracy the README states."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

from digits_bnn import WEIGHTS, BinaryConv, DigitsBNN, load_split, load_trained  # noqa: E402
from quickstart import graph_ir, weight_bytes  # noqa: E402

import bnnc  # noqa: E402
from bnnc.dialects import bnn  # noqa: E402


def readme_accuracy() -> tuple[int, int]:
    """(correct, total) of bnnc's accuracy line in README.md's Quick start output."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"accuracy\s+PyTorch: [\d.]+% \(\d+/\d+\)\s+bnnc: [\d.]+% \((\d+)/(\d+)\)", section)
    assert match, "README.md's Quick start section has no 'accuracy  PyTorch: ...  bnnc: ...' line"
    return int(match.group(1)), int(match.group(2))


@pytest.fixture(scope="module")
def model() -> DigitsBNN:
    return load_trained()


@pytest.fixture(scope="module")
def split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return load_split()


def test_committed_weights_are_a_small_plain_state_dict() -> None:
    state = torch.load(WEIGHTS, weights_only=True)
    expected = DigitsBNN().state_dict()
    assert state.keys() == expected.keys()
    assert all(state[k].shape == expected[k].shape and state[k].dtype == expected[k].dtype for k in state)
    assert WEIGHTS.stat().st_size < 100_000


def test_split_is_fixed(split) -> None:
    x_train, _, x_test, y_test = split
    assert x_test.shape == (360, 1, 8, 8) and x_train.shape == (1437, 1, 8, 8)
    assert x_test.dtype == torch.float32 and 0 <= x_test.min() and x_test.max() <= 1
    assert torch.bincount(y_test, minlength=10).min() > 20  # every class is held out
    again = load_split()
    assert torch.equal(again[2], x_test) and torch.equal(again[3], y_test)


def test_binary_layers_compile_to_binary_ops(model, split) -> None:
    module = graph_ir(model, split[2][:1])
    ops = list(module.walk())
    n_binary = sum(isinstance(m, BinaryConv) for m in model.modules())
    assert n_binary == 3
    assert sum(isinstance(op, bnn.BConv2dOp) for op in ops) == n_binary
    assert sum(isinstance(op, bnn.BDenseOp) for op in ops) == 0
    # only the float stem and the float 1x1 shortcut conv stay float convs
    assert sum(isinstance(op, bnn.Conv2dOp) for op in ops) == 2
    total, packed = weight_bytes(module)
    float_bits = sum(m.weight.numel() for m in model.modules() if isinstance(m, BinaryConv))
    assert float_bits // 8 <= packed < float_bits * 4 // 8  # 1 bit per weight plus word padding: < 1/8 of float32
    assert packed < total < WEIGHTS.stat().st_size


def test_bnnc_predicts_like_pytorch_with_the_stated_accuracy(model, split) -> None:
    _, _, x_test, y_test = split
    compiled = bnnc.compile(model, (x_test,), num_threads=1)
    with torch.no_grad():
        expected = model(x_test)
    got = compiled(x_test)
    assert torch.equal(got.argmax(1), expected.argmax(1))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    correct = (got.argmax(1) == y_test).sum().item()
    stated, total = readme_accuracy()
    assert total == len(y_test)
    assert correct >= stated
    assert correct / total >= 0.9


def test_batch_one_matches_batch(model, split) -> None:
    _, _, x_test, _ = split
    one = bnnc.compile(model, (x_test[:1],), num_threads=1)
    with torch.no_grad():
        expected = model(x_test[:40])
    got = torch.cat([one(x_test[i : i + 1]) for i in range(40)])
    assert torch.equal(got.argmax(1), expected.argmax(1))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
