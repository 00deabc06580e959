// RUN: %bnnc-opt %s | %bnnc-opt | filecheck %s
// RUN: %bnnc-opt %s --print-op-generic | %bnnc-opt | filecheck %s
// RUN: %bnnc-opt %s -p convert-bnn-to-loops | filecheck %s --check-prefix=LOOPS

// The reduction ops print and parse back to the same IR, and lower to loops.

// CHECK-LABEL: func.func @reduce_ops
// LOOPS-LABEL: func.func private @reduce_ops_0_reduce
func.func @reduce_ops(%x: tensor<2x4x3x37xf32>, %w: tensor<1x1x3x37xf32>) -> (tensor<2x1x3x1xf32>, tensor<2x1x3x37xf32>, tensor<2x4x3x37xf32>, tensor<2x4x3x37xf32>) {
  // CHECK: bnn.reduce %{{.*}} {kind = "sum", dims = array<i64: 1, 3>} : (tensor<2x4x3x37xf32>) -> tensor<2x1x3x1xf32>
  // LOOPS: vector.load
  // LOOPS: arith.addf {{.*}} : vector<4xf32>
  %s = bnn.reduce %x {kind = "sum", dims = array<i64: 1, 3>} : (tensor<2x4x3x37xf32>) -> tensor<2x1x3x1xf32>
  // CHECK: bnn.reduce %{{.*}} {kind = "std", dims = array<i64: 1>, correction = 1.000000e+00 : f32} : (tensor<2x4x3x37xf32>) -> tensor<2x1x3x37xf32>
  // LOOPS-LABEL: func.func private @reduce_ops_1_reduce
  // LOOPS: memref.collapse_shape {{.*}} {{\[}}[0 : i64], [1 : i64], [2 : i64, 3 : i64]] : memref<2x4x3x37xf32> into memref<2x4x111xf32>
  // LOOPS: math.sqrt
  %v = bnn.reduce %x {kind = "std", dims = array<i64: 1>, correction = 1.0 : f32} : (tensor<2x4x3x37xf32>) -> tensor<2x1x3x37xf32>
  // CHECK: bnn.softmax %{{.*}} {dim = 1 : i64} : tensor<2x4x3x37xf32>
  // LOOPS-LABEL: func.func private @reduce_ops_2_softmax
  // LOOPS: arith.cmpf uno
  // LOOPS: math.exp
  %m = bnn.softmax %x {dim = 1 : i64} : tensor<2x4x3x37xf32>
  // CHECK: bnn.softmax %{{.*}} {dim = 3 : i64, log} : tensor<2x4x3x37xf32>
  // LOOPS-LABEL: func.func private @reduce_ops_3_softmax
  // LOOPS: math.log
  %l = bnn.softmax %m {dim = 3 : i64, log} : tensor<2x4x3x37xf32>
  // CHECK: bnn.normalize %{{.*}} weight %{{.*}} : tensor<1x1x3x37xf32> bias %{{.*}} : tensor<1x1x3x37xf32> {dims = array<i64: 2, 3>, epsilon = 1.000000e-05 : f32} : tensor<2x4x3x37xf32>
  // LOOPS-LABEL: func.func private @reduce_ops_4_normalize
  // LOOPS: math.sqrt
  %n = bnn.normalize %l weight %w : tensor<1x1x3x37xf32> bias %w : tensor<1x1x3x37xf32> {dims = array<i64: 2, 3>, epsilon = 1.0e-05 : f32} : tensor<2x4x3x37xf32>
  // CHECK: bnn.normalize %{{.*}} {dims = array<i64: 0, 2, 3>, epsilon = 1.000000e-05 : f32} : tensor<2x4x3x37xf32>
  %n2 = bnn.normalize %n {dims = array<i64: 0, 2, 3>, epsilon = 1.0e-05 : f32} : tensor<2x4x3x37xf32>
  func.return %s, %v, %m, %n2 : tensor<2x1x3x1xf32>, tensor<2x1x3x37xf32>, tensor<2x4x3x37xf32>, tensor<2x4x3x37xf32>
}
