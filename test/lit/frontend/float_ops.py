# RUN: %python %s | filecheck %s
# The float ops around binary layers: first conv, BN, PReLU (RPReLU), pools,
# mean, cat, flatten, linear. nn.PReLU arrives as where(x > 0, x, a * x) and
# recognize-prelu makes it one bnn.prelu.
import torch
import torch.nn as nn
import torch.nn.functional as F

from bnnc.context import make_context
from bnnc.frontend.torch_import import export_module, import_program
from bnnc.pipeline import run_passes


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.prelu = nn.PReLU(8)
        self.shift = nn.Parameter(torch.full((1, 8, 1, 1), 0.25))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        y = self.bn(self.stem(x))
        y = self.prelu(y - self.shift) + self.shift  # RPReLU
        y = F.relu(y)
        a = F.max_pool2d(y, 3, stride=2, padding=1)
        b = F.avg_pool2d(y, 2)
        y = torch.cat([a, b], dim=1) * 0.5
        y = F.hardtanh(y, -2.0, 2.0) / 2
        y = F.adaptive_avg_pool2d(y, 1).flatten(1)
        return self.fc(y).mean(dim=-1, keepdim=True), y.mean(dim=[1])


# CHECK: func.func @forward(%x: tensor<1x3x16x16xf32>) -> (tensor<1x1xf32>, tensor<1xf32>)
# CHECK: bnn.conv2d %x, %{{.*}} bias %{{.*}} : tensor<8xf32> {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>{{.*}} -> tensor<1x8x8x8xf32>
# CHECK: bnn.batch_norm
# CHECK: bnn.sub
# CHECK: bnn.prelu %{{.*}}, %{{.*}} : (tensor<1x8x8x8xf32>, tensor<8xf32>) -> tensor<1x8x8x8xf32>
# CHECK: bnn.add
# CHECK: bnn.relu
# CHECK: bnn.max_pool2d %{{.*}} {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 1, 1>
# CHECK: bnn.avg_pool2d
# CHECK: bnn.cat %{{.*}}, %{{.*}} {axis = 1 : i64} : (tensor<1x8x4x4xf32>, tensor<1x8x4x4xf32>) -> tensor<1x16x4x4xf32>
# CHECK: bnn.mul
# CHECK: bnn.hardtanh %{{.*}} {min_val = -2.000000e+00 : f32, max_val = 2.000000e+00 : f32}
# CHECK: bnn.div
# CHECK: bnn.mean %{{.*}} {dims = array<i64: 2, 3>} : (tensor<1x16x4x4xf32>) -> tensor<1x16x1x1xf32>
# CHECK: %[[F:.*]] = bnn.reshape %{{.*}} : (tensor<1x16x1x1xf32>) -> tensor<1x16xf32>
# CHECK: bnn.linear %[[F]], %{{.*}} bias %{{.*}} : tensor<10xf32> : tensor<1x16xf32>, tensor<10x16xf32> -> tensor<1x10xf32>
# CHECK: bnn.mean %{{.*}} {dims = array<i64: 1>} : (tensor<1x10xf32>) -> tensor<1x1xf32>
# CHECK: %[[M:.*]] = bnn.mean %[[F]] {dims = array<i64: 1>} : (tensor<1x16xf32>) -> tensor<1x1xf32>
# CHECK: %[[R:.*]] = bnn.reshape %[[M]] : (tensor<1x1xf32>) -> tensor<1xf32>
# CHECK: func.return %{{.*}}, %[[R]]
module = import_program(export_module(Net(), (torch.randn(1, 3, 16, 16),)))
run_passes(module, "recognize-prelu", make_context())
print(module)
