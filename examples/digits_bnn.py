"""The trained example BNN: a small Bi-Real-style convnet for scikit-learn's
bundled handwritten digits (`sklearn.datasets.load_digits`, 1,797 8x8
images, no download). Float stem conv and classifier; binary 3x3 convs (±1
activations, ±1 weights times a per-channel scale) with real-valued
shortcuts. Shared by the training script, the quick start and the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

WEIGHTS = Path(__file__).with_name("digits_bnn.pt")
TEST_SIZE = 360  # held-out images (the last 360 of a seeded permutation)
SPLIT_SEED = 0


class SignSTE(torch.autograd.Function):
    """binarize(x) = +1 if x >= 0 else -1; backward: the straight-through
    estimator, gradient passed where |x| <= 1."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class BinaryConv(nn.Module):
    """3x3 conv of binarized activations with binarized weights scaled by
    their per-output-channel mean |w| (XNOR-Net), then batch norm."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3) * 0.1)
        self.stride = stride
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
        w = torch.sign(self.weight) * alpha
        if self.training:  # straight-through estimator for the weights too
            w = self.weight + (w - self.weight).detach()
        return self.bn(F.conv2d(SignSTE.apply(x), w, stride=self.stride, padding=1))


class Block(nn.Module):
    """Bi-Real block: binary conv plus a real-valued shortcut (avg-pool and a
    float 1x1 conv where the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv = BinaryConv(cin, cout, stride)
        self.down: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.AvgPool2d(2, stride), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + (x if self.down is None else self.down(x))


class DigitsBNN(nn.Module):
    """1x8x8 digits -> 10 logits: float stem, three binary blocks (8x8 then
    4x4), global average pool, float linear classifier."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width))
        self.blocks = nn.Sequential(Block(width, width, 1), Block(width, 2 * width, 2), Block(2 * width, 2 * width, 1))
        self.head = nn.Linear(2 * width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def load_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_test, y_test): the digits scaled to [0, 1] as
    float32 N x 1 x 8 x 8, split by a fixed seeded permutation."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy((digits.images / 16.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(digits.target.astype(np.int64))
    order = torch.from_numpy(np.random.RandomState(SPLIT_SEED).permutation(len(y)))
    train, test = order[:-TEST_SIZE], order[-TEST_SIZE:]
    return x[train], y[train], x[test], y[test]


def load_trained(path: Path = WEIGHTS) -> DigitsBNN:
    """The model with the committed weights (a plain state_dict, loaded with
    weights_only=True: no arbitrary unpickling), in eval mode."""
    model = DigitsBNN()
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()
