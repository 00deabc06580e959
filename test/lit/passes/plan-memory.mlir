// RUN: %bnnc-opt %s -p plan-memory | filecheck %s
// RUN: %bnnc-opt %s -p plan-memory,convert-scf-to-cf,convert-memref-to-llvm | filecheck %s --check-prefix=LLVM

// Three 256-byte buffers in a chain: %a dies when %c is born, so %c reuses
// %a's bytes; %b is live with both. The kernel's own buffer becomes a
// scratch parameter whose bytes are the caller's arena during the call only.
// The arena is 512 bytes (the peak), not 768 + 64 (the sum).

// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %{{.*}}: memref<64xf32>, %{{.*}}: memref<64xf32>, %[[ARENA:.*]]: memref<512xi8>)
// CHECK-SAME: bnnc.arena_bytes = 512 : i64
// CHECK-NOT: memref.alloc
// CHECK: %[[OA:.*]] = arith.constant 0 : index
// CHECK-NEXT: %[[A:.*]] = memref.view %[[ARENA]][%[[OA]]][] : memref<512xi8> to memref<64xf32>
// CHECK-NEXT: %[[OS:.*]] = arith.constant 256 : index
// CHECK-NEXT: %[[S:.*]] = memref.view %[[ARENA]][%[[OS]]][] : memref<512xi8> to memref<64xi8>
// CHECK-NEXT: func.call @scale(%{{.*}}, %[[A]], %[[S]])
// CHECK-NEXT: %[[OB:.*]] = arith.constant 256 : index
// CHECK-NEXT: %[[B:.*]] = memref.view %[[ARENA]][%[[OB]]][] : memref<512xi8> to memref<64xf32>
// CHECK-NEXT: func.call @copy(%[[A]], %[[B]])
// CHECK-NEXT: %[[OC:.*]] = arith.constant 0 : index
// CHECK-NEXT: %[[C:.*]] = memref.view %[[ARENA]][%[[OC]]][] : memref<512xi8> to memref<64xf32>
// CHECK-NEXT: func.call @copy(%[[B]], %[[C]])
// CHECK-NOT: memref.dealloc
// CHECK: func.return
func.func @forward(%x: memref<64xf32>, %y: memref<64xf32>) {
  %a = memref.alloc() {alignment = 64 : i64} : memref<64xf32>
  func.call @scale(%x, %a) : (memref<64xf32>, memref<64xf32>) -> ()
  %b = memref.alloc() {alignment = 64 : i64} : memref<64xf32>
  func.call @copy(%a, %b) : (memref<64xf32>, memref<64xf32>) -> ()
  memref.dealloc %a : memref<64xf32>
  %c = memref.alloc() {alignment = 64 : i64} : memref<64xf32>
  func.call @copy(%b, %c) : (memref<64xf32>, memref<64xf32>) -> ()
  memref.dealloc %b : memref<64xf32>
  func.call @copy(%c, %y) : (memref<64xf32>, memref<64xf32>) -> ()
  memref.dealloc %c : memref<64xf32>
  func.return
}

// CHECK-LABEL: func.func private @scale(
// CHECK-SAME: %[[IN:[^:]*]]: memref<64xf32>, %[[OUT:[^:]*]]: memref<64xf32>, %[[SCRATCH:.*]]: memref<64xi8>)
// CHECK: memref.view %[[SCRATCH]][%{{.*}}][] : memref<64xi8> to memref<16xf32>
// CHECK-NOT: memref.dealloc
func.func private @scale(%in: memref<64xf32>, %out: memref<64xf32>) {
  %t = memref.alloc() {alignment = 64 : i64} : memref<16xf32>
  %c0 = arith.constant 0 : index
  %v = memref.load %in[%c0] : memref<64xf32>
  memref.store %v, %t[%c0] : memref<16xf32>
  %w = memref.load %t[%c0] : memref<16xf32>
  memref.store %w, %out[%c0] : memref<64xf32>
  memref.dealloc %t : memref<16xf32>
  func.return
}

// CHECK-LABEL: func.func private @copy(
// CHECK-SAME: %{{[^:]*}}: memref<64xf32>, %{{[^:]*}}: memref<64xf32>)
func.func private @copy(%in: memref<64xf32>, %out: memref<64xf32>) {
  %c0 = arith.constant 0 : index
  %v = memref.load %in[%c0] : memref<64xf32>
  memref.store %v, %out[%c0] : memref<64xf32>
  func.return
}

// A view is a byte offset from the arena pointer.
// LLVM-LABEL: func.func @forward(
// LLVM: llvm.getelementptr inbounds %{{.*}}[%{{.*}}] : (!llvm.ptr, i64) -> !llvm.ptr, i8
// LLVM-NOT: aligned_alloc
// LLVM-NOT: @free
