// RUN: sed -n '1,/^\/\/ -----/p' %s | %bnnc-opt | %bnnc-opt | filecheck %s
// RUN: sed -n '1,/^\/\/ -----/p' %s | %bnnc-opt --print-op-generic | %bnnc-opt | filecheck %s
// RUN: sed -n '1,/^\/\/ -----/p' %s | %bnnc-opt -p convert-bnn-to-loops | filecheck %s --check-prefix=LOOPS
// RUN: %bnnc-opt %s --split-input-file --verify-diagnostics | filecheck %s --check-prefix=ERR

// bnn.matmul, bnn.zero_insert, ceil-mode pools and bnn.adaptive_max_pool2d
// print and parse back to the same IR, and lower to loops.

// CHECK-LABEL: func.func @linalg_ops
func.func @linalg_ops(%a: tensor<2x3x4xf32>, %b: tensor<2x5x4xf32>, %c: tensor<4x5xf32>, %c2: tensor<3x4xf32>, %x: tensor<1x2x8x8xf32>) -> (tensor<2x3x5xf32>, tensor<5x3xf32>, tensor<1x2x17x16xf32>, tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>, tensor<1x2x3x5xf32>) {
  // CHECK: bnn.matmul %{{.*}}, %{{.*}} {transpose_rhs} : (tensor<2x3x4xf32>, tensor<2x5x4xf32>) -> tensor<2x3x5xf32>
  %m = bnn.matmul %a, %b {transpose_rhs} : (tensor<2x3x4xf32>, tensor<2x5x4xf32>) -> tensor<2x3x5xf32>
  // CHECK: bnn.matmul %{{.*}}, %{{.*}} {transpose_lhs, transpose_rhs} : (tensor<4x5xf32>, tensor<3x4xf32>) -> tensor<5x3xf32>
  %t = bnn.matmul %c, %c2 {transpose_lhs, transpose_rhs} : (tensor<4x5xf32>, tensor<3x4xf32>) -> tensor<5x3xf32>
  // CHECK: bnn.zero_insert %{{.*}} {strides = array<i64: 2, 2>, padding = array<i64: 0, 1, 1, 1>} : (tensor<1x2x8x8xf32>) -> tensor<1x2x17x16xf32>
  %z = bnn.zero_insert %x {strides = array<i64: 2, 2>, padding = array<i64: 0, 1, 1, 1>} : (tensor<1x2x8x8xf32>) -> tensor<1x2x17x16xf32>
  // CHECK: bnn.max_pool2d %{{.*}} {{.*}}ceil_mode} : (tensor<1x2x8x8xf32>) -> tensor<1x2x4x4xf32>
  %p = bnn.max_pool2d %x {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, ceil_mode} : (tensor<1x2x8x8xf32>) -> tensor<1x2x4x4xf32>
  // CHECK: bnn.avg_pool2d %{{.*}} {{.*}}ceil_mode{{.*}} : (tensor<1x2x8x8xf32>) -> tensor<1x2x4x4xf32>
  %q = bnn.avg_pool2d %x {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, count_include_pad = true, ceil_mode} : (tensor<1x2x8x8xf32>) -> tensor<1x2x4x4xf32>
  // CHECK: bnn.adaptive_max_pool2d %{{.*}} : (tensor<1x2x8x8xf32>) -> tensor<1x2x3x5xf32>
  %r = bnn.adaptive_max_pool2d %x : (tensor<1x2x8x8xf32>) -> tensor<1x2x3x5xf32>
  func.return %m, %t, %z, %p, %q, %r : tensor<2x3x5xf32>, tensor<5x3xf32>, tensor<1x2x17x16xf32>, tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>, tensor<1x2x3x5xf32>
}

// The matmul kernel broadcasts an lhs element against rhs row vectors (FMA),
// zero_insert zero-fills then scatters, adaptive max uses the NaN-aware max.
// LOOPS-LABEL: func.func private @linalg_ops_0_matmul
// LOOPS: vector.broadcast
// LOOPS: vector.fma
// LOOPS-LABEL: func.func private @linalg_ops_{{[0-9]+}}_zero_insert
// LOOPS: memref.store
// LOOPS-LABEL: func.func private @linalg_ops_{{[0-9]+}}_adaptive_max_pool2d
// LOOPS: arith.cmpf uno

// The verifiers name what is wrong.

// -----

func.func @k_mismatch(%a: tensor<3x4xf32>, %b: tensor<5x6xf32>) -> tensor<3x6xf32> {
  %y = bnn.matmul %a, %b : (tensor<3x4xf32>, tensor<5x6xf32>) -> tensor<3x6xf32>
  func.return %y : tensor<3x6xf32>
}
// ERR: bnn.matmul contracts 4 lhs columns with 5 rhs rows

// -----

func.func @batch_mismatch(%a: tensor<2x3x4xf32>, %b: tensor<3x4x5xf32>) -> tensor<2x3x5xf32> {
  %y = bnn.matmul %a, %b : (tensor<2x3x4xf32>, tensor<3x4x5xf32>) -> tensor<2x3x5xf32>
  func.return %y : tensor<2x3x5xf32>
}
// ERR: bnn.matmul batch sizes differ: 2, 3 -> 2

// -----

func.func @stuffed_size(%x: tensor<1x2x8x8xf32>) -> tensor<1x2x16x16xf32> {
  %y = bnn.zero_insert %x {strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>} : (tensor<1x2x8x8xf32>) -> tensor<1x2x16x16xf32>
  func.return %y : tensor<1x2x16x16xf32>
}
// ERR: bnn.zero_insert result must be (1, 2, 15, 15), got (1, 2, 16, 16)

// -----

func.func @ceil_size(%x: tensor<1x2x8x8xf32>) -> tensor<1x2x3x3xf32> {
  %y = bnn.max_pool2d %x {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, ceil_mode} : (tensor<1x2x8x8xf32>) -> tensor<1x2x3x3xf32>
  func.return %y : tensor<1x2x3x3xf32>
}
// ERR: result spatial size must be (4, 4) (ceil mode), got (3, 3)

// -----

func.func @floor_size(%x: tensor<1x2x8x8xf32>) -> tensor<1x2x4x4xf32> {
  %y = bnn.avg_pool2d %x {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, count_include_pad = true} : (tensor<1x2x8x8xf32>) -> tensor<1x2x4x4xf32>
  func.return %y : tensor<1x2x4x4xf32>
}
// ERR: result spatial size must be (3, 3) (floor mode), got (4, 4)
