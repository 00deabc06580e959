"""A zoo of binary neural networks written the way BNN code is written in the wild.

Nothing here knows about bnnc: these are plain PyTorch modules, spelled like the
public implementations they imitate (Bi-Real Net, ReActNet, XNOR-Net-PyTorch,
BMXNet's BinaryResNetE / BinaryDenseNet, quantizer libraries), so the frontend
has to recognise the idioms as they really appear after ``torch.export``.

Building blocks
---------------
Activation binarizers (all compute sign with some convention for 0):
  SignBinarizer           torch.sign(x)                       (0 -> 0)
  WhereBinarizer          torch.where(x >= 0, 1., -1.)
  SignNoZeroBinarizer     s = sign(x); where(s == 0, 1, s)
  SteSignBinarizer        x + (sign(x) - x).detach()          (1-ulp noise)
  HardtanhSteBinarizer    c = hardtanh(x); (sign(x) - c).detach() + c
  ApproxSignFnBinarizer   Bi-Real ApproxSign as a torch.autograd.Function
  ApproxSign              Bi-Real / ReActNet module form, polynomial in forward
  GeQuantizer             x.ge(0).float() * 2 - 1
  RSign                   ReActNet: sign(x + b_c), learnable per-channel shift

Binary conv / linear layers (weights binarised in forward):
  XnorConv2d       alpha = W.abs().mean(dim=(1, 2, 3), keepdim=True)
  HardBinaryConv   Bi-Real: nested means + clamp weight STE
  L1NormConv2d     alpha = W.norm(p=1, dim=(1, 2, 3), keepdim=True) / numel
  SignConv2d       sign(W), no alpha (BinaryResNetE / BinaryDenseNet)
  SteWeightConv2d  W + (alpha * sign(W) - W).detach()
  PadMinusOneConv  F.pad(x, (1, 1, 1, 1), value=-1) then conv, padding 0
  overwrite_with_binary_weights_(conv)   XNOR-Net-PyTorch style: the float
                   weights are overwritten with +-alpha_c outside the graph
  BinaryLinear     sign(W) * mean|W| per row

Every model has an fp32 first conv and an fp32 last linear. Each model has a
factory ``make_<name>(seed) -> (model, example_input)`` that returns an eval-mode
model with randomised BN statistics / affine params (so that outputs and signs
are not trivial), and ``MODEL_FACTORIES`` lists them all.
"""

from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------
# Activation binarizers
# ---------------------------------------------------------------------------


class SignBinarizer(nn.Module):
    def forward(self, x):
        return torch.sign(x)


class WhereBinarizer(nn.Module):
    def forward(self, x):
        return torch.where(x >= 0, 1.0, -1.0)


class SignNoZeroBinarizer(nn.Module):
    def forward(self, x):
        s = torch.sign(x)
        return torch.where(s == 0, torch.ones_like(s), s)


class SteSignBinarizer(nn.Module):
    """Straight-through estimator: forward sign, backward identity."""

    def forward(self, x):
        return x + (torch.sign(x) - x).detach()


class HardtanhSteBinarizer(nn.Module):
    """BinaryNet-style STE: forward sign, backward hardtanh's gradient."""

    def forward(self, x):
        clipped = F.hardtanh(x)
        return (torch.sign(x) - clipped).detach() + clipped


