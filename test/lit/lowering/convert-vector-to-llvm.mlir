// RUN: %bnnc-opt %s -p convert-vector-to-llvm | filecheck %s

// CHECK-LABEL: func.func @f
func.func @f(%x: f32, %a: i64, %v: vector<8xi64>, %w: vector<8xf32>, %i: index, %m: memref<8xf32>) -> (i64, f32, vector<8xf32>, i64, f32, i32) {
  // an index operand: one cast, right after its definition (an argument's: the top)
  // CHECK: %[[I:.*]] = builtin.unrealized_conversion_cast %i : index to i64
  // broadcast = insertelement into undef + zero-mask shufflevector
  // CHECK: %[[U:.*]] = llvm.mlir.undef : vector<8xf32>
  // CHECK: %[[Z:.*]] = llvm.mlir.constant(0 : i32) : i32
  // CHECK: %[[E:.*]] = llvm.insertelement %{{.*}}, %[[U]][%[[Z]] : i32] : vector<8xf32>
  // CHECK: %[[B:.*]] = llvm.shufflevector %[[E]], %[[U]] [0, 0, 0, 0, 0, 0, 0, 0] : vector<8xf32>
  %b = vector.broadcast %x : f32 to vector<8xf32>
  // CHECK: %[[F:.*]] = llvm.intr.fma(%{{.*}}, %[[B]], %{{.*}}) : (vector<8xf32>, vector<8xf32>, vector<8xf32>) -> vector<8xf32>
  %f = vector.fma %w, %b, %w : vector<8xf32>
  // CHECK: %[[R:.*]] = llvm.call_intrinsic "llvm.vector.reduce.add.v8i64"(%{{.*}}) : (vector<8xi64>) -> i64
  %r = vector.reduction <add>, %v : vector<8xi64> into i64
  // with an accumulator: reduce, then combine
  // CHECK: %[[R2:.*]] = llvm.call_intrinsic "llvm.vector.reduce.add.v8i64"
  // CHECK: llvm.add %[[R2]], %{{.*}} : i64
  %r2 = vector.reduction <add>, %v, %a : vector<8xi64> into i64
  // CHECK: arith.addi
  %s = arith.addi %r, %r2 : i64
  // float add: start value -0.0, fast-math flags kept
  // CHECK: %[[NZ:.*]] = llvm.mlir.constant(-0.000000e+00 : f32) : f32
  // CHECK: "llvm.intr.vector.reduce.fadd"(%[[NZ]], %[[F]]) <{fastmathFlags = #llvm.fastmath<reassoc>}> : (f32, vector<8xf32>) -> f32
  %rf = vector.reduction <add>, %f fastmath<reassoc> : vector<8xf32> into f32
  // CHECK: %[[C3:.*]] = llvm.mlir.constant(3) : i64
  // CHECK: llvm.extractelement %{{.*}}[%[[C3]] : i64] : vector<8xi64> -> i64
  %e = vector.extract %v[3] : i64 from vector<8xi64>
  // CHECK: llvm.extractelement %{{.*}}[%[[I]] : i64] : vector<8xf32> -> f32
  %e2 = vector.extract %w[%i] : f32 from vector<8xf32>
  // CHECK: %[[BC:.*]] = llvm.bitcast %{{.*}} : vector<8xi64> to vector<16xi32>
  %bc = vector.bitcast %v : vector<8xi64> to vector<16xi32>
  // CHECK: llvm.call_intrinsic "llvm.vector.reduce.smax.v16i32"(%[[BC]]) : (vector<16xi32>) -> i32
  %mx = vector.reduction <maxsi>, %bc : vector<16xi32> into i32
  // shuffle of two vectors: llvm.shufflevector with the same mask
  // CHECK: %[[SH:.*]] = llvm.shufflevector %[[F]], %{{.*}} [0, 8, 2, 10, 4, 12, 6, 14] : vector<8xf32>
  %sh = vector.shuffle %f, %w [0, 8, 2, 10, 4, 12, 6, 14] : vector<8xf32>, vector<8xf32>
  // CHECK: llvm.insertelement %{{.*}}, %[[SH]][%{{.*}} : i64] : vector<8xf32>
  %ins = vector.insert %x, %sh [0] : f32 into vector<8xf32>
  // vector.load/store belong to convert-memref-to-llvm
  // CHECK: vector.load
  %ld = vector.load %m[%i] : memref<8xf32>, vector<8xf32>
  vector.store %ld, %m[%i] : memref<8xf32>, vector<8xf32>
  return %s, %rf, %ins, %e, %e2, %mx : i64, f32, vector<8xf32>, i64, f32, i32
}
