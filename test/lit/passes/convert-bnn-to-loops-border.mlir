// RUN: %bnnc-opt %s -p 'convert-bnn-to-loops{vector_bits=512 registers=32}' | filecheck %s

// A zero-padded 3x3 binary conv corrects its border pixels: every pixel
// subtracts the correction of its border class (row class x column class,
// each min(o, lo) + max(o + 1 - hi, 0), 0 and 2 at the borders, 1 inside,
// where the correction is 0). So border and interior pixels run the same
// code: one loop over the 6 rows, and per row a 6-pixel tile and a 1-pixel
// one for the 7 columns, 7 popcounts in all (14 when the border pixels had
// their own tiles, 21 with a loop per band of rows).

// CHECK-LABEL: func.func private @forward_1_bconv2d(
// CHECK-DAG: %[[SIX:.*]] = arith.constant 6 : index
// CHECK-DAG: %[[TABLE:.*]] = memref.get_global @{{.*}} : memref<1x3x3x8xi64>
// CHECK: scf.for %[[OX:.*]] = %{{.*}} to %[[SIX]] step %[[SIX]] {
// CHECK-COUNT-6: math.ctpop
// CHECK: %[[BELOW_Y:.*]] = arith.minsi %{{.*}}, %{{.*}} : index
// CHECK: %[[ABOVE_Y:.*]] = arith.maxsi %{{.*}}, %{{.*}} : index
// CHECK: %[[CY:.*]] = arith.addi %[[BELOW_Y]], %[[ABOVE_Y]] : index
// CHECK: %[[BELOW_X:.*]] = arith.minsi %[[OX]], %{{.*}} : index
// CHECK: %[[ABOVE_X:.*]] = arith.maxsi %{{.*}}, %{{.*}} : index
// CHECK: %[[CX:.*]] = arith.addi %[[BELOW_X]], %[[ABOVE_X]] : index
// CHECK: %[[DOT:.*]] = arith.subi %{{.*}}, %{{.*}} : vector<8xi64>
// CHECK: %[[C:.*]] = vector.load %[[TABLE]][%{{.*}}, %[[CY]], %[[CX]], %{{.*}}] : memref<1x3x3x8xi64>, vector<8xi64>
// CHECK: arith.subi %[[DOT]], %[[C]] : vector<8xi64>
// The row's seventh column: one 1-pixel tile, corrected the same way.
// CHECK: math.ctpop
// CHECK-NOT: math.ctpop
// CHECK: vector.load %[[TABLE]]
// CHECK-NOT: math.ctpop
// CHECK: func.return
func.func @forward(%x: tensor<1x1x6x7xi64>) -> tensor<1x8x6x7xf32> {
  %w = arith.constant dense<5> : tensor<8x3x3x1xi64>
  %y = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64, in_channels = 3 : i64} : tensor<1x1x6x7xi64>, tensor<8x3x3x1xi64> -> tensor<1x8x6x7xf32>
  func.return %y : tensor<1x8x6x7xf32>
}
