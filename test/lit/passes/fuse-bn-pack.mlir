// RUN: %bnnc-opt %s -p fuse-bn-pack --split-input-file | filecheck %s

// scale = gamma / sqrt(var + eps) = gamma (var 1, eps 0), shift = beta - mean * scale:
//   channel 0: fma(x, 1, -2)    < 0  iff x < 2                -> threshold 2, direction 1
//   channel 1: fma(x, -1, 0.5)  < 0  iff x > 0.5, -x < -0.5   -> threshold -0.5, direction -1
//   channel 2: fma(x, 0, 1)     < 0  never                    -> threshold -inf, direction 1
// The pack reads the batch norm's input; the batch norm is gone.
// CHECK-LABEL: func.func @thresholds
// CHECK-DAG: %[[T:.*]] = arith.constant dense<[2.000000e+00, -5.000000e-01, 0xff800000]> : tensor<3xf32>
// CHECK-DAG: %[[D:.*]] = arith.constant dense<[1.000000e+00, -1.000000e+00, 1.000000e+00]> : tensor<3xf32>
// CHECK: %[[P:.*]] = bnn.pack %x threshold %[[T]] : tensor<3xf32> direction %[[D]] : tensor<3xf32> {groups = 1 : i64} : tensor<1x3x4x4xf32> -> tensor<1x1x4x4xi64>
// CHECK-NOT: bnn.batch_norm
// CHECK: func.return %[[P]]
func.func @thresholds(%x: tensor<1x3x4x4xf32>) -> tensor<1x1x4x4xi64> {
  %mean = arith.constant dense<[2.0, 0.0, 0.0]> : tensor<3xf32>
  %var = arith.constant dense<1.0> : tensor<3xf32>
  %gamma = arith.constant dense<[1.0, -1.0, 0.0]> : tensor<3xf32>
  %beta = arith.constant dense<[0.0, 0.5, 1.0]> : tensor<3xf32>
  %y = bnn.batch_norm %x, %mean, %var, %gamma, %beta {epsilon = 0.0 : f32} : (tensor<1x3x4x4xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) -> tensor<1x3x4x4xf32>
  %p = bnn.pack %y {groups = 1 : i64} : tensor<1x3x4x4xf32> -> tensor<1x1x4x4xi64>
  func.return %p : tensor<1x1x4x4xi64>
}

// -----

// Left alone: a float op reads the batch norm too (the pack would save nothing).
// CHECK-LABEL: func.func @float_reader
// CHECK: %[[Y:.*]] = bnn.batch_norm
// CHECK: bnn.pack %[[Y]] {groups = 1 : i64}
// CHECK-NOT: threshold
func.func @float_reader(%x: tensor<1x3x4x4xf32>) -> (tensor<1x1x4x4xi64>, tensor<1x3x4x4xf32>) {
  %mean = arith.constant dense<[2.0, 0.0, 0.0]> : tensor<3xf32>
  %var = arith.constant dense<1.0> : tensor<3xf32>
  %gamma = arith.constant dense<[1.0, -1.0, 0.0]> : tensor<3xf32>
  %beta = arith.constant dense<[0.0, 0.5, 1.0]> : tensor<3xf32>
  %y = bnn.batch_norm %x, %mean, %var, %gamma, %beta {epsilon = 0.0 : f32} : (tensor<1x3x4x4xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) -> tensor<1x3x4x4xf32>
  %p = bnn.pack %y {groups = 1 : i64} : tensor<1x3x4x4xf32> -> tensor<1x1x4x4xi64>
  %r = bnn.relu %y : tensor<1x3x4x4xf32>
  func.return %p, %r : tensor<1x1x4x4xi64>, tensor<1x3x4x4xf32>
}

// -----

// Left alone: gamma 0 with beta < 0 gives bit 1 for every finite x but 0 for
// the infinities (0 * inf is NaN): no threshold says that.
// CHECK-LABEL: func.func @no_threshold
// CHECK: %[[Y:.*]] = bnn.batch_norm
// CHECK: bnn.pack %[[Y]] {groups = 1 : i64}
// CHECK-NOT: threshold
func.func @no_threshold(%x: tensor<1x3x4x4xf32>) -> tensor<1x1x4x4xi64> {
  %mean = arith.constant dense<0.0> : tensor<3xf32>
  %var = arith.constant dense<1.0> : tensor<3xf32>
  %gamma = arith.constant dense<[1.0, 1.0, 0.0]> : tensor<3xf32>
  %beta = arith.constant dense<[0.0, 0.0, -1.0]> : tensor<3xf32>
  %y = bnn.batch_norm %x, %mean, %var, %gamma, %beta {epsilon = 0.0 : f32} : (tensor<1x3x4x4xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) -> tensor<1x3x4x4xf32>
  %p = bnn.pack %y {groups = 1 : i64} : tensor<1x3x4x4xf32> -> tensor<1x1x4x4xi64>
  func.return %p : tensor<1x1x4x4xi64>
}
