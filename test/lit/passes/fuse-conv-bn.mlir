// RUN: %bnnc-opt %s -p fuse-conv-bn --split-input-file | filecheck %s

// A batch norm after a float conv becomes the conv's epilogue: scale =
// gamma / sqrt(var + eps) and shift = beta - mean * scale (in float32, as
// PyTorch's CPU kernel computes BN), applied as one fma to the conv's value;
// the bias and the weights are kept as they are (never folded).
// scale = [2 / sqrt(4), -1 / sqrt(0.25)] = [1, -2]; shift = [0.5 - 1 * 1, 3 - (-0.5) * -2] = [-0.5, 2].
// CHECK-LABEL: func.func @fused
// CHECK-DAG: %[[W:.*]] = arith.constant dense<[[[[1.000000e+00]]], [[[2.000000e+00]]]]> : tensor<2x1x1x1xf32>
// CHECK-DAG: %[[B:.*]] = arith.constant dense<[1.000000e-01, 2.000000e-01]> : tensor<2xf32>
// CHECK-DAG: %[[S:.*]] = arith.constant dense<[1.000000e+00, -2.000000e+00]> : tensor<2xf32>
// CHECK-DAG: %[[T:.*]] = arith.constant dense<[-5.000000e-01, 2.000000e+00]> : tensor<2xf32>
// CHECK: %[[Y:.*]] = bnn.conv2d %{{.*}}, %[[W]] bias %[[B]] : tensor<2xf32> post_scale %[[S]] : tensor<2xf32> post_shift %[[T]] : tensor<2xf32> {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x1x4x4xf32>, tensor<2x1x1x1xf32> -> tensor<1x2x3x3xf32>
// CHECK-NEXT: func.return %[[Y]]
// CHECK-NOT: bnn.batch_norm
func.func @fused(%x: tensor<1x1x4x4xf32>) -> tensor<1x2x3x3xf32> {
  %w = arith.constant dense<[[[[1.0]]], [[[2.0]]]]> : tensor<2x1x1x1xf32>
  %b = arith.constant dense<[0.1, 0.2]> : tensor<2xf32>
  %mean = arith.constant dense<[1.0, -0.5]> : tensor<2xf32>
  %var = arith.constant dense<[4.0, 0.25]> : tensor<2xf32>
  %gamma = arith.constant dense<[2.0, -1.0]> : tensor<2xf32>
  %beta = arith.constant dense<[0.5, 3.0]> : tensor<2xf32>
  %y = bnn.conv2d %x, %w bias %b : tensor<2xf32> {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x1x4x4xf32>, tensor<2x1x1x1xf32> -> tensor<1x2x3x3xf32>
  %z = bnn.batch_norm %y, %mean, %var, %gamma, %beta {epsilon = 0.0 : f32} : (tensor<1x2x3x3xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x3x3xf32>
  func.return %z : tensor<1x2x3x3xf32>
}

// -----

// The conv's result has another user: the BN stays a separate op.
// CHECK-LABEL: func.func @other_user
// CHECK: %[[Y:.*]] = bnn.conv2d %{{.*}}, %{{.*}} {strides
// CHECK: %[[Z:.*]] = bnn.batch_norm %[[Y]],
// CHECK: bnn.add %[[Z]], %[[Y]]
func.func @other_user(%x: tensor<1x1x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<1.0> : tensor<2x1x1x1xf32>
  %p = arith.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %y = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x1x4x4xf32>, tensor<2x1x1x1xf32> -> tensor<1x2x4x4xf32>
  %z = bnn.batch_norm %y, %p, %p, %p, %p {epsilon = 1.0e-05 : f32} : (tensor<1x2x4x4xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  %s = bnn.add %z, %y : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  func.return %s : tensor<1x2x4x4xf32>
}

// -----

// The conv's result is also returned: left alone.
// CHECK-LABEL: func.func @returned
// CHECK: bnn.batch_norm
func.func @returned(%x: tensor<1x1x4x4xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) {
  %w = arith.constant dense<1.0> : tensor<2x1x1x1xf32>
  %p = arith.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %y = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x1x4x4xf32>, tensor<2x1x1x1xf32> -> tensor<1x2x4x4xf32>
  %z = bnn.batch_norm %y, %p, %p, %p, %p {epsilon = 1.0e-05 : f32} : (tensor<1x2x4x4xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  func.return %y, %z : tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
}

// -----

// A BN that does not follow a conv (here a pooling, a function argument, a
// binary conv) is not this pass's business.
// CHECK-LABEL: func.func @not_after_conv
// CHECK-COUNT-3: bnn.batch_norm
// CHECK-NOT: post_scale
func.func @not_after_conv(%x: tensor<1x2x4x4xf32>) -> (tensor<1x2x2x2xf32>, tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) {
  %p = arith.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %wb = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %m = bnn.max_pool2d %x {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>} : (tensor<1x2x4x4xf32>) -> tensor<1x2x2x2xf32>
  %a = bnn.batch_norm %m, %p, %p, %p, %p {epsilon = 1.0e-05 : f32} : (tensor<1x2x2x2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
  %b = bnn.batch_norm %x, %p, %p, %p, %p {epsilon = 1.0e-05 : f32} : (tensor<1x2x4x4xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  %y = bnn.bconv2d %x, %wb {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x2x4x4xf32>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %c = bnn.batch_norm %y, %p, %p, %p, %p {epsilon = 1.0e-05 : f32} : (tensor<1x2x4x4xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  func.return %a, %b, %c : tensor<1x2x2x2xf32>, tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
}

// -----

// Non-constant BN parameters, and a conv that already has an epilogue (a
// second BN after a fused one): not fused.
// CHECK-LABEL: func.func @not_foldable
// CHECK: bnn.conv2d {{.*}}-> tensor<1x2x4x4xf32>
// CHECK-NEXT: bnn.batch_norm
// CHECK: bnn.conv2d {{.*}}post_scale
// CHECK-NEXT: bnn.batch_norm
func.func @not_foldable(%x: tensor<1x1x4x4xf32>, %mean: tensor<2xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) {
  %w = arith.constant dense<1.0> : tensor<2x1x1x1xf32>
  %p = arith.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %y = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x1x4x4xf32>, tensor<2x1x1x1xf32> -> tensor<1x2x4x4xf32>
  %z = bnn.batch_norm %y, %mean, %p, %p, %p {epsilon = 1.0e-05 : f32} : (tensor<1x2x4x4xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  %v = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x1x4x4xf32>, tensor<2x1x1x1xf32> -> tensor<1x2x4x4xf32>
  %u = bnn.batch_norm %v, %p, %p, %p, %p {epsilon = 1.0e-05 : f32} : (tensor<1x2x4x4xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  %t = bnn.batch_norm %u, %p, %p, %p, %p {epsilon = 1.0e-05 : f32} : (tensor<1x2x4x4xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  func.return %z, %t : tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
}
