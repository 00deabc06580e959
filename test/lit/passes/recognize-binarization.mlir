// RUN: %bnnc-opt %s -p recognize-binarization --split-input-file | filecheck %s

// where(x >= 0, 1, -1) is bnn.sign(x): 0 goes to +1 in both.
// CHECK-LABEL: func.func @where_ge
// CHECK-NEXT: %[[S:.*]] = bnn.sign %x
// CHECK-NEXT: func.return %[[S]]
func.func @where_ge(%x: tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32> {
  %z = arith.constant dense<0.0> : tensor<1x1x1x1xf32>
  %p = arith.constant dense<1.0> : tensor<1x1x1x1xf32>
  %m = arith.constant dense<-1.0> : tensor<1x1x1x1xf32>
  %c = bnn.compare %x, %z {predicate = "ge"} : (tensor<1x2x3x3xf32>, tensor<1x1x1x1xf32>) -> tensor<1x2x3x3xf32>
  %w = bnn.where %c, %p, %m : (tensor<1x2x3x3xf32>, tensor<1x1x1x1xf32>, tensor<1x1x1x1xf32>) -> tensor<1x2x3x3xf32>
  func.return %w : tensor<1x2x3x3xf32>
}

// -----

// (x > 0).float() * 2 - 1 sends 0 to -1: -sign(-x).
// CHECK-LABEL: func.func @affine_gt
// CHECK: %[[N:.*]] = bnn.mul %x, %[[M:.*]] :
// CHECK-NEXT: %[[S:.*]] = bnn.sign %[[N]]
// CHECK-NEXT: %[[R:.*]] = bnn.mul %[[S]], %[[M]]
// CHECK-NEXT: func.return %[[R]]
func.func @affine_gt(%x: tensor<1x4xf32>) -> tensor<1x4xf32> {
  %z = arith.constant dense<0.0> : tensor<1x1xf32>
  %two = arith.constant dense<2.0> : tensor<1x1xf32>
  %one = arith.constant dense<1.0> : tensor<1x1xf32>
  %c = bnn.compare %x, %z {predicate = "gt"} : (tensor<1x4xf32>, tensor<1x1xf32>) -> tensor<1x4xf32>
  %d = bnn.mul %c, %two : (tensor<1x4xf32>, tensor<1x1xf32>) -> tensor<1x4xf32>
  %e = bnn.sub %d, %one : (tensor<1x4xf32>, tensor<1x1xf32>) -> tensor<1x4xf32>
  func.return %e : tensor<1x4xf32>
}

// -----

// torch.sign feeding a conv is binarize (its input is 0 only by rounding);
// feeding only float ops it keeps PyTorch's sign(0) = 0.
// CHECK-LABEL: func.func @signum_users
// CHECK: %[[S:.*]] = bnn.sign %x
// CHECK: bnn.conv2d %[[S]]
// CHECK: %[[F:.*]] = bnn.signum %y
// CHECK: bnn.add %[[F]]
func.func @signum_users(%x: tensor<1x2x3x3xf32>, %y: tensor<1x2x3x3xf32>) -> (tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>) {
  %w = arith.constant dense<1.0> : tensor<2x2x1x1xf32>
  %a = bnn.signum %x : tensor<1x2x3x3xf32>
  %b = bnn.conv2d %a, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x3x3xf32>, tensor<2x2x1x1xf32> -> tensor<1x2x3x3xf32>
  %f = bnn.signum %y : tensor<1x2x3x3xf32>
  %g = bnn.add %f, %f : (tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  func.return %b, %g : tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>
}

// -----

// A straight-through estimator h + (sign(h) - h) holds sign(h)'s values.
// CHECK-LABEL: func.func @ste
// CHECK-NEXT: %[[S:.*]] = bnn.sign %x
// CHECK-NEXT: func.return %[[S]]
func.func @ste(%x: tensor<1x4xf32>) -> tensor<1x4xf32> {
  %s = bnn.sign %x : tensor<1x4xf32>
  %d = bnn.sub %s, %x : (tensor<1x4xf32>, tensor<1x4xf32>) -> tensor<1x4xf32>
  %e = bnn.add %x, %d : (tensor<1x4xf32>, tensor<1x4xf32>) -> tensor<1x4xf32>
  func.return %e : tensor<1x4xf32>
}

// -----

// A Brevitas-style clamp written with where keeps the sign of x, so the
// binariser after it is sign(x); the scale alpha folds into the weights.
// CHECK-LABEL: func.func @clamp_where_scaled
// CHECK: %[[S:.*]] = bnn.sign %x
// CHECK: %[[W:.*]] = arith.constant dense<2.500000e-01> : tensor<2x2x1x1xf32>
// CHECK: bnn.conv2d %[[S]], %[[W]] {bnnc.binarized = "input {-0.5, 0.5}: x >= 0 ? 0.5 : -0.5; {-a, +a} (scale folded into the weights)"
// CHECK-NOT: bnn.where
func.func @clamp_where_scaled(%x: tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32> {
  %hi = arith.constant dense<0.5> : tensor<1x1x1x1xf32>
  %lo = arith.constant dense<-0.5> : tensor<1x1x1x1xf32>
  %z = arith.constant dense<0.0> : tensor<1x1x1x1xf32>
  %p = arith.constant dense<1.0> : tensor<1x1x1x1xf32>
  %m = arith.constant dense<-1.0> : tensor<1x1x1x1xf32>
  %w = arith.constant dense<0.5> : tensor<2x2x1x1xf32>
  %c1 = bnn.compare %x, %hi {predicate = "gt"} : (tensor<1x2x3x3xf32>, tensor<1x1x1x1xf32>) -> tensor<1x2x3x3xf32>
  %y1 = bnn.where %c1, %hi, %x : (tensor<1x2x3x3xf32>, tensor<1x1x1x1xf32>, tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %c2 = bnn.compare %y1, %lo {predicate = "lt"} : (tensor<1x2x3x3xf32>, tensor<1x1x1x1xf32>) -> tensor<1x2x3x3xf32>
  %y2 = bnn.where %c2, %lo, %y1 : (tensor<1x2x3x3xf32>, tensor<1x1x1x1xf32>, tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %c3 = bnn.compare %y2, %z {predicate = "ge"} : (tensor<1x2x3x3xf32>, tensor<1x1x1x1xf32>) -> tensor<1x2x3x3xf32>
  %b = bnn.where %c3, %p, %m : (tensor<1x2x3x3xf32>, tensor<1x1x1x1xf32>, tensor<1x1x1x1xf32>) -> tensor<1x2x3x3xf32>
  %a = bnn.mul %b, %hi : (tensor<1x2x3x3xf32>, tensor<1x1x1x1xf32>) -> tensor<1x2x3x3xf32>
  %y = bnn.conv2d %a, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x3x3xf32>, tensor<2x2x1x1xf32> -> tensor<1x2x3x3xf32>
  func.return %y : tensor<1x2x3x3xf32>
}

// -----

// sign(relu(x)) is {0, 1} (x > 0): the conv becomes its popcount form over
// -sign(-x) padded with -1, scaled by 0.5 and shifted by half the weight sums.
// CHECK-LABEL: func.func @unipolar
// CHECK: %[[S:.*]] = bnn.sign %{{.*}}
// CHECK: %[[B:.*]] = bnn.mul %[[S]]
// CHECK: %[[P:.*]] = bnn.pad %[[B]] {padding = array<i64: 1, 1, 1, 1>, value = -1.000000e+00 : f32}
// CHECK: %[[D:.*]] = bnn.conv2d %[[P]], %{{.*}} {bnnc.binarized = "input {0, 1}: x > 0 ? 1 : 0; {0, a} unipolar{{.*}}padding = array<i64: 0, 0>
// CHECK: %[[H:.*]] = bnn.mul %[[D]], %{{.*}}
// CHECK: %[[R:.*]] = bnn.add %[[H]], %{{.*}}
// CHECK: func.return %[[R]]
func.func @unipolar(%x: tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32> {
  %w = arith.constant dense<[[[[1.0, -1.0, 1.0], [1.0, 1.0, 1.0], [-1.0, -1.0, 1.0]], [[1.0, -1.0, 1.0], [1.0, 1.0, 1.0], [-1.0, -1.0, 1.0]]], [[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]]]> : tensor<2x2x3x3xf32>
  %r = bnn.relu %x : tensor<1x2x3x3xf32>
  %s = bnn.signum %r : tensor<1x2x3x3xf32>
  %y = bnn.conv2d %s, %w {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x3x3xf32>, tensor<2x2x3x3xf32> -> tensor<1x2x3x3xf32>
  func.return %y : tensor<1x2x3x3xf32>
}

// -----

// hardtanh(x, 0, 1) (ONNX's Clip(0, 1), which torch.onnx's optimiser makes of
// relu(hardtanh(x))) is 0 wherever x <= 0, as relu is: its sign is {0, 1}, not
// {-1, +1} (fuzz seed 20261317 graph 197 compiled it as {-1, +1} through ONNX).
// CHECK-LABEL: func.func @unipolar_clip
// CHECK: bnn.conv2d {{.*}}bnnc.binarized = "input {0, 1}: x > 0 ? 1 : 0; {0, a} unipolar
// CHECK-NOT: {-1, +1}
func.func @unipolar_clip(%x: tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32> {
  %w = arith.constant dense<[[[[1.0, -1.0, 1.0], [1.0, 1.0, 1.0], [-1.0, -1.0, 1.0]], [[1.0, -1.0, 1.0], [1.0, 1.0, 1.0], [-1.0, -1.0, 1.0]]], [[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]]]> : tensor<2x2x3x3xf32>
  %r = bnn.hardtanh %x {min_val = 0.0 : f32, max_val = 1.0 : f32} : tensor<1x2x3x3xf32>
  %s = bnn.signum %r : tensor<1x2x3x3xf32>
  %y = bnn.conv2d %s, %w {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x3x3xf32>, tensor<2x2x3x3xf32> -> tensor<1x2x3x3xf32>
  func.return %y : tensor<1x2x3x3xf32>
}

// -----

// A binarizer of a layer rewritten earlier in the same pass reads the rewrite
// (the value sets were computed before it, with the old conv's result, which is
// erased: the pass used to leave a bnn.sign of it, invalid IR).
// CHECK-LABEL: func.func @binarize_rewritten_layer
// CHECK: bnn.conv2d %{{.*}}, %{{.*}} {bnnc.binarized = "input {0, 1}
// CHECK: %[[H:.*]] = bnn.mul %{{.*}}, %{{.*}}
// CHECK: %[[R:.*]] = bnn.add %[[H]], %{{.*}}
// CHECK-NEXT: %[[S:.*]] = bnn.sign %[[R]]
// CHECK-NEXT: bnn.conv2d %[[S]], %{{.*}}
func.func @binarize_rewritten_layer(%x: tensor<1x1x4x4xf32>) -> tensor<1x1x2x2xf32> {
  %w = arith.constant dense<[[[[1.0, -1.0, 1.0], [1.0, 1.0, 1.0], [-1.0, -1.0, 1.0]]]]> : tensor<1x1x3x3xf32>
  %w2 = arith.constant dense<1.0> : tensor<1x1x1x1xf32>
  %zero = arith.constant dense<0.0> : tensor<1x1x1x1xf32>
  %lo = arith.constant dense<-1.0> : tensor<1x1x1x1xf32>
  %hi = arith.constant dense<1.0> : tensor<1x1x1x1xf32>
  %r = bnn.relu %x : tensor<1x1x4x4xf32>
  %s = bnn.signum %r : tensor<1x1x4x4xf32>
  %y = bnn.conv2d %s, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x1x4x4xf32>, tensor<1x1x3x3xf32> -> tensor<1x1x2x2xf32>
  %c = bnn.compare %y, %zero {predicate = "lt"} : (tensor<1x1x2x2xf32>, tensor<1x1x1x1xf32>) -> tensor<1x1x2x2xf32>
  %b = bnn.where %c, %lo, %hi : (tensor<1x1x2x2xf32>, tensor<1x1x1x1xf32>, tensor<1x1x1x1xf32>) -> tensor<1x1x2x2xf32>
  %z = bnn.conv2d %b, %w2 {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x1x2x2xf32>, tensor<1x1x1x1xf32> -> tensor<1x1x2x2xf32>
  func.return %z : tensor<1x1x2x2xf32>
}

// -----

// torch.sign of a bias-free binary conv's accumulator: exact zeros by
// construction, three values; left as it is (a float op computes it exactly).
// CHECK-LABEL: func.func @three_valued
// CHECK: %[[A:.*]] = bnn.conv2d %{{.*}}, %{{.*}}
// CHECK: %[[T:.*]] = bnn.signum %[[A]]
// CHECK: bnn.conv2d %[[T]]
func.func @three_valued(%x: tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32> {
  %w = arith.constant dense<1.0> : tensor<2x2x1x1xf32>
  %s = bnn.sign %x : tensor<1x2x3x3xf32>
  %a = bnn.conv2d %s, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x3x3xf32>, tensor<2x2x1x1xf32> -> tensor<1x2x3x3xf32>
  %t = bnn.signum %a : tensor<1x2x3x3xf32>
  %y = bnn.conv2d %t, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x3x3xf32>, tensor<2x2x1x1xf32> -> tensor<1x2x3x3xf32>
  func.return %y : tensor<1x2x3x3xf32>
}

// -----

// Equality with a threshold is not a sign of x - t: left alone, with its
// operands back (where(x >= t) is @where_ge_threshold below).
// CHECK-LABEL: func.func @threshold
// CHECK: bnn.compare %x, %{{.*}} {predicate = "eq"}
// CHECK: bnn.where
// CHECK-NOT: bnn.sign
// CHECK-NOT: bnn.sub
func.func @threshold(%x: tensor<1x4xf32>) -> tensor<1x4xf32> {
  %t = arith.constant dense<0.5> : tensor<1x1xf32>
  %p = arith.constant dense<1.0> : tensor<1x1xf32>
  %m = arith.constant dense<-1.0> : tensor<1x1xf32>
  %c = bnn.compare %x, %t {predicate = "eq"} : (tensor<1x4xf32>, tensor<1x1xf32>) -> tensor<1x4xf32>
  %w = bnn.where %c, %p, %m : (tensor<1x4xf32>, tensor<1x1xf32>, tensor<1x1xf32>) -> tensor<1x4xf32>
  func.return %w : tensor<1x4xf32>
}

// -----

// A flatten between the binariser and a linear layer: the sign moves after
// the reshape, next to the layer (a copy of +-1 values is the same either way).
// CHECK-LABEL: func.func @sign_then_flatten
// CHECK: %[[R:.*]] = bnn.reshape %x
// CHECK-NEXT: %[[S:.*]] = bnn.sign %[[R]]
// CHECK-NEXT: bnn.linear %[[S]]
func.func @sign_then_flatten(%x: tensor<1x2x2x2xf32>) -> tensor<1x3xf32> {
  %w = arith.constant dense<1.0> : tensor<3x8xf32>
  %s = bnn.signum %x : tensor<1x2x2x2xf32>
  %f = bnn.reshape %s : (tensor<1x2x2x2xf32>) -> tensor<1x8xf32>
  %y = bnn.linear %f, %w : tensor<1x8xf32>, tensor<3x8xf32> -> tensor<1x3xf32>
  func.return %y : tensor<1x3xf32>
}

// -----

// A max pool between the binariser and a conv: max commutes with sign (both
// non-decreasing), so the sign moves next to the conv.
// CHECK-LABEL: func.func @sign_then_maxpool
// CHECK: %[[P:.*]] = bnn.max_pool2d %x
// CHECK-NEXT: %[[S:.*]] = bnn.sign %[[P]]
// CHECK-NEXT: bnn.conv2d %[[S]]
func.func @sign_then_maxpool(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x2x2xf32> {
  %w = arith.constant dense<1.0> : tensor<2x2x1x1xf32>
  %z = arith.constant dense<0.0> : tensor<1x1x1x1xf32>
  %p = arith.constant dense<1.0> : tensor<1x1x1x1xf32>
  %m = arith.constant dense<-1.0> : tensor<1x1x1x1xf32>
  %c = bnn.compare %x, %z {predicate = "ge"} : (tensor<1x2x4x4xf32>, tensor<1x1x1x1xf32>) -> tensor<1x2x4x4xf32>
  %s = bnn.where %c, %p, %m : (tensor<1x2x4x4xf32>, tensor<1x1x1x1xf32>, tensor<1x1x1x1xf32>) -> tensor<1x2x4x4xf32>
  %q = bnn.max_pool2d %s {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>} : (tensor<1x2x4x4xf32>) -> tensor<1x2x2x2xf32>
  %y = bnn.conv2d %q, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x2x2xf32>, tensor<2x2x1x1xf32> -> tensor<1x2x2x2xf32>
  func.return %y : tensor<1x2x2x2xf32>
}

// -----

// Weights an STE leaves within an ulp of +-alpha (Bi-Real's HardBinaryConv:
// a - c + c) are +-alpha to fold-weight-binarization, so the popcount form's
// shift is half of alpha_c * S_c (S = sum of signs), not of the float weights:
// channel 0 is alpha = 0.1, S = 1; channel 1 alpha = 0.100000009, S = -1. With
// the float weights' sum (0.050000004, -0.05000001) the epilogue's integer
// offset was not found and a tie at exactly 0 took that rounding error's sign.
// CHECK-LABEL: func.func @unipolar_ste_weights
// CHECK: %[[D:.*]] = bnn.conv2d %{{.*}}, %{{.*}} {bnnc.binarized = "input {0, 1}: x > 0 ? 1 : 0; {0, a} unipolar
// CHECK: %[[H:.*]] = bnn.mul %[[D]], %{{.*}}
// CHECK: %[[K:.*]] = arith.constant dense<{{\[\[\[\[}}5.000000e-02]], {{\[\[}}-0.0500000045]]]]> : tensor<1x2x1x1xf32>
// CHECK: bnn.add %[[H]], %[[K]]
func.func @unipolar_ste_weights(%x: tensor<1x3x2x2xf32>) -> tensor<1x2x2x2xf32> {
  %w = arith.constant dense<[[[[0.1]], [[0.10000000894069672]], [[-0.1]]], [[[0.1]], [[-0.10000000894069672]], [[-0.10000000894069672]]]]> : tensor<2x3x1x1xf32>
  %r = bnn.relu %x : tensor<1x3x2x2xf32>
  %s = bnn.signum %r : tensor<1x3x2x2xf32>
  %y = bnn.conv2d %s, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x3x2x2xf32>, tensor<2x3x1x1xf32> -> tensor<1x2x2x2xf32>
  func.return %y : tensor<1x2x2x2xf32>
}

// -----

// A threshold: where(x >= 0.25, 1, -1) is bnn.sign(x - 0.25), exact in IEEE
// float32 (x - t is 0 only when x == t and keeps the sign of x - t otherwise).
// CHECK-LABEL: func.func @where_ge_threshold
// CHECK-NEXT: %[[T:.*]] = arith.constant dense<2.500000e-01> : tensor<1x1x1x1xf32>
// CHECK-NEXT: %[[D:.*]] = bnn.sub %x, %[[T]]
// CHECK-NEXT: %[[S:.*]] = bnn.sign %[[D]]
// CHECK-NEXT: func.return %[[S]]
func.func @where_ge_threshold(%x: tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32> {
  %t = arith.constant dense<0.25> : tensor<1x1x1x1xf32>
  %p = arith.constant dense<1.0> : tensor<1x1x1x1xf32>
  %m = arith.constant dense<-1.0> : tensor<1x1x1x1xf32>
  %c = bnn.compare %x, %t {predicate = "ge"} : (tensor<1x2x3x3xf32>, tensor<1x1x1x1xf32>) -> tensor<1x2x3x3xf32>
  %w = bnn.where %c, %p, %m : (tensor<1x2x3x3xf32>, tensor<1x1x1x1xf32>, tensor<1x1x1x1xf32>) -> tensor<1x2x3x3xf32>
  func.return %w : tensor<1x2x3x3xf32>
}

// -----

// Per-channel thresholds on the left, t < x (x > t: x == t goes to -1), into
// a conv: a binary conv of -sign(-(x - t)).
// CHECK-LABEL: func.func @per_channel_threshold_lhs
// CHECK: %[[D:.*]] = bnn.sub %x, %t
// CHECK: %[[N:.*]] = bnn.mul %[[D]], %[[M:.*]] :
// CHECK-NEXT: %[[S:.*]] = bnn.sign %[[N]]
// CHECK-NEXT: %[[B:.*]] = bnn.mul %[[S]], %[[M]]
// CHECK: bnn.conv2d %[[B]]
// CHECK-NOT: bnn.compare
func.func @per_channel_threshold_lhs(%x: tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32> {
  %t = arith.constant dense<[[[[0.5]], [[-1.5]]]]> : tensor<1x2x1x1xf32>
  %p = arith.constant dense<1.0> : tensor<1x1x1x1xf32>
  %m = arith.constant dense<-1.0> : tensor<1x1x1x1xf32>
  %w = arith.constant dense<1.0> : tensor<2x2x1x1xf32>
  %c = bnn.compare %t, %x {predicate = "lt"} : (tensor<1x2x1x1xf32>, tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %s = bnn.where %c, %p, %m : (tensor<1x2x3x3xf32>, tensor<1x1x1x1xf32>, tensor<1x1x1x1xf32>) -> tensor<1x2x3x3xf32>
  %y = bnn.conv2d %s, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x3x3xf32>, tensor<2x2x1x1xf32> -> tensor<1x2x3x3xf32>
  func.return %y : tensor<1x2x3x3xf32>
}

// -----

// A threshold compare that is not a binariser (a mask for float math) keeps
// its operands and predicate.
// CHECK-LABEL: func.func @threshold_left_alone
// CHECK-NEXT: %[[T:.*]] = arith.constant dense<2.500000e-01>
// CHECK-NEXT: %[[C:.*]] = bnn.compare %[[T]], %x {predicate = "le"}
// CHECK-NEXT: %[[M:.*]] = bnn.mul %[[C]], %x
// CHECK-NEXT: func.return %[[M]]
func.func @threshold_left_alone(%x: tensor<1x4xf32>) -> tensor<1x4xf32> {
  %t = arith.constant dense<0.25> : tensor<1x1xf32>
  %c = bnn.compare %t, %x {predicate = "le"} : (tensor<1x1xf32>, tensor<1x4xf32>) -> tensor<1x4xf32>
  %m = bnn.mul %c, %x : (tensor<1x4xf32>, tensor<1x4xf32>) -> tensor<1x4xf32>
  func.return %m : tensor<1x4xf32>
}
