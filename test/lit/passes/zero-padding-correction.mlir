// RUN: %bnnc-opt %s -p zero-padding-correction | filecheck %s

// Zero padding becomes +1 padding with correction[o,ky,kx] = Cg - 2*popcount(w[o,ky,kx,:]):
// 3 channels, weight words 0 (no -1: 3), 1 (one -1: 1), 7 (all -1: -3).
// CHECK-LABEL: func.func @zero
// CHECK: %[[C:.*]] = arith.constant dense<{{\[\[\[}}3, 1], [-3, 3]]]> : tensor<1x2x2xi64>
// CHECK: bnn.bconv2d %x, %{{.*}} correction %[[C]] : tensor<1x2x2xi64> {{.*}}padding = array<i64: 1, 1>{{.*}}pad_value = 1 : i64}
func.func @zero(%x: tensor<1x3x4x4xf32>) -> tensor<1x1x5x5xf32> {
  %w = arith.constant dense<[[[[0], [1]], [[7], [0]]]]> : tensor<1x2x2x1xi64>
  %y = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x4x4xf32>, tensor<1x2x2x1xi64> -> tensor<1x1x5x5xf32>
  func.return %y : tensor<1x1x5x5xf32>
}

// Left alone: +1 / -1 padding and unpadded convs need no correction.
// CHECK-LABEL: func.func @left_alone
// CHECK-NOT: correction
// CHECK: pad_value = -1
// CHECK-NOT: correction
// CHECK: pad_value = 0
// CHECK-NOT: correction
func.func @left_alone(%x: tensor<1x3x4x4xf32>) -> (tensor<1x1x5x5xf32>, tensor<1x1x3x3xf32>) {
  %w = arith.constant dense<[[[[0], [1]], [[7], [0]]]]> : tensor<1x2x2x1xi64>
  %a = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = -1 : i64} : tensor<1x3x4x4xf32>, tensor<1x2x2x1xi64> -> tensor<1x1x5x5xf32>
  %b = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x4x4xf32>, tensor<1x2x2x1xi64> -> tensor<1x1x3x3xf32>
  func.return %a, %b : tensor<1x1x5x5xf32>, tensor<1x1x3x3xf32>
}
