// RUN: %bnnc-opt %s -p plan-memory | filecheck %s

// A threaded kernel runs its blocks at once: each block gets its own bytes of
// the scratch region (block b at b * 128), which the caller sizes for all
// 4 blocks and passes before the (block, blocks) parameters.

// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[ARENA:[^:]*]]: memref<512xi8>) attributes {bnnc.arena_bytes = 512 : i64}
// CHECK: %[[S:.*]] = memref.view %[[ARENA]][%{{.*}}][] : memref<512xi8> to memref<512xi8>
// CHECK-NEXT: func.call @work(%{{.*}}, %[[S]], %{{.*}}, %{{.*}}) {bnnc.threads = 2 : i64, bnnc.blocks = 4 : i64}
func.func @forward(%x: memref<64xf32>) {
  %c0 = arith.constant 0 : index
  %c4 = arith.constant 4 : index
  func.call @work(%x, %c0, %c4) {bnnc.threads = 2 : i64, bnnc.blocks = 4 : i64} : (memref<64xf32>, index, index) -> ()
  func.return
}

// CHECK-LABEL: func.func private @work(
// CHECK-SAME: %{{[^:]*}}: memref<64xf32>, %[[SCRATCH:[^:]*]]: memref<512xi8>, %[[BLOCK:[^:]*]]: index, %{{[^:]*}}: index)
// CHECK: %[[STRIDE:.*]] = arith.constant 128 : index
// CHECK-NEXT: %[[BASE:.*]] = arith.muli %[[BLOCK]], %[[STRIDE]] : index
// CHECK: %[[OFF:.*]] = arith.addi %[[BASE]], %{{.*}} : index
// CHECK-NEXT: memref.view %[[SCRATCH]][%[[OFF]]][] : memref<512xi8> to memref<25xf32>
func.func private @work(%x: memref<64xf32>, %block: index, %blocks: index) {
  %t = memref.alloc() {alignment = 64 : i64} : memref<25xf32>
  %c0 = arith.constant 0 : index
  %v = memref.load %x[%c0] : memref<64xf32>
  memref.store %v, %t[%block] : memref<25xf32>
  memref.dealloc %t : memref<25xf32>
  func.return
}
