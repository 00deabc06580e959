# RUN: %python %s | filecheck %s
# Every op carries loc(module.path(file:line:0)) from the PyTorch source.
import torch
import torch.nn as nn
from xdsl.printer import Printer

from bnnc.context import make_context
from bnnc.frontend.torch_import import export_module, import_program
from bnnc.pipeline import run_passes


def imported(ep):
    """The faithful import, then fold-weight-binarization (what --emit=bnn starts from)."""
    module = import_program(ep)
    run_passes(module, "recognize-binarization,fold-weight-binarization,canonicalize,dce", make_context())
    return module


class BinConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)

    def forward(self, x):
        xb = torch.where(x >= 0, 1.0, -1.0)
        return nn.functional.conv2d(xb, torch.sign(self.conv.weight), padding=1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Sequential(BinConv(), nn.BatchNorm2d(4))

    def forward(self, x):
        return self.layer1(x)


# CHECK: bnn.sign {{.*}} loc("layer1.0"("{{.*}}locations.py":25:0))
# CHECK: bnn.bconv2d {{.*}} loc("layer1.0"("{{.*}}locations.py":26:0))
# CHECK: bnn.batch_norm {{.*}} loc("layer1.1"("{{.*}}
torch.manual_seed(0)
module = imported(export_module(Net(), (torch.randn(1, 4, 5, 5),)))
Printer(print_debuginfo=True).print_op(module)
print()
