// RUN: %bnnc-opt %s -p convert-memref-to-llvm | filecheck %s
// RUN: %bnnc-opt %s -p 'convert-memref-to-llvm{vector_alignment=32}' | filecheck %s --check-prefix=ALIGN

// Globals: flat array, dense initializer, constant, internal (private), 64-byte aligned.
// CHECK: llvm.func @free(!llvm.ptr)
// CHECK: llvm.func @aligned_alloc(i64, i64) -> !llvm.ptr
// CHECK: llvm.mlir.global internal constant @w(dense<{{\[\[}}1, 2], [3, 4]]> : tensor<2x2xi64>) {addr_space = 0 : i32, alignment = 64 : i64} : !llvm.array<4 x i64>
"memref.global"() <{sym_name = "w", type = memref<2x2xi64>, initial_value = dense<[[1, 2], [3, 4]]> : tensor<2x2xi64>, sym_visibility = "private", constant}> : () -> ()

// CHECK-LABEL: func.func @f
func.func @f(%a: memref<4x8xf32>, %i: index, %j: index, %x: f32) -> f32 {
  // Bare pointer + GEP inbounds on the row-major linear index (no ptrtoint/inttoptr).
  // One cast per value, right after its definition (here: the block's top), serves all its uses;
  // one constant per stride and function, at the function's top (an immediate in LLVM IR).
  // CHECK-DAG: %[[A:.*]] = builtin.unrealized_conversion_cast %a : memref<4x8xf32> to !llvm.ptr
  // CHECK-DAG: %[[I:.*]] = builtin.unrealized_conversion_cast %i : index to i64
  // CHECK-DAG: %[[J:.*]] = builtin.unrealized_conversion_cast %j : index to i64
  // CHECK-DAG: %[[C8:.*]] = llvm.mlir.constant(8) : i64
  // CHECK: %[[R:.*]] = llvm.mul %[[I]], %[[C8]] : i64
  // CHECK: %[[L:.*]] = llvm.add %[[R]], %[[J]] : i64
  // CHECK: %[[P:.*]] = llvm.getelementptr inbounds %[[A]][%[[L]]] : (!llvm.ptr, i64) -> !llvm.ptr, f32
  // CHECK: %[[V:.*]] = llvm.load %[[P]] : !llvm.ptr -> f32
  %v = memref.load %a[%i, %j] : memref<4x8xf32>
  // CHECK-NOT: unrealized_conversion_cast
  // CHECK: llvm.mul %[[J]], %[[C8]] : i64
  // CHECK: llvm.add %{{.*}}, %[[I]] : i64
  // CHECK: llvm.getelementptr inbounds %[[A]]
  // CHECK: llvm.store %{{.*}}, %{{.*}} : f32, !llvm.ptr
  memref.store %x, %a[%j, %i] : memref<4x8xf32>
  // vector.load/store: GEP + load/store of the vector type, element alignment by default.
  // CHECK: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr -> vector<8xf32>
  // ALIGN: llvm.load %{{.*}} {alignment = 32 : i64} : !llvm.ptr -> vector<8xf32>
  %vv = vector.load %a[%i, %j] : memref<4x8xf32>, vector<8xf32>
  // CHECK: llvm.store %{{.*}}, %{{.*}} {alignment = 4 : i64} : vector<8xf32>, !llvm.ptr
  vector.store %vv, %a[%j, %i] : memref<4x8xf32>, vector<8xf32>
  // alloc: aligned_alloc(64, size rounded up to 64): 3*5*8 = 120 -> 128 bytes
  // CHECK: %[[AL:.*]] = llvm.mlir.constant(64) : i64
  // CHECK: %[[SZ:.*]] = llvm.mlir.constant(128) : i64
  // CHECK: %[[M:.*]] = llvm.call @aligned_alloc(%[[AL]], %[[SZ]]) : (i64, i64) -> !llvm.ptr
  %m = memref.alloc() : memref<3x5xi64>
  // CHECK: %[[N:.*]] = llvm.mlir.constant(16) : i64
  // CHECK: llvm.alloca %[[N]] x i32 {alignment = 64 : i64} : (i64) -> !llvm.ptr
  %s = memref.alloca() : memref<16xi32>
  // CHECK: %[[G:.*]] = llvm.mlir.addressof @w : !llvm.ptr
  %g = memref.get_global @w : memref<2x2xi64>
  // CHECK: llvm.getelementptr inbounds %[[G]][%{{.*}}] : (!llvm.ptr, i64) -> !llvm.ptr, i64
  %gv = memref.load %g[%i, %j] : memref<2x2xi64>
  // CHECK: llvm.getelementptr inbounds %[[M]]
  memref.store %gv, %m[%i, %j] : memref<3x5xi64>
  // subview with static offsets: GEP by 1*8 + 2 = 10 elements; loads use the view's strides.
  // CHECK: %[[SV:.*]] = llvm.getelementptr inbounds %{{.*}}[10] : (!llvm.ptr) -> !llvm.ptr, f32
  %sv = memref.subview %a[1, 2][2, 4][1, 1] : memref<4x8xf32> to memref<2x4xf32, strided<[8, 1], offset: 10>>
  // CHECK: llvm.getelementptr inbounds %[[SV]]
  %y = memref.load %sv[%i, %j] : memref<2x4xf32, strided<[8, 1], offset: 10>>
  // arith is left alone
  // CHECK: arith.addf
  %z = arith.addf %y, %v : f32
  // CHECK: llvm.call @free(%[[M]]) : (!llvm.ptr) -> ()
  memref.dealloc %m : memref<3x5xi64>
  // CHECK: func.return
  func.return %z : f32
}
// CHECK-NOT: memref.

