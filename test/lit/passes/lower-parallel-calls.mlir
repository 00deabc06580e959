// RUN: %bnnc-opt %s -p lower-parallel-calls | filecheck %s

// A function with calls marked bnnc.threads = 2 gets a thread pool that
// outlives its calls: its state is an internal zero-initialised global
// @<fn>.pool, taken at entry (__bnnc_pool_acquire, which starts the workers
// on the first call and returns null when another call holds the pool) and
// given back before every return (__bnnc_pool_release: the workers sleep).
// Each marked call becomes one argument block per thread (thread index 0 and
// 1, count 2) and a __bnnc_parallel_for on the acquired pool with the
// callee's trampoline; unmarked calls are left alone, and so are functions
// without marked calls.

llvm.func internal @kernel(%a: !llvm.ptr, %t: i64, %n: i64) {
  llvm.return
}

// CHECK-LABEL: llvm.func internal @kernel(
// CHECK-NEXT:    llvm.return

// CHECK: llvm.mlir.global internal @forward.pool() {{.*}}alignment = 64 : i64{{.*}} : !llvm.array<42 x i64>
// CHECK-LABEL: llvm.func @forward(
llvm.func @forward(%a: !llvm.ptr) {
  // CHECK-NEXT: %[[STATE:.*]] = llvm.mlir.addressof @forward.pool : !llvm.ptr
  // CHECK-NEXT: %[[CAP:.*]] = llvm.mlir.constant(2) : i64
  // CHECK-NEXT: %[[POOL:.*]] = llvm.call @__bnnc_pool_acquire(%[[STATE]], %[[CAP]]) : (!llvm.ptr, i64) -> !llvm.ptr
  %zero = llvm.mlir.constant(0 : i64) : i64
  %two = llvm.mlir.constant(2 : i64) : i64
  // CHECK: %[[BLOCKS:.*]] = llvm.alloca %{{.*}} x i64
  // CHECK: %[[P0:.*]] = llvm.ptrtoint %{{.*}} : !llvm.ptr to i64
  // CHECK: llvm.getelementptr inbounds %[[BLOCKS]][0]
  // CHECK: llvm.getelementptr inbounds %[[BLOCKS]][1]
  // CHECK: llvm.getelementptr inbounds %[[BLOCKS]][2]
  // CHECK: llvm.getelementptr inbounds %[[BLOCKS]][3]
  // CHECK: llvm.getelementptr inbounds %[[BLOCKS]][4]
  // CHECK: llvm.getelementptr inbounds %[[BLOCKS]][5]
  // CHECK: %[[FN:.*]] = llvm.mlir.addressof @kernel.thread : !llvm.ptr
  // CHECK: llvm.call @__bnnc_parallel_for(%[[POOL]], %[[FN]], %[[BLOCKS]], %{{.*}}, %{{.*}})
  // CHECK-NOT: bnnc.threads
  llvm.call @kernel(%a, %zero, %two) {bnnc.threads = 2 : i64} : (!llvm.ptr, i64, i64) -> ()
  // bnnc.blocks = 3: three blocks (indices 0, 1, 2; count 3) on the same pool.
  // CHECK: %[[BLOCKS3:.*]] = llvm.alloca %{{.*}} x i64
  // CHECK: %[[THREE:.*]] = llvm.mlir.constant(3) : i64
  // CHECK: llvm.getelementptr inbounds %[[BLOCKS3]][8]
  // CHECK-NOT: llvm.getelementptr inbounds %[[BLOCKS3]][9]
  // CHECK: llvm.call @__bnnc_parallel_for(%[[POOL]], %{{.*}}, %[[BLOCKS3]], %[[THREE]], %{{.*}})
  // CHECK-NOT: bnnc.blocks
  llvm.call @kernel(%a, %zero, %two) {bnnc.threads = 2 : i64, bnnc.blocks = 3 : i64} : (!llvm.ptr, i64, i64) -> ()
  // CHECK: llvm.call @kernel(%{{.*}}, %{{.*}}, %{{.*}}) : (!llvm.ptr, i64, i64) -> ()
  llvm.call @kernel(%a, %zero, %zero) : (!llvm.ptr, i64, i64) -> ()
  // CHECK-NEXT: llvm.call @__bnnc_pool_release(%[[POOL]])
  // CHECK-NEXT: llvm.return
  llvm.return
}

// CHECK: llvm.func @__bnnc_pool_acquire(!llvm.ptr, i64) -> !llvm.ptr
// CHECK: llvm.func @__bnnc_parallel_for(!llvm.ptr, !llvm.ptr, !llvm.ptr, i64, i64)
// CHECK: llvm.func @__bnnc_pool_release(!llvm.ptr)
// CHECK: llvm.func @__bnnc_pool_stop(!llvm.ptr)

// The trampoline unpacks one block and calls the kernel.
// CHECK-LABEL: llvm.func internal @kernel.thread(
// CHECK: llvm.inttoptr
// CHECK: llvm.call @kernel(
