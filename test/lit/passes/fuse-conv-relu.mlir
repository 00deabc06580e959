// RUN: %bnnc-opt %s -p fuse-conv-relu,fuse-conv-bn --split-input-file | filecheck %s

// conv -> (fused BN) -> ReLU: the ReLU becomes the conv's `relu` property;
// the conv keeps its operands, epilogue and layout flags.
// CHECK-LABEL: func.func @stem
// CHECK: %[[Y:.*]] = bnn.conv2d %x, %{{.*}} post_scale %{{.*}} : tensor<4xf32> post_shift %{{.*}} : tensor<4xf32> {strides = array<i64: 2, 2>, padding = array<i64: 3, 3>, dilations = array<i64: 1, 1>, groups = 1 : i64, channels_last, relu} : tensor<1x3x16x16xf32>, tensor<4x3x7x7xf32> -> tensor<1x8x8x4xf32>
// CHECK-NEXT: func.return %[[Y]]
// CHECK-NOT: bnn.relu
func.func @stem(%x: tensor<1x3x16x16xf32>) -> tensor<1x8x8x4xf32> {
  %w = arith.constant dense<0.5> : tensor<4x3x7x7xf32>
  %s = arith.constant dense<2.0> : tensor<4xf32>
  %t = arith.constant dense<-0.25> : tensor<4xf32>
  %c = bnn.conv2d %x, %w post_scale %s : tensor<4xf32> post_shift %t : tensor<4xf32> {strides = array<i64: 2, 2>, padding = array<i64: 3, 3>, dilations = array<i64: 1, 1>, groups = 1 : i64, channels_last} : tensor<1x3x16x16xf32>, tensor<4x3x7x7xf32> -> tensor<1x8x8x4xf32>
  %r = bnn.relu %c : tensor<1x8x8x4xf32>
  func.return %r : tensor<1x8x8x4xf32>
}

// -----

// Not fused: the conv has another reader (its values before the ReLU are needed).
// CHECK-LABEL: func.func @other_reader
// CHECK: %[[C:.*]] = bnn.conv2d {{.*}}groups = 1 : i64} :
// CHECK: bnn.relu %[[C]]
// CHECK: bnn.add %[[C]]
func.func @other_reader(%x: tensor<1x2x4x4xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) {
  %w = arith.constant dense<0.5> : tensor<2x2x1x1xf32>
  %c = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32> -> tensor<1x2x4x4xf32>
  %r = bnn.relu %c : tensor<1x2x4x4xf32>
  %a = bnn.add %c, %c : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  func.return %r, %a : tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
}

// -----

// conv -> ReLU -> BN: the ReLU fuses, and then the BN does not (fuse-conv-bn
// skips a conv with a fused ReLU: BN after a ReLU is not the conv's affine).
// CHECK-LABEL: func.func @bn_after_relu
// CHECK: %[[C:.*]] = bnn.conv2d %x, %{{.*}} {{.*}}relu} :
// CHECK-NEXT: bnn.batch_norm %[[C]],
func.func @bn_after_relu(%x: tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32> {
  %w = arith.constant dense<0.5> : tensor<2x2x1x1xf32>
  %mean = arith.constant dense<0.5> : tensor<2xf32>
  %var = arith.constant dense<2.0> : tensor<2xf32>
  %gamma = arith.constant dense<1.5> : tensor<2xf32>
  %beta = arith.constant dense<0.25> : tensor<2xf32>
  %c = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x3x3xf32>, tensor<2x2x1x1xf32> -> tensor<1x2x3x3xf32>
  %r = bnn.relu %c : tensor<1x2x3x3xf32>
  %z = bnn.batch_norm %r, %mean, %var, %gamma, %beta {epsilon = 0.0 : f32} : (tensor<1x2x3x3xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x3x3xf32>
  func.return %z : tensor<1x2x3x3xf32>
}

// -----

// Not fused: a conv whose max pool is already fused (the ReLU would come
// after the pool, not in the conv's epilogue).
// CHECK-LABEL: func.func @after_fused_pool
// CHECK: %[[C:.*]] = bnn.conv2d {{.*}}pool_padding = array<i64: 0, 0>} :
// CHECK-NEXT: bnn.relu %[[C]]
func.func @after_fused_pool(%x: tensor<1x3x8x8xf32>) -> tensor<1x4x4x4xf32> {
  %w = arith.constant dense<0.5> : tensor<4x3x1x1xf32>
  %c = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, channels_last, pool_kernel = array<i64: 2, 2>, pool_strides = array<i64: 2, 2>, pool_padding = array<i64: 0, 0>} : tensor<1x3x8x8xf32>, tensor<4x3x1x1xf32> -> tensor<1x4x4x4xf32>
  %r = bnn.relu %c : tensor<1x4x4x4xf32>
  func.return %r : tensor<1x4x4x4xf32>
}
