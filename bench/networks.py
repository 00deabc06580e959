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

    conv_class: type[nn.Conv2d] = BinaryConv2d

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv = self.conv_class(cin, cout, 3, stride=stride, padding=1)
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



# ----------------------------------------------------------------- BinaryResNetE-18


class SteSign(torch.autograd.Function):
    """sign with a straight-through gradient (clipped at |x| > 1)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class SignConv2d(nn.Conv2d):
    """BinaryResNetE / BinaryDenseNet: sign(W), no scaling factor, on sign(x)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, bias=False, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(SteSign.apply(x), torch.sign(self.weight), None, self.stride, self.padding, self.dilation, self.groups)


class ResNetEBlock(BiRealBlock):
    """BinaryResNetE (Bethge et al. 2019): a residual around every binary 3x3
    conv; full-precision downsampling = avgpool 2x2 -> fp 1x1 conv -> BN."""

    conv_class = SignConv2d


class BinaryResNetE18(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), _bn(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1), _bn(64)
        )
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            for i in range(4):
                layers.append(ResNetEBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.layers(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def binaryresnete18() -> nn.Module:
    torch.manual_seed(0)
    return BinaryResNetE18().eval()


# ----------------------------------------------------------------- BinaryDenseNet-28


class DenseLayer(nn.Module):
    """BN -> sign -> binary 3x3 conv (growth-rate channels) -> concat."""

    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.bn = _bn(cin)
        self.conv = SignConv2d(cin, growth, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(self.bn(x))], dim=1)


class DenseTransition(nn.Module):
    """Full-precision downsampling: BN -> maxpool 2x2 -> ReLU -> fp 1x1 conv."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.bn = _bn(cin)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.relu(self.pool(self.bn(x))))


class BinaryDenseNet28(nn.Module):
    """BinaryDenseNet-28 (Bethge et al. 2019; larq-zoo config): stem conv 7x7/2 +
    maxpool, growth rate 64, dense blocks of 6, 6, 6, 5 binary layers, transition
    reductions 2.7, 2.7, 2.2 (rounded down to multiples of 32), BN -> ReLU ->
    global avgpool -> fc. 23 binary + 3 transition + stem + fc = 28 layers."""

    def __init__(self, num_classes: int = 1000, growth: int = 64, blocks=(6, 6, 6, 5), reductions=(2.7, 2.7, 2.2)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), _bn(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        layers, c = [], 64
        for i, n in enumerate(blocks):
            for _ in range(n):
                layers.append(DenseLayer(c, growth))
                c += growth
            if i < len(reductions):
                out = int(c // reductions[i] // 32) * 32
                layers.append(DenseTransition(c, out))
                c = out
        self.features = nn.Sequential(*layers)
        self.bn = _bn(c)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.features(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def binarydensenet28() -> nn.Module:
    torch.manual_seed(0)
    return BinaryDenseNet28().eval()


# ----------------------------------------------------------------- XNOR-Net ResNet-18


class XnorConv(nn.Module):
    """XNOR-Net binary conv: BN -> sign -> conv with sign(W) * alpha (alpha =
    mean|W| per output channel), times K = box-filtered mean |input| (beta)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn = _bn(cin)
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3) * 0.1)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(x)
        a = torch.mean(x.abs(), dim=1, keepdim=True)
        k = F.conv2d(a, torch.ones(1, 1, 3, 3) / 9.0, stride=self.stride, padding=1)
        w = torch.sign(self.weight) * self.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
        return F.conv2d(torch.sign(x), w, None, self.stride, 1) * k


class XnorBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = XnorConv(cin, cout, stride)
        self.conv2 = XnorConv(cout, cout, 1)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _bn(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.down is None else self.down(x)
        return F.relu(self.conv2(F.relu(self.conv1(x))) + shortcut)


class XnorResNet18(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), _bn(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            for i in range(2):
                layers.append(XnorBasicBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.bn = _bn(512)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.layers(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def xnor_resnet18() -> nn.Module:
    torch.manual_seed(0)
    return XnorResNet18().eval()


# ----------------------------------------------------------------- fp32 ResNet-18 (baseline)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = _bn(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = _bn(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _bn(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.down is None else self.down(x)
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + shortcut)


class ResNet18(nn.Module):
    """torchvision's resnet18, written out (torchvision is not a dependency)."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), _bn(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            for i in range(2):
                layers.append(BasicBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1))


def resnet18() -> nn.Module:
    torch.manual_seed(0)
    return ResNet18().eval()


NETWORKS = {
    "birealnet18": birealnet18,
    "binaryresnete18": binaryresnete18,
    "binarydensenet28": binarydensenet28,
    "xnor_resnet18": xnor_resnet18,
}
BASELINES = {"resnet18": resnet18}
