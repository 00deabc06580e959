# RUN: %python %s | filecheck %s
# Straight-through-estimator spellings: the forward value is the sign, and the
# STE's add/sub/alias helpers disappear.
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


class SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.where(x >= 0, 1.0, -1.0)

    @staticmethod
    def backward(ctx, g):
        return g


class Net(nn.Module):
    def __init__(self, binarize):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(4, 8, 3, padding=1, bias=False)
        self.binarize = binarize

    def forward(self, x):
        return F.conv2d(self.binarize(x), torch.sign(self.conv.weight), padding=1)


def show(title, binarize):
    print(f"// ----- {title}")
    print(imported(export_module(Net(binarize), (torch.randn(1, 4, 6, 6),))))


# CHECK-LABEL: ----- detach STE
# CHECK: %[[S:.*]] = bnn.sign %x
# CHECK-NOT: bnn.add
# CHECK-NOT: bnn.sub
# CHECK: bnn.bconv2d %[[S]]
show("detach STE", lambda x: x + (torch.sign(x) - x).detach())

# CHECK-LABEL: ----- detach STE reversed
# CHECK: %[[S:.*]] = bnn.sign %x
# CHECK-NOT: bnn.add
# CHECK: bnn.bconv2d %[[S]]
show("detach STE reversed", lambda x: (torch.sign(x) - x).detach() + x)

# hardtanh keeps the sign of its input (min < 0 < max), so the value-set
# analysis binarises x itself and the clip dies with the STE helpers.
# CHECK-LABEL: ----- hardtanh STE
# CHECK: %[[S:.*]] = bnn.sign %x
# CHECK-NOT: bnn.hardtanh
# CHECK-NOT: bnn.add
# CHECK-NOT: bnn.sub
# CHECK: bnn.bconv2d %[[S]]
def hardtanh_ste(x):
    h = F.hardtanh(x)
    return h + (torch.sign(h) - h).detach()


show("hardtanh STE", hardtanh_ste)

# CHECK-LABEL: ----- autograd.Function
# CHECK: %[[S:.*]] = bnn.sign %x
# CHECK-NOT: bnn.{{(add|sub|mul|div|where|sign|hardtanh)}}
# CHECK: bnn.bconv2d %[[S]]
show("autograd.Function", SignSTE.apply)
