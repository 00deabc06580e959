// RUN: %bnnc-opt %s | %bnnc-opt | filecheck %s
// RUN: %bnnc-opt %s --print-op-generic | %bnnc-opt | filecheck %s

// The movement ops print and parse back to the same IR.

// CHECK-LABEL: func.func @movement
func.func @movement(%x: tensor<1x2x2x2xf32>, %y: tensor<3xf32>) -> (tensor<2x2xf32>, tensor<1x2x4x4xf32>, tensor<2xf32>) {
  %i = arith.constant dense<[[3, 1], [-1, 0]]> : tensor<2x2xi64>
  // CHECK: %[[I:.*]] = arith.constant dense<{{\[\[}}3, 1], [-1, 0]]> : tensor<2x2xi64>
  // CHECK: bnn.gather %{{.*}} at %[[I]] {fill = 5.000000e-01 : f32} : (tensor<1x2x2x2xf32>, tensor<2x2xi64>) -> tensor<2x2xf32>
  %g = bnn.gather %x at %i {fill = 5.000000e-01 : f32} : (tensor<1x2x2x2xf32>, tensor<2x2xi64>) -> tensor<2x2xf32>
  %j = arith.constant dense<[10, 2]> : tensor<2xi32>
  // CHECK: bnn.gather %{{.*}}, %{{.*}} at %{{.*}} : (tensor<1x2x2x2xf32>, tensor<3xf32>, tensor<2xi32>) -> tensor<2xf32>
  %h = bnn.gather %x, %y at %j : (tensor<1x2x2x2xf32>, tensor<3xf32>, tensor<2xi32>) -> tensor<2xf32>
  // CHECK: bnn.upsample_bilinear2d %{{.*}} {align_corners} : (tensor<1x2x2x2xf32>) -> tensor<1x2x4x4xf32>
  %u = bnn.upsample_bilinear2d %x {align_corners} : (tensor<1x2x2x2xf32>) -> tensor<1x2x4x4xf32>
  // CHECK: bnn.upsample_bilinear2d %{{.*}} {scales = array<f64: 2.000000e+00, 2.000000e+00>} : (tensor<1x2x2x2xf32>) -> tensor<1x2x4x4xf32>
  %v = bnn.upsample_bilinear2d %x {scales = array<f64: 2.0, 2.0>} : (tensor<1x2x2x2xf32>) -> tensor<1x2x4x4xf32>
  func.return %g, %v, %h : tensor<2x2xf32>, tensor<1x2x4x4xf32>, tensor<2xf32>
}
