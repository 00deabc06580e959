"""The calling signature of a compiled model: what goes in, what comes out.

Compiled code takes one pointer per input, then one per output (destination
passing: the caller allocates outputs), dense row-major float32 for models
(int64 packed words only appear in IR-level functions, e.g. kernel benchmarks).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType

_DTYPES = {"f32": "float32", "i64": "int64"}


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: str = "float32"

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def describe(self) -> str:
        return f"{self.dtype}[{', '.join(map(str, self.shape))}]"


@dataclass(frozen=True)
class Signature:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "inputs": [{"shape": list(s.shape), "dtype": s.dtype} for s in self.inputs],
                "outputs": [{"shape": list(s.shape), "dtype": s.dtype} for s in self.outputs],
            }
        )

    @staticmethod
    def from_json(text: str) -> Signature:
        data = json.loads(text)
        return Signature(
            data["name"],
            tuple(TensorSpec(tuple(s["shape"]), s["dtype"]) for s in data["inputs"]),
            tuple(TensorSpec(tuple(s["shape"]), s["dtype"]) for s in data["outputs"]),
        )


def _spec(typ) -> TensorSpec:
    assert isinstance(typ, TensorType)
    return TensorSpec(tuple(typ.get_shape()), _DTYPES.get(str(typ.element_type), str(typ.element_type)))


def signature_of(module: ModuleOp, name: str = "forward") -> Signature:
    """Read the signature off the tensor-level function `name`."""
    for op in module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == name:
            ftype = op.function_type
            return Signature(
                name,
                tuple(_spec(t) for t in ftype.inputs.data),
                tuple(_spec(t) for t in ftype.outputs.data),
            )
    raise LookupError(f"no function @{name} in the module")
