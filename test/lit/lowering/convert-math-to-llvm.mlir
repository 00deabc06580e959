// RUN: %bnnc-opt %s -p convert-math-to-llvm | filecheck %s

// libm functions are declared once, at the top of the module (see @transcendental).
// CHECK-DAG: llvm.func @erff(f32) -> f32
// CHECK-DAG: llvm.func @log1pf(f32) -> f32
// CHECK-DAG: llvm.func @expm1f(f32) -> f32

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

// Functions with an LLVM intrinsic (llvm.tanh, llvm.exp, llvm.log, llvm.pow)
// become intrinsic calls; erf, log1p and expm1 have none and call libm's
// f32 functions, declared once; vectors call them lane by lane. rsqrt is
// 1 / sqrt(x), as in MLIR.
// CHECK-LABEL: func.func @transcendental
func.func @transcendental(%x: f32, %v: vector<2xf32>) -> (f32, vector<2xf32>) {
  // CHECK: %[[T:.*]] = llvm.call_intrinsic "llvm.tanh.f32"(%{{.*}}) : (f32) -> f32
  %t = math.tanh %x : f32
  // CHECK: %[[E:.*]] = llvm.call_intrinsic "llvm.exp.f32"(%[[T]]) : (f32) -> f32
  %e = math.exp %t : f32
  // CHECK: %[[L:.*]] = llvm.call_intrinsic "llvm.log.f32"(%[[E]]) : (f32) -> f32
  %l = math.log %e : f32
  // CHECK: %[[P:.*]] = llvm.call_intrinsic "llvm.pow.f32"(%[[L]], %[[T]]) : (f32, f32) -> f32
  %p = math.powf %l, %t : f32
  // CHECK: %[[ERF:.*]] = llvm.call @erff(%[[P]]) : (f32) -> f32
  %erf = math.erf %p : f32
  // CHECK: %[[LP:.*]] = llvm.call @log1pf(%[[ERF]]) : (f32) -> f32
  %lp = math.log1p %erf : f32
  // CHECK: %[[EM:.*]] = llvm.call @expm1f(%[[LP]]) : (f32) -> f32
  %em = math.expm1 %lp : f32
  // CHECK: %[[ONE:.*]] = llvm.mlir.constant(1.000000e+00 : f32) : f32
  // CHECK: %[[SQ:.*]] = llvm.call_intrinsic "llvm.sqrt.f32"(%[[EM]]) : (f32) -> f32
  // CHECK: %[[RS:.*]] = llvm.fdiv %[[ONE]], %[[SQ]] : f32
  %rs = math.rsqrt %em : f32
  // CHECK: %[[Z:.*]] = llvm.mlir.constant(dense<0.000000e+00> : vector<2xf32>) : vector<2xf32>
  // CHECK: %[[I0:.*]] = llvm.mlir.constant(0) : i64
  // CHECK: %[[X0:.*]] = llvm.extractelement %{{.*}}[%[[I0]] : i64] : vector<2xf32> -> f32
  // CHECK: %[[C0:.*]] = llvm.call @erff(%[[X0]]) : (f32) -> f32
  // CHECK: %[[V0:.*]] = llvm.insertelement %[[C0]], %[[Z]][%[[I0]] : i64] : vector<2xf32>
  // CHECK: %[[I1:.*]] = llvm.mlir.constant(1) : i64
  // CHECK: %[[X1:.*]] = llvm.extractelement %{{.*}}[%[[I1]] : i64] : vector<2xf32> -> f32
  // CHECK: %[[C1:.*]] = llvm.call @erff(%[[X1]]) : (f32) -> f32
  // CHECK: %[[V1:.*]] = llvm.insertelement %[[C1]], %[[V0]][%[[I1]] : i64] : vector<2xf32>
  %ve = math.erf %v : vector<2xf32>
  // CHECK: func.return %[[RS]], %[[V1]]
  return %rs, %ve : f32, vector<2xf32>
}
