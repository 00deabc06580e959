// RUN: %bnnc-opt %s | %bnnc-opt | filecheck %s
// RUN: %bnnc-opt %s --print-op-generic | %bnnc-opt | filecheck %s

// The math ops print and parse back to the same IR.

// CHECK-LABEL: func.func @math_ops
func.func @math_ops(%x: tensor<2x3x4xf32>, %b: tensor<3x1xf32>) -> tensor<2x3x4xf32> {
  // CHECK: %[[T:.*]] = bnn.unary %{{.*}} {fn = "tanh"} : tensor<2x3x4xf32>
  %t = bnn.unary %x {fn = "tanh"} : tensor<2x3x4xf32>
  // CHECK: bnn.unary %[[T]] {fn = "gelu_tanh"} : tensor<2x3x4xf32>
  %g = bnn.unary %t {fn = "gelu_tanh"} : tensor<2x3x4xf32>
  // CHECK: bnn.elu %{{.*}} {alpha = 1.000000e+00 : f32, scale = 1.050000e+00 : f32, input_scale = 5.000000e-01 : f32} : tensor<2x3x4xf32>
  %e = bnn.elu %g {alpha = 1.0 : f32, scale = 1.05 : f32, input_scale = 0.5 : f32} : tensor<2x3x4xf32>
  // CHECK: bnn.leaky_relu %{{.*}} {negative_slope = 1.000000e-02 : f32} : tensor<2x3x4xf32>
  %l = bnn.leaky_relu %e {negative_slope = 0.01 : f32} : tensor<2x3x4xf32>
  // CHECK: bnn.pow %{{.*}} {exponent = -1.500000e+00 : f32} : tensor<2x3x4xf32>
  %p = bnn.pow %l {exponent = -1.5 : f32} : tensor<2x3x4xf32>
  // CHECK: bnn.minimum %{{.*}}, %{{.*}} : (tensor<2x3x4xf32>, tensor<3x1xf32>) -> tensor<2x3x4xf32>
  %mn = bnn.minimum %p, %b : (tensor<2x3x4xf32>, tensor<3x1xf32>) -> tensor<2x3x4xf32>
  // CHECK: bnn.maximum %{{.*}}, %{{.*}} : (tensor<3x1xf32>, tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
  %mx = bnn.maximum %b, %mn : (tensor<3x1xf32>, tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
  // CHECK: bnn.hardtanh %{{.*}} {min_val = 0xff800000 : f32, max_val = 2.500000e-01 : f32}
  %h = bnn.hardtanh %mx {min_val = 0xFF800000 : f32, max_val = 0.25 : f32} : tensor<2x3x4xf32>
  func.return %h : tensor<2x3x4xf32>
}
