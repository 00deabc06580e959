// RUN: %bnnc-opt %s -p check-bounds | filecheck %s

// Every load and store whose index is not a constant inside the bounds gets an
// unsigned compare per dim (a negative index is huge unsigned) and a call of
// __bnnc_bounds_fail(where, what) when any compare says out of range.

// CHECK-LABEL: func.func @forward(
// CHECK:      scf.for %[[I:.*]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK-NEXT:   %[[J:.*]] = arith.addi %[[I]], %{{.*}} : index
// CHECK-NEXT:   %[[D:.*]] = arith.constant 4 : index
// CHECK-NEXT:   %[[BAD:.*]] = arith.cmpi uge, %[[J]], %[[D]] : index
// CHECK-NEXT:   scf.if %[[BAD]] {
// CHECK-NEXT:     %[[WHERE:.*]] = memref.get_global @[[W0:__bnnc_bounds_msg_[0-9]+]] : memref<[[N:[0-9]+]]xi8>
// CHECK-NEXT:     %[[WHAT:.*]] = memref.get_global @[[L:__bnnc_bounds_msg_[0-9]+]] : memref<[[N]]xi8>
// CHECK-NEXT:     func.call @__bnnc_bounds_fail(%[[WHERE]], %[[WHAT]])
// CHECK-NEXT:   }
// CHECK-NEXT:   %{{.*}} = memref.load %x[%[[J]]] : memref<4xf32>
// Two dims: one compare each, or-ed.
// CHECK:        arith.cmpi uge, %[[I]], %{{.*}} : index
// CHECK:        arith.cmpi uge, %[[J]], %{{.*}} : index
// CHECK-NEXT:   %[[ANY:.*]] = arith.ori
// CHECK-NEXT:   scf.if %[[ANY]] {
// CHECK:        memref.store %{{.*}}, %y[%[[I]], %[[J]]] : memref<4x5xf32>
// A vector access checks its last lane: index + 3 for vector<4xf32>.
// CHECK:        %[[THREE:.*]] = arith.constant 3 : index
// CHECK-NEXT:   %[[LAST:.*]] = arith.addi %[[I]], %[[THREE]] : index
// CHECK-NEXT:   %[[FIVE:.*]] = arith.constant 5 : index
// CHECK-NEXT:   arith.cmpi uge, %[[LAST]], %[[FIVE]] : index
// CHECK:        vector.load %y[%[[I]], %[[I]]] : memref<4x5xf32>, vector<4xf32>
// CHECK:      }
// Constant indices inside the bounds are not checked.
// CHECK-NEXT: %{{.*}} = vector.load %x[%{{.*}}] : memref<4xf32>, vector<4xf32>
// CHECK-NEXT: %{{.*}} = memref.load %x[%{{.*}}] : memref<4xf32>
// A view that does not fit its source fails where it is created.
// CHECK-NEXT: memref.get_global
// CHECK-NEXT: memref.get_global
// CHECK-NEXT: func.call @__bnnc_bounds_fail
// CHECK-NEXT: memref.subview
func.func @forward(%x: memref<4xf32>, %y: memref<4x5xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  scf.for %i = %c0 to %c4 step %c1 {
    %j = arith.addi %i, %c1 : index
    %v = memref.load %x[%j] : memref<4xf32> loc("shift.py":7:3)
    memref.store %v, %y[%i, %j] : memref<4x5xf32>
    %w = vector.load %y[%i, %i] : memref<4x5xf32>, vector<4xf32>
  }
  %w = vector.load %x[%c0] : memref<4xf32>, vector<4xf32>
  %z = memref.load %x[%c1] : memref<4xf32>
  %s = memref.subview %y[2, 0] [3, 5] [1, 1] : memref<4x5xf32> to memref<3x5xf32, strided<[5, 1], offset: 10>>
  func.return
}

// The messages: the access's location (else its function's) and what it accessed,
// NUL-padded to one length; the fail function writes both to fd 2 and aborts.
// CHECK: "memref.global"() <{sym_name = "[[W0]]", type = memref<[[N]]xi8>, initial_value = dense<{{\[}}[[BNNC:98, 110, 110, 99]], {{.*}}> : tensor<[[N]]xi8>, sym_visibility = "private", constant}>
// CHECK: func.func private @__bnnc_bounds_fail(%{{.*}}: memref<[[N]]xi8>, %{{.*}}: memref<[[N]]xi8>) {
// CHECK:      %[[FD:.*]] = arith.constant 2 : i32
// CHECK:      func.call @write(%[[FD]], %{{.*}}, %{{.*}}) : (i32, memref<[[N]]xi8>, i64) -> i64
// CHECK:      func.call @abort() : () -> ()
// CHECK:      func.func private @strlen(memref<[[N]]xi8>) -> i64
// CHECK-NEXT: func.func private @write(i32, memref<[[N]]xi8>, i64) -> i64
// CHECK-NEXT: func.func private @abort() -> ()
