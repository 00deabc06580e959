// RUN: %bnnc-opt %s -p convert-cf-to-llvm | filecheck %s

// CHECK-LABEL: func.func @loop
func.func @loop(%n: index) -> index {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  // CHECK: %[[Z:.*]] = builtin.unrealized_conversion_cast %{{.*}} : index to i64
  // CHECK: llvm.br ^[[HEAD:.*]](%[[Z]] : i64)
  cf.br ^bb1(%c0 : index)
// Branch-target block arguments get llvm types; old uses read a cast.
// CHECK: ^[[HEAD]](%[[I:.*]]: i64):
// CHECK-NEXT: %[[II:.*]] = builtin.unrealized_conversion_cast %[[I]] : i64 to index
^bb1(%i: index):
  // CHECK: %[[C:.*]] = arith.cmpi slt, %[[II]], %{{.*}} : index
  %c = arith.cmpi slt, %i, %n : index
  // CHECK: llvm.cond_br %[[C]], ^[[BODY:.*]], ^[[EXIT:.*]]
  cf.cond_br %c, ^bb2, ^bb3
^bb2:
  // CHECK: arith.addi
  %j = arith.addi %i, %c1 : index
  // CHECK: llvm.br ^[[HEAD]](%{{.*}} : i64)
  cf.br ^bb1(%j : index)
^bb3:
  // func.return is left to convert-func-to-llvm
  // CHECK: func.return %[[II]] : index
  func.return %i : index
}
// CHECK-NOT: cf.
