// The aarch64 binary conv accumulates popcounts in 16-bit lanes (issue 13):
// the K loop is eor + cnt .16b + uadalp .8h per 128 bit-MACs, with no 64-bit
// widening chain (uaddlp .8h/.4s + uadalp .2d per step): the 16-bit counts
// are widened once per chunk of K, after the loop (shifts, masks and adds).
// The loop IR says so: popcounts of vector<8xi16> lanes added into
// vector<8xi16> accumulators. x86 keeps one 64-bit popcount per word.
//
// RUN: %bnnc compile %S/Inputs/bconv.mlir --emit=asm -target=aarch64 -o - | filecheck %s
// RUN: %bnnc compile %S/Inputs/bconv.mlir --emit=loops -target=aarch64 -o - | filecheck %s --check-prefix=LOOPS
// RUN: %bnnc compile %S/Inputs/bconv.mlir --emit=loops -target=x86_64 -cpu=icelake-server -o - | filecheck %s --check-prefix=X86

// CHECK-LABEL: bconv_{{[0-9]+}}_bconv2d:
// CHECK-NOT: uaddlp
// CHECK-NOT: uadalp v{{[0-9]+}}.{{4s|2d}}
// CHECK: eor v{{[0-9]+}}.16b, v{{[0-9]+}}.16b, v{{[0-9]+}}.16b
// CHECK: cnt v{{[0-9]+}}.16b, v{{[0-9]+}}.16b
// CHECK-NOT: uaddlp
// CHECK-NOT: uadalp v{{[0-9]+}}.{{4s|2d}}
// CHECK: uadalp v{{[0-9]+}}.8h, v{{[0-9]+}}.16b
// CHECK-NOT: uaddlp
// CHECK-NOT: uadalp v{{[0-9]+}}.{{4s|2d}}
// CHECK: bconv_bnnc_signature:

// LOOPS: math.ctpop %{{.*}} : vector<8xi16>
// LOOPS-NEXT: arith.addi %{{.*}} : vector<8xi16>

// X86-NOT: vector<8xi16>
// X86: math.ctpop %{{.*}} : vector<8xi64>
// X86-NOT: vector<8xi16>
