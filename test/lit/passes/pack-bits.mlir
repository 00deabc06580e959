// RUN: %bnnc-opt %s -p pack-bits | filecheck %s

// One pack per (value, groups), reading x itself; the sign dies with its last
// binary user. Convs with other groups get their own pack.
// CHECK-LABEL: func.func @shared
// CHECK-NOT: bnn.sign
// CHECK-DAG: %[[P1:.*]] = bnn.pack %x {groups = 1 : i64} : tensor<1x4x4x4xf32> -> tensor<1x1x4x4xi64>
// CHECK-DAG: %[[P2:.*]] = bnn.pack %x {groups = 2 : i64} : tensor<1x4x4x4xf32> -> tensor<1x2x4x4xi64>
// CHECK: bnn.bconv2d %[[P1]], {{.*}}in_channels = 4 : i64} : tensor<1x1x4x4xi64>
// CHECK: bnn.bconv2d %[[P1]], {{.*}}in_channels = 4 : i64} : tensor<1x1x4x4xi64>
// CHECK: bnn.bconv2d %[[P2]], {{.*}}groups = 2 : i64{{.*}}in_channels = 4 : i64} : tensor<1x2x4x4xi64>
func.func @shared(%x: tensor<1x4x4x4xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %s = bnn.sign %x : tensor<1x4x4x4xf32>
  %a = bnn.bconv2d %s, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x4x4x4xf32>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %b = bnn.bconv2d %s, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x4x4x4xf32>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %c = bnn.bconv2d %s, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 2 : i64, pad_value = 0 : i64} : tensor<1x4x4x4xf32>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  func.return %a, %b, %c : tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
}

// A sign that also feeds a float op stays for it; dense layers keep f32 input.
// CHECK-LABEL: func.func @float_user
// CHECK: %[[P:.*]] = bnn.pack %x
// CHECK: %[[S:.*]] = bnn.sign %x
// CHECK: bnn.bconv2d %[[P]]
// CHECK: bnn.relu %[[S]]
func.func @float_user(%x: tensor<1x4x4x4xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x4x4x4xf32>) {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %s = bnn.sign %x : tensor<1x4x4x4xf32>
  %a = bnn.bconv2d %s, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x4x4x4xf32>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %r = bnn.relu %s : tensor<1x4x4x4xf32>
  func.return %a, %r : tensor<1x2x4x4xf32>, tensor<1x4x4x4xf32>
}
