// The binary conv kernel compiled for aarch64 uses NEON's vector popcount:
// `cnt v.16b` (popcount of 16 bytes = two 64-bit words at once) followed by a
// pairwise widening add (uaddlp / uadalp / addp) or an across-vector add (addv).
//
// RUN: %bnnc compile %S/Inputs/bconv.mlir --emit=asm -target=aarch64 -o - | filecheck %s

// CHECK-LABEL: bconv:
// CHECK: eor v{{[0-9]+}}.16b
// CHECK: cnt v{{[0-9]+}}.16b, v{{[0-9]+}}.16b
// CHECK: {{uaddlp|uadalp|addp|addv}} {{[a-z][0-9]+}}
