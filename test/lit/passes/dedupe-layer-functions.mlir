// RUN: %bnnc-opt %s -p dedupe-layer-functions | filecheck %s

// Kernels identical up to the globals they read become one function that
// takes those globals as parameters (before the trailing thread parameters);
// each call passes its own layer's globals. Everything else is left alone.

"memref.global"() <{sym_name = "w0", type = memref<4xf32>, initial_value = dense<1.0> : tensor<4xf32>, constant, sym_visibility = "private"}> : () -> ()
"memref.global"() <{sym_name = "w1", type = memref<4xf32>, initial_value = dense<2.0> : tensor<4xf32>, constant, sym_visibility = "private"}> : () -> ()
"memref.global"() <{sym_name = "w2", type = memref<4xf32>, initial_value = dense<3.0> : tensor<4xf32>, constant, sym_visibility = "private"}> : () -> ()
"memref.global"() <{sym_name = "b0", type = memref<4xi64>, initial_value = dense<1> : tensor<4xi64>, constant, sym_visibility = "private"}> : () -> ()
"memref.global"() <{sym_name = "b1", type = memref<4xi64>, initial_value = dense<2> : tensor<4xi64>, constant, sym_visibility = "private"}> : () -> ()

// CHECK-LABEL: func.func @forward(
// The first layer's kernel is kept; the second layer calls it with its globals.
// CHECK: %[[W0:.*]] = memref.get_global @w0 : memref<4xf32>
// CHECK-NEXT: %[[B0:.*]] = memref.get_global @b0 : memref<4xi64>
// CHECK-NEXT: func.call @forward_1_scale(%[[X:.*]], %[[Y:.*]], %[[W0]], %[[B0]], %{{.*}}, %{{.*}}) {bnnc.threads = 2 : i64}
// CHECK: %[[W1:.*]] = memref.get_global @w1 : memref<4xf32>
// CHECK-NEXT: %[[B1:.*]] = memref.get_global @b1 : memref<4xi64>
// CHECK-NEXT: func.call @forward_1_scale(%[[Y]], %[[X]], %[[W1]], %[[B1]], %{{.*}}, %{{.*}}) {bnnc.threads = 2 : i64}
// Unique kernels and kernels that differ in more than their globals keep their calls.
// CHECK-NEXT: func.call @forward_3_add(%[[X]], %[[Y]])
// CHECK-NEXT: func.call @forward_4_shift(%[[X]])
// CHECK-NEXT: func.call @forward_5_shift(%[[X]])
// CHECK-NEXT: func.call @forward_6_twice(%[[X]])
// CHECK-NEXT: func.call @forward_7_twice(%[[X]])
func.func @forward(%x: memref<4xf32>, %y: memref<4xf32>) {
  %t0 = arith.constant 0 : index
  %t2 = arith.constant 2 : index
  func.call @forward_1_scale(%x, %y, %t0, %t2) {bnnc.threads = 2 : i64} : (memref<4xf32>, memref<4xf32>, index, index) -> ()
  func.call @forward_2_scale(%y, %x, %t0, %t2) {bnnc.threads = 2 : i64} : (memref<4xf32>, memref<4xf32>, index, index) -> ()
  func.call @forward_3_add(%x, %y) : (memref<4xf32>, memref<4xf32>) -> ()
  func.call @forward_4_shift(%x) : (memref<4xf32>) -> ()
  func.call @forward_5_shift(%x) : (memref<4xf32>) -> ()
  func.call @forward_6_twice(%x) : (memref<4xf32>) -> ()
  func.call @forward_7_twice(%x) : (memref<4xf32>) -> ()
  func.return
}

