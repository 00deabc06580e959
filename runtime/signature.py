"""The calling signature of a compiled model: what goes in, what comes out.

Compiled code takes one pointer per input, then one per output (destination
passing: the caller allocates outputs), dense row-major float32 for models
(int64 packed words only appear in IR-level functions, e.g. kernel benchmarks).

An artifact describes itself: the constant `<name>_bnnc_signature`
(`signature_symbol`) holds the signature as NUL-terminated JSON, which the
loaders read back (`bnnc run`, `bnnc.runtime.artifact_loader`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType

_DTYPES = {"f32": "float32", "i64": "int64"}

SIGNATURE_SUFFIX = "_bnnc_signature"

# LLVM IR's c"..." string literal: printable ASCII as is, the rest (and `"`, `\`) as \XX.
_LLVM_ESCAPES = [chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:02X}" for b in range(256)]


def llvm_string_literal(data: bytes) -> str:
    """`data` as an LLVM IR constant string, `c"..."`."""
    return f'c"{"".join(map(_LLVM_ESCAPES.__getitem__, data))}"'


def signature_symbol(name: str) -> str:
    """The symbol that holds the signature of the model whose entry point is `name`."""
    return f"{name}{SIGNATURE_SUFFIX}"


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

    def llvm_global(self) -> str:
        """The LLVM IR definition of the signature constant (NUL-terminated JSON)."""
        data = self.to_json().encode() + b"\0"
        return f'@"{signature_symbol(self.name)}" = constant [{len(data)} x i8] {llvm_string_literal(data)}'

    def c_prototype(self) -> str:
        """The entry point's C declaration: one pointer per input, then one per output."""
        params = [f"const float *in{i}" for i in range(len(self.inputs))]
        params += [f"float *out{i}" for i in range(len(self.outputs))]
        return f"void {self.name}({', '.join(params)});"

    def c_generic_abi(self) -> list[str]:
        """Header lines that give generic C code (runtime/run_model.c) the
        model's ABI: the signature symbol, element counts, a `NAME_run(inputs,
        outputs)` wrapper and `BNNC_MODEL`. Follows `c_prototype()`."""
        name, n_in, n_out = self.name, len(self.inputs), len(self.outputs)
        in_numel = ", ".join(str(s.numel) for s in self.inputs) or "0"
        out_numel = ", ".join(str(s.numel) for s in self.outputs) or "0"
        args = [f"inputs[{i}]" for i in range(n_in)] + [f"outputs[{i}]" for i in range(n_out)]
        return [
            "/* The signature as JSON, for tools (`bnnc run` reads it). */",
            f"extern const char {signature_symbol(name)}[];",
            "",
            "/* The same ABI in a form generic code can use (see runtime/run_model.c). */",
            f"static const unsigned long {name}_input_numel[{max(n_in, 1)}] = {{{in_numel}}};",
            f"static const unsigned long {name}_output_numel[{max(n_out, 1)}] = {{{out_numel}}};",
            f"static inline void {name}_run(const float *const *inputs, float *const *outputs) {{",
            f"    {name}({', '.join(args)});",
            "}",
            "",
            "/* The model generic code runs when it includes this header (override with -DBNNC_MODEL=name). */",
            "#ifndef BNNC_MODEL",
            f"#define BNNC_MODEL {name}",
            "#endif",
            "",
        ]

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