class ApproxSignFn(torch.autograd.Function):
    """Bi-Real Net's ApproxSign: forward sign, backward d/dx of the piecewise
    polynomial 2x + x^2 (x<0), 2x - x^2 (x>=0), clipped at |x| = 1."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sign(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        grad = (2 + 2 * x) * (x < 0).float() + (2 - 2 * x) * (x >= 0).float()
        grad = grad * (x.abs() < 1).float()
        return grad_output * grad


class ApproxSignFnBinarizer(nn.Module):
    def forward(self, x):
        return ApproxSignFn.apply(x)


class ApproxSign(nn.Module):
    """Bi-Real / ReActNet ``BinaryActivation``, verbatim in spirit: the
    polynomial is computed in forward and cancelled with detach."""

    def forward(self, x):
        out_forward = torch.sign(x)
        mask1 = x < -1
        mask2 = x < 0
        mask3 = x < 1
        out1 = (-1) * mask1.type(torch.float32) + (x * x + 2 * x) * (1 - mask1.type(torch.float32))
        out2 = out1 * mask2.type(torch.float32) + (-x * x + 2 * x) * (1 - mask2.type(torch.float32))
        out3 = out2 * mask3.type(torch.float32) + 1 * (1 - mask3.type(torch.float32))
        out = out_forward.detach() - out3.detach() + out3
        return out


class GeQuantizer(nn.Module):
    """Quantizer-library spelling: ge(0) -> to(float) -> *2 -> -1."""

    def forward(self, x):
        return x.ge(0).float() * 2 - 1


class LearnableBias(nn.Module):
    """ReActNet's per-channel shift (also the adds of RPReLU)."""

    def __init__(self, out_chn):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, out_chn, 1, 1), requires_grad=True)

    def forward(self, x):
        out = x + self.bias.expand_as(x)
        return out


class RSign(nn.Module):
    """ReActNet RSign: sign(x + b_c)."""

    def __init__(self, channels, binarizer: nn.Module | None = None):
        super().__init__()
        self.move = LearnableBias(channels)
        self.binary_activation = binarizer if binarizer is not None else ApproxSign()

    def forward(self, x):
        return self.binary_activation(self.move(x))


class RPReLU(nn.Module):
    """ReActNet RPReLU: add -> prelu -> add."""

    def __init__(self, channels):
        super().__init__()
        self.move1 = LearnableBias(channels)
        self.prelu = nn.PReLU(channels)
        self.move2 = LearnableBias(channels)

    def forward(self, x):
        return self.move2(self.prelu(self.move1(x)))


BINARIZERS = {
    "sign": SignBinarizer,
    "where": WhereBinarizer,
    "sign_nozero": SignNoZeroBinarizer,
    "ste": SteSignBinarizer,
    "hardtanh_ste": HardtanhSteBinarizer,
    "approxsign_fn": ApproxSignFnBinarizer,
    "approxsign": ApproxSign,
    "ge": GeQuantizer,
}

# ---------------------------------------------------------------------------
# Binary conv / linear layers
# ---------------------------------------------------------------------------


class _ActConv2d(nn.Conv2d):
    """nn.Conv2d with an optional input binarizer applied first (larq-style
    ``input_quantizer``)."""

    def __init__(self, *args, act: nn.Module | None = None, **kwargs):
        kwargs.setdefault("bias", False)
        super().__init__(*args, **kwargs)
        self.act = act

    def _in(self, x):
        return self.act(x) if self.act is not None else x

    def _conv(self, x, w):
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class XnorConv2d(_ActConv2d):
    """sign(W) * alpha, alpha = W.abs().mean(dim=(1,2,3), keepdim=True)."""

    def forward(self, x):
        w = self.weight
        alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
        bw = torch.sign(w) * alpha
        return self._conv(self._in(x), bw)


class NestedMeanConv2d(_ActConv2d):
    """alpha as nested means (Bi-Real spelling), no STE."""

    def forward(self, x):
        w = self.weight
        scaling_factor = torch.mean(
            torch.mean(torch.mean(abs(w), dim=3, keepdim=True), dim=2, keepdim=True),
            dim=1,
            keepdim=True,
        )
        return self._conv(self._in(x), scaling_factor * torch.sign(w))


class L1NormConv2d(_ActConv2d):
    """alpha = ||W_c||_1 / n."""

    def forward(self, x):
        w = self.weight
        n = w[0].nelement()
        alpha = w.norm(p=1, dim=(1, 2, 3), keepdim=True).div(n)
        return self._conv(self._in(x), w.sign() * alpha)


