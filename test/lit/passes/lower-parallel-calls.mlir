// RUN: %bnnc-opt %s -p lower-parallel-calls | filecheck %s

// A call marked bnnc.threads = 2 becomes one argument block per thread
// (thread index 0 and 1, count 2) and a call of __bnnc_parallel_for with
// the callee's trampoline; unmarked calls are left alone.

llvm.func internal @kernel(%a: !llvm.ptr, %t: i64, %n: i64) {
  llvm.return
}

// CHECK-LABEL: llvm.func @forward(
llvm.func @forward(%a: !llvm.ptr) {
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
  // CHECK: llvm.call @__bnnc_parallel_for(%[[FN]], %[[BLOCKS]], %{{.*}}, %{{.*}})
  // CHECK-NOT: bnnc.threads
  llvm.call @kernel(%a, %zero, %two) {bnnc.threads = 2 : i64} : (!llvm.ptr, i64, i64) -> ()
  // CHECK: llvm.call @kernel(%{{.*}}, %{{.*}}, %{{.*}}) : (!llvm.ptr, i64, i64) -> ()
  llvm.call @kernel(%a, %zero, %zero) : (!llvm.ptr, i64, i64) -> ()
  llvm.return
}

// The trampoline unpacks one block and calls the kernel.
// CHECK-LABEL: llvm.func internal @kernel.thread(
// CHECK: llvm.inttoptr
// CHECK: llvm.call @kernel(
// CHECK: llvm.func @__bnnc_parallel_for(!llvm.ptr, !llvm.ptr, i64, i64)
