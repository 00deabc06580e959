// RUN: %bnnc-opt %s -p fuse-residual-add --split-input-file | filecheck %s
// RUN: %bnnc-opt %s -p fuse-residual-add,fuse-output-transform,fuse-bn-sign --split-input-file | filecheck %s --check-prefix=LATER

// The shortcut add joins the conv's epilogue, after its PReLU and clamp; the
// add's operand order is kept (the conv was the lhs: no residual_lhs).
// CHECK-LABEL: func.func @fused
// CHECK: %[[Y:.*]] = bnn.bconv2d %{{.*}}, %{{.*}} multiplier %{{.*}} : tensor<2xf32> slope %{{.*}} : tensor<2xf32> residual %r : tensor<1x2x4x4xf32> {{{.*}}clamp_min = -1.000000e+00 : f32{{.*}}}
// CHECK-NOT: residual_lhs
// CHECK-NOT: bnn.add
// CHECK-NEXT: func.return %[[Y]]
func.func @fused(%x: tensor<1x2x4x4xf32>, %r: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %m = arith.constant dense<[2.0, 4.0]> : tensor<2xf32>
  %s = arith.constant dense<[0.25, 0.5]> : tensor<2xf32>
  %y = bnn.bconv2d %x, %w multiplier %m : tensor<2xf32> slope %s : tensor<2xf32> {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64, clamp_min = -1.0 : f32} : tensor<1x2x4x4xf32>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %a = bnn.add %y, %r : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  func.return %a : tensor<1x2x4x4xf32>
}

// -----

// The residual as the add's lhs (r + y) is recorded; a residual defined after
// the conv is fine: the fused op takes the add's place.
// CHECK-LABEL: func.func @lhs_later
// CHECK: %[[R:.*]] = bnn.relu
// CHECK-NEXT: %[[Y:.*]] = bnn.bconv2d %x, %{{.*}} residual %[[R]] : tensor<1x2x4x4xf32> {{{.*}}residual_lhs{{.*}}}
// CHECK-NEXT: func.return %[[Y]]
func.func @lhs_later(%x: tensor<1x2x4x4xf32>, %r: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %y = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x2x4x4xf32>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %rr = bnn.relu %r : tensor<1x2x4x4xf32>
  %a = bnn.add %rr, %y : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  func.return %a : tensor<1x2x4x4xf32>
}

// -----

// Left alone: the conv result has another user (it must still be written).
// CHECK-LABEL: func.func @other_user
// CHECK: bnn.bconv2d
// CHECK-NOT: residual
// CHECK: bnn.add
func.func @other_user(%x: tensor<1x2x4x4xf32>, %r: tensor<1x2x4x4xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %y = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x2x4x4xf32>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %a = bnn.add %y, %r : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  func.return %a, %y : tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
}

// -----

// Left alone: a broadcasting add (the other operand is not the same shape).
// CHECK-LABEL: func.func @broadcast
// CHECK: bnn.bconv2d
// CHECK-NOT: residual
// CHECK: bnn.add
func.func @broadcast(%x: tensor<1x2x4x4xf32>, %r: tensor<1x2x1x4xf32>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %y = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x2x4x4xf32>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %a = bnn.add %y, %r : (tensor<1x2x4x4xf32>, tensor<1x2x1x4xf32>) -> tensor<1x2x4x4xf32>
  func.return %a : tensor<1x2x4x4xf32>
}

// -----

// Left alone: the add doubles the conv result itself (y + y).
// CHECK-LABEL: func.func @self_add
// CHECK: bnn.bconv2d
// CHECK-NOT: residual
// CHECK: bnn.add
func.func @self_add(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %y = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x2x4x4xf32>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %a = bnn.add %y, %y : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  func.return %a : tensor<1x2x4x4xf32>
}

// -----

// An add before a PReLU: the add is fused, the PReLU that follows the sum
// stays a separate op; fuse-output-transform run afterwards must not fold it
// into the conv's slope (that would apply it before the residual add), and
// fuse-bn-sign must not turn a sign of the sum into thresholds of the dot.
// CHECK-LABEL: func.func @add_then_prelu
// CHECK: %[[Y:.*]] = bnn.bconv2d {{.*}} residual
// CHECK-NEXT: bnn.prelu %[[Y]]
// LATER-LABEL: func.func @add_then_prelu
// LATER: %[[Y:.*]] = bnn.bconv2d
// LATER-NOT: slope
// LATER-SAME: residual
// LATER-NEXT: %[[P:.*]] = bnn.prelu %[[Y]]
// LATER-NEXT: %[[S:.*]] = bnn.sign %[[Y]]
func.func @add_then_prelu(%x: tensor<1x2x4x4xf32>, %r: tensor<1x2x4x4xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %s = arith.constant dense<[0.25, 0.5]> : tensor<2xf32>
  %y = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x2x4x4xf32>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %a = bnn.add %y, %r : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %p = bnn.prelu %a, %s : (tensor<1x2x4x4xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  %g = bnn.sign %a : tensor<1x2x4x4xf32>
  func.return %p, %g : tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
}

// -----

// Left alone: a conv that writes packed bits (threshold) has no float result to add to.
// CHECK-LABEL: func.func @bits
// CHECK-NOT: residual
// CHECK: func.return
func.func @bits(%x: tensor<1x2x4x4xf32>) -> tensor<1x1x4x4xi64> {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %t = arith.constant dense<[0, 1]> : tensor<2xi64>
  %y = bnn.bconv2d %x, %w threshold %t : tensor<2xi64> {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x2x4x4xf32>, tensor<2x1x1x1xi64> -> tensor<1x1x4x4xi64>
  func.return %y : tensor<1x1x4x4xi64>
}

// -----

// The sum's sign feeds the next binary conv: fuse-bn-sign must leave the
// fused conv writing floats (the sign is of dot + residual, not of the dot).
// LATER-LABEL: func.func @sum_then_sign
// LATER: %[[Y:.*]] = bnn.bconv2d %x, %{{.*}} residual %r
// LATER-NOT: threshold
// LATER: bnn.sign %[[Y]]
// LATER-NOT: threshold
// LATER: func.return
func.func @sum_then_sign(%x: tensor<1x2x4x4xf32>, %r: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %y = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x2x4x4xf32>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %a = bnn.add %y, %r : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %g = bnn.sign %a : tensor<1x2x4x4xf32>
  %z = bnn.bconv2d %g, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x2x4x4xf32>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  func.return %z : tensor<1x2x4x4xf32>
}

// -----

// A PReLU of the sum (its only user) stays after it: fuse-output-transform
// would apply it to the conv value, before the residual add.
// LATER-LABEL: func.func @sum_then_prelu
// LATER: %[[Y:.*]] = bnn.bconv2d %x, %w residual %r
// LATER-NEXT: %[[P:.*]] = bnn.prelu %[[Y]]
// LATER-NEXT: func.return %[[P]]
func.func @sum_then_prelu(%x: tensor<1x2x4x4xf32>, %r: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %s = arith.constant dense<[0.25, 0.5]> : tensor<2xf32>
  %y = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x2x4x4xf32>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %a = bnn.add %y, %r : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %p = bnn.prelu %a, %s : (tensor<1x2x4x4xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  func.return %p : tensor<1x2x4x4xf32>
}