class SignConv2d(_ActConv2d):
    """sign(W), no scaling factor (BinaryResNetE, BinaryDenseNet)."""

    def forward(self, x):
        return self._conv(self._in(x), torch.sign(self.weight))


class SteWeightConv2d(_ActConv2d):
    """alpha * sign(W) through a weight STE: W + (alpha*sign(W) - W).detach()."""

    def forward(self, x):
        w = self.weight
        alpha = w.abs().mean(dim=[1, 2, 3], keepdim=True)
        bw = w + (alpha * torch.sign(w) - w).detach()
        return self._conv(self._in(x), bw)


class PadMinusOneConv(_ActConv2d):
    """Explicit -1 padding of the binary input, then an unpadded conv."""

    def __init__(self, *args, pad: int = 1, **kwargs):
        kwargs["padding"] = 0
        super().__init__(*args, **kwargs)
        self.pad = pad

    def forward(self, x):
        p = self.pad
        xb = F.pad(self._in(x), (p, p, p, p), value=-1)
        alpha = self.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
        return self._conv(xb, torch.sign(self.weight) * alpha)


class HardBinaryConv(nn.Module):
    """Bi-Real Net / ReActNet ``HardBinaryConv``: flat weight parameter,
    nested-mean scaling factor, clamp weight STE."""

    def __init__(self, in_chn, out_chn, kernel_size=3, stride=1, padding=1):
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.number_of_weights = in_chn * out_chn * kernel_size * kernel_size
        self.shape = (out_chn, in_chn, kernel_size, kernel_size)
        self.weight = nn.Parameter(torch.rand((self.number_of_weights, 1)) * 0.001 - 0.0005, requires_grad=True)

    def forward(self, x):
        real_weights = self.weight.view(self.shape)
        scaling_factor = torch.mean(
            torch.mean(torch.mean(abs(real_weights), dim=3, keepdim=True), dim=2, keepdim=True),
            dim=1,
            keepdim=True,
        )
        scaling_factor = scaling_factor.detach()
        binary_weights_no_grad = scaling_factor * torch.sign(real_weights)
        cliped_weights = torch.clamp(real_weights, -1.0, 1.0)
        binary_weights = binary_weights_no_grad.detach() - cliped_weights.detach() + cliped_weights
        y = F.conv2d(x, binary_weights, stride=self.stride, padding=self.padding)
        return y


def overwrite_with_binary_weights_(conv: nn.Conv2d) -> nn.Conv2d:
    """XNOR-Net-PyTorch ``BinOp.binarization``: replace the float weights by
    sign(W) * mean|W_c| outside the graph. The conv itself stays a plain
    nn.Conv2d; only its weight values say it is binary."""
    with torch.no_grad():
        w = conv.weight
        n = w[0].nelement()
        m = w.norm(1, 3, keepdim=True).sum(2, keepdim=True).sum(1, keepdim=True).div(n)
        conv.weight.copy_(w.sign() * m.expand(w.size()))
    return conv


