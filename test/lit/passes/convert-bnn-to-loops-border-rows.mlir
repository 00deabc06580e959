// RUN: %bnnc-opt %s -p 'convert-bnn-to-loops{vector_bits=512 registers=32}' | filecheck %s

// A zero-padded 3x3 binary conv corrects its border pixels, which run their
// own tiles. The top and bottom border rows (0 and 5 of 6) run the same code,
// so one loop covers both bands, picking the row with a select, and their
// tiles (a 6-pixel tile and a 1-pixel one: 7 popcounts) are emitted once;
// the interior rows have two 1-pixel border tiles and one 5-pixel tile for
// the 5 columns between them: 14 popcounts in all, against 21 with a loop
// per band.

// CHECK-LABEL: func.func private @forward_1_bconv2d(
// CHECK: %[[TOP:.*]] = arith.subi
// CHECK-NEXT: %[[BOTTOM:.*]] = arith.subi
// CHECK-NEXT: %[[COUNT:.*]] = arith.addi %[[TOP]], %[[BOTTOM]] : index
// CHECK-NEXT: scf.for %[[I:.*]] = %{{.*}} to %[[COUNT]]
// CHECK-NEXT: %[[IN_TOP:.*]] = arith.cmpi ult, %[[I]], %[[TOP]] : index
// CHECK: %[[OY:.*]] = arith.select %[[IN_TOP]], %{{.*}}, %{{.*}} : index
// CHECK-COUNT-14: math.ctpop
// CHECK-NOT: math.ctpop
// CHECK: func.return
func.func @forward(%x: tensor<1x1x6x7xi64>) -> tensor<1x8x6x7xf32> {
  %w = arith.constant dense<5> : tensor<8x3x3x1xi64>
  %y = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64, in_channels = 3 : i64} : tensor<1x1x6x7xi64>, tensor<8x3x3x1xi64> -> tensor<1x8x6x7xf32>
  func.return %y : tensor<1x8x6x7xf32>
}
