# RUN: %python %s | filecheck %s
# A constant pad in front of a binary conv folds into its padding and pad_value.
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
    def __init__(self, body):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(4, 8, 3, bias=False)
        self.body = body

    def forward(self, x):
        return F.conv2d(self.body(x), torch.sign(self.conv.weight))


def show(title, body):
    print(f"// ----- {title}")
    print(imported(export_module(Net(body), (torch.randn(1, 4, 6, 6),))))


def ge(x):
    return torch.where(x >= 0, 1.0, -1.0)


# CHECK-LABEL: ----- pad -1 after sign
# CHECK: %[[S:.*]] = bnn.sign %x
# CHECK: bnn.bconv2d %[[S]], %{{.*}} {{{.*}}strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = -1 : i64} : tensor<1x4x6x6xf32>, tensor<8x3x3x1xi64> -> tensor<1x8x6x6xf32>
show("pad -1 after sign", lambda x: F.pad(ge(x), (1, 1, 1, 1), value=-1.0))

# CHECK-LABEL: ----- pad +1 after sign
# CHECK: bnn.bconv2d {{.*}}padding = array<i64: 2, 1>{{.*}}pad_value = 1 : i64}
show("pad +1 after sign", lambda x: F.pad(ge(x), (1, 1, 2, 2), value=1.0))

# Padding before the sign: sign(-5) = -1.
# CHECK-LABEL: ----- pad before sign
# CHECK: %[[S:.*]] = bnn.sign %x
# CHECK: bnn.bconv2d %[[S]], {{.*}}padding = array<i64: 1, 1>{{.*}}pad_value = -1 : i64}
show("pad before sign", lambda x: ge(F.pad(x, (1, 1, 1, 1), value=-5.0)))

# torch.sign of a zero pad is 0: PyTorch's zero padding.
# CHECK-LABEL: ----- zero pad before torch.sign
# CHECK: bnn.bconv2d {{.*}}padding = array<i64: 1, 1>{{.*}}pad_value = 0 : i64}
show("zero pad before torch.sign", lambda x: torch.sign(F.pad(x, (1, 1, 1, 1))))

# The importer itself is faithful: compare, where, a bnn.pad of it and a float conv.
# CHECK-LABEL: ----- faithful import
# CHECK: %[[C:.*]] = bnn.compare %x, %{{.*}} {predicate = "ge"}
# CHECK: %[[W:.*]] = bnn.where %[[C]], %{{.*}}, %{{.*}}
# CHECK: %[[P:.*]] = bnn.pad %[[W]] {padding = array<i64: 1, 1, 1, 1>, value = -1.000000e+00 : f32}
# CHECK: bnn.conv2d %[[P]], %{{.*}} : tensor<1x4x8x8xf32>, tensor<8x4x3x3xf32> -> tensor<1x8x6x6xf32>
print("// ----- faithful import")
print(import_program(export_module(Net(lambda x: F.pad(ge(x), (1, 1, 1, 1), value=-1.0)), (torch.randn(1, 4, 6, 6),))))
