// The example plugin pass examples/passes/fold_negation.py (docs/writing-a-pass.md),
// run by `bnnc opt` and inserted into `bnnc compile`'s graph stage.
// RUN: %bnnc-opt %s --load-pass-plugin=%S/../../../examples/passes/fold_negation.py -p fold-negation | filecheck %s
// RUN: %bnnc compile %s --load-pass-plugin=%S/../../../examples/passes/fold_negation.py --pipeline 'bnn=fold-negation,canonicalize' --emit=bnn -o - | filecheck %s

// CHECK-LABEL: func.func @f

// Folded: multiplier [2, -3] and bias [0.5, 1] become [-2, 3] and [-0.5, -1]
// (-1 as a scalar tensor<f32>, on the right).
// CHECK-DAG: %[[M:.*]] = arith.constant dense<[-2.000000e+00, 3.000000e+00]> : tensor<2xf32>
// CHECK-DAG: %[[B:.*]] = arith.constant dense<[-5.000000e-01, -1.000000e+00]> : tensor<2xf32>
// CHECK: %[[FOLDED:.*]] = bnn.bconv2d %x, %{{.*}} multiplier %[[M]] : tensor<2xf32> bias %[[B]] : tensor<2xf32>
// CHECK-NOT: bnn.mul %[[FOLDED]]

// Folded: no multiplier -> multiplier -1 (-1 per channel, on the left).
// CHECK-DAG: %[[M1:.*]] = arith.constant dense<-1.000000e+00> : tensor<2xf32>
// CHECK: %[[FOLDED2:.*]] = bnn.bconv2d %x, %{{.*}} multiplier %[[M1]] : tensor<2xf32> {
// CHECK-NOT: bnn.mul {{.*}}%[[FOLDED2]]

// Left alone: a mul by -2, by [-1, 1], a conv with a clamp, a conv with a
// slope, a conv result that has another use.
// CHECK: %[[C3:.*]] = bnn.bconv2d
// CHECK-NEXT: bnn.mul %[[C3]], %{{.*}}
// CHECK: %[[C4:.*]] = bnn.bconv2d
// CHECK-NEXT: bnn.mul %[[C4]], %{{.*}}
// CHECK: %[[C5:.*]] = bnn.bconv2d {{.*}}clamp_min
// CHECK-NEXT: bnn.mul %[[C5]], %{{.*}}
// CHECK: %[[C6:.*]] = bnn.bconv2d {{.*}} slope
// CHECK-NEXT: bnn.mul %[[C6]], %{{.*}}
// CHECK: %[[C7:.*]] = bnn.bconv2d
// CHECK-NEXT: %[[N7:.*]] = bnn.mul %[[C7]], %{{.*}}
// CHECK: func.return %[[FOLDED]], %[[FOLDED2]], {{.*}}, %[[N7]], %[[C7]] :
func.func @f(%x: tensor<1x3x4x4xf32>) -> (tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>) {
  %w = arith.constant dense<[[[[0], [1]], [[7], [0]]], [[[5], [2]], [[0], [3]]]]> : tensor<2x2x2x1xi64>
  %m = arith.constant dense<[2.0, -3.0]> : tensor<2xf32>
  %b = arith.constant dense<[0.5, 1.0]> : tensor<2xf32>
  %s = arith.constant dense<[0.25, 0.25]> : tensor<2xf32>
  %neg = arith.constant dense<-1.0> : tensor<f32>
  %neg_c = arith.constant dense<-1.0> : tensor<1x2x1x1xf32>
  %two = arith.constant dense<-2.0> : tensor<1xf32>
  %mixed = arith.constant dense<[[[[-1.0]], [[1.0]]]]> : tensor<1x2x1x1xf32>

  %c1 = bnn.bconv2d %x, %w multiplier %m : tensor<2xf32> bias %b : tensor<2xf32> {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x4x4xf32>, tensor<2x2x2x1xi64> -> tensor<1x2x3x3xf32>
  %n1 = bnn.mul %c1, %neg : (tensor<1x2x3x3xf32>, tensor<f32>) -> tensor<1x2x3x3xf32>

  %c2 = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x4x4xf32>, tensor<2x2x2x1xi64> -> tensor<1x2x3x3xf32>
  %n2 = bnn.mul %neg_c, %c2 : (tensor<1x2x1x1xf32>, tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>

  %c3 = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x4x4xf32>, tensor<2x2x2x1xi64> -> tensor<1x2x3x3xf32>
  %n3 = bnn.mul %c3, %two : (tensor<1x2x3x3xf32>, tensor<1xf32>) -> tensor<1x2x3x3xf32>

  %c4 = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x4x4xf32>, tensor<2x2x2x1xi64> -> tensor<1x2x3x3xf32>
  %n4 = bnn.mul %c4, %mixed : (tensor<1x2x3x3xf32>, tensor<1x2x1x1xf32>) -> tensor<1x2x3x3xf32>

  %c5 = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64, clamp_min = 0.0 : f32} : tensor<1x3x4x4xf32>, tensor<2x2x2x1xi64> -> tensor<1x2x3x3xf32>
  %n5 = bnn.mul %c5, %neg : (tensor<1x2x3x3xf32>, tensor<f32>) -> tensor<1x2x3x3xf32>

  %c6 = bnn.bconv2d %x, %w slope %s : tensor<2xf32> {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x4x4xf32>, tensor<2x2x2x1xi64> -> tensor<1x2x3x3xf32>
  %n6 = bnn.mul %c6, %neg : (tensor<1x2x3x3xf32>, tensor<f32>) -> tensor<1x2x3x3xf32>

  %c7 = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x4x4xf32>, tensor<2x2x2x1xi64> -> tensor<1x2x3x3xf32>
  %n7 = bnn.mul %c7, %neg : (tensor<1x2x3x3xf32>, tensor<f32>) -> tensor<1x2x3x3xf32>

  func.return %n1, %n2, %n3, %n4, %n5, %n6, %n7, %c7 : tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>
}
