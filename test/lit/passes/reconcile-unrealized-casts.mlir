// RUN: %bnnc-opt %s -p reconcile-unrealized-casts | filecheck %s

// A value cast to another type and back is used directly; a chain through
// several casts back to the input type goes too, as does a cast nobody uses.
// A chain used both at its input type and at another type stays whole (xDSL's
// pattern decides; it warns that it cannot remove it).

// CHECK-LABEL: func.func @pairs(
// CHECK-SAME: %[[A:[^:]*]]: i64, %[[P:[^:]*]]: !llvm.ptr
// CHECK-NEXT: %[[S:.*]] = llvm.add %[[A]], %[[A]] : i64
// CHECK-NEXT: %[[L:.*]] = llvm.load %[[P]] : !llvm.ptr -> i64
// CHECK-NEXT: %[[T:.*]] = llvm.mul %[[S]], %[[L]] : i64
// CHECK-NEXT: %[[K:.*]] = builtin.unrealized_conversion_cast %[[T]] : i64 to index
// CHECK-NEXT: %[[T2:.*]] = builtin.unrealized_conversion_cast %[[K]] : index to i64
// CHECK-NEXT: func.return %[[T2]], %[[K]] : i64, index
func.func @pairs(%a: i64, %p: !llvm.ptr) -> (i64, index) {
  %ai = builtin.unrealized_conversion_cast %a : i64 to index
  %a2 = builtin.unrealized_conversion_cast %ai : index to i64
  %s = llvm.add %a2, %a2 : i64
  %unused = builtin.unrealized_conversion_cast %s : i64 to index
  %pm = builtin.unrealized_conversion_cast %p : !llvm.ptr to memref<4xi64>
  %pm2 = builtin.unrealized_conversion_cast %pm : memref<4xi64> to i32
  %pm3 = builtin.unrealized_conversion_cast %pm2 : i32 to !llvm.ptr
  %l = llvm.load %pm3 : !llvm.ptr -> i64
  %t = llvm.mul %s, %l : i64
  %k = builtin.unrealized_conversion_cast %t : i64 to index
  %t2 = builtin.unrealized_conversion_cast %k : index to i64
  func.return %t2, %k : i64, index
}

// A block argument's cast back to its old type, used by a cast to the new one.
// CHECK-LABEL: func.func @block_arg(
// CHECK: ^[[BB:.*]](%[[X:.*]]: i64):
// CHECK-NEXT: %[[Y:.*]] = llvm.add %[[X]], %[[X]] : i64
// CHECK-NOT: unrealized_conversion_cast
func.func @block_arg(%a: i64) -> i64 {
  llvm.br ^bb1(%a : i64)
^bb1(%x: i64):
  %xi = builtin.unrealized_conversion_cast %x : i64 to index
  %x2 = builtin.unrealized_conversion_cast %xi : index to i64
  %y = llvm.add %x2, %x2 : i64
  func.return %y : i64
}
