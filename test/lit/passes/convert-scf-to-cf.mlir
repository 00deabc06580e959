// RUN: %bnnc-opt %s -p convert-scf-to-cf | filecheck %s

// A loop nest becomes a condition block per loop (the induction variable and
// carried values as its arguments), the body, and the step; the outer loop's
// blocks come first. An scf.if becomes a conditional branch to its regions.
// A loop that computes nothing used is erased, not lowered.

// CHECK-LABEL: func.func @nest(
// CHECK-SAME: %[[M:.*]]: memref<4x4xi64>, %[[N:.*]]: index
// CHECK:        %[[Z:.*]] = arith.constant 0 : index
// CHECK-NEXT:   %[[ONE:.*]] = arith.constant 1 : index
// CHECK-NEXT:   %[[C0:.*]] = arith.constant 0 : i64
// CHECK-NEXT:   cf.br ^[[OC:.*]](%[[Z]], %[[C0]] : index, i64)
// CHECK-NEXT: ^[[OC]](%[[I:.*]]: index, %[[ACC:.*]]: i64):
// CHECK-NEXT:   %[[OK:.*]] = arith.cmpi slt, %[[I]], %[[N]] : index
// CHECK-NEXT:   cf.cond_br %[[OK]], ^[[OB:.*]], ^[[OE:.*]]
// CHECK-NEXT: ^[[OB]]:
// CHECK-NEXT:   cf.br ^[[IC:.*]](%[[Z]] : index)
// CHECK-NEXT: ^[[IC]](%[[J:.*]]: index):
// CHECK-NEXT:   %[[OKJ:.*]] = arith.cmpi slt, %[[J]], %[[N]] : index
// CHECK-NEXT:   cf.cond_br %[[OKJ]], ^[[IB:.*]], ^[[IE:.*]]
// CHECK-NEXT: ^[[IB]]:
// CHECK-NEXT:   %[[V:.*]] = memref.load %[[M]][%[[I]], %[[J]]] : memref<4x4xi64>
// CHECK-NEXT:   memref.store %[[V]], %[[M]][%[[J]], %[[I]]] : memref<4x4xi64>
// CHECK-NEXT:   %[[J1:.*]] = arith.addi %[[J]], %[[ONE]] : index
// CHECK-NEXT:   cf.br ^[[IC]](%[[J1]] : index)
// CHECK-NEXT: ^[[IE]]:
// CHECK-NEXT:   %[[S:.*]] = arith.addi %[[ACC]], %[[C0]] : i64
// CHECK-NEXT:   %[[I1:.*]] = arith.addi %[[I]], %[[ONE]] : index
// CHECK-NEXT:   cf.br ^[[OC]](%[[I1]], %[[S]] : index, i64)
// CHECK-NEXT: ^[[OE]]:
// CHECK-NEXT:   func.return %[[ACC]] : i64
func.func @nest(%m: memref<4x4xi64>, %n: index) -> i64 {
  %z = arith.constant 0 : index
  %one = arith.constant 1 : index
  %c0 = arith.constant 0 : i64
  %r = scf.for %i = %z to %n step %one iter_args(%acc = %c0) -> (i64) {
    scf.for %j = %z to %n step %one {
      %v = memref.load %m[%i, %j] : memref<4x4xi64>
      memref.store %v, %m[%j, %i] : memref<4x4xi64>
    }
    %s = arith.addi %acc, %c0 : i64
    scf.yield %s : i64
  }
  %dead = scf.for %k = %z to %n step %one iter_args(%a = %c0) -> (i64) {
    %b = arith.addi %a, %c0 : i64
    scf.yield %b : i64
  }
  func.return %r : i64
}

// CHECK-LABEL: func.func @choose(
// CHECK:        cf.cond_br %{{.*}}, ^[[T:.*]], ^[[J:.*]]
// CHECK-NEXT: ^[[T]]:
// CHECK-NEXT:   memref.store
// CHECK-NEXT:   cf.br ^[[J]]
// CHECK-NEXT: ^[[J]]:
// CHECK-NEXT:   func.return
// CHECK-NOT: scf.
func.func @choose(%m: memref<4x4xi64>, %c: i1) {
  %z = arith.constant 0 : index
  %v = arith.constant 7 : i64
  scf.if %c {
    memref.store %v, %m[%z, %z] : memref<4x4xi64>
  }
  func.return
}