// CHECK-LABEL: func.func private @forward_1_scale(
// CHECK-SAME: %[[IN:[^:]*]]: memref<4xf32>, %[[OUT:[^:]*]]: memref<4xf32>, %[[W:[^:]*]]: memref<4xf32>, %[[B:[^:]*]]: memref<4xi64>, %{{[^:]*}}: index, %{{[^:]*}}: index)
// CHECK-NOT: memref.get_global
// CHECK: memref.load %[[W]][%{{.*}}] : memref<4xf32>
// CHECK: memref.load %[[B]][%{{.*}}] : memref<4xi64>
// CHECK: func.return
func.func private @forward_1_scale(%in: memref<4xf32>, %out: memref<4xf32>, %thread: index, %threads: index) {
  %w = memref.get_global @w0 : memref<4xf32>
  %b = memref.get_global @b0 : memref<4xi64>
  %c0 = arith.constant 0 : index
  %a = memref.load %in[%c0] : memref<4xf32>
  %s = memref.load %w[%c0] : memref<4xf32>
  %i = memref.load %b[%c0] : memref<4xi64>
  %p = arith.mulf %a, %s : f32
  memref.store %p, %out[%c0] : memref<4xf32>
  func.return
}
// CHECK-NOT: func.func private @forward_2_scale
func.func private @forward_2_scale(%in: memref<4xf32>, %out: memref<4xf32>, %thread: index, %threads: index) {
  %w = memref.get_global @w1 : memref<4xf32>
  %b = memref.get_global @b1 : memref<4xi64>
  %c0 = arith.constant 0 : index
  %a = memref.load %in[%c0] : memref<4xf32>
  %s = memref.load %w[%c0] : memref<4xf32>
  %i = memref.load %b[%c0] : memref<4xi64>
  %p = arith.mulf %a, %s : f32
  memref.store %p, %out[%c0] : memref<4xf32>
  func.return
}

// A unique kernel is untouched, its global included.
// CHECK-LABEL: func.func private @forward_3_add(%{{[^:]*}}: memref<4xf32>, %{{[^:]*}}: memref<4xf32>) {
// CHECK-NEXT: memref.get_global @w2 : memref<4xf32>
func.func private @forward_3_add(%in: memref<4xf32>, %out: memref<4xf32>) {
  %w = memref.get_global @w2 : memref<4xf32>
  %c0 = arith.constant 0 : index
  %a = memref.load %in[%c0] : memref<4xf32>
  %s = memref.load %w[%c0] : memref<4xf32>
  %p = arith.addf %a, %s : f32
  memref.store %p, %out[%c0] : memref<4xf32>
  func.return
}

// Kernels differing in a constant are not merged.
// CHECK-LABEL: func.func private @forward_4_shift(%{{[^:]*}}: memref<4xf32>) {
// CHECK-NEXT: memref.get_global @w0
// CHECK-NEXT: arith.constant 1 : index
// CHECK-LABEL: func.func private @forward_5_shift(%{{[^:]*}}: memref<4xf32>) {
// CHECK-NEXT: memref.get_global @w1
// CHECK-NEXT: arith.constant 2 : index
func.func private @forward_4_shift(%io: memref<4xf32>) {
  %w = memref.get_global @w0 : memref<4xf32>
  %c = arith.constant 1 : index
  %s = memref.load %w[%c] : memref<4xf32>
  memref.store %s, %io[%c] : memref<4xf32>
  func.return
}
func.func private @forward_5_shift(%io: memref<4xf32>) {
  %w = memref.get_global @w1 : memref<4xf32>
  %c = arith.constant 2 : index
  %s = memref.load %w[%c] : memref<4xf32>
  memref.store %s, %io[%c] : memref<4xf32>
  func.return
}

// Kernels reading one global twice and two globals once each differ.
// CHECK-LABEL: func.func private @forward_6_twice(%{{[^:]*}}: memref<4xf32>) {
// CHECK-NEXT: memref.get_global @w0
// CHECK-NEXT: memref.get_global @w0
// CHECK-LABEL: func.func private @forward_7_twice(%{{[^:]*}}: memref<4xf32>) {
// CHECK-NEXT: memref.get_global @w1
// CHECK-NEXT: memref.get_global @w2
func.func private @forward_6_twice(%io: memref<4xf32>) {
  %a = memref.get_global @w0 : memref<4xf32>
  %b = memref.get_global @w0 : memref<4xf32>
  %c = arith.constant 0 : index
  %s = memref.load %a[%c] : memref<4xf32>
  memref.store %s, %b[%c] : memref<4xf32>
  func.return
}
func.func private @forward_7_twice(%io: memref<4xf32>) {
  %a = memref.get_global @w1 : memref<4xf32>
  %b = memref.get_global @w2 : memref<4xf32>
  %c = arith.constant 0 : index
  %s = memref.load %a[%c] : memref<4xf32>
  memref.store %s, %b[%c] : memref<4xf32>
  func.return
}
