// RUN: %bnnc-opt %s -p remove-dead-arguments | filecheck %s

// A private kernel's memref parameters it never reads go, with the operands
// its calls pass for them (and a get_global that fed only those). Index
// parameters (a threaded kernel's thread, threads), public functions and
// functions used other than by func.call are left alone.

"memref.global"() <{sym_name = "w", type = memref<4xf32>, initial_value = dense<1.0> : tensor<4xf32>, constant, sym_visibility = "private"}> : () -> ()
"memref.global"() <{sym_name = "panel", type = memref<4xf32>, initial_value = dense<2.0> : tensor<4xf32>, constant, sym_visibility = "private"}> : () -> ()
"memref.global"() <{sym_name = "kept", type = memref<4xf32>, initial_value = dense<3.0> : tensor<4xf32>, constant, sym_visibility = "private"}> : () -> ()

// CHECK-LABEL: func.func @forward(
// CHECK-NOT: memref.get_global @w
// CHECK: %[[K:.*]] = memref.get_global @kept : memref<4xf32>
// CHECK-NEXT: func.call @forward_1_linear(%[[X:.*]], %[[Y:.*]], %{{.*}}, %{{.*}}) {bnnc.threads = 2 : i64} : (memref<4xf32>, memref<4xf32>, index, index) -> ()
// CHECK-NEXT: func.call @forward_2_add(%[[X]], %[[Y]], %[[K]]) : (memref<4xf32>, memref<4xf32>, memref<4xf32>) -> ()
// CHECK-NEXT: func.call @forward_3_referenced(%[[X]], %[[Y]])
// CHECK-NEXT: func.call @public_kernel(%[[X]], %[[Y]])
// CHECK-NEXT: func.call @forward_4_twice(%[[X]], %[[Y]]) : (memref<4xf32>, memref<4xf32>) -> ()
func.func @forward(%x: memref<4xf32>, %y: memref<4xf32>) {
  %t0 = arith.constant 0 : index
  %t2 = arith.constant 2 : index
  %w = memref.get_global @w : memref<4xf32>
  %k = memref.get_global @kept : memref<4xf32>
  func.call @forward_1_linear(%x, %w, %y, %t0, %t2) {bnnc.threads = 2 : i64} : (memref<4xf32>, memref<4xf32>, memref<4xf32>, index, index) -> ()
  func.call @forward_2_add(%x, %y, %k) : (memref<4xf32>, memref<4xf32>, memref<4xf32>) -> ()
  func.call @forward_3_referenced(%x, %y) : (memref<4xf32>, memref<4xf32>) -> ()
  func.call @public_kernel(%x, %y) : (memref<4xf32>, memref<4xf32>) -> ()
  %w2 = memref.get_global @w : memref<4xf32>
  func.call @forward_4_twice(%x, %w2, %w2, %y) : (memref<4xf32>, memref<4xf32>, memref<4xf32>, memref<4xf32>) -> ()
  "test.op"() {ref = @forward_3_referenced} : () -> ()
  func.return
}

// The weights %w are never read (the kernel reads its own @panel); the
// unused thread index %t stays.
// CHECK-LABEL: func.func private @forward_1_linear(%{{.*}}: memref<4xf32>, %{{.*}}: memref<4xf32>, %{{.*}}: index, %{{.*}}: index)
func.func private @forward_1_linear(%in: memref<4xf32>, %w: memref<4xf32>, %out: memref<4xf32>, %t: index, %n: index) {
  %c0 = arith.constant 0 : index
  %p = memref.get_global @panel : memref<4xf32>
  %a = memref.load %in[%n] : memref<4xf32>
  %b = memref.load %p[%c0] : memref<4xf32>
  %s = arith.mulf %a, %b : f32
  memref.store %s, %out[%c0] : memref<4xf32>
  func.return
}

// Every parameter read: unchanged.
// CHECK-LABEL: func.func private @forward_2_add(%{{.*}}: memref<4xf32>, %{{.*}}: memref<4xf32>, %{{.*}}: memref<4xf32>)
func.func private @forward_2_add(%a: memref<4xf32>, %out: memref<4xf32>, %b: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %x = memref.load %a[%c0] : memref<4xf32>
  %y = memref.load %b[%c0] : memref<4xf32>
  %s = arith.addf %x, %y : f32
  memref.store %s, %out[%c0] : memref<4xf32>
  func.return
}

// Referenced by an attribute as well as called: unchanged.
// CHECK-LABEL: func.func private @forward_3_referenced(%{{.*}}: memref<4xf32>, %{{.*}}: memref<4xf32>)
func.func private @forward_3_referenced(%a: memref<4xf32>, %out: memref<4xf32>) {
  func.return
}

// Public: its signature is an interface, unchanged.
// CHECK-LABEL: func.func @public_kernel(%{{.*}}: memref<4xf32>, %{{.*}}: memref<4xf32>)
func.func @public_kernel(%a: memref<4xf32>, %out: memref<4xf32>) {
  func.return
}

// One value passed for two parameters that are both unread (a batch norm
// whose mean, variance, weight and bias are one constant): both go, and the
// get_global once.
// CHECK-LABEL: func.func private @forward_4_twice(%{{.*}}: memref<4xf32>, %{{.*}}: memref<4xf32>)
func.func private @forward_4_twice(%a: memref<4xf32>, %w1: memref<4xf32>, %w2: memref<4xf32>, %out: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %x = memref.load %a[%c0] : memref<4xf32>
  memref.store %x, %out[%c0] : memref<4xf32>
  func.return
}
