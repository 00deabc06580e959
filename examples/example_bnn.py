"""The example BNN the quick start compiles: a small Bi-Real-Net-style network
for 3x64x64 images (fp32 stem and classifier, binary 3x3 convs with real-valued
shortcuts, ApproxSign binarisation, per-channel weight scales)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ApproxSign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.clamp(2 - 2 * x.abs(), min=0)


class BinaryConv(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3) * 0.1)
        self.stride = stride
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        alpha = self.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
        w = torch.sign(self.weight) * alpha
        return self.bn(F.conv2d(ApproxSign.apply(x), w, stride=self.stride, padding=1))


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv = BinaryConv(cin, cout, stride)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.AvgPool2d(2, stride), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return self.conv(x) + (x if self.down is None else self.down(x))


class ExampleBiRealNet(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64))
        self.blocks = nn.Sequential(
            Block(64, 64, 1), Block(64, 64, 1), Block(64, 128, 2), Block(128, 128, 1), Block(128, 256, 2), Block(256, 256, 1)
        )
        self.head = nn.Linear(256, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def make_example(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """The model with random but non-trivial BN statistics, and an input."""
    torch.manual_seed(seed)
    model = ExampleBiRealNet()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval(), torch.randn(1, 3, 64, 64)