// The accesses of one block share the terms of their linear index that they
// have in common (a micro-kernel's loads differ in the last index only): the
// second load adds only its last term, the third reuses the whole index; a
// block's addresses are never reused in another block, which they might not dominate.
// CHECK-LABEL: func.func @shared_prefix
func.func @shared_prefix(%a: memref<2x3x8xi64>, %i: index, %j: index, %k: index, %l: index) -> i64 {
  // CHECK: %[[I:.*]] = llvm.mul %{{.*}}, %[[C24:.*]] : i64
  // CHECK-NEXT: %[[J:.*]] = llvm.mul %{{.*}}, %[[C8:.*]] : i64
  // CHECK-NEXT: %[[IJ:.*]] = llvm.add %[[I]], %[[J]] : i64
  // CHECK-NEXT: %[[IJK:.*]] = llvm.add %[[IJ]], %[[K:.*]] : i64
  // CHECK-NEXT: llvm.getelementptr inbounds %{{.*}}[%[[IJK]]]
  %x = memref.load %a[%i, %j, %k] : memref<2x3x8xi64>
  // CHECK-NEXT: llvm.load
  // CHECK-NEXT: %[[IJL:.*]] = llvm.add %[[IJ]], %{{.*}} : i64
  // CHECK-NEXT: llvm.getelementptr inbounds %{{.*}}[%[[IJL]]]
  %y = memref.load %a[%i, %j, %l] : memref<2x3x8xi64>
  // CHECK-NEXT: llvm.load
  // CHECK-NEXT: arith.addi
  // CHECK-NEXT: llvm.getelementptr inbounds %{{.*}}[%[[IJK]]]
  // CHECK-NEXT: llvm.store
  %s = arith.addi %x, %y : i64
  memref.store %s, %a[%i, %j, %k] : memref<2x3x8xi64>
  cf.br ^next
^next:
  // CHECK: ^{{.*}}:
  // CHECK-NEXT: llvm.mul %{{.*}}, %[[C24]] : i64
  // CHECK-NEXT: llvm.mul %{{.*}}, %[[C8]] : i64
  // CHECK-NEXT: llvm.add
  // CHECK-NEXT: llvm.add
  // CHECK-NEXT: llvm.getelementptr
  %z = memref.load %a[%i, %j, %k] : memref<2x3x8xi64>
  func.return %z : i64
}
