"""Small PyTorch models for the deployable-artifact tests (test_artifacts.py).

Each factory returns (eval-mode model, example input, exact) where `exact`
says the output is an integer binary accumulator (compared exactly).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

import bnn_models as bm

# Everything an artifact may import: libc's allocator and mem* functions, libm
# (test_artifacts and test_targets check every target's objects against it).
LIBC_ALLOWED = {
    "aligned_alloc",
    "free",
    "malloc",
    "memset",
    "memcpy",
    "memmove",
    "expf",
    "logf",
    "tanhf",
    "fmaxf",
    "fminf",
}


class BiRealStyleBlock(nn.Module):
    """Bi-Real Net block: sign -> binary 3x3 conv (scaled) -> BN -> + shortcut,
    once at stride 1 and once downsampling (avgpool + fp 1x1 conv shortcut)."""

    def __init__(self):
        super().__init__()
        self.b1 = bm.BiRealBlock(32, 32, stride=1)
        self.b2 = bm.BiRealBlock(32, 64, stride=2)

    def forward(self, x):
        return self.b2(self.b1(x))


class DenseNetStyleBlock(nn.Module):
    """BinaryDenseNet: BN -> ge-quantize -> sign(W) conv, concatenated with the
    input, twice, then a transition (BN -> maxpool -> ReLU -> fp 1x1 conv)."""

    def __init__(self):
        super().__init__()
        self.l1 = bm.DenseLayer(24, 16)
        self.l2 = bm.DenseLayer(40, 16)
        self.t = bm.Transition(56, 28, "max")

    def forward(self, x):
        return self.t(self.l2(self.l1(x)))


class PureBinaryConv(nn.Module):
    """where(x >= 0, 1, -1) -> conv(sign(W)): an exact integer output."""

    def __init__(self):
        super().__init__()
        self.act = bm.WhereBinarizer()
        self.conv = bm.SignConv2d(96, 40, 3, stride=1, padding=1)

    def forward(self, x):
        return self.conv(self.act(x))


class OddShapes(nn.Module):
    """Channel counts that are not multiples of 64, stride 2, groups 2, odd
    spatial sizes; fp32 first conv and last linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(5, 34, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(34)
        self.act1 = bm.WhereBinarizer()
        self.c1 = bm.XnorConv2d(34, 70, 3, stride=2, padding=1, groups=2)
        self.bn1 = nn.BatchNorm2d(70)
        self.act2 = bm.SignNoZeroBinarizer()
        self.c2 = bm.SignConv2d(70, 98, 3, stride=2, padding=1, groups=2)
        self.bn2 = nn.BatchNorm2d(98)
        self.fc = nn.Linear(98, 7)

    def forward(self, x):
        x = self.bn0(self.stem(x))
        x = F.hardtanh(self.bn1(self.c1(self.act1(x))))
        x = self.bn2(self.c2(self.act2(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def make_bireal_block(seed=0):
    m, x = bm._build(seed, BiRealStyleBlock, (1, 32, 12, 12))
    return m, x, False


def make_densenet_block(seed=0):
    m, x = bm._build(seed, DenseNetStyleBlock, (1, 24, 10, 10))
    return m, x, False


def make_pure_binary(seed=0):
    m, x = bm._build(seed, PureBinaryConv, (1, 96, 9, 7))
    return m, x, True


def make_odd_shapes(seed=0):
    m, x = bm._build(seed, OddShapes, (1, 5, 17, 13))
    return m, x, False


def make_small_bireal_net(seed=0):
    """A whole Bi-Real network (fp32 first conv and last linear) on 32x32."""
    m, x = bm.make_bireal(seed)
    return m, x, False


FACTORIES = {
    "bireal_block": make_bireal_block,
    "densenet_block": make_densenet_block,
    "pure_binary": make_pure_binary,
    "odd_shapes": make_odd_shapes,
    "bireal_net": make_small_bireal_net,
}
