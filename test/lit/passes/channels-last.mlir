// RUN: %bnnc-opt %s -p 'channels-last{min_elements=0}' --split-input-file | filecheck %s
// RUN: %bnnc-opt %s -p channels-last --split-input-file | filecheck %s --check-prefix=SMALL
// RUN: %bnnc-opt %s -p 'channels-last{min_elements=0 every_float_bconv=true}' --split-input-file | filecheck %s --check-prefix=EVERY

// By default these 32-element results are too small to pay for transposes.
// SMALL-NOT: channels_last
// SMALL-NOT: bnn.gather

// A Bi-Real-style chain: conv A feeds a pack and is conv B's residual. Both
// float results become N x H x W x C, the pack reads that layout, B takes A's
// result as its residual directly, and only the function's result (an
// NCHW value) is transposed back, once.
// CHECK-LABEL: func.func @chain
// CHECK:      %[[A:.*]] = bnn.bconv2d %x, %{{.*}} {{{.*}}channels_last{{.*}}} : tensor<1x1x4x4xi64>, tensor<2x1x1x1xi64> -> tensor<1x4x4x2xf32>
// CHECK-NEXT: %[[P:.*]] = bnn.pack %[[A]] {{{.*}}channels_last{{.*}}} : tensor<1x4x4x2xf32> -> tensor<1x1x4x4xi64>
// CHECK-NEXT: %[[B:.*]] = bnn.bconv2d %[[P]], %{{.*}} residual %[[A]] : tensor<1x4x4x2xf32> {{{.*}}channels_last{{.*}}} : tensor<1x1x4x4xi64>, tensor<2x1x1x1xi64> -> tensor<1x4x4x2xf32>
// CHECK-NEXT: %[[I:.*]] = arith.constant dense<{{\[\[\[\[}}0, 2, 4, 6], {{.*}}> : tensor<1x2x4x4xi64>
// CHECK-NEXT: %[[O:.*]] = bnn.gather %[[B]] at %[[I]] : (tensor<1x4x4x2xf32>, tensor<1x2x4x4xi64>) -> tensor<1x2x4x4xf32>
// CHECK-NEXT: func.return %[[O]]
func.func @chain(%x: tensor<1x1x4x4xi64>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %a = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64, in_channels = 2 : i64} : tensor<1x1x4x4xi64>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %p = bnn.pack %a {groups = 1 : i64} : tensor<1x2x4x4xf32> -> tensor<1x1x4x4xi64>
  %b = bnn.bconv2d %p, %w residual %a : tensor<1x2x4x4xf32> {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64, in_channels = 2 : i64} : tensor<1x1x4x4xi64>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  func.return %b : tensor<1x2x4x4xf32>
}

// -----

// A residual that arrives in NCHW (a function argument here, a float
// shortcut in a network) is transposed into NHWC once, where it is defined.
// CHECK-LABEL: func.func @nchw_residual
// CHECK-NEXT: %[[I:.*]] = arith.constant dense<{{\[\[\[\[}}0, 16], [1, 17]{{.*}}> : tensor<1x4x4x2xi64>
// CHECK-NEXT: %[[R:.*]] = bnn.gather %r at %[[I]] : (tensor<1x2x4x4xf32>, tensor<1x4x4x2xi64>) -> tensor<1x4x4x2xf32>
// CHECK:      %[[B:.*]] = bnn.bconv2d %x, %{{.*}} residual %[[R]] : tensor<1x4x4x2xf32> {{{.*}}channels_last{{.*}}}
// CHECK-NEXT: %[[P:.*]] = bnn.pack %[[B]] {{{.*}}channels_last{{.*}}}
// CHECK-NEXT: func.return %[[P]]
func.func @nchw_residual(%x: tensor<1x1x4x4xi64>, %r: tensor<1x2x4x4xf32>) -> tensor<1x1x4x4xi64> {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %b = bnn.bconv2d %x, %w residual %r : tensor<1x2x4x4xf32> {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64, in_channels = 2 : i64} : tensor<1x1x4x4xi64>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %p = bnn.pack %b {groups = 1 : i64} : tensor<1x2x4x4xf32> -> tensor<1x1x4x4xi64>
  func.return %p : tensor<1x1x4x4xi64>
}

