# RUN: %python %s | filecheck %s
# Weight scale spellings fold (by constant folding with torch) into a packed
# weight and a per-output-channel multiplier.
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


class Net(nn.Module):
    def __init__(self, binarize_weight):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(4, 3, 3, padding=1, bias=True)
        self.binarize_weight = binarize_weight

    def forward(self, x):
        xb = torch.where(x >= 0, 1.0, -1.0)
        return F.conv2d(xb, self.binarize_weight(self.conv.weight), self.conv.bias, padding=1)


def show(title, fn):
    print(f"// ----- {title}")
    print(imported(export_module(Net(fn), (torch.randn(1, 4, 6, 6),))))


# CHECK-LABEL: ----- abs mean
# CHECK: bnn.bconv2d %{{.*}}, %{{.*}} multiplier %{{.*}} : tensor<3xf32> bias %{{.*}} : tensor<3xf32> {{.*}} tensor<3x3x3x1xi64>
show("abs mean", lambda w: torch.sign(w) * w.abs().mean(dim=(1, 2, 3), keepdim=True))

# CHECK-LABEL: ----- nested means
# CHECK: bnn.bconv2d %{{.*}}, %{{.*}} multiplier %{{.*}} : tensor<3xf32> bias
show(
    "nested means",
    lambda w: torch.sign(w) * w.abs().mean(-1, keepdim=True).mean(-2, keepdim=True).mean(-3, keepdim=True),
)

# CHECK-LABEL: ----- l1 norm
# CHECK: bnn.bconv2d %{{.*}}, %{{.*}} multiplier %{{.*}} : tensor<3xf32> bias
show("l1 norm", lambda w: torch.sign(w) * (torch.norm(w, p=1, dim=(1, 2, 3), keepdim=True) / w[0].numel()))

# The weight STE leaves 1-ulp noise; alpha is still found.
# CHECK-LABEL: ----- weight STE
# CHECK: bnn.bconv2d %{{.*}}, %{{.*}} multiplier %{{.*}} : tensor<3xf32> bias
def weight_ste(w):
    alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
    return w + (torch.sign(w) * alpha - w).detach()


show("weight STE", weight_ste)

# Weights already overwritten with +-alpha_c outside the graph (XNOR-Net style).
# CHECK-LABEL: ----- stored alpha
# CHECK: arith.constant dense<[5.000000e-01, 2.500000e-01, 1.250000e-01]> : tensor<3xf32>
# CHECK: bnn.bconv2d %{{.*}}, %{{.*}} multiplier %{{.*}} : tensor<3xf32> bias
stored = torch.sign(torch.randn(3, 4, 3, 3)) * torch.tensor([0.5, 0.25, 0.125]).view(3, 1, 1, 1)
show("stored alpha", lambda w: stored)

# CHECK-LABEL: ----- unit alpha
# CHECK-NOT: multiplier
# CHECK: bnn.bconv2d %{{.*}}, %{{.*}} bias %{{.*}} : tensor<3xf32> {
show("unit alpha", torch.sign)

# Real-valued weights: a float conv of the binarised input.
# CHECK-LABEL: ----- real weights
# CHECK: %[[S:.*]] = bnn.sign %x
# CHECK: bnn.conv2d %[[S]], %{{.*}} bias
show("real weights", lambda w: w)