class BinaryLinear(nn.Linear):
    """sign(W) * mean|W| per output row, optional input binarizer."""

    def __init__(self, *args, act: nn.Module | None = None, scale: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.act = act
        self.scale = scale

    def forward(self, x):
        if self.act is not None:
            x = self.act(x)
        bw = torch.sign(self.weight)
        if self.scale:
            bw = bw * self.weight.abs().mean(dim=1, keepdim=True)
        return F.linear(x, bw, self.bias)


CONV_LAYERS = {
    "xnor_mean": XnorConv2d,
    "nested_mean": NestedMeanConv2d,
    "l1norm": L1NormConv2d,
    "no_alpha": SignConv2d,
    "weight_ste": SteWeightConv2d,
}

# ---------------------------------------------------------------------------
# Parameter randomisation
# ---------------------------------------------------------------------------


def randomize_(model: nn.Module, example_input: torch.Tensor, seed: int, negative_gamma: float = 0.1) -> nn.Module:
    """Give the model non-trivial BN statistics and affine parameters, PReLU
    slopes and learnable biases, then put it in eval mode.

    BN running stats are first calibrated on random data (train-mode forward
    with a cumulative average), so that every sign downstream of a BN sees a
    balanced mix of signs, then perturbed; a fraction of BN gammas is negative
    (that flips the corresponding threshold comparison in the compiler)."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in model.modules():
        if isinstance(m, LearnableBias):
            with torch.no_grad():
                m.bias.copy_(0.15 * torch.randn(m.bias.shape, generator=g))
        elif isinstance(m, nn.PReLU):
            with torch.no_grad():
                m.weight.copy_(torch.empty(m.weight.shape).uniform_(0.05, 0.4, generator=g))
    moms = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        calib = torch.randn((8,) + tuple(example_input.shape[1:]), generator=g)
        model(calib)
    with torch.no_grad():
        for m, mom in zip(bns, moms):
            m.momentum = mom
            c = m.num_features
            var = m.running_var.clamp(min=1e-2)
            std = var.sqrt()
            m.running_mean.add_(0.2 * std * torch.randn(c, generator=g))
            m.running_var.copy_(var * torch.empty(c).uniform_(0.6, 1.5, generator=g))
            if m.affine:
                gamma = torch.empty(c).uniform_(0.5, 1.5, generator=g)
                flip = torch.rand(c, generator=g) < negative_gamma
                gamma[flip] = -gamma[flip]
                m.weight.copy_(gamma)
                m.bias.copy_(0.3 * torch.randn(c, generator=g))
    model.eval()
    return model


def _seeded(seed: int):
    """Fork the global RNG so a factory neither depends on nor disturbs it."""
    ctx = torch.random.fork_rng()
    ctx.__enter__()
    torch.manual_seed(seed)
    return ctx


def _build(seed, ctor, input_shape, negative_gamma=0.1):
    ctx = _seeded(seed)
    try:
        model = ctor()
        x = torch.randn(input_shape)
        randomize_(model, x, seed + 1, negative_gamma=negative_gamma)
        x = torch.randn(input_shape)
    finally:
        ctx.__exit__(None, None, None)
    return model, x


# ---------------------------------------------------------------------------
# Bi-Real Net
# ---------------------------------------------------------------------------


class BiRealBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.binary_activation = ApproxSignFnBinarizer()
        self.binary_conv = HardBinaryConv(inplanes, planes, stride=stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.AvgPool2d(kernel_size=2, stride=stride),
                nn.Conv2d(inplanes, planes, kernel_size=1, stride=1, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x):
        residual = x
        out = self.binary_activation(x)
        out = self.binary_conv(out)
        out = self.bn1(out)
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        return out


class BiRealNet(nn.Module):
    def __init__(self, num_classes=10, widths=(16, 32, 64), blocks_per_stage=2):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers = []
        inplanes = widths[0]
        for i, w in enumerate(widths):
            for j in range(blocks_per_stage):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(BiRealBlock(inplanes, w, stride))
                inplanes = w
        self.layers = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x):
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.layers(x)
        x = self.avgpool(x)
        x = x.view(x.size(0), -1)
        x = self.fc(x)
        return x


def make_bireal(seed=0):
    return _build(seed, lambda: BiRealNet(), (1, 3, 32, 32))


# ---------------------------------------------------------------------------
# BinaryResNetE (BMXNet-v2 style: no scaling factors, fp downsampling)
# ---------------------------------------------------------------------------


class ResNetEBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, binarizer="where"):
        super().__init__()
        self.bn_in = nn.BatchNorm2d(inplanes)
        self.binarize = BINARIZERS[binarizer]()
        self.conv = SignConv2d(inplanes, planes, 3, stride=stride, padding=1)
        self.bn = nn.BatchNorm2d(planes)
        self.shortcut = nn.Identity()
        if stride != 1 or inplanes != planes:
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(2, stride),
                nn.Conv2d(inplanes, planes, 1, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x):
        out = self.bn(self.conv(self.binarize(self.bn_in(x))))
        return out + self.shortcut(x)


class BinaryResNetE(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
        )
        self.blocks = nn.Sequential(
            ResNetEBlock(32, 32, 1, "where"),
            ResNetEBlock(32, 32, 1, "ste"),
            ResNetEBlock(32, 64, 2, "where"),
            ResNetEBlock(64, 64, 1, "sign_nozero"),
            ResNetEBlock(64, 64, 2, "hardtanh_ste"),
        )
        self.bn_out = nn.BatchNorm2d(64)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = F.relu(self.bn_out(x))
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)


def make_resnete(seed=0):
    return _build(seed, lambda: BinaryResNetE(), (1, 3, 32, 32))


# ---------------------------------------------------------------------------
# BinaryDenseNet
# ---------------------------------------------------------------------------


class DenseLayer(nn.Module):
    def __init__(self, inplanes, growth):
        super().__init__()
        self.bn = nn.BatchNorm2d(inplanes)
        self.quant = GeQuantizer()
        self.conv = SignConv2d(inplanes, growth, 3, padding=1)

    def forward(self, x):
        y = self.conv(self.quant(self.bn(x)))
        return torch.cat([x, y], dim=1)


class Transition(nn.Module):
    """BinaryDenseNet transition: BN -> pool -> ReLU -> fp 1x1 conv."""

    def __init__(self, inplanes, outplanes, pool="max"):
        super().__init__()
        self.bn = nn.BatchNorm2d(inplanes)
        self.pool = nn.MaxPool2d(2, 2) if pool == "max" else nn.AvgPool2d(2, 2)
        self.conv = nn.Conv2d(inplanes, outplanes, 1, bias=False)

    def forward(self, x):
        return self.conv(F.relu(self.pool(self.bn(x))))


class BinaryDenseNet(nn.Module):
    def __init__(self, growth=16, num_classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, padding=1, bias=False)
        c = 32
        blocks = []
        for pool in ("max", "avg", None):
            for _ in range(2):
                blocks.append(DenseLayer(c, growth))
                c += growth
            if pool is not None:
                blocks.append(Transition(c, c // 2, pool))
                c //= 2
        self.features = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.features(self.stem(x))
        x = F.relu(self.bn(x))
        x = F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)
        return self.fc(x)


def make_densenet(seed=0):
    return _build(seed, lambda: BinaryDenseNet(), (1, 3, 32, 32))


# ---------------------------------------------------------------------------
# XNOR-Net
# ---------------------------------------------------------------------------


class XnorBlock(nn.Module):
    """BN -> sign -> binary conv (alpha) * K -> ReLU [-> maxpool].

    K is the activation scale of XNOR-Net: A = mean(|I|, dim=1) box-filtered
    with a ones/(k*k) kernel of the conv's stride and padding."""

    def __init__(self, cin, cout, k=3, stride=1, padding=1, pool=False, conv="xnor_mean", overwrite=False):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin, eps=1e-4, momentum=0.1, affine=True)
        self.k, self.stride, self.padding = k, stride, padding
        if overwrite:
            self.conv = overwrite_with_binary_weights_(nn.Conv2d(cin, cout, k, stride, padding, bias=True))
        else:
            self.conv = CONV_LAYERS[conv](cin, cout, k, stride=stride, padding=padding, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2) if pool else None

    def forward(self, x):
        x = self.bn(x)
        A = torch.mean(x.abs(), dim=1, keepdim=True)
        kernel = torch.ones(1, 1, self.k, self.k) / (self.k * self.k)
        K = F.conv2d(A, kernel, stride=self.stride, padding=self.padding)
        x = torch.sign(x)
        x = self.conv(x) * K
        x = self.relu(x)
        if self.pool is not None:
            x = self.pool(x)
        return x


class XnorNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(32, eps=1e-4, momentum=0.1, affine=False)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.b2 = XnorBlock(32, 64, 3, 1, 1, pool=True, conv="xnor_mean")
        self.b3 = XnorBlock(64, 64, 3, 1, 1, pool=False, overwrite=True)
        self.b4 = XnorBlock(64, 48, 3, 2, 1, pool=False, conv="l1norm")
        self.b5 = XnorBlock(48, 32, 1, 1, 0, pool=False, conv="nested_mean")
        self.bn_out = nn.BatchNorm2d(32)
        self.fc = nn.Linear(32 * 4 * 4, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.pool1(x)
        x = self.b5(self.b4(self.b3(self.b2(x))))
        x = self.bn_out(x)
        return self.fc(x.view(x.size(0), 32 * 4 * 4))


def make_xnornet(seed=0):
    return _build(seed, lambda: XnorNet(), (1, 3, 32, 32))


# ---------------------------------------------------------------------------
# BWN: binary weights, real activations
# ---------------------------------------------------------------------------


class BWNNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = L1NormConv2d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.conv3 = XnorConv2d(32, 32, 3, stride=2, padding=1)
        self.bn3 = nn.BatchNorm2d(32)
        self.conv4 = SteWeightConv2d(32, 64, 3, padding=1)
        self.bn4 = nn.BatchNorm2d(64)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.max_pool2d(x, 2)
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.relu(self.bn4(self.conv4(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def make_bwn(seed=0):
    return _build(seed, lambda: BWNNet(), (1, 3, 32, 32))


# ---------------------------------------------------------------------------
# ReActNet
# ---------------------------------------------------------------------------


def conv3x3(in_planes, out_planes, stride=1):
    return HardBinaryConv(in_planes, out_planes, kernel_size=3, stride=stride, padding=1)


def conv1x1(in_planes, out_planes, stride=1):
    return HardBinaryConv(in_planes, out_planes, kernel_size=1, stride=stride, padding=0)


class ReActBlock(nn.Module):
    """ReActNet-A basic block, as in the public code."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        norm_layer = nn.BatchNorm2d
        self.move11 = LearnableBias(inplanes)
        self.binary_3x3 = conv3x3(inplanes, inplanes, stride=stride)
        self.bn1 = norm_layer(inplanes)
        self.move12 = LearnableBias(inplanes)
        self.prelu1 = nn.PReLU(inplanes)
        self.move13 = LearnableBias(inplanes)
        self.move21 = LearnableBias(inplanes)
        if inplanes == planes:
            self.binary_pw = conv1x1(inplanes, planes)
            self.bn2 = norm_layer(planes)
        else:
            self.binary_pw_down1 = conv1x1(inplanes, inplanes)
            self.binary_pw_down2 = conv1x1(inplanes, inplanes)
            self.bn2_1 = norm_layer(inplanes)
            self.bn2_2 = norm_layer(inplanes)
        self.move22 = LearnableBias(planes)
        self.prelu2 = nn.PReLU(planes)
        self.move23 = LearnableBias(planes)
        self.binary_activation = ApproxSign()
        self.stride = stride
        self.inplanes = inplanes
        self.planes = planes
        if self.inplanes != self.planes:
            assert planes == inplanes * 2
        if stride == 2:
            self.pooling = nn.AvgPool2d(2, 2)

    def forward(self, x):
        out1 = self.move11(x)
        out1 = self.binary_activation(out1)
        out1 = self.binary_3x3(out1)
        out1 = self.bn1(out1)
        if self.stride == 2:
            x = self.pooling(x)
        out1 = x + out1
        out1 = self.move12(out1)
        out1 = self.prelu1(out1)
        out1 = self.move13(out1)

        out2 = self.move21(out1)
        out2 = self.binary_activation(out2)
        if self.inplanes == self.planes:
            out2 = self.binary_pw(out2)
            out2 = self.bn2(out2)
            out2 += out1
        else:
            out2_1 = self.binary_pw_down1(out2)
            out2_2 = self.binary_pw_down2(out2)
            out2_1 = self.bn2_1(out2_1)
            out2_2 = self.bn2_2(out2_2)
            out2_1 += out1
            out2_2 += out1
            out2 = torch.cat([out2_1, out2_2], dim=1)
        out2 = self.move22(out2)
        out2 = self.prelu2(out2)
        out2 = self.move23(out2)
        return out2


class ReActNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16))
        self.features = nn.Sequential(
            ReActBlock(16, 16, 1),
            ReActBlock(16, 32, 2),
            ReActBlock(32, 32, 1),
            ReActBlock(32, 64, 2),
        )
        self.pool1 = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.features(self.stem(x))
        x = self.pool1(x)
        x = x.view(x.size(0), -1)
        return self.fc(x)


def make_reactnet(seed=0):
    return _build(seed, lambda: ReActNet(), (1, 3, 32, 32))


# ---------------------------------------------------------------------------
# Odd shapes: odd channel counts, odd spatial sizes, dilation, groups,
# non-square kernels, -1 padding, ceil-mode pooling.
# ---------------------------------------------------------------------------


class OddShapesNet(nn.Module):
    def __init__(self, num_classes=7):
        super().__init__()
        self.stem = nn.Conv2d(5, 33, 3, padding=1, bias=True)
        self.bn0 = nn.BatchNorm2d(33)
        self.act1 = WhereBinarizer()
        self.c1 = XnorConv2d(33, 65, 3, stride=2, padding=2, dilation=2)
        self.bn1 = nn.BatchNorm2d(65)
        self.act2 = SignNoZeroBinarizer()
        self.c2 = SignConv2d(65, 65, (1, 3), padding=(0, 1), groups=5)
        self.bn2 = nn.BatchNorm2d(65)
        self.act3 = GeQuantizer()
        self.c3 = PadMinusOneConv(65, 17, 3, pad=1)
        self.bn3 = nn.BatchNorm2d(17)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.act4 = SteSignBinarizer()
        self.c4 = L1NormConv2d(17, 33, 3, stride=1, padding=0)
        self.bn4 = nn.BatchNorm2d(33)
        self.fc = nn.Linear(33, num_classes)

    def forward(self, x):
        x = self.bn0(self.stem(x))
        y = self.bn1(self.c1(self.act1(x)))
        y = F.hardtanh(y)
        y = y + self.bn2(self.c2(self.act2(y)))
        z = self.bn3(self.c3(self.act3(y)))
        z = self.pool(z)
        z = self.bn4(self.c4(self.act4(z)))
        z = F.avg_pool2d(z, kernel_size=z.shape[-2:])
        return self.fc(torch.flatten(z, 1))


def make_odd_shapes(seed=0):
    return _build(seed, lambda: OddShapesNet(), (1, 5, 19, 23))


# ---------------------------------------------------------------------------
# Binary dense head: conv stem, binary linear layers, fp classifier
# ---------------------------------------------------------------------------


class BinaryMLPHead(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.bn0 = nn.BatchNorm2d(8)
        self.fc1 = BinaryLinear(8 * 8 * 8, 100, bias=False, act=WhereBinarizer())
        self.bn1 = nn.BatchNorm1d(100)
        self.fc2 = BinaryLinear(100, 65, bias=True, act=SteSignBinarizer(), scale=False)
        self.bn2 = nn.BatchNorm1d(65)
        self.act = nn.Hardtanh()
        self.fc = nn.Linear(65, num_classes)

    def forward(self, x):
        x = self.bn0(self.conv(x)).flatten(1)
        x = self.bn1(self.fc1(x))
        x = self.act(self.bn2(self.fc2(x)))
        return self.fc(x)


def make_binary_mlp(seed=0):
    return _build(seed, lambda: BinaryMLPHead(), (1, 1, 16, 16))


MODEL_FACTORIES = [
    make_bireal,
    make_resnete,
    make_densenet,
    make_xnornet,
    make_bwn,
    make_reactnet,
    make_odd_shapes,
    make_binary_mlp,
]
