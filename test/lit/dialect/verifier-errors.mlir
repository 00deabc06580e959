// RUN: %bnnc-opt %s --split-input-file --verify-diagnostics | filecheck %s

// Malformed bnn IR is rejected with a message naming what is wrong.

func.func @wrong_words(%x: tensor<1x100x8x8xf32>, %w: tensor<4x3x3x1xi64>) -> tensor<1x4x8x8xf32> {
  %y = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x100x8x8xf32>, tensor<4x3x3x1xi64> -> tensor<1x4x8x8xf32>
  func.return %y : tensor<1x4x8x8xf32>
}
// CHECK: weight must pack 100 channels per group into 2 words, got 1

// -----

func.func @wrong_spatial(%x: tensor<1x3x8x8xf32>, %w: tensor<4x3x3x1xi64>) -> tensor<1x4x8x8xf32> {
  %y = bnn.bconv2d %x, %w {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x8x8xf32>, tensor<4x3x3x1xi64> -> tensor<1x4x8x8xf32>
  func.return %y : tensor<1x4x8x8xf32>
}
// CHECK: result spatial size must be (4, 4), got (8, 8)

// -----

func.func @bad_pad_value(%x: tensor<1x3x8x8xf32>, %w: tensor<4x3x3x1xi64>) -> tensor<1x4x8x8xf32> {
  %y = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 2 : i64} : tensor<1x3x8x8xf32>, tensor<4x3x3x1xi64> -> tensor<1x4x8x8xf32>
  func.return %y : tensor<1x4x8x8xf32>
}
// CHECK: pad_value must be -1, 0 or 1, got 2

// -----

func.func @bad_groups(%x: tensor<1x3x8x8xf32>, %w: tensor<4x3x3x1xi64>) -> tensor<1x4x8x8xf32> {
  %y = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 2 : i64, pad_value = 0 : i64} : tensor<1x3x8x8xf32>, tensor<4x3x3x1xi64> -> tensor<1x4x8x8xf32>
  func.return %y : tensor<1x4x8x8xf32>
}
// CHECK: groups=2 must divide in_channels=3 and out_channels=4

// -----

func.func @multiplier_size(%x: tensor<1x3x8x8xf32>, %w: tensor<4x3x3x1xi64>, %m: tensor<3xf32>) -> tensor<1x4x8x8xf32> {
  %y = bnn.bconv2d %x, %w multiplier %m : tensor<3xf32> {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x8x8xf32>, tensor<4x3x3x1xi64> -> tensor<1x4x8x8xf32>
  func.return %y : tensor<1x4x8x8xf32>
}
// CHECK: bnn.bconv2d multiplier must have 4 elements, got 3

// -----

func.func @no_broadcast(%a: tensor<1x3x8x8xf32>, %b: tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32> {
  %y = bnn.add %a, %b : (tensor<1x3x8x8xf32>, tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  func.return %y : tensor<1x4x8x8xf32>
}
// CHECK: bnn.add operand shapes (1, 3, 8, 8) and (1, 4, 8, 8) do not broadcast

// -----

func.func @cat_sizes(%a: tensor<1x3x8x8xf32>) -> tensor<1x7x8x8xf32> {
  %y = bnn.cat %a, %a {axis = 1 : i64} : (tensor<1x3x8x8xf32>, tensor<1x3x8x8xf32>) -> tensor<1x7x8x8xf32>
  func.return %y : tensor<1x7x8x8xf32>
}
// CHECK: bnn.cat result axis 1 must be 6, got 7

// -----

func.func @reshape_count(%a: tensor<1x3x8x8xf32>) -> tensor<1x100xf32> {
  %y = bnn.reshape %a : (tensor<1x3x8x8xf32>) -> tensor<1x100xf32>
  func.return %y : tensor<1x100xf32>
}
// CHECK: bnn.reshape cannot turn (1, 3, 8, 8) (192 elements) into (1, 100)

// -----

func.func @dense_words(%x: tensor<2x65xf32>, %w: tensor<10x1xi64>) -> tensor<2x10xf32> {
  %y = bnn.bdense %x, %w : tensor<2x65xf32>, tensor<10x1xi64> -> tensor<2x10xf32>
  func.return %y : tensor<2x10xf32>
}
// CHECK: weight must pack 65 features into 2 words, got 1

// -----

func.func @sign_int(%x: tensor<4xi32>) -> tensor<4xi32> {
  %y = bnn.sign %x : tensor<4xi32>
  func.return %y : tensor<4xi32>
}
// CHECK: bnn.sign input must have element type f32

// -----

// A channels_last pool's shapes are N x H x W x C: this result keeps H and W
// as channels would be kept, so its channels do not match.
func.func @nhwc_pool_channels(%x: tensor<1x8x8x4xf32>) -> tensor<1x4x4x8xf32> {
  %y = bnn.max_pool2d %x {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, channels_last} : (tensor<1x8x8x4xf32>) -> tensor<1x4x4x8xf32>
  func.return %y : tensor<1x4x4x8xf32>
}
// CHECK: bnn.max_pool2d result must keep batch and channels 1x4

// -----

// A float conv reading NHWC checks the weight against the last axis.
func.func @nhwc_conv_input(%x: tensor<1x8x8x3xf32>, %w: tensor<4x8x1x1xf32>) -> tensor<1x4x8x8xf32> {
  %y = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, channels_last_input} : tensor<1x8x8x3xf32>, tensor<4x8x1x1xf32> -> tensor<1x4x8x8xf32>
  func.return %y : tensor<1x4x8x8xf32>
}
// CHECK: weight 4x8x1x1 does not match 3 input channels in 1 groups

// -----

// A fused max pool's result has the pooled size (8x8 conv, 3x3/2 pad 1 -> 4x4).
func.func @fused_pool_size(%x: tensor<1x3x8x8xf32>, %w: tensor<4x3x1x1xf32>) -> tensor<1x8x8x4xf32> {
  %y = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, channels_last, pool_kernel = array<i64: 3, 3>, pool_strides = array<i64: 2, 2>, pool_padding = array<i64: 1, 1>} : tensor<1x3x8x8xf32>, tensor<4x3x1x1xf32> -> tensor<1x8x8x4xf32>
  func.return %y : tensor<1x8x8x4xf32>
}
// CHECK: result spatial size must be the fused max pool's (4, 4)

// -----

// A fused max pool needs all three window properties and an NHWC result.
func.func @fused_pool_partial(%x: tensor<1x3x8x8xf32>, %w: tensor<4x3x1x1xf32>) -> tensor<1x4x4x4xf32> {
  %y = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, channels_last, pool_kernel = array<i64: 3, 3>, pool_strides = array<i64: 2, 2>} : tensor<1x3x8x8xf32>, tensor<4x3x1x1xf32> -> tensor<1x4x4x4xf32>
  func.return %y : tensor<1x4x4x4xf32>
}
// CHECK: pool_kernel, pool_strides and pool_padding come together

// -----

func.func @fused_pool_nchw(%x: tensor<1x3x8x8xf32>, %w: tensor<4x3x1x1xf32>) -> tensor<1x4x4x4xf32> {
  %y = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pool_kernel = array<i64: 3, 3>, pool_strides = array<i64: 2, 2>, pool_padding = array<i64: 1, 1>} : tensor<1x3x8x8xf32>, tensor<4x3x1x1xf32> -> tensor<1x4x4x4xf32>
  func.return %y : tensor<1x4x4x4xf32>
}
// CHECK: bnn.conv2d with a fused max pool must be channels_last
