# RUN: %python %s | filecheck %s
# The ONNX frontend translates op by op with ONNX's semantics: Sign is the
# three-valued bnn.signum, comparisons are f32 masks, Where is bnn.where,
# weights computed from initialisers are folded, asymmetric conv pads become
# bnn.pad, node names become locations. recognize-binarization then reads the
# binariser as for any frontend.
import os
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bnnc.context import make_context
from bnnc.frontend.onnx_import import import_onnx
from bnnc.pipeline import run_passes

rng = np.random.default_rng(0)
w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
n = helper.make_node
nodes = [
    n("GreaterOrEqual", ["x", "zero"], ["ge"], name="binarize_ge"),
    n("Where", ["ge", "one", "mone"], ["xb"], name="binarize_where"),
    n("Sign", ["w"], ["wsign"], name="weight_sign"),  # folded: initializer only
    n("Conv", ["xb", "wsign"], ["c"], pads=[0, 1, 1, 1], name="conv"),
    n("Sign", ["c"], ["y"], name="sign"),
]
inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in
         (("zero", 0.0), ("one", 1.0), ("mone", -1.0), ("w", w))]
graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 5])], inits)
path = os.path.join(tempfile.mkdtemp(), "small.onnx")
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)

module = import_onnx(path)
print(module)
# CHECK-LABEL: func.func @forward(%x: tensor<1x2x5x5xf32>) -> tensor<1x4x4x5xf32>
# CHECK: %[[GE:.*]] = bnn.compare %x, %{{.*}} {predicate = "ge"} : (tensor<1x2x5x5xf32>, tensor<1xf32>) -> tensor<1x2x5x5xf32>
# CHECK: %[[XB:.*]] = bnn.where %[[GE]], %{{.*}}, %{{.*}} : (tensor<1x2x5x5xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<1x2x5x5xf32>
# CHECK-NOT: bnn.signum %{{.*}} : tensor<4x2x3x3xf32>
# CHECK: %[[P:.*]] = bnn.pad %[[XB]] {padding = array<i64: 1, 1, 0, 1>, value = 0.000000e+00 : f32}
# CHECK: %[[C:.*]] = bnn.conv2d %[[P]], %{{.*}} {{.*}}padding = array<i64: 0, 0>
# CHECK: bnn.signum %[[C]] : tensor<1x4x4x5xf32>

print(module.ops.first.body.block.first_op.location)
# CHECK: loc("binarize_ge"(unknown))

run_passes(module, "recognize-binarization,canonicalize,dce", make_context())
print(module)
# CHECK-LABEL: func.func @forward
# CHECK: bnn.sign %x : tensor<1x2x5x5xf32>
