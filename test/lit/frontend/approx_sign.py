# RUN: %python %s | filecheck %s
# Bi-Real-Net's ApproxSign: out_forward.detach() - out3.detach() + out3. The
# piecewise polynomial (~40 ops) is dead once the idiom is recognised.
import torch
import torch.nn as nn
import torch.nn.functional as F

from bnnc.context import make_context
from bnnc.frontend.torch_import import export_module, import_program
from bnnc.pipeline import run_passes


def imported(ep):
    """The faithful import, then fold-weight-binarization (what --emit=bnn starts from)."""
    module = import_program(ep)
    run_passes(module, "recognize-binarization,fold-weight-binarization,canonicalize,dce", make_context())
    return module


class BinaryActivation(nn.Module):
    def forward(self, x):
        out_forward = torch.sign(x)
        mask1 = x < -1
        mask2 = x < 0
        mask3 = x < 1
        out1 = (-1) * mask1.type(torch.float32) + (x * x + 2 * x) * (1 - mask1.type(torch.float32))
        out2 = out1 * mask2.type(torch.float32) + (-x * x + 2 * x) * (1 - mask2.type(torch.float32))
        out3 = out2 * mask3.type(torch.float32) + 1 * (1 - mask3.type(torch.float32))
        return out_forward.detach() - out3.detach() + out3


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.act = BinaryActivation()
        self.conv = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        w = self.conv.weight
        scale = w.abs().mean(dim=3, keepdim=True).mean(dim=2, keepdim=True).mean(dim=1, keepdim=True)
        y = F.conv2d(self.act(x), scale.detach() * torch.sign(w), padding=1)
        return self.bn(y) + x


# CHECK: func.func @forward(%x: tensor<1x8x5x5xf32>)
# CHECK-NEXT: %[[S:.*]] = bnn.sign %x : tensor<1x8x5x5xf32>
# CHECK-NOT: bnn.mul
# CHECK-NOT: bnn.sub
# CHECK-NOT: bnn.add
# CHECK: %[[C:.*]] = bnn.bconv2d %[[S]], %{{.*}} multiplier %{{.*}} : tensor<8xf32>
# CHECK: %[[B:.*]] = bnn.batch_norm %[[C]]
# CHECK-NEXT: bnn.add %[[B]], %x
# CHECK-NOT: bnn.
# CHECK: func.return
print(imported(export_module(Block(), (torch.randn(1, 8, 5, 5),))))
