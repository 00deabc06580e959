// -target=armv7 (armv7-a, hard-float, NEON): the binary conv's K loop is the
// same loop IR as aarch64's (16-bit popcount lanes, Target.popcount_accumulator_bits)
// and becomes veor + vcnt.8 + vpaddl.u8 + vadd.i16 on q registers. (LLVM 20's
// ARM backend does not fold the vpaddl + vadd pair into vpadal.u8, which
// would save one op per 128 bit-MACs.) size_t is 32 bits there, so the
// scratch allocations call aligned_alloc with i32 arguments.
//
// RUN: %bnnc compile %S/../artifacts/Inputs/bconv.mlir --emit=asm -target=armv7 -o - | filecheck %s
// RUN: %bnnc compile %S/../artifacts/Inputs/bconv.mlir --emit=loops -target=armv7 -o - | filecheck %s --check-prefix=LOOPS
// RUN: %bnnc compile %S/../artifacts/Inputs/bconv.mlir --emit=ll -target=armv7 -o - | filecheck %s --check-prefix=LL

// CHECK: .cpu cortex-a7
// CHECK: .fpu neon-vfpv4
// CHECK-LABEL: bconv_{{[0-9]+}}_bconv2d:
// CHECK-NOT: __popcount
// CHECK: veor q{{[0-9]+}}, q{{[0-9]+}}, q{{[0-9]+}}
// CHECK: vcnt.8 q{{[0-9]+}}, q{{[0-9]+}}
// CHECK: vpaddl.u8 q{{[0-9]+}}, q{{[0-9]+}}
// CHECK: vadd.i16 q{{[0-9]+}}, q{{[0-9]+}}, q{{[0-9]+}}
// CHECK-NOT: __popcount
// CHECK: bconv_bnnc_signature:

// LOOPS: math.ctpop %{{.*}} : vector<8xi16>
// LOOPS-NEXT: arith.addi %{{.*}} : vector<8xi16>

// LL: target triple = "armv7-unknown-linux-gnueabihf"
// LL: call {{.*}}ptr @aligned_alloc(i32 64, i32 {{[0-9]+}})
// LL-NOT: @aligned_alloc(i64
