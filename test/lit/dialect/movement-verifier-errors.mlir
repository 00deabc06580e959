// RUN: %bnnc-opt %s --split-input-file --verify-diagnostics | filecheck %s

// Malformed movement ops are rejected with a message naming what is wrong.

func.func @fill_without_value(%x: tensor<4xf32>) -> tensor<2xf32> {
  %i = arith.constant dense<[-1, 0]> : tensor<2xi64>
  %y = bnn.gather %x at %i : (tensor<4xf32>, tensor<2xi64>) -> tensor<2xf32>
  func.return %y : tensor<2xf32>
}
// CHECK: bnn.gather index values must lie in [0, 4), got [-1, 0]

// -----

func.func @index_past_the_inputs(%x: tensor<4xf32>) -> tensor<2xf32> {
  %i = arith.constant dense<[4, 0]> : tensor<2xi64>
  %y = bnn.gather %x at %i : (tensor<4xf32>, tensor<2xi64>) -> tensor<2xf32>
  func.return %y : tensor<2xf32>
}
// CHECK: bnn.gather index values must lie in [0, 4), got [0, 4]

// -----

func.func @index_shape(%x: tensor<4xf32>) -> tensor<2xf32> {
  %i = arith.constant dense<[1, 0, 2]> : tensor<3xi64>
  %y = bnn.gather %x at %i : (tensor<4xf32>, tensor<3xi64>) -> tensor<2xf32>
  func.return %y : tensor<2xf32>
}
// CHECK: bnn.gather index shape (3,) must be the result shape (2,)

// -----

func.func @float_index(%x: tensor<4xf32>, %i: tensor<2xf32>) -> tensor<2xf32> {
  %y = bnn.gather %x at %i : (tensor<4xf32>, tensor<2xf32>) -> tensor<2xf32>
  func.return %y : tensor<2xf32>
}
// CHECK: bnn.gather index must have an integer element type

// -----

func.func @bilinear_channels(%x: tensor<1x2x2x2xf32>) -> tensor<1x3x4x4xf32> {
  %y = bnn.upsample_bilinear2d %x : (tensor<1x2x2x2xf32>) -> tensor<1x3x4x4xf32>
  func.return %y : tensor<1x3x4x4xf32>
}
// CHECK: must keep N and C of (1, 2)
