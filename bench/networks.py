"""Full-size BNNs at ImageNet resolution, written as their papers' PyTorch code
does (random weights: speed does not depend on training)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ApproxSign(torch.autograd.Function):
    """Bi-Real Net's sign with a piecewise-polynomial gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.clamp(2 - 2 * x.abs(), min=0)


class BinaryConv2d(nn.Conv2d):
    """sign(W) * mean|W| per output channel, on binarized activations."""

    def __init__(self, *args, scale: bool = True, **kwargs):
        super().__init__(*args, bias=False, **kwargs)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = ApproxSign.apply(x)
        w = torch.sign(self.weight)
        if self.scale:
            w = w * self.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
        return F.conv2d(x, w, None, self.stride, self.padding, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return bn


class BiRealBlock(nn.Module):
    """Bi-Real: every binary 3x3 conv has a real-valued shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv = BinaryConv2d(cin, cout, 3, stride=stride, padding=1)
        self.bn = _bn(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.AvgPool2d(2, stride), nn.Conv2d(cin, cout, 1, bias=False), _bn(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.down is None else self.down(x)
        return self.bn(self.conv(x)) + shortcut


class BiRealNet18(nn.Module):
    def __init__(self, num_classes: int = 1000, block=BiRealBlock):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), _bn(64), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            for i in range(4):  # 2 basic blocks x 2 convs, each with its own shortcut
                layers.append(block(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


def birealnet18() -> nn.Module:
    torch.manual_seed(0)
    return BiRealNet18().eval()


NETWORKS = {"birealnet18": birealnet18}
