# RUN: %python %s | filecheck %s
# Reductions, softmax and normalisations: each core-ATen op becomes one
# bnn.reduce / bnn.softmax / bnn.normalize (plus reshapes dropping reduced
# axes, and the (N, G, C/G, HxW) view of group norm).
import torch
import torch.nn.functional as F
from torch import nn

from bnnc.frontend.torch_import import export_module, import_program


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln = nn.LayerNorm([3, 5])
        self.gn = nn.GroupNorm(2, 4)
        self.inorm = nn.InstanceNorm2d(4)

    def forward(self, x):
        return (
            x.sum(dim=(1, 3), keepdim=True),
            x.amax(dim=1),
            torch.amin(x, dim=-1, keepdim=True),
            x.var(dim=1, correction=0),
            F.softmax(x, dim=1),
            F.log_softmax(x, dim=-1),
            self.ln(x),
            self.gn(x),
            self.inorm(x),
        )


# CHECK: func.func @forward(%x: tensor<2x4x3x5xf32>)
# CHECK: bnn.reduce %x {kind = "sum", dims = array<i64: 1, 3>} : (tensor<2x4x3x5xf32>) -> tensor<2x1x3x1xf32>
# CHECK: %[[MAX:.*]] = bnn.reduce %x {kind = "max", dims = array<i64: 1>} : (tensor<2x4x3x5xf32>) -> tensor<2x1x3x5xf32>
# CHECK: bnn.reshape %[[MAX]] : (tensor<2x1x3x5xf32>) -> tensor<2x3x5xf32>
# CHECK: bnn.reduce %x {kind = "min", dims = array<i64: 3>} : (tensor<2x4x3x5xf32>) -> tensor<2x4x3x1xf32>
# CHECK: bnn.reduce %x {kind = "var", dims = array<i64: 1>, correction = 0.000000e+00 : f32}
# CHECK: bnn.softmax %x {dim = 1 : i64} : tensor<2x4x3x5xf32>
# CHECK: bnn.softmax %x {dim = 3 : i64, log} : tensor<2x4x3x5xf32>
# CHECK: bnn.normalize %x weight %{{.*}} : tensor<1x1x3x5xf32> bias %{{.*}} : tensor<1x1x3x5xf32> {dims = array<i64: 2, 3>, epsilon = 1.000000e-05 : f32} : tensor<2x4x3x5xf32>
# CHECK: %[[GV:.*]] = bnn.reshape %x : (tensor<2x4x3x5xf32>) -> tensor<2x2x2x15xf32>
# CHECK: %[[GN:.*]] = bnn.normalize %[[GV]] weight %{{.*}} : tensor<1x2x2x1xf32> bias %{{.*}} : tensor<1x2x2x1xf32> {dims = array<i64: 2, 3>
# CHECK: bnn.reshape %[[GN]] : (tensor<2x2x2x15xf32>) -> tensor<2x4x3x5xf32>
# CHECK: %[[IV:.*]] = bnn.reshape %x : (tensor<2x4x3x5xf32>) -> tensor<1x8x3x5xf32>
# CHECK: %[[IN:.*]] = bnn.normalize %[[IV]] {dims = array<i64: 0, 2, 3>, epsilon = {{.*}}} : tensor<1x8x3x5xf32>
# CHECK: bnn.reshape %[[IN]] : (tensor<1x8x3x5xf32>) -> tensor<2x4x3x5xf32>
print(import_program(export_module(Net(), (torch.randn(2, 4, 3, 5),))))
