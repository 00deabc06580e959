// -target=riscv64 --features=...,+v,+zvbb: the kernels use LLVM fixed-length
// vectors of the guaranteed minimum VLEN (128 bits with plain +v, more with
// +zvl<N>b; Target.vector_bits), so the loop IR is vector<2xi64> and LLVM
// maps it onto RVV at LMUL 1 (vsetivli 2, e64, m1). The activation word is
// a scalar operand of the xor (vxor.vx: no broadcast), Zvbb's vcpop.v counts
// each 64-bit lane, vadd.vv accumulates. Without Zvbb, RVV has no per-element
// popcount and LLVM expands it (shifts and masks, no vcpop.v).
//
// RUN: %bnnc compile %S/../artifacts/Inputs/bconv.mlir --emit=asm -target=riscv64 --features=+m,+a,+f,+d,+c,+zbb,+v,+zvbb -o - | filecheck %s
// RUN: %bnnc compile %S/../artifacts/Inputs/bconv.mlir --emit=loops -target=riscv64 --features=+m,+a,+f,+d,+c,+zbb,+v,+zvbb -o - | filecheck %s --check-prefix=LOOPS
// RUN: %bnnc compile %S/../artifacts/Inputs/bconv.mlir --emit=asm -target=riscv64 --features=+m,+a,+f,+d,+c,+zbb,+v -o - | filecheck %s --check-prefix=NOZVBB
// RUN: %bnnc compile %S/../artifacts/Inputs/bconv.mlir --emit=loops -target=riscv64 --features=+m,+a,+f,+d,+c,+zbb,+v,+zvbb,+zvl256b -o - | filecheck %s --check-prefix=VLEN256

// CHECK: .attribute 5, "rv64i2p1{{.*}}_v1p0{{.*}}_zvbb1p0
// CHECK-LABEL: bconv_{{[0-9]+}}_bconv2d:
// CHECK: vsetivli zero, 2, e64, m1
// CHECK: vle64.v
// CHECK: vxor.vx v{{[0-9]+}}, v{{[0-9]+}}, {{[a-z0-9]+}}
// CHECK-NEXT: vcpop.v v{{[0-9]+}}, v{{[0-9]+}}
// CHECK-NEXT: vadd.vv v{{[0-9]+}}, v{{[0-9]+}}, v{{[0-9]+}}
// CHECK: bconv_bnnc_signature:

// LOOPS: math.ctpop %{{.*}} : vector<2xi64>

// NOZVBB-LABEL: bconv_{{[0-9]+}}_bconv2d:
// NOZVBB-NOT: vcpop.v
// NOZVBB: vsrl.vi
// NOZVBB-NOT: vcpop.v
// NOZVBB: bconv_bnnc_signature:

// VLEN256: math.ctpop %{{.*}} : vector<4xi64>
