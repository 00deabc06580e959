# RUN: %python %s | filecheck %s
# The TFLite/LCE frontend translates faithfully: an NHWC argument transposed to
# NCHW by a gather, LceQuantize -> bnn.sign, LceBconv2d -> bnn.bconv2d (one-padding
# is pad_value 1; a bitpacked output through thresholds is bconv + bnn.sign),
# LceBMaxPool2d -> max pool of the ±1 tensor, and the NHWC result gathered back.
import os

from bnnc.frontend.tflite_import import import_tflite

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "tflite", "binary_chain.tflite")
module = import_tflite(path)
for op in module.ops.first.body.block.ops:
    if op.name != "arith.constant":
        print(op.name, op.attributes.get("sym_name", ""), *(str(r.type) for r in op.results))

# CHECK: bnn.gather tensor<1x40x12x12xf32>
# CHECK: bnn.max_pool2d tensor<1x40x4x4xf32>
# CHECK: bnn.sign tensor<1x40x12x12xf32>
# CHECK: bnn.bconv2d tensor<1x48x12x12xf32>
# CHECK-NEXT: bnn.sign tensor<1x48x12x12xf32>
# CHECK: bnn.bconv2d tensor<1x64x12x12xf32>
# CHECK-NEXT: bnn.sign tensor<1x64x12x12xf32>
# CHECK-NEXT: bnn.max_pool2d tensor<1x64x6x6xf32>
# CHECK-NEXT: bnn.bconv2d tensor<1x24x4x4xf32>
# CHECK-NEXT: bnn.cat tensor<1x64x4x4xf32>
# CHECK-NEXT: bnn.sign tensor<1x64x4x4xf32>
# CHECK-NEXT: bnn.bconv2d tensor<1x16x4x4xf32>
# CHECK-NEXT: bnn.gather tensor<1x4x4x16xf32>
# CHECK-NEXT: func.return
