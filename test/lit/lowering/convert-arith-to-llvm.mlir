// RUN: %bnnc-opt %s -p convert-arith-to-llvm | filecheck %s

// CHECK-LABEL: func.func @scalars
func.func @scalars(%a: i64, %b: i64, %i: index, %x: f32) -> (i64, i1, f32, i64, i8, i32, f32, index) {
  // Index constants become i64 (and must not hang the type conversion).
  // index operands are bridged with casts that reconcile-unrealized-casts
  // removes; one per value, right after its definition (an argument's: the top).
  // CHECK-DAG: %[[I64:.*]] = builtin.unrealized_conversion_cast %i : index to i64
  // CHECK-DAG: %[[C0:.*]] = llvm.mlir.constant(0) : i64
  // CHECK-DAG: %[[C3:.*]] = llvm.mlir.constant(3) : i64
  // CHECK-DAG: %[[CF:.*]] = llvm.mlir.constant(1.500000e+00 : f32) : f32
  %c0 = arith.constant 0 : index
  %c3 = arith.constant 3 : i64
  %cf = arith.constant 1.5 : f32
  // CHECK: %[[S:.*]] = llvm.add %{{.*}}, %{{.*}} : i64
  %s = arith.addi %a, %b : i64
  // CHECK: %[[J:.*]] = llvm.add %[[I64]], %[[C0]] : i64
  // CHECK: %[[BACK:.*]] = builtin.unrealized_conversion_cast %[[J]] : i64 to index
  %j = arith.addi %i, %c0 : index
  // index_cast index -> i64 is the identity
  %k = arith.index_cast %j : index to i64
  // CHECK: llvm.trunc %[[J]] : i64 to i32
  %k32 = arith.index_cast %j : index to i32
  // CHECK: %[[M:.*]] = llvm.call_intrinsic "llvm.smax.i64"(%[[S]], %[[J]]) : (i64, i64) -> i64
  %m = arith.maxsi %s, %k : i64
  // CHECK: llvm.icmp "slt" %[[M]], %[[C3]] : i64
  %c = arith.cmpi slt, %m, %c3 : i64
  // CHECK: llvm.fcmp "olt" %{{.*}}, %[[CF]] : f32
  %cc = arith.cmpf olt, %x, %cf : f32
  // CHECK: llvm.select
  %sel = arith.select %c, %m, %a : i64
  // CHECK: llvm.uitofp %{{.*}} : i64 to f32
  %u = arith.uitofp %sel : i64 to f32
  // CHECK: llvm.fptosi %{{.*}} : f32 to i64
  %g = arith.fptosi %u : f32 to i64
  // CHECK: llvm.fneg %{{.*}} : f32
  %n = arith.negf %x : f32
  // CHECK: llvm.call_intrinsic "llvm.maxnum.f32"
  %mx = arith.maxnumf %u, %n : f32
  // CHECK: llvm.sext %{{.*}} : i32 to i64
  %e = arith.extsi %k32 : i32 to i64
  // CHECK: llvm.trunc %{{.*}} : i64 to i8
  %t = arith.trunci %e : i64 to i8
  // CHECK: llvm.bitcast %{{.*}} : f32 to i32
  %bc = arith.bitcast %x : f32 to i32
  // CHECK: llvm.sitofp %{{.*}} : i64 to f32
  %f = arith.sitofp %g : i64 to f32
  // CHECK: func.return %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[BACK]]
  func.return %sel, %cc, %mx, %e, %t, %bc, %f, %j : i64, i1, f32, i64, i8, i32, f32, index
}

// CHECK-LABEL: func.func @vectors
func.func @vectors(%v: vector<8xi64>, %w: vector<4xf32>) -> (vector<8xi64>, vector<4xf32>) {
  // CHECK: %[[CV:.*]] = llvm.mlir.constant(dense<1> : vector<8xi64>) : vector<8xi64>
  %cv = arith.constant dense<1> : vector<8xi64>
  // CHECK: %[[X:.*]] = llvm.xor %{{.*}}, %[[CV]] : vector<8xi64>
  %x = arith.xori %v, %cv : vector<8xi64>
  // CHECK: llvm.call_intrinsic "llvm.smin.v8i64"(%[[X]], %[[CV]]) : (vector<8xi64>, vector<8xi64>) -> vector<8xi64>
  %m = arith.minsi %x, %cv : vector<8xi64>
  // CHECK: llvm.call_intrinsic "llvm.minimum.v4f32"
  %f = arith.minimumf %w, %w : vector<4xf32>
  // CHECK: llvm.fmul %{{.*}} : vector<4xf32>
  %g = arith.mulf %f, %w : vector<4xf32>
  func.return %m, %g : vector<8xi64>, vector<4xf32>
}

// The pass leaves other dialects alone.
// CHECK-LABEL: func.func @others
func.func @others(%i: index) -> i64 {
  // CHECK: memref.alloc() : memref<4xi64>
  // CHECK: memref.load
  // CHECK: math.ctpop
  // CHECK-NOT: arith.
  %m = memref.alloc() : memref<4xi64>
  %v = memref.load %m[%i] : memref<4xi64>
  %p = math.ctpop %v : i64
  %c1 = arith.constant 1 : i64
  %r = arith.addi %p, %c1 : i64
  func.return %r : i64
}
