// RUN: %bnnc-opt %s -p 'convert-scf-to-cf,convert-memref-to-llvm{index_bitwidth=32},convert-arith-to-llvm{index_bitwidth=32},convert-cf-to-llvm{index_bitwidth=32},convert-func-to-llvm{index_bitwidth=32},reconcile-unrealized-casts' | filecheck %s
// RUN: %bnnc-opt %s -p 'convert-scf-to-cf,convert-memref-to-llvm,convert-arith-to-llvm,convert-cf-to-llvm,convert-func-to-llvm,reconcile-unrealized-casts' | filecheck %s --check-prefix=I64
// RUN: %bnnc-opt %s -p 'convert-vector-to-llvm{index_bitwidth=32}' | filecheck %s --check-prefix=VEC

// index_bitwidth=32 (MLIR's index-bitwidth; the pipeline sets it on 32-bit
// targets): loop counters, GEP indices, strides and sizes are i32, so each
// takes one register; pointers stay !llvm.ptr and i64 data stays i64. The
// default is 64 (I64 lines).

// CHECK: llvm.func @aligned_alloc(i32, i32) -> !llvm.ptr
// I64:   llvm.func @aligned_alloc(i64, i64) -> !llvm.ptr

// CHECK: llvm.func @sum(%{{.*}}: !llvm.ptr, %[[N:.*]]: i32, %[[W:.*]]: i64) -> i64
// (the row stride, one i32 constant at the function's top)
// CHECK: %[[C8:.*]] = llvm.mlir.constant(8 : i32) : i32
// I64-LABEL:   llvm.func @sum(%{{.*}}: !llvm.ptr, %{{.*}}: i64, %{{.*}}: i64) -> i64
func.func @sum(%a: memref<4x8xi64>, %n: index, %w: i64) -> i64 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %z = arith.constant 0 : i64
  // The loop's counter is an i32 block argument, compared and stepped in i32.
  // CHECK: llvm.br ^[[HEAD:.*]](%{{.*}}, %{{.*}} : i32, i64)
  // CHECK: ^[[HEAD]](%[[I:.*]]: i32, %[[ACC:.*]]: i64):
  // CHECK: llvm.icmp "slt" %[[I]], %[[N]] : i32
  // I64: ^{{.*}}(%{{.*}}: i64, %{{.*}}: i64):
  %r = scf.for %i = %c0 to %n step %c1 iter_args(%acc = %z) -> (i64) {
    // memref.load: the row-major linear index i * 8 + 3 in i32, an i32 GEP index, an i64 load.
    // CHECK: %[[R:.*]] = llvm.mul %[[I]], %[[C8]] : i32
    // CHECK: %[[L:.*]] = llvm.add %[[R]], %{{.*}} : i32
    // CHECK: %[[P:.*]] = llvm.getelementptr inbounds %{{.*}}[%[[L]]] : (!llvm.ptr, i32) -> !llvm.ptr, i64
    // CHECK: llvm.load %[[P]] : !llvm.ptr -> i64
    // I64: llvm.getelementptr inbounds %{{.*}}[%{{.*}}] : (!llvm.ptr, i64) -> !llvm.ptr, i64
    %c3 = arith.constant 3 : index
    %v = memref.load %a[%i, %c3] : memref<4x8xi64>
    // i64 data stays i64.
    // CHECK: llvm.add %[[ACC]], %{{.*}} : i64
    %s = arith.addi %acc, %v : i64
    // CHECK: %[[I1:.*]] = llvm.add %[[I]], %{{.*}} : i32
    // CHECK: llvm.br ^[[HEAD]](%[[I1]], %{{.*}} : i32, i64)
    scf.yield %s : i64
  }
  // index_cast from i64 truncates to the 32-bit index, and back sign-extends;
  // from i32 it is the value itself.
  // CHECK: %[[T:.*]] = llvm.trunc %[[W]] : i64 to i32
  // CHECK: llvm.sext %[[T]] : i32 to i64
  // I64-NOT: llvm.trunc
  %k = arith.index_cast %w : i64 to index
  %kk = arith.index_cast %k : index to i64
  // Sizes are size_t: aligned_alloc(i32 64, i32 256) and memcpy's length i32.
  // CHECK: %[[AL:.*]] = llvm.mlir.constant(64 : i32) : i32
  // CHECK: %[[SZ:.*]] = llvm.mlir.constant(256 : i32) : i32
  // CHECK: llvm.call @aligned_alloc(%[[AL]], %[[SZ]]) : (i32, i32) -> !llvm.ptr
  // CHECK: llvm.call_intrinsic "llvm.memcpy.p0.p0.i32"(%{{.*}}) : (!llvm.ptr, !llvm.ptr, i32, i1) -> ()
  // I64: llvm.call @aligned_alloc(%{{.*}}, %{{.*}}) : (i64, i64) -> !llvm.ptr
  // I64: llvm.call_intrinsic "llvm.memcpy.p0.p0.i64"
  %m = memref.alloc() : memref<4x8xi64>
  "memref.copy"(%a, %m) : (memref<4x8xi64>, memref<4x8xi64>) -> ()
  memref.dealloc %m : memref<4x8xi64>
  %out = arith.addi %r, %kk : i64
  func.return %out : i64
}

// vector.extract at a constant position: an i32 position constant.
// VEC-LABEL: func.func @lane
func.func @lane(%v: vector<2xi64>) -> i64 {
  // VEC: %[[POS:.*]] = llvm.mlir.constant(1 : i32) : i32
  // VEC: llvm.extractelement %{{.*}}[%[[POS]] : i32] : vector<2xi64>
  %x = vector.extract %v[1] : i64 from vector<2xi64>
  func.return %x : i64
}
