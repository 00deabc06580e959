// The binary conv kernel compiled for aarch64 uses NEON's vector popcount:
// `cnt v.16b` (popcount of 16 bytes = two 64-bit words at once) followed by a
// pairwise widening add (uaddlp / uadalp / addp) or an across-vector add (addv).
//
// Expected to fail for now: the loop lowering (convert-bnn-to-loops) accumulates popcount one i64
// word at a time (math.ctpop on i64) and LLVM fully unrolls that loop, so the
// aarch64 code is `cnt v.8b` + `addv b, v.8b` per word (see aarch64-asm.mlir),
// not the 16-byte vector form. Remove this XFAIL when the kernel vectorises
// the word loop (vector<2xi64> loads, ctpop, reduction); lit then reports XPASS.
// XFAIL: *
// RUN: %bnnc compile %S/Inputs/bconv.mlir --emit=asm -target=aarch64 -o - | filecheck %s

// CHECK-LABEL: bconv:
// CHECK: eor v{{[0-9]+}}.16b
// CHECK: cnt v{{[0-9]+}}.16b, v{{[0-9]+}}.16b
// CHECK: {{uaddlp|uadalp|addp|addv}} {{[a-z][0-9]+}}
