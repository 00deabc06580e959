// RUN: %bnnc-opt %s -p fuse-conv-maxpool --split-input-file | filecheck %s

// A ResNet stem (7x7/2 conv with a fused BN, NHWC result) read only by a
// 3x3/2 max pool: the pool becomes the conv's pool_* properties, the conv's
// result type is the pooled one, and the conv keeps its operands, epilogue
// and layout flags.
// CHECK-LABEL: func.func @stem
// CHECK: %[[Y:.*]] = bnn.conv2d %{{.*}}, %{{.*}} post_scale %{{.*}} : tensor<8xf32> post_shift %{{.*}} : tensor<8xf32> {strides = array<i64: 2, 2>, padding = array<i64: 3, 3>, dilations = array<i64: 1, 1>, groups = 1 : i64, channels_last, pool_kernel = array<i64: 3, 3>, pool_strides = array<i64: 2, 2>, pool_padding = array<i64: 1, 1>} : tensor<1x3x32x30xf32>, tensor<8x3x7x7xf32> -> tensor<1x8x8x8xf32>
// CHECK-NEXT: func.return %[[Y]] : tensor<1x8x8x8xf32>
// CHECK-NOT: bnn.max_pool2d
func.func @stem(%x: tensor<1x3x32x30xf32>) -> tensor<1x8x8x8xf32> {
  %w = arith.constant dense<0.5> : tensor<8x3x7x7xf32>
  %s = arith.constant dense<2.0> : tensor<8xf32>
  %t = arith.constant dense<0.25> : tensor<8xf32>
  %c = bnn.conv2d %x, %w post_scale %s : tensor<8xf32> post_shift %t : tensor<8xf32> {strides = array<i64: 2, 2>, padding = array<i64: 3, 3>, dilations = array<i64: 1, 1>, groups = 1 : i64, channels_last} : tensor<1x3x32x30xf32>, tensor<8x3x7x7xf32> -> tensor<1x16x15x8xf32>
  %p = bnn.max_pool2d %c {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, channels_last} : (tensor<1x16x15x8xf32>) -> tensor<1x8x8x8xf32>
  func.return %p : tensor<1x8x8x8xf32>
}

// -----

// Ceil mode is kept (pool_ceil_mode): 15 columns, 3/2 unpadded, ceil -> 7.
// CHECK-LABEL: func.func @ceil
// CHECK: bnn.conv2d {{.*}}channels_last, pool_kernel = array<i64: 3, 3>, pool_strides = array<i64: 2, 2>, pool_padding = array<i64: 0, 0>, pool_ceil_mode} : tensor<1x3x16x15xf32>, tensor<4x3x1x1xf32> -> tensor<1x8x7x4xf32>
// CHECK-NOT: bnn.max_pool2d
func.func @ceil(%x: tensor<1x3x16x15xf32>) -> tensor<1x8x7x4xf32> {
  %w = arith.constant dense<0.5> : tensor<4x3x1x1xf32>
  %c = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, channels_last} : tensor<1x3x16x15xf32>, tensor<4x3x1x1xf32> -> tensor<1x16x15x4xf32>
  %p = bnn.max_pool2d %c {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, ceil_mode, channels_last} : (tensor<1x16x15x4xf32>) -> tensor<1x8x7x4xf32>
  func.return %p : tensor<1x8x7x4xf32>
}

// -----

// Not fused: the conv has another reader (its output must be stored anyway).
// CHECK-LABEL: func.func @other_reader
// CHECK: %[[C:.*]] = bnn.conv2d {{.*}}channels_last} :
// CHECK: bnn.max_pool2d %[[C]]
func.func @other_reader(%x: tensor<1x3x8x8xf32>) -> (tensor<1x4x4x4xf32>, tensor<1x8x8x4xf32>) {
  %w = arith.constant dense<0.5> : tensor<4x3x1x1xf32>
  %c = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, channels_last} : tensor<1x3x8x8xf32>, tensor<4x3x1x1xf32> -> tensor<1x8x8x4xf32>
  %p = bnn.max_pool2d %c {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, channels_last} : (tensor<1x8x8x4xf32>) -> tensor<1x4x4x4xf32>
  func.return %p, %c : tensor<1x4x4x4xf32>, tensor<1x8x8x4xf32>
}

// -----

// Not fused: an NCHW conv (its kernel is the column one), and a dilated pool.
// CHECK-LABEL: func.func @nchw_and_dilated
// CHECK: bnn.max_pool2d
// CHECK: bnn.max_pool2d
func.func @nchw_and_dilated(%x: tensor<1x3x8x8xf32>) -> (tensor<1x4x4x4xf32>, tensor<1x3x3x4xf32>) {
  %w = arith.constant dense<0.5> : tensor<4x3x1x1xf32>
  %c = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x3x8x8xf32>, tensor<4x3x1x1xf32> -> tensor<1x4x8x8xf32>
  %p = bnn.max_pool2d %c {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>} : (tensor<1x4x8x8xf32>) -> tensor<1x4x4x4xf32>
  %d = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, channels_last} : tensor<1x3x8x8xf32>, tensor<4x3x1x1xf32> -> tensor<1x8x8x4xf32>
  %q = bnn.max_pool2d %d {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilations = array<i64: 2, 2>, channels_last} : (tensor<1x8x8x4xf32>) -> tensor<1x3x3x4xf32>
  func.return %p, %q : tensor<1x4x4x4xf32>, tensor<1x3x3x4xf32>
}
