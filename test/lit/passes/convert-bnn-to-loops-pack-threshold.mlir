// RUN: %bnnc-opt %s -p 'convert-bnn-to-loops{vector_bits=512 registers=32}' | filecheck %s

// A bnn.pack with thresholds (fuse-bn-pack): the bit of channel c is
// x * d[c] < t[c], taken as the sign of x * d[c] - t[c] (x * d is exact; a
// difference of distinct floats never rounds to 0; NaN is not < 0): in the
// vector loop the channel's d and t are broadcast before the same sign test
// on the f32 bits as an unthresholded pack; in the per-pixel loop, a compare.

// CHECK-LABEL: func.func private @forward_2_pack(
// CHECK-SAME: %[[X:[^:]*]]: memref<1x3x3x7xf32>, %[[T:[^:]*]]: memref<3xf32>, %[[D:[^:]*]]: memref<3xf32>
// CHECK: scf.for {{.*}} -> (vector<16xi32>) {
// CHECK: %[[CH:.*]] = arith.subi
// CHECK-NEXT: %[[V:.*]] = vector.load %{{.*}}[%{{.*}}, %[[CH]], %{{.*}}] : memref<1x3x21xf32>, vector<16xf32>
// CHECK-NEXT: %[[DC:.*]] = memref.load %[[D]][%[[CH]]] : memref<3xf32>
// CHECK-NEXT: %[[TC:.*]] = memref.load %[[T]][%[[CH]]] : memref<3xf32>
// CHECK-NEXT: %[[DV:.*]] = vector.broadcast %[[DC]] : f32 to vector<16xf32>
// CHECK-NEXT: %[[TV:.*]] = vector.broadcast %[[TC]] : f32 to vector<16xf32>
// CHECK-NEXT: %[[XD:.*]] = arith.mulf %[[V]], %[[DV]] : vector<16xf32>
// CHECK-NEXT: %[[C:.*]] = arith.subf %[[XD]], %[[TV]] : vector<16xf32>
// CHECK-NEXT: arith.bitcast %[[C]] : vector<16xf32> to vector<16xi32>
// CHECK: scf.for {{.*}} -> (i64) {
// CHECK: %[[CH2:.*]] = arith.subi
// CHECK-NEXT: %[[S:.*]] = memref.load %{{.*}}[%{{.*}}, %[[CH2]], %{{.*}}] : memref<1x3x21xf32>
// CHECK-NEXT: %[[DC2:.*]] = memref.load %[[D]][%[[CH2]]] : memref<3xf32>
// CHECK-NEXT: %[[TC2:.*]] = memref.load %[[T]][%[[CH2]]] : memref<3xf32>
// CHECK-NEXT: %[[SD:.*]] = arith.mulf %[[S]], %[[DC2]] : f32
// CHECK-NEXT: %[[C2:.*]] = arith.subf %[[SD]], %[[TC2]] : f32
// CHECK-NEXT: arith.cmpf olt, %[[C2]], %{{.*}} : f32
func.func @forward(%x: tensor<1x3x3x7xf32>) -> tensor<1x1x3x7xi64> {
  %t = arith.constant dense<[2.0, -0.5, 0xff800000]> : tensor<3xf32>
  %d = arith.constant dense<[1.0, -1.0, 1.0]> : tensor<3xf32>
  %p = bnn.pack %x threshold %t : tensor<3xf32> direction %d : tensor<3xf32> {groups = 1 : i64} : tensor<1x3x3x7xf32> -> tensor<1x1x3x7xi64>
  func.return %p : tensor<1x1x3x7xi64>
}
