// RUN: %bnnc-opt %s | %bnnc-opt | filecheck %s
// RUN: %bnnc-opt %s --print-op-generic | %bnnc-opt | filecheck %s

// Every bnn op prints and parses back to the same IR.

// CHECK-LABEL: func.func @all_ops
func.func @all_ops(%x: tensor<1x3x8x8xf32>, %w: tensor<4x3x3x1xi64>, %m: tensor<4xf32>, %fw: tensor<4x3x3x3xf32>, %c: tensor<3xf32>) -> tensor<1x10xf32> {
  // CHECK: %[[S:.*]] = bnn.sign %{{.*}} : tensor<1x3x8x8xf32>
  %s = bnn.sign %x : tensor<1x3x8x8xf32>
  // CHECK: bnn.bconv2d %[[S]], %{{.*}} multiplier %{{.*}} : tensor<4xf32> bias %{{.*}} : tensor<4xf32> {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x8x8xf32>, tensor<4x3x3x1xi64> -> tensor<1x4x4x4xf32>
  %b = bnn.bconv2d %s, %w multiplier %m : tensor<4xf32> bias %m : tensor<4xf32> {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64} : tensor<1x3x8x8xf32>, tensor<4x3x3x1xi64> -> tensor<1x4x4x4xf32>
  // CHECK: bnn.conv2d %{{.*}}, %{{.*}} bias %{{.*}} : tensor<4xf32> {{.*}}groups = 1 : i64{{.*}} -> tensor<1x4x8x8xf32>
  %f = bnn.conv2d %x, %fw bias %m : tensor<4xf32> {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32> -> tensor<1x4x8x8xf32>
  // CHECK: bnn.batch_norm
  %bn = bnn.batch_norm %x, %c, %c, %c, %c {epsilon = 1.000000e-05 : f32} : (tensor<1x3x8x8xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) -> tensor<1x3x8x8xf32>
  // CHECK: bnn.relu
  %r = bnn.relu %bn : tensor<1x3x8x8xf32>
  // CHECK: bnn.abs
  %ab = bnn.abs %r : tensor<1x3x8x8xf32>
  // CHECK: bnn.hardtanh %{{.*}} {min_val = -1.000000e+00 : f32, max_val = 1.000000e+00 : f32}
  %h = bnn.hardtanh %ab {min_val = -1.0 : f32, max_val = 1.0 : f32} : tensor<1x3x8x8xf32>
  // CHECK: bnn.prelu
  %p = bnn.prelu %h, %c : (tensor<1x3x8x8xf32>, tensor<3xf32>) -> tensor<1x3x8x8xf32>
  // CHECK: bnn.add
  %a = bnn.add %p, %x : (tensor<1x3x8x8xf32>, tensor<1x3x8x8xf32>) -> tensor<1x3x8x8xf32>
  %c4 = bnn.reshape %c : (tensor<3xf32>) -> tensor<3x1x1xf32>
  // CHECK: bnn.mul {{.*}} : (tensor<1x3x8x8xf32>, tensor<3x1x1xf32>) -> tensor<1x3x8x8xf32>
  %mu = bnn.mul %a, %c4 : (tensor<1x3x8x8xf32>, tensor<3x1x1xf32>) -> tensor<1x3x8x8xf32>
  // CHECK: bnn.sub
  %su = bnn.sub %mu, %c4 : (tensor<1x3x8x8xf32>, tensor<3x1x1xf32>) -> tensor<1x3x8x8xf32>
  // CHECK: bnn.div
  %di = bnn.div %su, %c4 : (tensor<1x3x8x8xf32>, tensor<3x1x1xf32>) -> tensor<1x3x8x8xf32>
  // CHECK: bnn.mean %{{.*}} {dims = array<i64: 1>}
  %me = bnn.mean %di {dims = array<i64: 1>} : (tensor<1x3x8x8xf32>) -> tensor<1x1x8x8xf32>
  // CHECK: bnn.cat {{.*}} {axis = 1 : i64}
  %ca = bnn.cat %di, %me {axis = 1 : i64} : (tensor<1x3x8x8xf32>, tensor<1x1x8x8xf32>) -> tensor<1x4x8x8xf32>
  // CHECK: bnn.max_pool2d
  %mp = bnn.max_pool2d %ca {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>} : (tensor<1x4x8x8xf32>) -> tensor<1x4x4x4xf32>
  // CHECK: bnn.avg_pool2d {{.*}}count_include_pad = false
  %ap = bnn.avg_pool2d %mp {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, count_include_pad = false} : (tensor<1x4x4x4xf32>) -> tensor<1x4x2x2xf32>
  // NHWC forms (the channels-last pass's): the layout is in the types
  %xn = arith.constant dense<0.0> : tensor<1x8x8x3xf32>
  // CHECK: bnn.conv2d {{.*}}channels_last, channels_last_input{{.*}} : tensor<1x8x8x3xf32>, tensor<4x3x3x3xf32> -> tensor<1x8x8x4xf32>
  %fn = bnn.conv2d %xn, %fw {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, channels_last, channels_last_input} : tensor<1x8x8x3xf32>, tensor<4x3x3x3xf32> -> tensor<1x8x8x4xf32>
  // CHECK: bnn.max_pool2d {{.*}}channels_last{{.*}} : (tensor<1x8x8x4xf32>) -> tensor<1x4x4x4xf32>
  %mn = bnn.max_pool2d %fn {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, channels_last} : (tensor<1x8x8x4xf32>) -> tensor<1x4x4x4xf32>
  // a conv with a fused max pool (fuse-conv-maxpool): the result is the pooled size
  // CHECK: bnn.conv2d {{.*}}channels_last, channels_last_input, pool_kernel = array<i64: 3, 3>, pool_strides = array<i64: 2, 2>, pool_padding = array<i64: 0, 0>, pool_ceil_mode} : tensor<1x8x8x3xf32>, tensor<4x3x3x3xf32> -> tensor<1x4x4x4xf32>
  %fp = bnn.conv2d %xn, %fw {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, channels_last, channels_last_input, pool_kernel = array<i64: 3, 3>, pool_strides = array<i64: 2, 2>, pool_padding = array<i64: 0, 0>, pool_ceil_mode} : tensor<1x8x8x3xf32>, tensor<4x3x3x3xf32> -> tensor<1x4x4x4xf32>
  // CHECK: bnn.avg_pool2d {{.*}}channels_last{{.*}} : (tensor<1x4x4x4xf32>) -> tensor<1x2x2x4xf32>
  %an = bnn.avg_pool2d %mn {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, count_include_pad = true, channels_last} : (tensor<1x4x4x4xf32>) -> tensor<1x2x2x4xf32>
  // CHECK: bnn.adaptive_avg_pool2d
  %gp = bnn.adaptive_avg_pool2d %ap : (tensor<1x4x2x2xf32>) -> tensor<1x4x1x1xf32>
  // CHECK: bnn.reshape
  %fl = bnn.reshape %gp : (tensor<1x4x1x1xf32>) -> tensor<1x4xf32>
  %dw = arith.constant dense<0> : tensor<10x1xi64>
  // CHECK: bnn.bdense
  %bd = bnn.bdense %fl, %dw : tensor<1x4xf32>, tensor<10x1xi64> -> tensor<1x10xf32>
  %lw = arith.constant dense<1.0> : tensor<10x10xf32>
  // CHECK: bnn.linear
  %li = bnn.linear %bd, %lw : tensor<1x10xf32>, tensor<10x10xf32> -> tensor<1x10xf32>
  func.return %li : tensor<1x10xf32>
}
