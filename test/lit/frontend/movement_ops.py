# RUN: %python %s | filecheck %s
# Data movement: every pure movement op is one bnn.gather whose constant
# index is PyTorch's own op applied to element positions; chains compose into
# one gather; spatial constant padding stays bnn.pad; bilinear resizing is its
# own op.
import torch
import torch.nn as nn
import torch.nn.functional as F

from bnnc.frontend.torch_import import export_module, import_program


class Net(nn.Module):
    def forward(self, x):
        a = x.permute(0, 2, 3, 1)  # 1x3x4x2
        b = x[:, :, 1:, ::2]  # 1x2x2x2
        c = F.pixel_shuffle(x.repeat(1, 2, 1, 1), 2)  # view, permute, view: one gather
        d = F.pad(x, (1, 0, 0, 0, 1, 1), value=2.0)  # pads channels: a gather with fill
        e = F.pad(x, (1, 1, 1, 1))  # spatial: bnn.pad
        f = F.pad(x, (1, 1, 1, 1), mode="reflect")  # index.Tensor twice: one gather
        g = F.interpolate(x, scale_factor=2, mode="nearest")
        h = F.interpolate(x, size=(5, 7), mode="bilinear", align_corners=True)
        i = torch.split(x, 1, dim=1)[1]
        j = x.reshape(1, 24)  # stays a reshape
        return a, b, c, d, e, f, g, h, i, j


# CHECK: func.func @forward(%x: tensor<1x2x3x4xf32>)
# CHECK: %[[A:.*]] = arith.constant dense<{{\[\[\[\[}}0, 12], [1, 13], [2, 14], [3, 15]]{{.*}} : tensor<1x3x4x2xi64>
# CHECK: bnn.gather %x at %[[A]] : (tensor<1x2x3x4xf32>, tensor<1x3x4x2xi64>) -> tensor<1x3x4x2xf32>
# CHECK: %[[B:.*]] = arith.constant dense<{{\[\[\[\[}}4, 6], [8, 10]], {{\[\[}}16, 18], [20, 22]]]]> : tensor<1x2x2x2xi64>
# CHECK: bnn.gather %x at %[[B]] : (tensor<1x2x3x4xf32>, tensor<1x2x2x2xi64>) -> tensor<1x2x2x2xf32>
# CHECK: bnn.gather %x at %{{.*}} : (tensor<1x2x3x4xf32>, tensor<1x1x6x8xi64>) -> tensor<1x1x6x8xf32>
# CHECK: bnn.gather %x at %{{.*}} {fill = 2.000000e+00 : f32} : (tensor<1x2x3x4xf32>, tensor<1x4x3x5xi64>) -> tensor<1x4x3x5xf32>
# CHECK: bnn.pad %x {padding = array<i64: 1, 1, 1, 1>, value = 0.000000e+00 : f32} : (tensor<1x2x3x4xf32>) -> tensor<1x2x5x6xf32>
# CHECK: bnn.gather %x at %{{.*}} : (tensor<1x2x3x4xf32>, tensor<1x2x5x6xi64>) -> tensor<1x2x5x6xf32>
# CHECK: bnn.gather %x at %{{.*}} : (tensor<1x2x3x4xf32>, tensor<1x2x6x8xi64>) -> tensor<1x2x6x8xf32>
# CHECK: bnn.upsample_bilinear2d %x {align_corners} : (tensor<1x2x3x4xf32>) -> tensor<1x2x5x7xf32>
# CHECK: %[[I:.*]] = arith.constant dense<{{\[\[\[\[}}12, 13, 14, 15], [16, 17, 18, 19], [20, 21, 22, 23]]]]> : tensor<1x1x3x4xi64>
# CHECK: bnn.gather %x at %[[I]] : (tensor<1x2x3x4xf32>, tensor<1x1x3x4xi64>) -> tensor<1x1x3x4xf32>
# CHECK: bnn.reshape %x : (tensor<1x2x3x4xf32>) -> tensor<1x24xf32>
print(import_program(export_module(Net(), (torch.randn(1, 2, 3, 4),))))


class Crop(nn.Module):
    """Negative padding crops; a permute of a permute is the identity."""

    def forward(self, x):
        return F.pad(x, (-1, -1)), x.transpose(1, 2).transpose(1, 2) + 1


# CHECK: func.func @forward(%x: tensor<1x2x4xf32>)
# CHECK: bnn.gather %x at %{{.*}} : (tensor<1x2x4xf32>, tensor<1x2x2xi64>) -> tensor<1x2x2xf32>
# CHECK-NOT: bnn.gather
# CHECK: bnn.add %x,
print(import_program(export_module(Crop(), (torch.randn(1, 2, 4),))))
