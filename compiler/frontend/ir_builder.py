"""What every frontend needs to emit a bnn function: an op list with the
current source location, deduplicated tensor constants, and the final
`func.func` wrapped in a verified module.

It knows nothing of the source framework, so the PyTorch, ONNX and TFLite
importers build their IR the same way (same constants, same verification)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import (
    BytesAttr,
    DenseIntOrFPElementsAttr,
    ModuleOp,
    TensorType,
    UnknownLoc,
    f32,
    i64,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue

from bnnc.errors import InternalError

__all__ = ["IRBuilder"]


class IRBuilder:
    """Accumulates the ops of one function body in emission order."""

    def __init__(self, func_name: str):
        self.func_name = func_name
        self.ops: list[Operation] = []
        self.const_cache: dict[tuple, SSAValue] = {}
        self.loc: Attribute = UnknownLoc()

    def add(self, op: Operation) -> Operation:
        """Append `op` at the current location."""
        op.location = self.loc
        self.ops.append(op)
        return op

    def const_tensor(self, value: Any, dtype: str = "f32") -> SSAValue:
        """An `arith.constant` of `value` (an array or a torch tensor) as f32
        or i64; equal constants are emitted once."""
        if hasattr(value, "detach"):  # a torch tensor, without importing torch here
            value = value.detach().cpu().numpy()
        if dtype == "f32":
            arr = np.ascontiguousarray(value, dtype="<f4")
            typ = TensorType(f32, list(arr.shape))
        else:
            arr = np.ascontiguousarray(value, dtype="<i8")
            typ = TensorType(i64, list(arr.shape))
        data = arr.tobytes()
        key = (dtype, arr.shape, data)
        if key in self.const_cache:
            return self.const_cache[key]
        op = self.add(arith.ConstantOp(DenseIntOrFPElementsAttr(typ, BytesAttr(data))))
        self.const_cache[key] = op.result
        return op.result

    def finish(self, block: Block, results: Sequence[SSAValue]) -> ModuleOp:
        """Return `results`, move the emitted ops into `block` and wrap it in a
        verified module holding one `func.func @<func_name>`."""
        self.loc = UnknownLoc()
        self.add(func.ReturnOp(*results))
        for op in self.ops:
            block.add_op(op)
        fn = func.FuncOp(self.func_name, ([a.type for a in block.args], [r.type for r in results]), Region(block))
        module = ModuleOp([fn])
        try:
            module.verify()
        except Exception as exc:
            raise InternalError(f"the imported IR does not verify: {exc}") from exc
        return module