// -----

// A float user of a converted conv (relu) reads one NHWC -> NCHW transpose;
// the pack reads the conv directly.
// CHECK-LABEL: func.func @float_user
// CHECK:      %[[A:.*]] = bnn.bconv2d {{.*}}channels_last{{.*}} -> tensor<1x4x4x2xf32>
// CHECK-NEXT: arith.constant
// CHECK-NEXT: %[[T:.*]] = bnn.gather %[[A]]
// CHECK-NEXT: bnn.pack %[[A]] {{{.*}}channels_last{{.*}}}
// CHECK-NEXT: bnn.relu %[[T]] : tensor<1x2x4x4xf32>
func.func @float_user(%x: tensor<1x1x4x4xi64>) -> (tensor<1x1x4x4xi64>, tensor<1x2x4x4xf32>) {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %a = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64, in_channels = 2 : i64} : tensor<1x1x4x4xi64>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %p = bnn.pack %a {groups = 1 : i64} : tensor<1x2x4x4xf32> -> tensor<1x1x4x4xi64>
  %r = bnn.relu %a : tensor<1x2x4x4xf32>
  func.return %p, %r : tensor<1x1x4x4xi64>, tensor<1x2x4x4xf32>
}

// -----

// A conv whose float result only float ops read stays NCHW: no transpose
// (but for every_float_bconv, the fuzzer's request, which converts it and
// gives the relu a transpose).
// EVERY-LABEL: func.func @float_only
// EVERY:      %[[A:.*]] = bnn.bconv2d {{.*}}channels_last{{.*}} -> tensor<1x4x4x2xf32>
// EVERY-NEXT: arith.constant
// EVERY-NEXT: %[[T:.*]] = bnn.gather %[[A]]
// EVERY-NEXT: bnn.relu %[[T]] : tensor<1x2x4x4xf32>
// CHECK-LABEL: func.func @float_only
// CHECK-NOT:  channels_last
// CHECK-NOT:  bnn.gather
// CHECK:      %[[A:.*]] = bnn.bconv2d {{.*}} -> tensor<1x2x4x4xf32>
// CHECK-NEXT: bnn.relu %[[A]] : tensor<1x2x4x4xf32>
func.func @float_only(%x: tensor<1x1x4x4xi64>) -> tensor<1x2x4x4xf32> {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %a = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64, in_channels = 2 : i64} : tensor<1x1x4x4xi64>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %r = bnn.relu %a : tensor<1x2x4x4xf32>
  func.return %r : tensor<1x2x4x4xf32>
}

// -----

// Left alone: a conv that writes packed bits, and a pack of a value that is
// not a binary conv's result.
// CHECK-LABEL: func.func @left_alone
// CHECK-NOT:  channels_last
// CHECK-NOT:  bnn.gather
// CHECK:      func.return
func.func @left_alone(%x: tensor<1x1x4x4xi64>, %f: tensor<1x2x4x4xf32>) -> (tensor<1x1x4x4xi64>, tensor<1x1x4x4xi64>) {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %t = arith.constant dense<0> : tensor<2xi64>
  %b = bnn.bconv2d %x, %w threshold %t : tensor<2xi64> {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64, in_channels = 2 : i64} : tensor<1x1x4x4xi64>, tensor<2x1x1x1xi64> -> tensor<1x1x4x4xi64>
  %p = bnn.pack %f {groups = 1 : i64} : tensor<1x2x4x4xf32> -> tensor<1x1x4x4xi64>
  func.return %b, %p : tensor<1x1x4x4xi64>, tensor<1x1x4x4xi64>
}

// -----

