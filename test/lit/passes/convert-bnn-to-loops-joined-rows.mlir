// RUN: %bnnc-opt %s -p 'convert-bnn-to-loops{vector_bits=512 registers=32 num_threads=2 thread_min_work=0}' | filecheck %s

// A 1x1 unpadded conv with NHWC input and result is tiled over the flat
// pixels as rows of k joined image rows. Its threads split those joined rows:
// 28 x 28 pixels on 2 blocks become 14 rows of 56 pixels, 7 per block (7 rows
// of 112 would split 4 + 3). The share used to be computed on the 28 image
// rows, so block 0 got rows [0, 14) of the 7 or 14 joined rows (all of them)
// and block 1 none: the layer ran on one thread.

// CHECK-LABEL: func.func private @down_1_conv2d(
// CHECK-SAME: %[[BLOCK:[^:]*]]: index, %[[BLOCKS:[^:]*]]: index)
// CHECK-DAG: %[[ROWS:.*]] = arith.constant 14 : index
// CHECK-DAG: %[[ROWS_1:.*]] = arith.constant 13 : index
// CHECK: %[[SUM:.*]] = arith.addi %[[BLOCKS]], %[[ROWS_1]] : index
// CHECK-NEXT: %[[PER:.*]] = arith.divui %[[SUM]], %[[BLOCKS]] : index
// CHECK-NEXT: %[[FIRST:.*]] = arith.muli %[[BLOCK]], %[[PER]] : index
// CHECK-NEXT: %[[BEGIN:.*]] = arith.minsi %[[FIRST]], %[[ROWS]] : index
// CHECK: memref.collapse_shape %{{.*}} : memref<1x28x28x64xf32> into memref<50176xf32>
// CHECK: memref.collapse_shape %{{.*}} : memref<1x28x28x128xf32> into memref<100352xf32>
func.func @down(%x: tensor<1x28x28x64xf32>) -> tensor<1x28x28x128xf32> {
  %w = arith.constant dense<0.5> : tensor<128x64x1x1xf32>
  %y = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, channels_last, channels_last_input} : tensor<1x28x28x64xf32>, tensor<128x64x1x1xf32> -> tensor<1x28x28x128xf32>
  func.return %y : tensor<1x28x28x128xf32>
}
