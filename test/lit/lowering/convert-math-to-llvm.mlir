// RUN: %bnnc-opt %s -p convert-math-to-llvm | filecheck %s

// CHECK-LABEL: func.func @f
func.func @f(%a: i64, %v: vector<8xi64>, %x: f32, %w: vector<4xf32>) -> (i64, vector<8xi64>, f32, vector<4xf32>) {
  // CHECK: %[[P:.*]] = llvm.call_intrinsic "llvm.ctpop.i64"(%{{.*}}) : (i64) -> i64
  %p = math.ctpop %a : i64
  // CHECK: llvm.call_intrinsic "llvm.ctpop.v8i64"(%{{.*}}) : (vector<8xi64>) -> vector<8xi64>
  %pv = math.ctpop %v : vector<8xi64>
  // CHECK: llvm.call_intrinsic "llvm.fabs.f32"
  %ab = math.absf %x : f32
  // CHECK: llvm.call_intrinsic "llvm.sqrt.f32"
  %s = math.sqrt %ab : f32
  // CHECK: llvm.call_intrinsic "llvm.floor.f32"
  %fl = math.floor %s : f32
  // CHECK: llvm.call_intrinsic "llvm.ceil.f32"
  %ce = math.ceil %fl : f32
  // CHECK: llvm.call_intrinsic "llvm.fma.v4f32"(%{{.*}}, %{{.*}}, %{{.*}}) : (vector<4xf32>, vector<4xf32>, vector<4xf32>) -> vector<4xf32>
  %fm = math.fma %w, %w, %w : vector<4xf32>
  // llvm.abs takes an `is_int_min_poison` flag: false, as in MLIR
  // CHECK: %[[F:.*]] = llvm.mlir.constant(false) : i1
  // CHECK: %[[ABS:.*]] = llvm.call_intrinsic "llvm.abs.i64"(%[[P]], %[[F]]) : (i64, i1) -> i64
  %ai = math.absi %p : i64
  // arith is left alone
  // CHECK: arith.addi %[[ABS]], %[[P]] : i64
  %t = arith.addi %ai, %p : i64
  // CHECK-NOT: math.
  return %t, %pv, %ce, %fm : i64, vector<8xi64>, f32, vector<4xf32>
}
