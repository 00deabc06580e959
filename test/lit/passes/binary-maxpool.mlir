// RUN: %bnnc-opt %s -p binary-maxpool | filecheck %s

// max_pool2d(sign(x)) feeding a binary conv: pack x, AND-pool the words.
// CHECK-LABEL: func.func @pool_of_sign
// CHECK: %[[P:.*]] = bnn.pack %x {groups = 1 : i64}
// CHECK: %[[M:.*]] = bnn.bmax_pool2d %[[P]] {kernel = array<i64: 2, 2>{{.*}}} : (tensor<1x1x4x4xi64>) -> tensor<1x1x2x2xi64>
// CHECK-NOT: bnn.max_pool2d
// CHECK: bnn.bconv2d %[[M]], {{.*}}in_channels = 3 : i64}
func.func @pool_of_sign(%x: tensor<1x3x4x4xf32>) -> tensor<1x1x2x2xf32> {
  %w = arith.constant dense<0> : tensor<1x1x1x1xi64>
  %s = bnn.sign %x : tensor<1x3x4x4xf32>
  %p = bnn.max_pool2d %s {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>} : (tensor<1x3x4x4xf32>) -> tensor<1x3x2x2xf32>
  %y = bnn.bconv2d %p, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x2x2xf32>, tensor<1x1x1x1xi64> -> tensor<1x1x2x2xf32>
  func.return %y : tensor<1x1x2x2xf32>
}

// sign(max_pool2d(x)) likewise.
// CHECK-LABEL: func.func @sign_of_pool
// CHECK: bnn.pack %x
// CHECK: bnn.bmax_pool2d
// CHECK-NOT: bnn.sign
func.func @sign_of_pool(%x: tensor<1x3x4x4xf32>) -> tensor<1x1x2x2xf32> {
  %w = arith.constant dense<0> : tensor<1x1x1x1xi64>
  %p = bnn.max_pool2d %x {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>} : (tensor<1x3x4x4xf32>) -> tensor<1x3x2x2xf32>
  %s = bnn.sign %p : tensor<1x3x2x2xf32>
  %y = bnn.bconv2d %s, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x2x2xf32>, tensor<1x1x1x1xi64> -> tensor<1x1x2x2xf32>
  func.return %y : tensor<1x1x2x2xf32>
}

// Left alone: the pooled signs also feed a float op.
// CHECK-LABEL: func.func @float_user
// CHECK-NOT: bnn.bmax_pool2d
// CHECK: bnn.max_pool2d
func.func @float_user(%x: tensor<1x3x4x4xf32>) -> (tensor<1x1x2x2xf32>, tensor<1x3x2x2xf32>) {
  %w = arith.constant dense<0> : tensor<1x1x1x1xi64>
  %s = bnn.sign %x : tensor<1x3x4x4xf32>
  %p = bnn.max_pool2d %s {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>} : (tensor<1x3x4x4xf32>) -> tensor<1x3x2x2xf32>
  %y = bnn.bconv2d %p, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x2x2xf32>, tensor<1x1x1x1xi64> -> tensor<1x1x2x2xf32>
  %r = bnn.relu %p : tensor<1x3x2x2xf32>
  func.return %y, %r : tensor<1x1x2x2xf32>, tensor<1x3x2x2xf32>
}