// A float stem: the conv writes NHWC because its only reader, the max pool,
// feeds only NHWC readers (a pack, a converted conv's residual: B is
// converted, the next block's pack reads it); the pool reads and writes
// NHWC. No transpose until the function's result.
// CHECK-LABEL: func.func @stem
// CHECK:      %[[C:.*]] = bnn.conv2d %x, %{{.*}} {{{.*}}channels_last{{.*}}} : tensor<1x3x8x8xf32>, tensor<2x3x3x3xf32> -> tensor<1x4x4x2xf32>
// CHECK-NOT:  channels_last_input
// CHECK-NEXT: %[[M:.*]] = bnn.max_pool2d %[[C]] {{{.*}}channels_last{{.*}}} : (tensor<1x4x4x2xf32>) -> tensor<1x4x4x2xf32>
// CHECK-NEXT: %[[P:.*]] = bnn.pack %[[M]] {{{.*}}channels_last{{.*}}} : tensor<1x4x4x2xf32> -> tensor<1x1x4x4xi64>
// CHECK-NOT:  bnn.gather
// CHECK:      %[[B:.*]] = bnn.bconv2d %[[P]], %{{.*}} residual %[[M]] : tensor<1x4x4x2xf32> {{{.*}}channels_last{{.*}}}
// CHECK-NEXT: arith.constant
// CHECK-NEXT: %[[O:.*]] = bnn.gather %[[B]]
// CHECK-NEXT: %[[Q:.*]] = bnn.pack %[[B]] {{{.*}}channels_last{{.*}}}
// CHECK-NEXT: func.return %[[O]], %[[Q]]
func.func @stem(%x: tensor<1x3x8x8xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x1x4x4xi64>) {
  %w = arith.constant dense<0.5> : tensor<2x3x3x3xf32>
  %c = bnn.conv2d %x, %w {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x3x8x8xf32>, tensor<2x3x3x3xf32> -> tensor<1x2x4x4xf32>
  %m = bnn.max_pool2d %c {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>} : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %p = bnn.pack %m {groups = 1 : i64} : tensor<1x2x4x4xf32> -> tensor<1x1x4x4xi64>
  %wb = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %b = bnn.bconv2d %p, %wb residual %m : tensor<1x2x4x4xf32> {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64, in_channels = 2 : i64} : tensor<1x1x4x4xi64>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %q = bnn.pack %b {groups = 1 : i64} : tensor<1x2x4x4xf32> -> tensor<1x1x4x4xi64>
  func.return %b, %q : tensor<1x2x4x4xf32>, tensor<1x1x4x4xi64>
}

// -----

// BinaryResNetE's stem: conv -> max pool -> batch norm -> pack. The batch
// norm keeps its input's layout like a pool, so the conv writes NHWC and the
// batch norm reads and writes NHWC (its channel axis last). One that meets
// an NCHW reader (the function's result) keeps the conv NCHW: SMALL.
// CHECK-LABEL: func.func @stem_bn
// CHECK:      %[[C:.*]] = bnn.conv2d %x, %{{.*}} {{{.*}}channels_last{{.*}}} : tensor<1x3x8x8xf32>, tensor<2x3x3x3xf32> -> tensor<1x4x4x2xf32>
// CHECK-NEXT: %[[M:.*]] = bnn.max_pool2d %[[C]] {{{.*}}channels_last{{.*}}} : (tensor<1x4x4x2xf32>) -> tensor<1x4x4x2xf32>
// CHECK-NEXT: %[[N:.*]] = bnn.batch_norm %[[M]], %{{.*}} {{{.*}}channels_last{{.*}}} : (tensor<1x4x4x2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x4x4x2xf32>
// CHECK-NEXT: %[[P:.*]] = bnn.pack %[[N]] {{{.*}}channels_last{{.*}}} : tensor<1x4x4x2xf32> -> tensor<1x1x4x4xi64>
// CHECK-NOT:  bnn.gather
// CHECK-LABEL: func.func @stem_bn_nchw_reader
// CHECK:      bnn.conv2d %x, %{{.*}} {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} :
// CHECK-NOT:  channels_last
func.func @stem_bn(%x: tensor<1x3x8x8xf32>) -> tensor<1x1x4x4xi64> {
  %w = arith.constant dense<0.5> : tensor<2x3x3x3xf32>
  %v = arith.constant dense<[0.5, 2.0]> : tensor<2xf32>
  %c = bnn.conv2d %x, %w {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x3x8x8xf32>, tensor<2x3x3x3xf32> -> tensor<1x2x4x4xf32>
  %m = bnn.max_pool2d %c {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>} : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %n = bnn.batch_norm %m, %v, %v, %v, %v {epsilon = 0.0 : f32} : (tensor<1x2x4x4xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  %p = bnn.pack %n {groups = 1 : i64} : tensor<1x2x4x4xf32> -> tensor<1x1x4x4xi64>
  func.return %p : tensor<1x1x4x4xi64>
}
func.func @stem_bn_nchw_reader(%x: tensor<1x3x8x8xf32>) -> (tensor<1x1x4x4xi64>, tensor<1x2x4x4xf32>) {
  %w = arith.constant dense<0.5> : tensor<2x3x3x3xf32>
  %v = arith.constant dense<[0.5, 2.0]> : tensor<2xf32>
  %c = bnn.conv2d %x, %w {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x3x8x8xf32>, tensor<2x3x3x3xf32> -> tensor<1x2x4x4xf32>
  %m = bnn.max_pool2d %c {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>} : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %n = bnn.batch_norm %m, %v, %v, %v, %v {epsilon = 0.0 : f32} : (tensor<1x2x4x4xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  %p = bnn.pack %n {groups = 1 : i64} : tensor<1x2x4x4xf32> -> tensor<1x1x4x4xi64>
  func.return %p, %n : tensor<1x1x4x4xi64>, tensor<1x2x4x4xf32>
}

// -----

// A downsampling shortcut: the avg pool reads conv A's NHWC result, the 1x1
// float conv reads the pool's NHWC result and writes NHWC for B's residual
// (B is converted: a pack reads it).
// CHECK-LABEL: func.func @shortcut
// CHECK:      %[[A:.*]] = bnn.bconv2d {{.*}}channels_last{{.*}} -> tensor<1x4x4x2xf32>
// CHECK-NOT:  bnn.gather
// CHECK:      %[[M:.*]] = bnn.avg_pool2d %[[A]] {{{.*}}channels_last{{.*}}} : (tensor<1x4x4x2xf32>) -> tensor<1x2x2x2xf32>
// CHECK:      %[[C:.*]] = bnn.conv2d %[[M]], %{{.*}} {{{.*}}channels_last, channels_last_input{{.*}}} : tensor<1x2x2x2xf32>, tensor<3x2x1x1xf32> -> tensor<1x2x2x3xf32>
// CHECK-NOT:  bnn.gather
// CHECK:      bnn.bconv2d %{{.*}}, %{{.*}} residual %[[C]] : tensor<1x2x2x3xf32> {{{.*}}channels_last{{.*}}}
func.func @shortcut(%x: tensor<1x1x4x4xi64>) -> tensor<1x1x2x2xi64> {
  %w = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %a = bnn.bconv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64, in_channels = 2 : i64} : tensor<1x1x4x4xi64>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %m = bnn.avg_pool2d %a {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, count_include_pad = true} : (tensor<1x2x4x4xf32>) -> tensor<1x2x2x2xf32>
  %wf = arith.constant dense<0.25> : tensor<3x2x1x1xf32>
  %c = bnn.conv2d %m, %wf {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x2x2x2xf32>, tensor<3x2x1x1xf32> -> tensor<1x3x2x2xf32>
  %p = bnn.pack %a {groups = 1 : i64} : tensor<1x2x4x4xf32> -> tensor<1x1x4x4xi64>
  %w2 = arith.constant dense<0> : tensor<3x3x3x1xi64>
  %b = bnn.bconv2d %p, %w2 residual %c : tensor<1x3x2x2xf32> {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 1 : i64, in_channels = 2 : i64} : tensor<1x1x4x4xi64>, tensor<3x3x3x1xi64> -> tensor<1x3x2x2xf32>
  %q = bnn.pack %b {groups = 1 : i64} : tensor<1x3x2x2xf32> -> tensor<1x1x2x2xi64>
  func.return %q : tensor<1x1x2x2xi64>
}

// -----

// Left alone: a float conv whose pool feeds a float op (the PReLU needs
// NCHW: converting would only move a transpose), and a grouped float conv.
// The NCHW residual of B (converted: a pack reads it) is transposed once, as
// any other.
// CHECK-LABEL: func.func @float_readers
// CHECK:      bnn.conv2d %x, {{.*}}groups = 1 : i64} : tensor<1x3x8x8xf32>, tensor<2x3x3x3xf32> -> tensor<1x2x8x8xf32>
// CHECK-NEXT: bnn.max_pool2d {{.*}}dilations = array<i64: 1, 1>} : (tensor<1x2x8x8xf32>) -> tensor<1x2x4x4xf32>
// CHECK-NEXT: %[[R:.*]] = bnn.prelu
// CHECK-NEXT: arith.constant
// CHECK-NEXT: %[[T:.*]] = bnn.gather %[[R]] at
// CHECK:      bnn.conv2d %x, {{.*}}groups = 3 : i64} : tensor<1x3x8x8xf32>, tensor<3x1x1x1xf32> -> tensor<1x3x8x8xf32>
// CHECK-NEXT: bnn.pack %{{.*}} {groups = 1 : i64} : tensor<1x3x8x8xf32>
// CHECK:      bnn.bconv2d {{.*}} residual %[[T]] : tensor<1x4x4x2xf32> {{{.*}}channels_last{{.*}}}
func.func @float_readers(%x: tensor<1x3x8x8xf32>, %s: tensor<2xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x1x8x8xi64>, tensor<1x1x4x4xi64>) {
  %w = arith.constant dense<0.5> : tensor<2x3x3x3xf32>
  %c = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : tensor<1x3x8x8xf32>, tensor<2x3x3x3xf32> -> tensor<1x2x8x8xf32>
  %m = bnn.max_pool2d %c {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>} : (tensor<1x2x8x8xf32>) -> tensor<1x2x4x4xf32>
  %r = bnn.prelu %m, %s : (tensor<1x2x4x4xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  %wg = arith.constant dense<0.5> : tensor<3x1x1x1xf32>
  %g = bnn.conv2d %x, %wg {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 3 : i64} : tensor<1x3x8x8xf32>, tensor<3x1x1x1xf32> -> tensor<1x3x8x8xf32>
  %q = bnn.pack %g {groups = 1 : i64} : tensor<1x3x8x8xf32> -> tensor<1x1x8x8xi64>
  %p = bnn.pack %r {groups = 1 : i64} : tensor<1x2x4x4xf32> -> tensor<1x1x4x4xi64>
  %wb = arith.constant dense<0> : tensor<2x1x1x1xi64>
  %b = bnn.bconv2d %p, %wb residual %r : tensor<1x2x4x4xf32> {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, pad_value = 0 : i64, in_channels = 2 : i64} : tensor<1x1x4x4xi64>, tensor<2x1x1x1xi64> -> tensor<1x2x4x4xf32>
  %pb = bnn.pack %b {groups = 1 : i64} : tensor<1x2x4x4xf32> -> tensor<1x1x4x4xi64>
  func.return %b, %q, %pb : tensor<1x2x4x4xf32>, tensor<1x1x8x8xi64>, tensor<1x1x4x4xi64>
}
