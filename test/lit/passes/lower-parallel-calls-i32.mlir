// RUN: %bnnc-opt %s -p lower-parallel-calls | filecheck %s

// On a 32-bit target (index_bitwidth=32) a threaded kernel's index
// parameters, (thread, threads) included, are i32. The argument blocks keep
// 64-bit slots: an i32 argument is sign-extended into its slot and the
// trampoline truncates it back before the call.

llvm.func internal @kernel(%a: !llvm.ptr, %k: i32, %t: i32, %n: i32) {
  llvm.return
}

// CHECK-LABEL: llvm.func @forward(
llvm.func @forward(%a: !llvm.ptr, %k: i32) {
  %zero = llvm.mlir.constant(0 : i32) : i32
  %two = llvm.mlir.constant(2 : i32) : i32
  // CHECK: %[[BLOCKS:.*]] = llvm.alloca %{{.*}} x i64
  // CHECK: llvm.ptrtoint %{{.*}} : !llvm.ptr to i64
  // CHECK: %[[K:.*]] = llvm.sext %{{.*}} : i32 to i64
  // CHECK: %[[S:.*]] = llvm.getelementptr inbounds %[[BLOCKS]][1]
  // CHECK: llvm.store %[[K]], %[[S]] : i64, !llvm.ptr
  // CHECK: llvm.call @__bnnc_parallel_for(
  llvm.call @kernel(%a, %k, %zero, %two) {bnnc.threads = 2 : i64} : (!llvm.ptr, i32, i32, i32) -> ()
  llvm.return
}

// CHECK-LABEL: llvm.func internal @kernel.thread(
// CHECK: llvm.inttoptr
// CHECK: %[[K64:.*]] = llvm.load %{{.*}} : !llvm.ptr -> i64
// CHECK: %[[K32:.*]] = llvm.trunc %[[K64]] : i64 to i32
// CHECK: %[[T64:.*]] = llvm.load %{{.*}} : !llvm.ptr -> i64
// CHECK: %[[T32:.*]] = llvm.trunc %[[T64]] : i64 to i32
// CHECK: %[[N64:.*]] = llvm.load %{{.*}} : !llvm.ptr -> i64
// CHECK: %[[N32:.*]] = llvm.trunc %[[N64]] : i64 to i32
// CHECK: llvm.call @kernel(%{{.*}}, %[[K32]], %[[T32]], %[[N32]]) : (!llvm.ptr, i32, i32, i32) -> ()
