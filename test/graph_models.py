"""PyTorch modules for random BNN recipes (graph_recipes.py): ``build(recipe)``.

Everything is spelled the way BNN code is written (bnn_models.py's
binarizers and binary conv layers, plus the extended spellings below), so the
compiler has to recognise it after ``torch.export``. ``build`` returns an
eval-mode model with randomised BN statistics and its example input; the same
recipe always builds the same model.
"""

from __future__ import annotations

import bnn_models as bm
import torch
import torch.nn.functional as F
from graph_recipes import conv_out, float_out, pool_out
from torch import nn


class WhereLt(nn.Module):
    """where(x < 0, -1, 1): binarize(x)."""

    def forward(self, x):
        return torch.where(x < 0, -1.0, 1.0)


class WhereGt(nn.Module):
    """where(x > 0, 1, -1): 0 -> -1, i.e. -binarize(-x)."""

    def forward(self, x):
        return torch.where(x > 0, 1.0, -1.0)


class GeFloat(nn.Module):
    """2 * (x >= 0).float() - 1 (rsub spelling)."""

    def forward(self, x):
        return 2 * (x >= 0).float() - 1


class SignRelu(nn.Module):
    """torch.sign(relu(x)): unipolar {0, 1}, zeros by construction."""

    def forward(self, x):
        return torch.sign(torch.relu(x))


class GtFloat(nn.Module):
    """(x > 0).float(): unipolar {0, 1}."""

    def forward(self, x):
        return (x > 0).float()


class WhereGeThreshold(nn.Module):
    """where(x >= t_c, 1, -1) with a per-channel threshold t_c (bipolar)."""

    def __init__(self, channels: int):
        super().__init__()
        g = torch.Generator().manual_seed(channels + 1)
        self.register_buffer("t", torch.empty(1, channels, 1, 1).uniform_(-0.75, 0.75, generator=g))

    def forward(self, x):
        return torch.where(x >= self.t, 1.0, -1.0)


class GtFloatThreshold(nn.Module):
    """(x > 0.25).float(): unipolar {0, 1} with a scalar threshold."""

    def forward(self, x):
        return (x > 0.25).float()


class ScaledSign(nn.Module):
    """sign(x) * alpha: {-alpha, +alpha}, alpha a scalar or per channel."""

    def __init__(self, channels: int, per_channel: bool):
        super().__init__()
        g = torch.Generator().manual_seed(channels)
        shape = (1, channels, 1, 1) if per_channel else (1,)
        self.register_buffer("alpha", torch.empty(shape).uniform_(0.2, 1.5, generator=g))

    def forward(self, x):
        return torch.sign(x) * self.alpha


class PadValueConv(bm._ActConv2d):
    """Explicit constant padding (+1 here) of the binary input, then an unpadded xnor conv."""

    def __init__(self, *args, pad: int = 1, value: float = 1.0, **kwargs):
        kwargs["padding"] = 0
        super().__init__(*args, **kwargs)
        self.pad, self.value = pad, value

    def forward(self, x):
        p = self.pad
        xb = F.pad(self._in(x), (p, p, p, p), value=self.value)
        alpha = self.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
        return self._conv(xb, torch.sign(self.weight) * alpha)


def _binarizer(name: str, c: int) -> nn.Module:
    extra = {
        "where_lt": WhereLt, "where_gt": WhereGt, "ge_float": GeFloat, "sign_relu": SignRelu, "gt_float": GtFloat,
    }
    if name == "rsign":
        return bm.RSign(c, bm.SignBinarizer())
    if name == "where_ge_t":
        return WhereGeThreshold(c)
    if name == "gt_float_t":
        return GtFloatThreshold()
    if name in ("scaled_sign", "scaled_sign_c"):
        return ScaledSign(c, per_channel=name == "scaled_sign_c")
    return extra[name]() if name in extra else bm.BINARIZERS[name]()


class Block(nn.Module):
    """[BN] -> binarizer -> [max-pool] -> binary conv -> [BN] -> act -> [add | cat]."""

    def __init__(self, b: dict, c: int):
        super().__init__()
        self.b = b
        self.bn_before = nn.BatchNorm2d(c) if b["bn_before"] else None
        self.act_in = _binarizer(b["binarizer"], c)
        cout, k, s, p, d, g = b["cout"], b["k"], b["stride"], b["padding"], b["dilation"], b["groups"]
        wname = b["weights"]
        if wname == "hardbinary":
            self.conv = bm.HardBinaryConv(c, cout, k, s, p)
            with torch.no_grad():
                self.conv.weight.normal_()
        elif wname == "overwrite":
            self.conv = bm.overwrite_with_binary_weights_(nn.Conv2d(c, cout, k, s, p, d, g, bias=False))
        elif wname == "pad_minus_one":
            self.conv = bm.PadMinusOneConv(c, cout, k, stride=s, dilation=d, groups=g, pad=p)
        elif wname == "pad_plus_one":
            self.conv = PadValueConv(c, cout, k, stride=s, dilation=d, groups=g, pad=p, value=1.0)
        else:
            self.conv = bm.CONV_LAYERS[wname](c, cout, k, stride=s, padding=p, dilation=d, groups=g)
        self.pool = nn.MaxPool2d(2) if b.get("pool_after_sign", "none") == "max2" else None
        self.bn_after = nn.BatchNorm2d(cout) if b["bn_after"] else None
        self.act = {
            "none": nn.Identity(),
            "relu": nn.ReLU(),
            "prelu": nn.PReLU(cout),
            "hardtanh": nn.Hardtanh(),
            "rprelu": bm.RPReLU(cout),
        }[b["act"]]

    def forward(self, x):
        y = self.bn_before(x) if self.bn_before is not None else x
        y = self.act_in(y)
        if self.pool is not None:
            y = self.pool(y)
        y = self.conv(y)
        if self.bn_after is not None:
            y = self.bn_after(y)
        y = self.act(y)
        if self.b["merge"] == "add":
            y = y + x
        elif self.b["merge"] == "cat":
            y = torch.cat([x, y], dim=1)
        return y


