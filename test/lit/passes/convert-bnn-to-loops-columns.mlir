// RUN: %bnnc-opt %s -p 'convert-bnn-to-loops{vector_bits=512 registers=32}' | filecheck %s

// A bconv2d with a float NCHW result and stride 1 along x is vectorised over
// output columns (passes/_bconv_columns.py): 23 columns are three 8-lane
// vectors, the third with 7 columns of the row.

// Each float lane starts as the f32 bits of 1.5 * 2^23 + d (d = K - 2
// popcount) and has a base subtracted. With zero padding every tile reads it
// from one table, 1.5 * 2^23 + the correction per row class (3) x channel
// (4) x column (24 computed; 0 inside, so border and interior tiles are one
// copy of the code), top-left first: -1 (taps 1 2 4 / 7 0 5 / 3 6 1 give
// 1 1 1 / -3 3 -1 / -1 -1 1; top-left's outside taps sum to -1: 0x4B3FFFFF),
// then 3 (0x4B400003) for the rest of the top row ...; there is no
// per-channel base of 1.5 * 2^23 (0x4B400000) alone.
// CHECK-NOT: type = memref<1x4xf32>, initial_value = dense<0x4B400000>
// CHECK: "memref.global"() <{sym_name = "__bnnc_const_3", type = memref<1x3x4x24xf32>, initial_value = dense<"0xFFFF3F4B0300404B0300404B
// CHECK-LABEL: func.func private @forward_2_bconv2d(
// The packed input is copied into a padded buffer one column wider than the
// padding needs (6 x (23 + 2 + 1)): the last vector's eighth lane reads it.
// CHECK: %[[SRC:.*]] = memref.alloc() {alignment = 64 : i64} : memref<1x1x6x26xi64>
// Per K step: one vector load of 8 consecutive columns' words per vector,
// and one weight word per output channel broadcast against all three.
// CHECK: %[[A0:.*]] = vector.load %[[SRC]][%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<1x1x6x26xi64>, vector<8xi64>
// CHECK: %[[A1:.*]] = vector.load %[[SRC]][%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<1x1x6x26xi64>, vector<8xi64>
// CHECK: %[[A2:.*]] = vector.load %[[SRC]][%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<1x1x6x26xi64>, vector<8xi64>
// CHECK: %[[W:.*]] = memref.load %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<1x3x3x1x4xi64>
// CHECK: %[[WB:.*]] = vector.broadcast %[[W]] : i64 to vector<8xi64>
// CHECK: %[[X0:.*]] = arith.xori %[[WB]], %[[A0]] : vector<8xi64>
// CHECK: math.ctpop %[[X0]] : vector<8xi64>
// CHECK: %[[X1:.*]] = arith.xori %[[WB]], %[[A1]] : vector<8xi64>
// CHECK: math.ctpop %[[X1]] : vector<8xi64>
// CHECK: %[[X2:.*]] = arith.xori %[[WB]], %[[A2]] : vector<8xi64>
// CHECK: math.ctpop %[[X2]] : vector<8xi64>
// Epilogue: the first two vectors' popcounts truncated to i32 by one shuffle,
// MAGIC_BITS + K - 2 popcount as f32 bits, minus the column's base (exact),
// times the multiplier, one 16-lane store along the NCHW row.
// CHECK: %[[H0:.*]] = vector.bitcast %{{.*}} : vector<8xi64> to vector<16xi32>
// CHECK: %[[H1:.*]] = vector.bitcast %{{.*}} : vector<8xi64> to vector<16xi32>
// CHECK: %[[LOW:.*]] = vector.shuffle %[[H0]], %[[H1]] [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30] : vector<16xi32>, vector<16xi32>
// CHECK: %[[TWICE:.*]] = arith.addi %[[LOW]], %[[LOW]] : vector<16xi32>
// CHECK: %[[BITS:.*]] = arith.subi %{{.*}}, %[[TWICE]] : vector<16xi32>
// CHECK: %[[BASE:.*]] = vector.load %{{.*}} : memref<1x3x4x24xf32>, vector<16xf32>
// CHECK: %[[F:.*]] = arith.bitcast %[[BITS]] : vector<16xi32> to vector<16xf32>
// CHECK: %[[D:.*]] = arith.subf %[[F]], %[[BASE]] : vector<16xf32>
// CHECK: %[[M:.*]] = vector.broadcast %{{.*}} : f32 to vector<16xf32>
// CHECK: %[[R:.*]] = arith.mulf %[[D]], %[[M]] : vector<16xf32>
// CHECK: vector.store %[[R]], %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<1x4x4x23xf32>, vector<16xf32>
// The third vector holds the row's last 7 columns: alone, stored lane by lane.
// CHECK: vector.shuffle %{{.*}}, %{{.*}} [0, 2, 4, 6, 8, 10, 12, 14] : vector<16xi32>, vector<16xi32>
// CHECK: %[[E0:.*]] = vector.extract %{{.*}}[0] : f32 from vector<8xf32>
// CHECK: memref.store %[[E0]], %{{.*}} : memref<1x4x4x23xf32>
// CHECK: %[[E6:.*]] = vector.extract %{{.*}}[6] : f32 from vector<8xf32>
// CHECK: memref.store %[[E6]], %{{.*}} : memref<1x4x4x23xf32>
// CHECK-NOT: vector.extract %{{.*}}[7]
// CHECK: memref.dealloc %[[SRC]]
func.func @forward(%x: tensor<1x1x4x23xi64>) -> tensor<1x4x4x23xf32> {
  %w = arith.constant dense<[[[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]], [[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]], [[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]], [[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]]]> : tensor<4x3x3x1xi64>
  %m = arith.constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %y = bnn.bconv2d %x, %w multiplier %m : tensor<4xf32> {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64, in_channels = 3 : i64} : tensor<1x1x4x23xi64>, tensor<4x3x3x1xi64> -> tensor<1x4x4x23xf32>
  func.return %y : tensor<1x4x4x23xf32>
}

// Rows whose last vector would be mostly empty (6 columns of 8) keep the
// channel-vectorised kernel and its NCHW row buffer.
// CHECK-LABEL: func.func private @forward_narrow_2_bconv2d(
// CHECK-NOT: vector<8xf32>
// CHECK: memref.alloca() {alignment = 64 : i64} : memref<6x8xf32>
func.func @forward_narrow(%x: tensor<1x1x4x6xi64>) -> tensor<1x4x4x6xf32> {
  %w = arith.constant dense<[[[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]], [[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]], [[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]], [[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]]]> : tensor<4x3x3x1xi64>
  %m = arith.constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %y = bnn.bconv2d %x, %w multiplier %m : tensor<4xf32> {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64, in_channels = 3 : i64} : tensor<1x1x4x6xi64>, tensor<4x3x3x1xi64> -> tensor<1x4x4x6xf32>
  func.return %y : tensor<1x4x4x6xf32>
}
