// RUN: %bnnc-opt %s -p 'convert-bnn-to-loops{vector_bits=512 registers=32}' | filecheck %s

// A binary conv padded with -1 (pad_value = -1) on a packed input of 70
// channels: the padded copy's border holds, per word, the word of 70 -1s:
// all 64 bits set in word 0, the low 6 in word 1. One loop over the words
// computes it, all ones shifted right by the word's unused bits,
// max(0, 64 j + 64 - 70), and fills the four border strips with it (not a
// copy of the fill per word).

// CHECK-LABEL: func.func private @forward_1_bconv2d(
// CHECK-DAG: %[[ONES:.*]] = arith.constant -1 : i64
// CHECK-DAG: %[[UNUSED0:.*]] = arith.constant -6 : index
// CHECK-DAG: %[[WORDS:.*]] = arith.constant 2 : index
// CHECK: %[[PADDED:.*]] = memref.alloc() {alignment = 64 : i64} : memref<1x2x7x7xi64>
// CHECK: scf.for %[[K:.*]] = %{{.*}} to %[[WORDS]] step
// CHECK-NEXT: %[[J:.*]] = arith.remui %[[K]], %[[WORDS]] : index
// CHECK-NEXT: %[[J64:.*]] = arith.muli %[[J]], %{{.*}} : index
// CHECK-NEXT: %[[BITS:.*]] = arith.addi %[[J64]], %[[UNUSED0]] : index
// CHECK-NEXT: %[[UNUSED:.*]] = arith.maxsi %[[BITS]], %{{.*}} : index
// CHECK-NEXT: %[[SHIFT:.*]] = arith.index_cast %[[UNUSED]] : index to i64
// CHECK-NEXT: %[[WORD:.*]] = arith.shrui %[[ONES]], %[[SHIFT]] : i64
// CHECK-COUNT-4: memref.store %[[WORD]], %[[PADDED]]
// CHECK-NOT: memref.store %{{.*}}, %[[PADDED]]
// CHECK: memref.load
// CHECK: memref.store %{{.*}}, %[[PADDED]]
// CHECK-NOT: memref.store %{{.*}}, %[[PADDED]]
// CHECK: func.return
func.func @forward(%x: tensor<1x2x5x5xi64>) -> tensor<1x8x5x5xf32> {
  %w = arith.constant dense<5> : tensor<8x3x3x2xi64>
  %y = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = -1 : i64, in_channels = 70 : i64} : tensor<1x2x5x5xi64>, tensor<8x3x3x2xi64> -> tensor<1x8x5x5xf32>
  func.return %y : tensor<1x8x5x5xf32>
}
