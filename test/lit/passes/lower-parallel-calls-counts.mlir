// RUN: not %bnnc-opt %s -p lower-parallel-calls 2>&1 | filecheck %s
// A thread or block count is bounded before any code is built from it: a
// call becomes one argument block per block and a pool word per thread, so
// 2^31 threads from mutated IR once made the pass run for minutes.

// CHECK: bnnc: error: pass 'lower-parallel-calls' failed: lower-parallel-calls: bnnc.threads = 2143289344 on the call to @kernel is outside 1..1024
// CHECK-NOT: Traceback

llvm.func internal @kernel(%a: !llvm.ptr, %t: i64, %n: i64) {
  llvm.return
}

llvm.func @forward(%a: !llvm.ptr) {
  %zero = llvm.mlir.constant(0 : i64) : i64
  %two = llvm.mlir.constant(2 : i64) : i64
  llvm.call @kernel(%a, %zero, %two) {bnnc.threads = 2143289344 : i64} : (!llvm.ptr, i64, i64) -> ()
  llvm.return
}
