// RUN: %bnnc-opt %s -p fuse-output-transform --split-input-file | filecheck %s

// scale, bias and batch norm fold into multiplier and bias (in float32, as
// PyTorch computes BN: scale = gamma / sqrt(var + eps), shift = beta - mean * scale),
// then PReLU and a clamp; nothing is left between the conv and the return.
// CHECK-LABEL: func.func @chain
// CHECK: %[[Y:.*]] = bnn.bconv2d %{{.*}}, %{{.*}} multiplier %{{.*}} : tensor<2xf32> bias %{{.*}} : tensor<2xf32> slope %{{.*}} : tensor<2xf32> {{.*}}clamp_min = -1.000000e+00 : f32, clamp_max = 5.000000e-01 : f32}
// CHECK-NEXT: func.return %[[Y]]
func.func @chain(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %c2 = arith.constant dense<[2.0, 4.0]> : tensor<2xf32>
  %sc = arith.constant dense<[[[0.5]], [[-1.0]]]> : tensor<2x1x1xf32>
  %bi = arith.constant dense<[[[1.0]], [[2.0]]]> : tensor<2x1x1xf32>
  %mean = arith.constant dense<[0.5, -0.5]> : tensor<2xf32>
  %var = arith.constant dense<[4.0, 1.0]> : tensor<2xf32>
  %gamma = arith.constant dense<[1.0, -2.0]> : tensor<2xf32>
  %beta = arith.constant dense<[0.0, 3.0]> : tensor<2xf32>
  %sl = arith.constant dense<[0.25]> : tensor<1xf32>
  %y = bnn.bconv2d %x, %w multiplier %c2 : tensor<2xf32> {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x2x4x4xf32>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %a = bnn.mul %y, %sc : (tensor<1x2x4x4xf32>, tensor<2x1x1xf32>) -> tensor<1x2x4x4xf32>
  %b = bnn.add %a, %bi : (tensor<1x2x4x4xf32>, tensor<2x1x1xf32>) -> tensor<1x2x4x4xf32>
  %c = bnn.batch_norm %b, %mean, %var, %gamma, %beta {epsilon = 0.0 : f32} : (tensor<1x2x4x4xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  %d = bnn.prelu %c, %sl : (tensor<1x2x4x4xf32>, tensor<1xf32>) -> tensor<1x2x4x4xf32>
  %e = bnn.hardtanh %d {min_val = -1.0 : f32, max_val = 1.0 : f32} : tensor<1x2x4x4xf32>
  %f = bnn.hardtanh %e {min_val = -3.0 : f32, max_val = 0.5 : f32} : tensor<1x2x4x4xf32>
  func.return %f : tensor<1x2x4x4xf32>
}

// The folded values: m = 2 * 0.5 * (1/2) = 0.5 and 4 * -1 * (-2/1) = 8;
// b = 1 * 0.5 - 0.5 * 0.5 = 0.25 and 2 * -2 + 3 - (-0.5 * -2) = -2.
// CHECK-LABEL: func.func @values
// CHECK-DAG: arith.constant dense<[5.000000e-01, 8.000000e+00]> : tensor<2xf32>
// CHECK-DAG: arith.constant dense<[2.500000e-01, -2.000000e+00]> : tensor<2xf32>
// CHECK: bnn.bconv2d
func.func @values(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %c2 = arith.constant dense<[2.0, 4.0]> : tensor<2xf32>
  %sc = arith.constant dense<[[[0.5]], [[-1.0]]]> : tensor<2x1x1xf32>
  %bi = arith.constant dense<[[[1.0]], [[2.0]]]> : tensor<2x1x1xf32>
  %mean = arith.constant dense<[0.5, -0.5]> : tensor<2xf32>
  %var = arith.constant dense<[4.0, 1.0]> : tensor<2xf32>
  %gamma = arith.constant dense<[1.0, -2.0]> : tensor<2xf32>
  %beta = arith.constant dense<[0.0, 3.0]> : tensor<2xf32>
  %y = bnn.bconv2d %x, %w multiplier %c2 : tensor<2xf32> {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x2x4x4xf32>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %a = bnn.mul %y, %sc : (tensor<1x2x4x4xf32>, tensor<2x1x1xf32>) -> tensor<1x2x4x4xf32>
  %b = bnn.add %a, %bi : (tensor<1x2x4x4xf32>, tensor<2x1x1xf32>) -> tensor<1x2x4x4xf32>
  %c = bnn.batch_norm %b, %mean, %var, %gamma, %beta {epsilon = 0.0 : f32} : (tensor<1x2x4x4xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  func.return %c : tensor<1x2x4x4xf32>
}

// -----

// Left alone: a division after a clamp (not the post affine's mul and add),
// and a result with two uses.
// CHECK-LABEL: func.func @not_foldable
// CHECK: %[[Y:.*]] = bnn.bconv2d {{.*}}clamp_min = 0.000000e+00 : f32}
// CHECK-NEXT: %[[A:.*]] = bnn.div %[[Y]]
// CHECK: %[[Z:.*]] = bnn.bconv2d
// CHECK-NEXT: bnn.mul %[[Z]]
// CHECK-NEXT: bnn.relu %[[Z]]
func.func @not_foldable(%x: tensor<1x2x4x4xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %c = arith.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %c4 = arith.constant dense<[[[1.0]], [[2.0]]]> : tensor<2x1x1xf32>
  %y = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x2x4x4xf32>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %r = bnn.relu %y : tensor<1x2x4x4xf32>
  %a = bnn.div %r, %c4 : (tensor<1x2x4x4xf32>, tensor<2x1x1xf32>) -> tensor<1x2x4x4xf32>
  %z = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x2x4x4xf32>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %m = bnn.mul %z, %c4 : (tensor<1x2x4x4xf32>, tensor<2x1x1xf32>) -> tensor<1x2x4x4xf32>
  %q = bnn.relu %z : tensor<1x2x4x4xf32>
  func.return %a, %m, %q : tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
}

// -----

// relu after PReLU is a clamp after the PReLU; a second PReLU is not foldable.
// CHECK-LABEL: func.func @prelu_relu
// CHECK: %[[Y:.*]] = bnn.bdense {{.*}} slope %{{.*}} : tensor<2xf32> {clamp_min = 0.000000e+00 : f32}
// CHECK-NEXT: bnn.prelu %[[Y]]
func.func @prelu_relu(%x: tensor<1x3xf32>) -> tensor<1x2xf32> {
  %w = arith.constant dense<0> : tensor<2x1xi64>
  %s = arith.constant dense<[0.5, -0.5]> : tensor<2xf32>
  %y = bnn.bdense %x, %w : tensor<1x3xf32>, tensor<2x1xi64> -> tensor<1x2xf32>
  %p = bnn.prelu %y, %s : (tensor<1x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  %r = bnn.relu %p : tensor<1x2xf32>
  %q = bnn.prelu %r, %s : (tensor<1x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  func.return %q : tensor<1x2xf32>
}

// -----

// After the activation (a clamp from relu here), a mul and then an add by
// per-channel constants become the post-activation affine, kept as the same
// mul and add (TFLite QuickNet's batch norm after the ReLU).
// CHECK-LABEL: func.func @post_affine
// CHECK:      %[[Y:.*]] = bnn.bconv2d %x, %{{.*}} post_multiplier %{{.*}} : tensor<2xf32> post_bias %{{.*}} : tensor<2xf32> {{{.*}}clamp_min = 0.000000e+00 : f32{{.*}}}
// CHECK-NOT:  bnn.mul
// CHECK-NOT:  bnn.add
// CHECK:      func.return %[[Y]]
func.func @post_affine(%x: tensor<1x1x4x4xi64>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %m = arith.constant dense<[[[[2.0]], [[4.0]]]]> : tensor<1x2x1x1xf32>
  %b = arith.constant dense<[[[[0.5]], [[-1.0]]]]> : tensor<1x2x1x1xf32>
  %y = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64, in_channels = 2 : i64} : tensor<1x1x4x4xi64>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %r = bnn.relu %y : tensor<1x2x4x4xf32>
  %a = bnn.mul %r, %m : (tensor<1x2x4x4xf32>, tensor<1x2x1x1xf32>) -> tensor<1x2x4x4xf32>
  %c = bnn.add %b, %a : (tensor<1x2x1x1xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  func.return %c : tensor<1x2x4x4xf32>
}

// -----

// After a post add, nothing more folds: a mul would have to come before it,
// a relu would clamp before the affine, and a second add would round differently.
// CHECK-LABEL: func.func @post_then_more
// CHECK:      bnn.bconv2d %x, %{{.*}} post_bias %{{.*}} : tensor<2xf32> {{{.*}}clamp_max = 1.000000e+00 : f32{{.*}}}
// CHECK-NEXT: bnn.mul
// CHECK-NEXT: bnn.relu
func.func @post_then_more(%x: tensor<1x1x4x4xi64>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %m = arith.constant dense<[[[[2.0]], [[4.0]]]]> : tensor<1x2x1x1xf32>
  %b = arith.constant dense<[[[[0.5]], [[-1.0]]]]> : tensor<1x2x1x1xf32>
  %y = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64, in_channels = 2 : i64} : tensor<1x1x4x4xi64>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %h = bnn.hardtanh %y {min_val = -1.0 : f32, max_val = 1.0 : f32} : tensor<1x2x4x4xf32>
  %c = bnn.add %h, %b : (tensor<1x2x4x4xf32>, tensor<1x2x1x1xf32>) -> tensor<1x2x4x4xf32>
  %a = bnn.mul %c, %m : (tensor<1x2x4x4xf32>, tensor<1x2x1x1xf32>) -> tensor<1x2x4x4xf32>
  %r = bnn.relu %a : tensor<1x2x4x4xf32>
  func.return %r : tensor<1x2x4x4xf32>
}
