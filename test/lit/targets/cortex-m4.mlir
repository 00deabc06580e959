// -target=cortex-m4 (thumbv7em, bare metal, fpv4-sp-d16): no vector unit, so
// the kernels work on 64-bit words (vector_bits 64), xor'ed and counted as two
// 32-bit halves with the SWAR popcount (masks 0x55555555 / 0x33333333, then a
// multiply by 0x01010101), and the dot converts to float from 32 bits
// (vcvt.f32.s32, no __aeabi_l2f). No allocator: the static memory plan gives
// the entry point an arena (its size in the signature); no libgcc helper.
//
// RUN: %bnnc compile %S/../artifacts/Inputs/bconv.mlir --emit=asm -target=cortex-m4 -o - | filecheck %s

// CHECK: .cpu cortex-m4
// CHECK: .fpu fpv4-sp-d16
// CHECK-NOT: {{aligned_alloc|malloc|__popcount|__aeabi_l2f|__floatdisf|__aeabi_[ul]div}}
// CHECK-LABEL: bconv_{{[0-9]+}}_bconv2d:
// CHECK-NOT: {{aligned_alloc|malloc|__popcount|__aeabi_l2f|__floatdisf|__aeabi_[ul]div}}
// CHECK-DAG: mov.w {{r[0-9]+|lr}}, #1431655765
// CHECK-DAG: mov.w [[M:r[0-9]+]], #16843009
// CHECK: eor{{s|.w}} {{r[0-9]+}}, {{r[0-9]+}}
// CHECK: mul {{r[0-9]+}}, {{r[0-9]+}}, [[M]]
// CHECK: vcvt.f32.s32
// CHECK-NOT: {{aligned_alloc|malloc|__popcount|__aeabi_l2f|__floatdisf|__aeabi_[ul]div}}
// CHECK: bconv_bnnc_signature:
// CHECK-NEXT: .asciz {{.*}}arena_bytes{{.*}}: {{[1-9][0-9]*}}}"
