// -target=riscv64 (rv64gc + Zbb, the default features): no vector unit, so
// the kernels work on 64-bit words (vector_bits 64: vector<1xi64> in the loop
// IR) and each word's popcount is one Zbb `cpop`. Without Zbb LLVM would
// expand ctpop into ~12 shift/mask/multiply instructions per word.
//
// RUN: %bnnc compile %S/../artifacts/Inputs/bconv.mlir --emit=asm -target=riscv64 -o - | filecheck %s
// RUN: %bnnc compile %S/../artifacts/Inputs/bconv.mlir --emit=loops -target=riscv64 -o - | filecheck %s --check-prefix=LOOPS
// RUN: %bnnc compile %S/../artifacts/Inputs/bconv.mlir --emit=asm -target=riscv64 --features=+m,+a,+f,+d,+c -o - | filecheck %s --check-prefix=NOZBB

// CHECK: .attribute 5, "rv64i2p1_m2p0_a2p1_f2p2_d2p2_c2p0{{.*}}_zbb1p0
// CHECK-LABEL: bconv_{{[0-9]+}}_bconv2d:
// CHECK-NOT: __popcount
// CHECK: xor [[W:[a-z0-9]+]], {{[a-z0-9]+}}, {{[a-z0-9]+}}
// CHECK: cpop {{[a-z0-9]+}}, {{[a-z0-9]+}}
// CHECK-NOT: __popcount
// CHECK: bconv_bnnc_signature:

// LOOPS: math.ctpop %{{.*}} : vector<1xi64>

// NOZBB-LABEL: bconv_{{[0-9]+}}_bconv2d:
// NOZBB-NOT: cpop
// NOZBB: bconv_bnnc_signature:
