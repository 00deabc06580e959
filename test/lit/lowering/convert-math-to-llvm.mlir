// RUN: %bnnc-opt %s -p convert-math-to-llvm | filecheck %s

// libm functions are declared once, at the top of the module (see @transcendental_f64);
// the f32 ones are polynomials (see @transcendental_f32) and need none.
// CHECK-NOT: llvm.func @{{(erff|log1pf|expm1f)}}
// CHECK-DAG: llvm.func @erf(f64) -> f64
// CHECK-DAG: llvm.func @log1p(f64) -> f64
// CHECK-DAG: llvm.func @expm1(f64) -> f64

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

// On f32, exp, log, log1p, expm1, tanh and erf become branch-free arithmetic
// (passes/_vector_math.py): no intrinsic call LLVM would scalarise into libm
// calls, no libm call. Vectors compare and select lane by lane
// (vector<N x i1> masks). pow and rsqrt are as before.
// CHECK-LABEL: func.func @transcendental_f32
func.func @transcendental_f32(%x: f32, %v: vector<2xf32>) -> (f32, f32, vector<2xf32>) {
  // exp: clamp, n = round(x / ln2) by the magic constant 1.5 * 2^23, Cody-Waite
  // CHECK-NOT: llvm.call @
  // CHECK: llvm.fcmp "ogt" %{{.*}}, %{{.*}} : f32
  // CHECK: llvm.mlir.constant(0x4B400000 : f32)
  // CHECK: llvm.call_intrinsic "llvm.fmuladd.f32"
  // CHECK: llvm.bitcast %{{.*}} : f32 to i32
  // CHECK: llvm.shl
  // CHECK: llvm.bitcast %{{.*}} : i32 to f32
  // CHECK-NOT: llvm.call @
  %e = math.exp %x : f32
  // CHECK-NOT: llvm.call_intrinsic "llvm.{{(log|tanh|exp)}}.
  %l = math.log %e : f32
  %t = math.tanh %l : f32
  %p = math.powf %t, %x : f32
  // CHECK: llvm.call_intrinsic "llvm.pow.f32"
  // erf on a vector: |x|, masks of vector<2xi1>, sign restored by copysign
  // CHECK: llvm.call_intrinsic "llvm.fabs.v2f32"
  // CHECK: %[[M:.*]] = llvm.fcmp "olt" %{{.*}}, %{{.*}} : vector<2xf32>
  // CHECK: llvm.select %[[M]], %{{.*}}, %{{.*}} : vector<2xi1>, vector<2xf32>
  // CHECK: %[[R:.*]] = llvm.call_intrinsic "llvm.copysign.v2f32"(%{{.*}}, %{{.*}})
  %ve = math.erf %v : vector<2xf32>
  // CHECK: func.return %{{.*}}, %{{.*}}, %[[R]]
  return %t, %p, %ve : f32, f32, vector<2xf32>
}

// On f64 the functions with an LLVM intrinsic (llvm.tanh, llvm.exp, llvm.log,
// llvm.pow) become intrinsic calls; erf, log1p and expm1 have none and call
// libm, declared once; vectors call it lane by lane. rsqrt is 1 / sqrt(x),
// as in MLIR.
// CHECK-LABEL: func.func @transcendental_f64
func.func @transcendental_f64(%x: f64, %v: vector<2xf64>, %y: f32) -> (f64, vector<2xf64>, f32) {
  // CHECK: %[[T:.*]] = llvm.call_intrinsic "llvm.tanh.f64"(%{{.*}}) : (f64) -> f64
  %t = math.tanh %x : f64
  // CHECK: %[[E:.*]] = llvm.call_intrinsic "llvm.exp.f64"(%[[T]]) : (f64) -> f64
  %e = math.exp %t : f64
  // CHECK: %[[L:.*]] = llvm.call_intrinsic "llvm.log.f64"(%[[E]]) : (f64) -> f64
  %l = math.log %e : f64
  // CHECK: %[[ERF:.*]] = llvm.call @erf(%[[L]]) : (f64) -> f64
  %erf = math.erf %l : f64
  // CHECK: %[[LP:.*]] = llvm.call @log1p(%[[ERF]]) : (f64) -> f64
  %lp = math.log1p %erf : f64
  // CHECK: %[[EM:.*]] = llvm.call @expm1(%[[LP]]) : (f64) -> f64
  %em = math.expm1 %lp : f64
  // CHECK: %[[Z:.*]] = llvm.mlir.constant(dense<0.000000e+00> : vector<2xf64>) : vector<2xf64>
  // CHECK: %[[I0:.*]] = llvm.mlir.constant(0) : i64
  // CHECK: %[[X0:.*]] = llvm.extractelement %{{.*}}[%[[I0]] : i64] : vector<2xf64> -> f64
  // CHECK: %[[C0:.*]] = llvm.call @erf(%[[X0]]) : (f64) -> f64
  // CHECK: %[[V0:.*]] = llvm.insertelement %[[C0]], %[[Z]][%[[I0]] : i64] : vector<2xf64>
  // CHECK: %[[I1:.*]] = llvm.mlir.constant(1) : i64
  // CHECK: %[[X1:.*]] = llvm.extractelement %{{.*}}[%[[I1]] : i64] : vector<2xf64> -> f64
  // CHECK: %[[C1:.*]] = llvm.call @erf(%[[X1]]) : (f64) -> f64
  // CHECK: %[[V1:.*]] = llvm.insertelement %[[C1]], %[[V0]][%[[I1]] : i64] : vector<2xf64>
  %ve = math.erf %v : vector<2xf64>
  // CHECK: %[[ONE:.*]] = llvm.mlir.constant(1.000000e+00 : f32) : f32
  // CHECK: %[[SQ:.*]] = llvm.call_intrinsic "llvm.sqrt.f32"(%{{.*}}) : (f32) -> f32
  // CHECK: %[[RS:.*]] = llvm.fdiv %[[ONE]], %[[SQ]] : f32
  %rs = math.rsqrt %y : f32
  // CHECK: func.return %[[EM]], %[[V1]], %[[RS]]
  return %em, %ve, %rs : f64, vector<2xf64>, f32
}