class FpDown(nn.Module):
    def __init__(self, c, cout):
        super().__init__()
        self.pool = nn.AvgPool2d(2)
        self.conv = nn.Conv2d(c, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(self.pool(x)))


class FloatOp(nn.Module):
    """One float op between binary layers (graph_recipes.FLOAT_OPS)."""

    def __init__(self, op: str, c: int, h: int, w: int):
        super().__init__()
        self.op = op
        if op == "layer_norm":
            self.norm = nn.LayerNorm([c, h, w])
        elif op == "group_norm":
            self.norm = nn.GroupNorm(2, c)

    def forward(self, x):
        op = self.op
        if op in ("tanh", "sigmoid"):
            return getattr(torch, op)(x)
        if op == "gelu":
            return F.gelu(x)
        if op == "gelu_tanh":
            return F.gelu(x, approximate="tanh")
        if op == "leaky_relu":
            return F.leaky_relu(x, 0.1)
        if op == "elu":
            return F.elu(x)
        if op == "hardtanh":
            return F.hardtanh(x, -0.5, 0.5)
        if op == "abs_neg":
            return x - x.abs() * 0.5
        if op == "softmax_c":
            return torch.softmax(x, dim=1) - 1.0 / x.shape[1]
        if op in ("layer_norm", "group_norm"):
            return self.norm(x)
        if op == "permute_hw":
            return x.permute(0, 1, 3, 2)
        if op == "permute_roundtrip":
            return (x.permute(0, 2, 3, 1) * 1.5).permute(0, 3, 1, 2)
        if op == "slice":
            return x[:, :, 1:, ::2]
        if op == "slice_c":
            return x[:, ::2]
        if op == "reflect_pad":
            return F.pad(x, (1, 1, 1, 1), mode="reflect")
        if op == "replicate_pad":
            return F.pad(x, (1, 1, 1, 1), mode="replicate")
        if op == "upsample_nearest":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        if op == "upsample_bilinear":
            return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        if op == "upsample_bilinear_ac":
            return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        if op == "flip":
            return torch.flip(x, dims=[3])
        if op == "channel_shuffle":
            n, c, h, w = x.shape
            return x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        raise ValueError(f"unknown float op {op}")


def _pool(name: str) -> nn.Module:
    return {
        "max2": nn.MaxPool2d(2),
        "avg2": nn.AvgPool2d(2),
        "max3s2p1": nn.MaxPool2d(3, 2, 1),
        "avg3s2p1": nn.AvgPool2d(3, 2, 1),
        "max3s2c": nn.MaxPool2d(3, 2, ceil_mode=True),
        "avg3s2c": nn.AvgPool2d(3, 2, ceil_mode=True),
        "max2c": nn.MaxPool2d(2, ceil_mode=True),
    }[name]


class RandomBNN(nn.Module):
    def __init__(self, spec):
        super().__init__()
        _, cin, h, w = spec["input"]
        c = spec["stem"]
        self.stem = nn.Conv2d(cin, c, 3, padding=1)
        self.stem_bn = nn.BatchNorm2d(c)
        layers = []
        for b in spec["blocks"]:
            if b["kind"] == "pool":
                layers.append(_pool(b["pool"]))
                h, w = pool_out(b["pool"], h, w)
            elif b["kind"] == "fp_down":
                layers.append(FpDown(c, b["cout"]))
                h, w, c = h // 2, w // 2, b["cout"]
            elif b["kind"] == "float":
                layers.append(FloatOp(b["op"], c, h, w))
                shape = float_out(b["op"], c, h, w)
                assert shape is not None, f"illegal float block {b} on {(c, h, w)}"
                c, h, w = shape
            else:
                layers.append(Block(b, c))
                ih, iw = (h // 2, w // 2) if b.get("pool_after_sign", "none") != "none" else (h, w)
                h = conv_out(ih, b["k"], b["stride"], b["padding"], b["dilation"])
                w = conv_out(iw, b["k"], b["stride"], b["padding"], b["dilation"])
                c = c + b["cout"] if b["merge"] == "cat" else b["cout"]
        self.body = nn.Sequential(*layers)
        self.head = spec["head"]
        feat = c if self.head == "gap" else c * h * w
        self.fc = nn.Linear(feat, spec["classes"])

    def forward(self, x):
        x = self.body(self.stem_bn(self.stem(x)))
        if self.head == "gap":
            x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


def build(spec: dict) -> tuple[nn.Module, torch.Tensor]:
    """The eval-mode model of a recipe and its example input (both from spec["seed"])."""
    return bm._build(spec["seed"], lambda: RandomBNN(spec), tuple(spec["input"]))


def second_input(x: torch.Tensor, spec: dict) -> torch.Tensor:
    """Another input of the recipe's shape, fixed by its seed."""
    return torch.randn(x.shape, generator=torch.Generator().manual_seed(spec["seed"] + 7))
