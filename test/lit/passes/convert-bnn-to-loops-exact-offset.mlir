// RUN: %bnnc-opt %s -p 'convert-bnn-to-loops{vector_bits=512 registers=32}' | filecheck %s

// The popcount form of a {0, 1}-input conv (recognize-binarization says so in
// bnnc.binarized): a bias that is f32(multiplier * k) for an integer k (it is
// 0.5 * sum W = m * S) becomes an integer
// offset added to the dot, then one multiply: (dot + k) * m is exactly 0 where
// the exact value is, while fma(dot, m, f32(m * k)) would leave the rounding
// error of m * k there. Channel 0: -0.449304014 = f32(0.0898608044 * -5);
// channel 1: 0.3 is no integer multiple of 0.25 and keeps its bias.

// CHECK-DAG: "memref.global"() <{sym_name = "[[BIAS:__bnnc_const_[0-9]+]]", type = memref<1x8xf32>, initial_value = dense<{{\[\[}}0.000000e+00, 3.000000e-01, 0.000000e+00
// CHECK-DAG: "memref.global"() <{sym_name = "[[OFFSET:__bnnc_const_[0-9]+]]", type = memref<1x8xi64>, initial_value = dense<{{\[\[}}-5, 0, 0, 0, 0, 0, 0, 0]]>
// CHECK-LABEL: func.func private @forward_{{[0-9]+}}_bconv2d(
// CHECK-DAG: %[[B:.*]] = memref.get_global @[[BIAS]] : memref<1x8xf32>
// CHECK-DAG: %[[K:.*]] = memref.get_global @[[OFFSET]] : memref<1x8xi64>
// CHECK: %[[KC:.*]] = memref.load %[[K]][%{{.*}}, %{{.*}}] : memref<1x8xi64>
// CHECK-NEXT: %[[DOT:.*]] = arith.addi %{{.*}}, %[[KC]] : i64
// CHECK-NEXT: %[[DOT32:.*]] = arith.trunci %[[DOT]] : i64 to i32
// CHECK-NEXT: %[[F:.*]] = arith.sitofp %[[DOT32]] : i32 to f32
// CHECK-NEXT: %[[M:.*]] = memref.load %{{.*}} : memref<1x8xf32>
// CHECK-NEXT: %[[BC:.*]] = memref.load %[[B]][%{{.*}}, %{{.*}}] : memref<1x8xf32>
// CHECK-NEXT: math.fma %[[F]], %[[M]], %[[BC]] : f32
func.func @forward(%x: tensor<1x3x6x6xf32>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<[[[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]], [[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]]]> : tensor<2x3x3x1xi64>
  %m = arith.constant dense<[0.0898608044, 0.25]> : tensor<2xf32>
  %b = arith.constant dense<[-0.449304014, 0.3]> : tensor<2xf32>
  %s = bnn.sign %x : tensor<1x3x6x6xf32>
  %y = bnn.bconv2d %s, %w multiplier %m : tensor<2xf32> bias %b : tensor<2xf32> {bnnc.binarized = "input {0, 1}: x > 0 ? 1 : 0; {0, a} unipolar (popcount form: 0.5 * dot + 0.5 * sum W)", strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x6x6xf32>, tensor<2x3x3x1xi64> -> tensor<1x2x4x4xf32>
  func.return %y : tensor<1x2x4x4xf32>
}

// Any other layer keeps fma(dot, m, b) (a batch norm's rounding is PyTorch's).
// CHECK-LABEL: func.func private @other_{{[0-9]+}}_bconv2d(
// CHECK-NOT: arith.addi %{{.*}}, %{{.*}} : i64
// CHECK: arith.sitofp
// CHECK-NOT: arith.addi %{{.*}}, %{{.*}} : i64
// CHECK: math.fma
func.func @other(%x: tensor<1x3x6x6xf32>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<[[[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]], [[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]]]> : tensor<2x3x3x1xi64>
  %m = arith.constant dense<[0.0898608044, 0.25]> : tensor<2xf32>
  %b = arith.constant dense<[-0.449304014, 0.3]> : tensor<2xf32>
  %s = bnn.sign %x : tensor<1x3x6x6xf32>
  %y = bnn.bconv2d %s, %w multiplier %m : tensor<2xf32> bias %b : tensor<2xf32> {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x6x6xf32>, tensor<2x3x3x1xi64> -> tensor<1x2x4x4xf32>
  func.return %y : tensor<1x2x4x4xf32>
}
