// RUN: %bnnc-opt %s -p 'convert-bnn-to-loops{vector_bits=512 registers=32}' | filecheck %s
// RUN: %bnnc-opt %s -p 'convert-bnn-to-loops{vector_bits=512 registers=32 num_threads=2 thread_min_work=0}' | filecheck %s --check-prefix=THREADS

// The tensor function becomes destination-passing over memrefs, constants
// become private globals, and every bnn op becomes a private loop-nest function.

// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %{{.*}}: memref<1x3x6x6xf32>, %{{.*}}: memref<1x4x6x6xf32>)
// CHECK-SAME: bnnc.num_inputs = 1
// CHECK-DAG: memref.get_global @__bnnc_const_0 : memref<4x3x3x1xi64>
// CHECK-DAG: memref.get_global @__bnnc_const_1 : memref<4xf32>
// CHECK: %[[S:.*]] = memref.alloc() {alignment = 64 : i64} : memref<1x3x6x6xf32>
// CHECK: func.call @forward_2_sign(%{{.*}}, %[[S]])
// The conv writes straight into the output buffer, then the sign buffer is freed.
// CHECK: func.call @forward_3_bconv2d(%[[S]], %{{.*}}, %{{.*}}, %{{.*}})
// CHECK-NEXT: memref.dealloc %[[S]]
// CHECK-NEXT: func.return
func.func @forward(%x: tensor<1x3x6x6xf32>) -> tensor<1x4x6x6xf32> {
  %w = arith.constant dense<[[[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]], [[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]], [[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]], [[[1], [2], [4]], [[7], [0], [5]], [[3], [6], [1]]]]> : tensor<4x3x3x1xi64>
  %m = arith.constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %s = bnn.sign %x : tensor<1x3x6x6xf32>
  %y = bnn.bconv2d %s, %w multiplier %m : tensor<4xf32> {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x6x6xf32>, tensor<4x3x3x1xi64> -> tensor<1x4x6x6xf32>
  func.return %y : tensor<1x4x6x6xf32>
}

// A function without tensors is left alone.
// CHECK-LABEL: func.func @scalar(%{{.*}}: i32) -> i32
// CHECK-NEXT: func.return
func.func @scalar(%a: i32) -> i32 {
  func.return %a : i32
}

// Constants are private, constant, 64-byte aligned globals.
// CHECK: "memref.global"() <{sym_name = "__bnnc_const_0", type = memref<4x3x3x1xi64>, {{.*}}sym_visibility = "private", constant, alignment = 64 : i64}>
// CHECK: "memref.global"() <{sym_name = "__bnnc_const_1", type = memref<4xf32>,

// sign: +1 unless x < 0 (ordered compare, so -0.0 and NaN give +1).
// CHECK-LABEL: func.func private @forward_2_sign(
// CHECK: arith.cmpf olt, %{{.*}}, %{{.*}} : f32
// CHECK: arith.select %{{.*}}, %{{.*}}, %{{.*}} : f32

// bconv2d: weights K-major with output channels padded to the 8-lane vector,
// and a correction table for zero padding: Cg - 2 popcount(w) per tap
// (taps 1 2 4 / 7 0 5 / 3 6 1: 1 1 1 / -3 3 -1 / -1 -1 1), summed over the
// taps outside the input for each border class (top / inside / bottom row x
// left / inside / right column): top-left 1+1+1-3-1 = -1, top 3, top-right 3,
// left -3, inside 0, right 1, ...
// CHECK: "memref.global"() <{sym_name = "__bnnc_const_2", type = memref<1x3x3x1x8xi64>, initial_value = dense<{{\[\[\[\[\[}}1, 1, 1, 1, 0, 0, 0, 0]]
// CHECK: "memref.global"() <{sym_name = "__bnnc_const_3", type = memref<1x3x3x8xi64>, initial_value = dense<{{\[\[\[\[}}-1, -1, -1, -1, 0, 0, 0, 0], [3, 3, 3, 3, 0, 0, 0, 0], [3, 3, 3, 3, 0, 0, 0, 0]], {{\[\[}}-3, -3, -3, -3, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0]]
// CHECK-LABEL: func.func private @forward_3_bconv2d(
// The input is packed once into a padded buffer (6x6 + border = 8x8) ...
// CHECK: memref.alloc() {alignment = 64 : i64} : memref<1x1x8x8xi64>
// CHECK: arith.shli
// CHECK: arith.ori
// ... then 8 output channels' weight words are XORed with a broadcast activation word,
// popcounts accumulating in vector registers.
// CHECK: vector.load %{{.*}} : memref<1x3x3x1x8xi64>, vector<8xi64>
// CHECK: %[[A:.*]] = vector.broadcast %{{.*}} : i64 to vector<8xi64>
// CHECK: %[[X:.*]] = arith.xori %[[A]], %{{.*}} : vector<8xi64>
// CHECK: math.ctpop %[[X]] : vector<8xi64>
// Border pixels subtract their class's correction: one vector load.
// CHECK: vector.load %{{.*}} : memref<1x3x3x8xi64>, vector<8xi64>
// The tile's dot products go through a stack buffer to one scalar epilogue
// loop, which scales each channel's exact integer by its multiplier.
// CHECK: vector.store %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}] : memref<6x8xi64>, vector<8xi64>
// CHECK: arith.sitofp
// CHECK: arith.mulf
// The NCHW result goes through a row buffer (6 columns x the 8-channel tile):
// after each row, 4 x 4 blocks are transposed in registers (two butterfly
// stages of shuffles) and stored along x, in a loop over blocks of 4 of the
// 4 channels (one copy of the transpose, however many channel blocks);
// columns 4 and 5 are copied one by one.
// CHECK: memref.store %{{.*}}, %[[RB:.*]][%{{.*}}, %{{.*}}] : memref<6x8xf32>
// CHECK: scf.for %[[XB:.*]] = %{{.*}} to %[[FOUR:.*]] step %[[FOUR]] {
// CHECK-NEXT: scf.for %[[CB:.*]] = %{{.*}} to %[[FOUR]] step %[[FOUR]] {
// CHECK-NEXT: %[[R0:.*]] = vector.load %[[RB]][%[[XB]], %[[CB]]] : memref<6x8xf32>, vector<4xf32>
// CHECK: %[[R1:.*]] = vector.load %[[RB]][%{{.*}}, %{{.*}}] : memref<6x8xf32>, vector<4xf32>
// CHECK: vector.shuffle %[[R0]], %[[R1]] [0, 4, 2, 6] : vector<4xf32>, vector<4xf32>
// CHECK: vector.shuffle %{{.*}}, %{{.*}} [0, 1, 4, 5] : vector<4xf32>, vector<4xf32>
// CHECK: vector.store %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<1x4x6x6xf32>, vector<4xf32>
// CHECK: memref.load %[[RB]]
// CHECK: memref.dealloc

// With threads, the conv kernel takes (block, blocks) and splits its rows
// into 1 block per thread;
// so do the memory-bound float ops (sign: its N x C planes).
// THREADS: func.call @forward_2_sign(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) {bnnc.threads = 2 : i64, bnnc.blocks = 2 : i64}
// THREADS: func.call @forward_3_bconv2d(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) {bnnc.threads = 2 : i64, bnnc.blocks = 2 : i64}
// THREADS-LABEL: func.func private @forward_3_bconv2d(
// THREADS-SAME: %{{.*}}: index, %{{.*}}: index)
// THREADS: arith.divui
