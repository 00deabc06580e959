// RUN: %bnnc-opt %s -p fuse-bn-sign --split-input-file | filecheck %s

// K = 2 (1x1 kernel, 2 channels): dot in {-2..2}.
//   channel 0: v = dot + 0.5  < 0  iff dot < 0               -> threshold 0
//   channel 1: v = -dot + 0.5 < 0  iff dot > 0: bits flipped -> threshold 0, weight word 0b11
//   channel 2: v = 0*dot - 1  < 0  always                    -> threshold K + 1 = 3
// The consumer reads the packed bits (in_channels = 3).
// CHECK-LABEL: func.func @thresholds
// CHECK-DAG: %[[W:.*]] = arith.constant dense<{{\[\[\[\[}}0]]], {{\[\[\[}}3]]], {{\[\[\[}}0]]]]> : tensor<3x1x1x1xi64>
// CHECK-DAG: %[[T:.*]] = arith.constant dense<[0, 0, 3]> : tensor<3xi64>
// CHECK: %[[Y:.*]] = bnn.bconv2d %x, %[[W]] threshold %[[T]] : tensor<3xi64> {{.*}}out_groups = 1 : i64} : tensor<1x2x4x4xf32>, tensor<3x1x1x1xi64> -> tensor<1x1x4x4xi64>
// CHECK-NOT: bnn.sign
// CHECK: bnn.bconv2d %[[Y]], {{.*}}in_channels = 3 : i64} : tensor<1x1x4x4xi64>
func.func @thresholds(%x: tensor<1x2x4x4xf32>) -> tensor<1x1x4x4xf32> {
  %w = arith.constant dense<0> : tensor<3x1x1x1xi64>
  %m = arith.constant dense<[1.0, -1.0, 0.0]> : tensor<3xf32>
  %b = arith.constant dense<[0.5, 0.5, -1.0]> : tensor<3xf32>
  %w2 = arith.constant dense<0> : tensor<1x1x1x1xi64>
  %y = bnn.bconv2d %x, %w multiplier %m : tensor<3xf32> bias %b : tensor<3xf32> {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x2x4x4xf32>, tensor<3x1x1x1xi64> -> tensor<1x3x4x4xf32>
  %s = bnn.sign %y : tensor<1x3x4x4xf32>
  %z = bnn.bconv2d %s, %w2 {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x4x4xf32>, tensor<1x1x1x1xi64> -> tensor<1x1x4x4xf32>
  func.return %z : tensor<1x1x4x4xf32>
}

// -----

// Left alone: the sign also feeds a float op.
// CHECK-LABEL: func.func @float_user
// CHECK-NOT: threshold
// CHECK: bnn.sign
func.func @float_user(%x: tensor<1x2x4x4xf32>) -> (tensor<1x1x4x4xf32>, tensor<1x3x4x4xf32>) {
  %w = arith.constant dense<0> : tensor<3x1x1x1xi64>
  %w2 = arith.constant dense<0> : tensor<1x1x1x1xi64>
  %y = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x2x4x4xf32>, tensor<3x1x1x1xi64> -> tensor<1x3x4x4xf32>
  %s = bnn.sign %y : tensor<1x3x4x4xf32>
  %z = bnn.bconv2d %s, %w2 {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x4x4xf32>, tensor<1x1x1x1xi64> -> tensor<1x1x4x4xf32>
  %r = bnn.relu %s : tensor<1x3x4x4xf32>
  func.return %z, %r : tensor<1x1x4x4xf32>, tensor<1x3x4x4xf32>
}
