// RUN: %bnnc-opt %s -p 'convert-bnn-to-loops{vector_bits=512 registers=32}' | filecheck %s

// bnn.cat along channels: each source is one contiguous run per batch index
// (2x3x5 = 30 and 4x3x5 = 60 floats), and so is its place in the result
// (from 0 and from 30 of 90). One flat copy loop per source (LLVM vectorises
// it), not a loop per axis with a 5-long innermost loop.

// CHECK-LABEL: func.func private @forward_0_cat(
// CHECK-DAG: %[[RUN_A:.*]] = arith.constant 30 : index
// CHECK-DAG: %[[RUN_B:.*]] = arith.constant 60 : index
// CHECK: %[[OUT:.*]] = memref.collapse_shape %{{.*}} {{\[\[}}0 : i64], [1 : i64, 2 : i64, 3 : i64]] : memref<1x6x3x5xf32> into memref<1x90xf32>
// CHECK: %[[A:.*]] = memref.collapse_shape %{{.*}} : memref<1x2x3x5xf32> into memref<1x30xf32>
// CHECK: scf.for %[[N:.*]] = %{{.*}} to %{{.*}} step
// CHECK-NEXT: scf.for %[[K:.*]] = %{{.*}} to %[[RUN_A]] step
// CHECK-NEXT: %[[V:.*]] = memref.load %[[A]][%[[N]], %[[K]]] : memref<1x30xf32>
// CHECK-NEXT: memref.store %[[V]], %[[OUT]][%[[N]], %[[K]]] : memref<1x90xf32>
// CHECK: %[[B:.*]] = memref.collapse_shape %{{.*}} : memref<1x4x3x5xf32> into memref<1x60xf32>
// CHECK: scf.for %[[N2:.*]] = %{{.*}} to %{{.*}} step
// CHECK-NEXT: scf.for %[[K2:.*]] = %{{.*}} to %[[RUN_B]] step
// CHECK-NEXT: %[[W:.*]] = memref.load %[[B]][%[[N2]], %[[K2]]] : memref<1x60xf32>
// CHECK-NEXT: %[[AT:.*]] = arith.addi %[[K2]], %[[RUN_A]] : index
// CHECK-NEXT: memref.store %[[W]], %[[OUT]][%[[N2]], %[[AT]]] : memref<1x90xf32>
func.func @forward(%a: tensor<1x2x3x5xf32>, %b: tensor<1x4x3x5xf32>) -> tensor<1x6x3x5xf32> {
  %y = bnn.cat %a, %b {axis = 1 : i64} : (tensor<1x2x3x5xf32>, tensor<1x4x3x5xf32>) -> tensor<1x6x3x5xf32>
  func.return %y : tensor<1x6x3x5xf32>
}
