// --emit=asm for aarch64 from an x86 host: the entry point, NEON popcount
// (`cnt` on 16 byte lanes = two words, widened by pairwise adds), and the
// embedded signature.
// RUN: %bnnc compile %S/Inputs/bconv.mlir --emit=asm -target=aarch64 -o - | filecheck %s
// RUN: %bnnc compile %S/Inputs/bconv.mlir --emit=asm -target=aarch64 --cpu=cortex-a72 --features=+neon,+dotprod -o - | filecheck %s
// RUN: not %bnnc compile %S/Inputs/bconv.mlir --emit=asm -target=aarch64 --features=+nosuchfeature -o - 2>&1 | filecheck %s --check-prefix=BADFEAT
// RUN: not %bnnc compile %S/Inputs/bconv.mlir --emit=asm -target=aarch64 --cpu=cortex-a999 -o - 2>&1 | filecheck %s --check-prefix=BADCPU
// RUN: not %bnnc compile %S/Inputs/bconv.mlir --emit=asm -target=mips -o - 2>&1 | filecheck %s --check-prefix=BADTARGET

// CHECK: .globl bconv
// CHECK-LABEL: bconv:
// CHECK: aligned_alloc
// CHECK: eor
// CHECK: cnt v{{[0-9]+}}.16b, v{{[0-9]+}}.16b
// CHECK: {{uaddlp|uadalp|addp}} v{{[0-9]+}}
// CHECK: {{bl?}} free
// CHECK: bconv_bnnc_signature:
// CHECK-NEXT: .asciz "{\"name\": \"bconv\"

// BADFEAT: bnnc: error: unknown feature(s) +nosuchfeature for aarch64; accepted: {{.*}}+neon
// BADCPU: bnnc: error: unknown cpu 'cortex-a999'{{.*}}accepted: {{.*}}cortex-a72
// BADTARGET: bnnc: error: unknown target 'mips'; accepted: host, x86_64, aarch64
