// RUN: %bnnc-opt %s -p fold-weight-binarization --split-input-file | filecheck %s

// A float conv of a sign with +-alpha_c weights becomes a binary conv with
// packed weights (bit 1 = -1) and the per-channel alpha as multiplier.
// CHECK-LABEL: func.func @alpha
// CHECK: %[[S:.*]] = bnn.sign %x
// CHECK-DAG: %[[W:.*]] = arith.constant dense<{{\[\[\[\[}}2]]], {{\[\[\[}}0]]]]> : tensor<2x1x1x1xi64>
// CHECK-DAG: %[[M:.*]] = arith.constant dense<[5.000000e-01, 2.500000e-01]> : tensor<2xf32>
// CHECK: bnn.bconv2d %[[S]], %[[W]] multiplier %[[M]] : tensor<2xf32> bias %{{.*}} : tensor<2xf32> {{.*}}padding = array<i64: 0, 0>{{.*}}pad_value = 0 : i64}
// CHECK-NOT: bnn.conv2d
func.func @alpha(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<[[[[0.5]], [[-0.5]]], [[[0.25]], [[0.25]]]]> : tensor<2x2x1x1xf32>
  %b = arith.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %s = bnn.sign %x : tensor<1x2x4x4xf32>
  %y = bnn.conv2d %s, %w bias %b : tensor<2xf32> {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32> -> tensor<1x2x4x4xf32>
  func.return %y : tensor<1x2x4x4xf32>
}

// -----

// A -1 pad of the sign folds into padding / pad_value; unit alpha means no multiplier.
// CHECK-LABEL: func.func @pad_minus_one
// CHECK: %[[S:.*]] = bnn.sign %x
// CHECK-NOT: bnn.pad
// CHECK: bnn.bconv2d %[[S]], %{{.*}} {{{.*}}strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = -1 : i64} : tensor<1x2x4x4xf32>, tensor<2x3x3x1xi64> -> tensor<1x2x4x4xf32>
func.func @pad_minus_one(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<1.0> : tensor<2x2x3x3xf32>
  %s = bnn.sign %x : tensor<1x2x4x4xf32>
  %p = bnn.pad %s {padding = array<i64: 1, 1, 1, 1>, value = -1.0 : f32} : (tensor<1x2x4x4xf32>) -> tensor<1x2x6x6xf32>
  %y = bnn.conv2d %p, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x6x6xf32>, tensor<2x2x3x3xf32> -> tensor<1x2x4x4xf32>
  func.return %y : tensor<1x2x4x4xf32>
}

// -----

// sign(pad(x, -5)): the pad binarises to -1. A new sign of x is made.
// CHECK-LABEL: func.func @pad_before_sign
// CHECK: %[[S:.*]] = bnn.sign %x
// CHECK: bnn.bconv2d %[[S]], {{.*}}padding = array<i64: 1, 1>{{.*}}pad_value = -1 : i64}
func.func @pad_before_sign(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<1.0> : tensor<2x2x3x3xf32>
  %p = bnn.pad %x {padding = array<i64: 1, 1, 1, 1>, value = -5.0 : f32} : (tensor<1x2x4x4xf32>) -> tensor<1x2x6x6xf32>
  %s = bnn.sign %p : tensor<1x2x6x6xf32>
  %y = bnn.conv2d %s, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x6x6xf32>, tensor<2x2x3x3xf32> -> tensor<1x2x4x4xf32>
  func.return %y : tensor<1x2x4x4xf32>
}

// -----

// A +1 pad cannot merge with the conv's own zero padding: the +-1 padded tensor
// is binarised as it is.
// CHECK-LABEL: func.func @pad_and_zero_padding
// CHECK: %[[P:.*]] = bnn.pad
// CHECK: bnn.bconv2d %[[P]], {{.*}}padding = array<i64: 1, 1>{{.*}}pad_value = 0 : i64}
func.func @pad_and_zero_padding(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x6x6xf32> {
  %w = arith.constant dense<1.0> : tensor<2x2x3x3xf32>
  %s = bnn.sign %x : tensor<1x2x4x4xf32>
  %p = bnn.pad %s {padding = array<i64: 1, 1, 1, 1>, value = 1.0 : f32} : (tensor<1x2x4x4xf32>) -> tensor<1x2x6x6xf32>
  %y = bnn.conv2d %p, %w {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x6x6xf32>, tensor<2x2x3x3xf32> -> tensor<1x2x6x6xf32>
  func.return %y : tensor<1x2x6x6xf32>
}

// -----

// where(x > 0, 1, -1) = -sign(-x): the outer negation flips the weight bits.
// CHECK-LABEL: func.func @flip
// CHECK: %[[N:.*]] = bnn.mul %x
// CHECK: %[[S:.*]] = bnn.sign %[[N]]
// CHECK: %[[W:.*]] = arith.constant dense<{{\[\[\[\[}}1]]], {{\[\[\[}}0]]]]> : tensor<2x1x1x1xi64>
// CHECK: bnn.bconv2d %[[S]], %[[W]] {
func.func @flip(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<[[[[1.0]], [[-1.0]]], [[[-1.0]], [[-1.0]]]]> : tensor<2x2x1x1xf32>
  %m = arith.constant dense<-1.0> : tensor<1x1x1x1xf32>
  %n = bnn.mul %x, %m : (tensor<1x2x4x4xf32>, tensor<1x1x1x1xf32>) -> tensor<1x2x4x4xf32>
  %s = bnn.sign %n : tensor<1x2x4x4xf32>
  %f = bnn.mul %s, %m : (tensor<1x2x4x4xf32>, tensor<1x1x1x1xf32>) -> tensor<1x2x4x4xf32>
  %y = bnn.conv2d %f, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32> -> tensor<1x2x4x4xf32>
  func.return %y : tensor<1x2x4x4xf32>
}

// -----

// Left alone: real-valued weights (a float conv of the +-1 tensor), and binary
// weights on a real-valued input (binary-weight networks).
// CHECK-LABEL: func.func @left_alone
// CHECK-NOT: bnn.bconv2d
// CHECK: bnn.conv2d %{{.*}}, %{{.*}} : tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32>
// CHECK: bnn.conv2d %x, %{{.*}} : tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32>
// CHECK-NOT: bnn.bconv2d
func.func @left_alone(%x: tensor<1x2x4x4xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) {
  %real = arith.constant dense<[[[[0.5]], [[-0.3]]], [[[0.25]], [[0.25]]]]> : tensor<2x2x1x1xf32>
  %bin = arith.constant dense<1.0> : tensor<2x2x1x1xf32>
  %s = bnn.sign %x : tensor<1x2x4x4xf32>
  %a = bnn.conv2d %s, %real {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32> -> tensor<1x2x4x4xf32>
  %b = bnn.conv2d %x, %bin {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32> -> tensor<1x2x4x4xf32>
  func.return %a, %b : tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
}

// -----

// A zero pad folds into a float conv's own padding.
// CHECK-LABEL: func.func @zero_pad_float
// CHECK-NOT: bnn.pad
// CHECK: bnn.conv2d %x, {{.*}}padding = array<i64: 2, 1>
func.func @zero_pad_float(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x8x6xf32> {
  %w = arith.constant dense<0.5> : tensor<2x2x1x1xf32>
  %p = bnn.pad %x {padding = array<i64: 1, 1, 2, 2>, value = 0.0 : f32} : (tensor<1x2x4x4xf32>) -> tensor<1x2x8x6xf32>
  %y = bnn.conv2d %p, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x8x6xf32>, tensor<2x2x1x1xf32> -> tensor<1x2x8x6xf32>
  func.return %y : tensor<1x2x8x6xf32>
}

// -----

// linear of a sign with binary weights -> bdense (packed along the features).
// CHECK-LABEL: func.func @dense
// CHECK: %[[S:.*]] = bnn.sign %x
// CHECK: bnn.bdense %[[S]], %{{.*}} multiplier %{{.*}} : tensor<2xf32> {{.*}}: tensor<1x3xf32>, tensor<2x1xi64> -> tensor<1x2xf32>
func.func @dense(%x: tensor<1x3xf32>) -> tensor<1x2xf32> {
  %w = arith.constant dense<[[2.0, -2.0, 2.0], [-3.0, -3.0, 3.0]]> : tensor<2x3xf32>
  %s = bnn.sign %x : tensor<1x3xf32>
  %y = bnn.linear %s, %w : tensor<1x3xf32>, tensor<2x3xf32> -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}

// -----

// A conv whose batch norm was already fused (post_scale/post_shift) is left
// alone: the binary conv could not carry that epilogue.
// CHECK-LABEL: func.func @fused_epilogue_stays
// CHECK: bnn.conv2d {{.*}}post_scale
// CHECK-NOT: bnn.bconv2d
func.func @fused_epilogue_stays(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<1.0> : tensor<2x2x1x1xf32>
  %m = arith.constant dense<[0.5, 2.0]> : tensor<2xf32>
  %t = arith.constant dense<[1.0, -1.0]> : tensor<2xf32>
  %s = bnn.sign %x : tensor<1x2x4x4xf32>
  %y = bnn.conv2d %s, %w post_scale %m : tensor<2xf32> post_shift %t : tensor<2xf32> {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32> -> tensor<1x2x4x4xf32>
  func.return %y : tensor<1x2x4x4xf32>
}
