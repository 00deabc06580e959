// RUN: %bnnc-opt %s -p 'convert-bnn-to-loops{vector_bits=512 registers=32}' | filecheck %s

// A bconv2d with a float NCHW result and stride 1 along x is vectorised over
// output columns (passes/_bconv_columns.py): 15 columns are two 8-lane
// vectors, the second with 7 columns of the row.

// Zero padding: the correction per row class (3) x channel (4) x column (16
// computed), top-left first: -1 (the taps 1 2 4 / 7 0 5 / 3 6 1 give
// 1 1 1 / -3 3 -1 / -1 -1 1; top-left's outside taps sum to -1), then 3 for the
// rest of the top row ...
// CHECK: "memref.global"() <{sym_name = "__bnnc_const_3", type = memref<1x3x4x16xi64>, initial_value = dense<"0xFFFFFFFFFFFFFFFF0300000000000000
// CHECK-LABEL: func.func private @forward_2_bconv2d(
// The packed input is copied into a padded buffer one column wider than the
// padding needs (6 x (15 + 2 + 1)): the last vector's eighth lane reads it.
// CHECK: %[[SRC:.*]] = memref.alloc() {alignment = 64 : i64} : memref<1x1x6x18xi64>
// Per K step: one vector load of 8 consecutive columns' words (two vectors),
// and one weight word per output channel broadcast against both.
// CHECK: %[[A0:.*]] = vector.load %[[SRC]][%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<1x1x6x18xi64>, vector<8xi64>
// CHECK: %[[A1:.*]] = vector.load %[[SRC]][%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<1x1x6x18xi64>, vector<8xi64>
// CHECK: %[[W:.*]] = memref.load %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<1x3x3x1x4xi64>
// CHECK: %[[WB:.*]] = vector.broadcast %[[W]] : i64 to vector<8xi64>
// CHECK: %[[X0:.*]] = arith.xori %[[WB]], %[[A0]] : vector<8xi64>
// CHECK: math.ctpop %[[X0]] : vector<8xi64>
// CHECK: %[[X1:.*]] = arith.xori %[[WB]], %[[A1]] : vector<8xi64>
// CHECK: math.ctpop %[[X1]] : vector<8xi64>
// Epilogue of a whole vector: dot = K - 2 popcount, minus the column's
// correction, to f32 exactly (the low i32 halves plus the bits of 1.5 * 2^23,
// minus 1.5 * 2^23), times the multiplier, one store along the NCHW row.
// CHECK: %[[SH:.*]] = arith.shli %{{.*}}, %{{.*}} : vector<8xi64>
// CHECK: %[[DOT:.*]] = arith.subi %{{.*}}, %[[SH]] : vector<8xi64>
// CHECK: %[[COR:.*]] = vector.load %{{.*}} : memref<1x3x4x16xi64>, vector<8xi64>
// CHECK: %[[D:.*]] = arith.subi %[[DOT]], %[[COR]] : vector<8xi64>
// CHECK: %[[HALVES:.*]] = vector.bitcast %[[D]] : vector<8xi64> to vector<16xi32>
// CHECK: %[[LOW:.*]] = vector.shuffle %[[HALVES]], %[[HALVES]] [0, 2, 4, 6, 8, 10, 12, 14] : vector<16xi32>, vector<16xi32>
// CHECK: %[[BITS:.*]] = arith.addi %[[LOW]], %{{.*}} : vector<8xi32>
// CHECK: %[[F:.*]] = arith.bitcast %[[BITS]] : vector<8xi32> to vector<8xf32>
// CHECK: %[[V:.*]] = arith.subf %[[F]], %{{.*}} : vector<8xf32>
// CHECK: %[[M:.*]] = vector.broadcast %{{.*}} : f32 to vector<8xf32>
// CHECK: %[[R:.*]] = arith.mulf %[[V]], %[[M]] : vector<8xf32>
// CHECK: vector.store %[[R]], %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<1x4x4x15xf32>, vector<8xf32>
// The second vector holds the row's last 7 columns: stored lane by lane.
// CHECK: %[[E0:.*]] = vector.extract %{{.*}}[0] : f32 from vector<8xf32>
// CHECK: memref.store %[[E0]], %{{.*}} : memref<1x4x4x15xf32>
// CHECK: %[[E6:.*]] = vector.extract %{{.*}}[6] : f32 from vector<8xf32>
// CHECK: memref.store %[[E6]], %{{.*}} : memref<1x4x4x15xf32>
// CHECK-NOT: vector.extract %{{.*}}[7]
// CHECK: memref.dealloc %[[SRC]]
func.func @forward(%x: tensor<1x1x4x15xi64>) -> tensor<1x4x4x15xf32> {
  %w = arith.constant dense<[[[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]], [[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]], [[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]], [[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]]]> : tensor<4x3x3x1xi64>
  %m = arith.constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %y = bnn.bconv2d %x, %w multiplier %m : tensor<4xf32> {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64, in_channels = 3 : i64} : tensor<1x1x4x15xi64>, tensor<4x3x3x1xi64> -> tensor<1x4x4x15xf32>
  func.return %y : tensor<1x4x4x15xf32>
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
