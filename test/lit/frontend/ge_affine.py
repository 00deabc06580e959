# RUN: %python %s | filecheck %s
# Quantizer libraries: (x >= 0).float() * 2 - 1.
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
        self.fc = nn.Linear(16, 4)
        self.binarize = binarize

    def forward(self, x):
        return F.linear(self.binarize(x), torch.sign(self.fc.weight), self.fc.bias)


def show(title, binarize):
    print(f"// ----- {title}")
    print(imported(export_module(Net(binarize), (torch.randn(2, 16),))))


# CHECK-LABEL: ----- float mul sub
# CHECK: %[[S:.*]] = bnn.sign %x : tensor<2x16xf32>
# CHECK-NOT: bnn.mul
# CHECK-NOT: bnn.sub
# CHECK: bnn.bdense %[[S]], %{{.*}} bias %{{.*}} : tensor<4xf32> {{.*}}: tensor<2x16xf32>, tensor<4x1xi64> -> tensor<2x4xf32>
show("float mul sub", lambda x: (x >= 0).float() * 2 - 1)

# CHECK-LABEL: ----- to add
# CHECK: %[[S:.*]] = bnn.sign %x
# CHECK-NOT: bnn.add
# CHECK: bnn.bdense %[[S]]
show("to add", lambda x: (x >= 0).to(torch.float32) * 2.0 + (-1.0))

# CHECK-LABEL: ----- gt form
# CHECK: %[[N:.*]] = bnn.mul %x
# CHECK: %[[S:.*]] = bnn.sign %[[N]]
# CHECK: bnn.bdense %[[S]]
show("gt form", lambda x: (x > 0).float() * 2 - 1)
