// RUN: %bnnc-opt %s -p 'convert-bnn-to-loops{vector_bits=512 registers=32}' | filecheck %s

// bnn.pack of NCHW floats, 70 channels (a full word and 6 bits) of 5x7 = 35
// pixels: vectorised over 16 pixels (their f32 are contiguous in each
// channel), two vectors, then 3 pixels one by one. Per vector a rolled loop
// over the word's channels, last to first, shifts an i32 accumulator left
// and ORs in x < 0.0 from the f32 bits: t = u + 0x7FFFFFFF, then the top bit
// of (t - 0x7F800000) & ~t (-0.0 and NaN give 0). Channels 0-31 and 32-63
// of the word have an accumulator each, interleaved into the i64 words by
// one shuffle. No loop is unrolled over the channels.

// CHECK-LABEL: func.func private @forward_0_pack(
// CHECK-DAG: %[[BIAS:.*]] = arith.constant dense<2147483647> : vector<16xi32>
// CHECK-DAG: %[[LIMIT:.*]] = arith.constant dense<2139095040> : vector<16xi32>
// CHECK-DAG: %[[ONES:.*]] = arith.constant dense<-1> : vector<16xi32>
// CHECK-DAG: %[[TOP:.*]] = arith.constant dense<31> : vector<16xi32>
// CHECK-DAG: %[[SIXTEEN:.*]] = arith.constant 16 : index
// CHECK-DAG: %[[HALF:.*]] = arith.constant 32 : index
// CHECK-DAG: %[[PIXELS:.*]] = arith.constant 35 : index
// The full word: two vectors of pixels, channels 31..0 then 63..32.
// CHECK: scf.for %[[P:.*]] = %{{.*}} to %[[HALF]] step %[[SIXTEEN]] {
// CHECK: %[[LOW:.*]] = scf.for %{{.*}} = %{{.*}} to %[[HALF]] step %{{.*}} iter_args(%[[ACC:.*]] = %{{.*}}) -> (vector<16xi32>) {
// CHECK-NEXT: %[[TWICE:.*]] = arith.addi %[[ACC]], %[[ACC]] : vector<16xi32>
// CHECK-NEXT: %[[CH:.*]] = arith.subi
// CHECK-NEXT: %[[X:.*]] = vector.load %{{.*}}[%{{.*}}, %[[CH]], %[[P]]] : memref<1x70x35xf32>, vector<16xf32>
// CHECK-NEXT: %[[U:.*]] = arith.bitcast %[[X]] : vector<16xf32> to vector<16xi32>
// CHECK-NEXT: %[[T:.*]] = arith.addi %[[U]], %[[BIAS]] : vector<16xi32>
// CHECK-NEXT: %[[D:.*]] = arith.subi %[[T]], %[[LIMIT]] : vector<16xi32>
// CHECK-NEXT: %[[NOT:.*]] = arith.xori %[[T]], %[[ONES]] : vector<16xi32>
// CHECK-NEXT: %[[BOTH:.*]] = arith.andi %[[D]], %[[NOT]] : vector<16xi32>
// CHECK-NEXT: %[[BIT:.*]] = arith.shrui %[[BOTH]], %[[TOP]] : vector<16xi32>
// CHECK-NEXT: %[[NEXT:.*]] = arith.ori %[[TWICE]], %[[BIT]] : vector<16xi32>
// CHECK-NEXT: scf.yield %[[NEXT]] : vector<16xi32>
// CHECK: %[[HIGH:.*]] = scf.for %{{.*}} = %{{.*}} to %[[HALF]] step %{{.*}} iter_args(%{{.*}}) -> (vector<16xi32>) {
// CHECK: %[[PAIRS:.*]] = vector.shuffle %[[LOW]], %[[HIGH]] [0, 16, 1, 17, 2, 18, {{.*}}, 15, 31] : vector<16xi32>, vector<16xi32>
// CHECK-NEXT: %[[WORDS:.*]] = vector.bitcast %[[PAIRS]] : vector<32xi32> to vector<16xi64>
// CHECK-NEXT: vector.store %[[WORDS]], %{{.*}}[%{{.*}}, %{{.*}}, %[[P]]] : memref<1x2x35xi64>, vector<16xi64>
// The last 3 pixels: the same loop on scalars, 64 channels.
// CHECK: scf.for %[[Q:.*]] = %[[HALF]] to %[[PIXELS]] step
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (i64) {
// CHECK: memref.load %{{.*}}[%{{.*}}, %{{.*}}, %[[Q]]] : memref<1x70x35xf32>
// CHECK-NEXT: arith.cmpf olt
// The 6-bit word: one accumulator, the high half all zeros.
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[HALF]] step %[[SIXTEEN]] {
// CHECK: scf.for %{{.*}} iter_args(%{{.*}}) -> (vector<16xi32>) {
// CHECK: vector.shuffle
// CHECK-NOT: vector.load
// CHECK: vector.store
// CHECK-COUNT-1: arith.cmpf olt
// CHECK-NOT: arith.cmpf
// CHECK: func.return
func.func @forward(%x: tensor<1x70x5x7xf32>) -> tensor<1x2x5x7xi64> {
  %p = bnn.pack %x {groups = 1 : i64} : tensor<1x70x5x7xf32> -> tensor<1x2x5x7xi64>
  func.return %p : tensor<1x2x5x7xi64>
}
