// RUN: %bnnc-opt %s -p recognize-prelu --split-input-file | filecheck %s

// nn.PReLU's core-ATen form: where(x > 0, x, x * a) with a per-channel a.
// CHECK-LABEL: func.func @per_channel
// CHECK: %[[A:.*]] = arith.constant dense<[2.500000e-01, 5.000000e-01]> : tensor<2xf32>
// CHECK-NEXT: %[[P:.*]] = bnn.prelu %x, %[[A]]
// CHECK-NEXT: func.return %[[P]]
func.func @per_channel(%x: tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32> {
  %z = arith.constant dense<0.0> : tensor<1x1x1x1xf32>
  %a = arith.constant dense<[[[0.25]], [[0.5]]]> : tensor<2x1x1xf32>
  %c = bnn.compare %x, %z {predicate = "gt"} : (tensor<1x2x3x3xf32>, tensor<1x1x1x1xf32>) -> tensor<1x2x3x3xf32>
  %m = bnn.mul %a, %x : (tensor<2x1x1xf32>, tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %w = bnn.where %c, %x, %m : (tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  func.return %w : tensor<1x2x3x3xf32>
}

// -----

// x >= 0 differs from PReLU at -0.0 (where keeps -0.0, PReLU gives a * -0.0): left alone.
// CHECK-LABEL: func.func @ge_left_alone
// CHECK: bnn.where
// CHECK-NOT: bnn.prelu
func.func @ge_left_alone(%x: tensor<1x2xf32>) -> tensor<1x2xf32> {
  %z = arith.constant dense<0.0> : tensor<1x1xf32>
  %a = arith.constant dense<0.25> : tensor<1x1xf32>
  %c = bnn.compare %x, %z {predicate = "ge"} : (tensor<1x2xf32>, tensor<1x1xf32>) -> tensor<1x2xf32>
  %m = bnn.mul %x, %a : (tensor<1x2xf32>, tensor<1x1xf32>) -> tensor<1x2xf32>
  %w = bnn.where %c, %x, %m : (tensor<1x2xf32>, tensor<1x2xf32>, tensor<1x2xf32>) -> tensor<1x2xf32>
  func.return %w : tensor<1x2xf32>
}

// -----

// The slope must be a constant: x * y of two activations is not a PReLU.
// CHECK-LABEL: func.func @tensor_slope
// CHECK: bnn.where
// CHECK-NOT: bnn.prelu
func.func @tensor_slope(%x: tensor<1x2xf32>, %y: tensor<1x2xf32>) -> tensor<1x2xf32> {
  %z = arith.constant dense<0.0> : tensor<1x1xf32>
  %c = bnn.compare %x, %z {predicate = "gt"} : (tensor<1x2xf32>, tensor<1x1xf32>) -> tensor<1x2xf32>
  %m = bnn.mul %x, %y : (tensor<1x2xf32>, tensor<1x2xf32>) -> tensor<1x2xf32>
  %w = bnn.where %c, %x, %m : (tensor<1x2xf32>, tensor<1x2xf32>, tensor<1x2xf32>) -> tensor<1x2xf32>
  func.return %w : tensor<1x2xf32>
}
