# RUN: %python %s | filecheck %s
# Activation binarisation spellings each become one bnn.sign feeding a bnn.bconv2d.
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
    def __init__(self, binarize):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(4, 8, 3, padding=1, bias=False)
        self.binarize = binarize

    def forward(self, x):
        w = torch.sign(self.conv.weight)
        return F.conv2d(self.binarize(x), w, padding=1)


def show(title, binarize):
    print(f"// ----- {title}")
    print(imported(export_module(Net(binarize), (torch.randn(1, 4, 6, 6),))))


# CHECK-LABEL: ----- torch.sign
# CHECK: %[[S:.*]] = bnn.sign %x : tensor<1x4x6x6xf32>
# CHECK-NOT: bnn.sign
# CHECK: bnn.bconv2d %[[S]], %{{.*}} {{{.*}}pad_value = 0 : i64} : tensor<1x4x6x6xf32>, tensor<8x3x3x1xi64> -> tensor<1x8x6x6xf32>
show("torch.sign", torch.sign)

# CHECK-LABEL: ----- where ge
# CHECK: %[[S:.*]] = bnn.sign %x
# CHECK-NOT: bnn.{{(add|sub|mul|div|where|sign|hardtanh)}}
# CHECK: bnn.bconv2d %[[S]]
show("where ge", lambda x: torch.where(x >= 0, 1.0, -1.0))

# CHECK-LABEL: ----- where lt
# CHECK: %[[S:.*]] = bnn.sign %x
# CHECK-NOT: bnn.{{(add|sub|mul|div|where|sign|hardtanh)}}
# CHECK: bnn.bconv2d %[[S]]
show("where lt", lambda x: torch.where(x < 0, -1.0, 1.0))

# CHECK-LABEL: ----- where sign==0
# CHECK: %[[S:.*]] = bnn.sign %x
# CHECK-NOT: bnn.{{(add|sub|mul|div|where|sign|hardtanh)}}
# CHECK: bnn.bconv2d %[[S]]
show("where sign==0", lambda x: torch.where(torch.sign(x) == 0, torch.ones_like(x), torch.sign(x)))

# where(x > 0, 1, -1) maps 0 to -1: it is -binarize(-x); the conv takes sign(-x)
# with negated weights.
# CHECK-LABEL: ----- where gt
# CHECK: %[[N:.*]] = bnn.mul %x, %{{.*}}
# CHECK: %[[S:.*]] = bnn.sign %[[N]]
# CHECK-NOT: bnn.{{(add|sub|mul|div|where|sign|hardtanh)}}
# CHECK: bnn.bconv2d %[[S]]
show("where gt", lambda x: torch.where(x > 0, 1.0, -1.0))

# ReActNet's RSign: a learnt per-channel shift, then sign.
# CHECK-LABEL: ----- rsign
# CHECK: %[[A:.*]] = bnn.add %x, %{{.*}} : (tensor<1x4x6x6xf32>, tensor<1x4x1x1xf32>) -> tensor<1x4x6x6xf32>
# CHECK: %[[S:.*]] = bnn.sign %[[A]]
# CHECK: bnn.bconv2d %[[S]]
shift = torch.linspace(-0.5, 0.5, 4).view(1, 4, 1, 1)
show("rsign", lambda x: torch.sign(x + shift))
