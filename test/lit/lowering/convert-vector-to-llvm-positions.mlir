// RUN: not %bnnc-opt %s -p convert-vector-to-llvm 2>&1 | filecheck %s
// RUN: sed 's/\[-2\]/[16]/' %s > %t.mlir && not %bnnc-opt %t.mlir -p convert-vector-to-llvm 2>&1 | filecheck %s --check-prefix=HIGH
// A static position outside the vector (mutated IR: -2 once read as the
// dynamic marker and crashed the pass) is refused, not lowered to poison.

// CHECK: bnnc: error: pass 'convert-vector-to-llvm' failed: convert-vector-to-llvm: vector.extract: position -2 is outside a vector of 16 elements
// CHECK-NOT: Traceback
// HIGH: bnnc: error: pass 'convert-vector-to-llvm' failed: convert-vector-to-llvm: vector.extract: position 16 is outside a vector of 16 elements

func.func @f(%v: vector<16xf32>) -> f32 {
  %x = vector.extract %v[-2] : f32 from vector<16xf32>
  func.return %x : f32
}
