# RUN: %python %s | filecheck %s
# Every op carries loc(module.path(file:line:0)) from the PyTorch source.
import torch
import torch.nn as nn
from xdsl.printer import Printer

from bnnc.frontend.torch_import import export_module, import_program


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


# CHECK: bnn.sign {{.*}} loc("layer1.0"("{{.*}}locations.py":16:0))
# CHECK: bnn.bconv2d {{.*}} loc("layer1.0"("{{.*}}locations.py":17:0))
# CHECK: bnn.batch_norm {{.*}} loc("layer1.1"("{{.*}}
torch.manual_seed(0)
module = import_program(export_module(Net(), (torch.randn(1, 4, 5, 5),)))
Printer(print_debuginfo=True).print_op(module)
print()
