# RUN: %python %s | filecheck %s
# Ceil-mode pools, adaptive pools that do not divide the input, a transposed
# conv (zero-stuffed input + flipped-kernel conv2d) and attention-style
# products of two activations (q @ k^T as one bnn.matmul reading k transposed).
import torch
import torch.nn as nn
import torch.nn.functional as F

from bnnc.frontend.torch_import import export_module, import_program


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.up = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
        self.same = nn.ConvTranspose2d(4, 4, 3, padding=1, bias=False)

    def forward(self, x, q, k, m):
        a = F.max_pool2d(x, 3, stride=2, ceil_mode=True)
        b = F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        c = F.adaptive_avg_pool2d(x, (3, 5))
        d = self.up(x)
        e = self.same(x)
        att = q @ k.transpose(-1, -2)
        return a, b, c, d, e, att @ k, m.t() @ m


# CHECK: func.func @forward(%x: tensor<1x4x8x8xf32>, %q: tensor<1x2x3x5xf32>, %k: tensor<1x2x6x5xf32>, %m: tensor<4x3xf32>)
# CHECK: bnn.max_pool2d %x {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, ceil_mode} : (tensor<1x4x8x8xf32>) -> tensor<1x4x4x4xf32>
# CHECK: bnn.avg_pool2d %x {{{.*}}count_include_pad = false, ceil_mode} : (tensor<1x4x8x8xf32>) -> tensor<1x4x5x5xf32>
# CHECK: bnn.adaptive_avg_pool2d %x : (tensor<1x4x8x8xf32>) -> tensor<1x4x3x5xf32>
# CHECK: %[[Z:.*]] = bnn.zero_insert %x {strides = array<i64: 2, 2>, padding = array<i64: 1, 2, 1, 2>} : (tensor<1x4x8x8xf32>) -> tensor<1x4x18x18xf32>
# CHECK: bnn.conv2d %[[Z]], %{{.*}} bias %{{.*}} : tensor<2xf32> {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x4x18x18xf32>, tensor<2x4x3x3xf32> -> tensor<1x2x16x16xf32>
# A stride-1 transposed conv is an ordinary padded conv: no zero_insert.
# CHECK-NOT: bnn.zero_insert
# CHECK: bnn.conv2d %x, %{{.*}} {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>{{.*}} -> tensor<1x4x8x8xf32>
# CHECK: %[[Q:.*]] = bnn.reshape %q : (tensor<1x2x3x5xf32>) -> tensor<2x3x5xf32>
# CHECK: %[[K:.*]] = bnn.reshape %k : (tensor<1x2x6x5xf32>) -> tensor<2x6x5xf32>
# CHECK: %[[A:.*]] = bnn.matmul %[[Q]], %[[K]] {transpose_rhs} : (tensor<2x3x5xf32>, tensor<2x6x5xf32>) -> tensor<2x3x6xf32>
# CHECK: bnn.matmul %[[A]], %{{.*}} : (tensor<2x3x6xf32>, tensor<2x6x5xf32>) -> tensor<2x3x5xf32>
# CHECK: bnn.matmul %m, %m {transpose_lhs} : (tensor<4x3xf32>, tensor<4x3xf32>) -> tensor<3x3xf32>
example = (torch.randn(1, 4, 8, 8), torch.randn(1, 2, 3, 5), torch.randn(1, 2, 6, 5), torch.randn(4, 3))
print(import_program(export_module(Net(), example)))
