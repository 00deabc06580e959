// RUN: %bnnc-opt %s -p convert-func-to-llvm | filecheck %s

// External declarations stay external.
// CHECK: llvm.func @malloc(i64) -> !llvm.ptr
func.func private @malloc(i64) -> !llvm.ptr
// CHECK: llvm.func @free(!llvm.ptr)
func.func private @free(!llvm.ptr)

// Private definitions become internal; memref -> !llvm.ptr, index -> i64.
// CHECK: llvm.func internal @helper(%[[M:.*]]: !llvm.ptr, %[[I:.*]]: i64) -> i64 {
// CHECK: llvm.return %[[I]] : i64
func.func private @helper(%m: memref<4xi64>, %i: index) -> index {
  func.return %i : index
}

// CHECK: llvm.func @f(%[[A:.*]]: !llvm.ptr, %[[N:.*]]: i64) -> i64 {
func.func @f(%m: memref<4xi64>, %n: index) -> index {
  // CHECK: %[[R:.*]] = llvm.call @helper(%[[A]], %[[N]]) : (!llvm.ptr, i64) -> i64
  %r = func.call @helper(%m, %n) : (memref<4xi64>, index) -> index
  // Other ops keep their old types through casts.
  // CHECK: %[[RI:.*]] = builtin.unrealized_conversion_cast %[[R]] : i64 to index
  // CHECK: arith.addi %[[RI]], %[[RI]] : index
  %s = arith.addi %r, %r : index
  // CHECK: memref.load
  %v = memref.load %m[%n] : memref<4xi64>
  // CHECK: llvm.call @free
  %p = func.call @malloc(%v) : (i64) -> !llvm.ptr
  func.call @free(%p) : (!llvm.ptr) -> ()
  // CHECK: llvm.return %{{.*}} : i64
  func.return %s : index
}
// CHECK-NOT: func.
