# RUN: %python %s | filecheck %s
# The float math between binary layers, one bnn op per core-ATen op: silu is
# sigmoid * x after torch.export's decompositions, selu is elu, clamp with
# tensor bounds is maximum then minimum, a one-sided number clamp is a
# hardtanh with an infinite bound.

import torch
import torch.nn.functional as F
from torch import nn

from bnnc.frontend.torch_import import export_module, import_program


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lo = nn.Parameter(torch.full((1, 4, 1, 1), -0.5))
        self.hi = nn.Parameter(torch.full((1, 4, 1, 1), 0.5))

    def forward(self, x, y):
        a = torch.tanh(x) + torch.sigmoid(x) + F.silu(x)
        b = F.gelu(a) + F.gelu(a, approximate="tanh")
        c = F.elu(b, 0.5) + F.selu(b) + F.leaky_relu(b, 0.2)
        d = torch.sqrt(c) + torch.rsqrt(c) + torch.reciprocal(c) + torch.exp(c) + torch.log1p(c)
        e = torch.log(d) + torch.erf(d) + d**2 + d**1.5
        f = torch.minimum(e, y) + torch.maximum(y, e)
        g = torch.clamp(f, self.lo, self.hi) + torch.clamp(f, min=0.25) + torch.clamp(f, max=0.75)
        return g


# CHECK: func.func @forward(%x: tensor<1x4x3x3xf32>, %y: tensor<4x1x3xf32>) -> tensor<1x4x3x3xf32>
# CHECK: bnn.unary %x {fn = "tanh"} : tensor<1x4x3x3xf32>
# CHECK: %[[SIG:.*]] = bnn.unary %x {fn = "sigmoid"}
# CHECK: %[[SIG2:.*]] = bnn.unary %x {fn = "sigmoid"}
# CHECK: bnn.mul %x, %[[SIG2]]
# CHECK: bnn.unary %{{.*}} {fn = "gelu"}
# CHECK: bnn.unary %{{.*}} {fn = "gelu_tanh"}
# CHECK: bnn.elu %{{.*}} {alpha = 5.000000e-01 : f32, scale = 1.000000e+00 : f32, input_scale = 1.000000e+00 : f32}
# CHECK: bnn.elu %{{.*}} {alpha = 1.67326{{[0-9]*}} : f32, scale = 1.0507{{[0-9]*}} : f32, input_scale = 1.000000e+00 : f32}
# CHECK: bnn.leaky_relu %{{.*}} {negative_slope = 2.000000e-01 : f32}
# CHECK: bnn.unary %{{.*}} {fn = "sqrt"}
# CHECK: bnn.unary %{{.*}} {fn = "rsqrt"}
# CHECK: bnn.unary %{{.*}} {fn = "reciprocal"}
# CHECK: bnn.unary %{{.*}} {fn = "exp"}
# CHECK: bnn.unary %{{.*}} {fn = "log1p"}
# CHECK: bnn.unary %{{.*}} {fn = "log"}
# CHECK: bnn.unary %{{.*}} {fn = "erf"}
# CHECK: bnn.pow %{{.*}} {exponent = 2.000000e+00 : f32}
# CHECK: bnn.pow %{{.*}} {exponent = 1.500000e+00 : f32}
# CHECK: %[[E:.*]] = bnn.add
# CHECK: bnn.minimum %[[E]], %y : (tensor<1x4x3x3xf32>, tensor<4x1x3xf32>) -> tensor<1x4x3x3xf32>
# CHECK: bnn.maximum %y, %[[E]] : (tensor<4x1x3xf32>, tensor<1x4x3x3xf32>) -> tensor<1x4x3x3xf32>
# CHECK: %[[F:.*]] = bnn.add
# CHECK: %[[LO:.*]] = bnn.maximum %[[F]], %{{.*}} : (tensor<1x4x3x3xf32>, tensor<1x4x1x1xf32>) -> tensor<1x4x3x3xf32>
# CHECK: bnn.minimum %[[LO]], %{{.*}} : (tensor<1x4x3x3xf32>, tensor<1x4x1x1xf32>) -> tensor<1x4x3x3xf32>
# CHECK: bnn.hardtanh %[[F]] {min_val = 2.500000e-01 : f32, max_val = 0x7f800000 : f32}
# CHECK: bnn.hardtanh %[[F]] {min_val = 0xff800000 : f32, max_val = 7.500000e-01 : f32}
print(import_program(export_module(Net(), (torch.randn(1, 4, 3, 3), torch.randn(4, 1, 3)))))
