// RUN: %bnnc-opt %s -p 'convert-bnn-to-loops{vector_bits=512 registers=32}' | filecheck %s

// bnn.pad is written as runs with no bounds test per element: the output
// plane viewed flat, the top band (2 rows x 7 = 14 fills), per source row a
// left fill (1), a contiguous copy of the 4 source columns and a right fill
// (2), then the bottom band (3 rows x 7 = 21 fills from offset 35).

// CHECK-LABEL: func.func private @forward_0_pad(
// CHECK-SAME: %[[SRC:.*]]: memref<1x2x3x4xf32>, %[[DST:.*]]: memref<1x2x8x7xf32>)
// CHECK-NOT: arith.select
// CHECK-DAG: %[[C35:.*]] = arith.constant 35 : index
// CHECK-DAG: %[[C21:.*]] = arith.constant 21 : index
// CHECK-DAG: %[[C14:.*]] = arith.constant 14 : index
// CHECK-DAG: %[[C4:.*]] = arith.constant 4 : index
// CHECK-DAG: %[[V:.*]] = arith.constant -1.500000e+00 : f32
// CHECK: %[[FLAT:.*]] = memref.collapse_shape %[[DST]] {{.*}} : memref<1x2x8x7xf32> into memref<1x2x56xf32>
// CHECK: scf.for %{{.*}} to %[[C14]]
// CHECK-NEXT: memref.store %[[V]], %[[FLAT]]
// CHECK: scf.for %[[COL:.*]] = %{{.*}} to %[[C4]]
// CHECK-NEXT: %[[X:.*]] = memref.load %[[SRC]][%{{.*}}, %{{.*}}, %{{.*}}, %[[COL]]]
// CHECK: memref.store %[[X]], %[[FLAT]]
// CHECK: scf.for %[[B:.*]] = %{{.*}} to %[[C21]]
// CHECK-NEXT: arith.addi %[[B]], %[[C35]]
// CHECK-NEXT: memref.store %[[V]], %[[FLAT]]
// CHECK-NOT: arith.select
// CHECK: func.return
func.func @forward(%x: tensor<1x2x3x4xf32>) -> tensor<1x2x8x7xf32> {
  %y = bnn.pad %x {padding = array<i64: 1, 2, 2, 3>, value = -1.5 : f32} : (tensor<1x2x3x4xf32>) -> tensor<1x2x8x7xf32>
  func.return %y : tensor<1x2x8x7xf32>
}
