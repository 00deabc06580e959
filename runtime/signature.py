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
import re
from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType

_DTYPES = {"f32": "float32", "i64": "int64"}

SIGNATURE_SUFFIX = "_bnnc_signature"

# The static memory plan's contract (passes/plan_memory.py uses the same
# values): the entry point's attribute holding the arena size, and the
# alignment the caller's arena must have.
ARENA_ATTR = "bnnc.arena_bytes"
ARENA_ALIGNMENT = 64

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
    # With a static memory plan (the plan-memory pass) the entry point takes one
    # more pointer, last: a caller-provided scratch arena of this many bytes,
    # aligned to ARENA_ALIGNMENT. None: no arena parameter (the code allocates).
    arena_bytes: int | None = None
    # A dynamic-batch build (bnnc.dynamic_batch): the entry point takes the
    # batch size N first (`long long n`); the shapes are those of one sample
    # (leading dimension 1) and every buffer holds N of them.
    dynamic_batch: bool = False

    def to_json(self) -> str:
        data: dict = {
            "name": self.name,
            "inputs": [{"shape": list(s.shape), "dtype": s.dtype} for s in self.inputs],
            "outputs": [{"shape": list(s.shape), "dtype": s.dtype} for s in self.outputs],
        }
        if self.arena_bytes is not None:
            data["arena_bytes"] = self.arena_bytes
        if self.dynamic_batch:
            data["dynamic_batch"] = True
        return json.dumps(data)

    def llvm_global(self) -> str:
        """The LLVM IR definition of the signature constant (NUL-terminated JSON)."""
        data = self.to_json().encode() + b"\0"
        return f'@"{signature_symbol(self.name)}" = constant [{len(data)} x i8] {llvm_string_literal(data)}'

    def c_prototype(self) -> str:
        """The entry point's C declaration: one pointer per input, then one per output."""
        params = ["long long n"] if self.dynamic_batch else []
        params += [f"const float *in{i}" for i in range(len(self.inputs))]
        params += [f"float *out{i}" for i in range(len(self.outputs))]
        if self.arena_bytes is not None:
            params.append("void *arena")
        return f"void {self.name}({', '.join(params)});"

    def c_generic_abi(self) -> list[str]:
        """Header lines that give generic C code (runtime/run_model.c) the
        model's ABI: the signature symbol, element counts, a `NAME_run(inputs,
        outputs)` wrapper and `BNNC_MODEL`. Follows `c_prototype()`."""
        name, n_in, n_out = self.name, len(self.inputs), len(self.outputs)
        in_numel = ", ".join(str(s.numel) for s in self.inputs) or "0"
        out_numel = ", ".join(str(s.numel) for s in self.outputs) or "0"
        args = [f"inputs[{i}]" for i in range(n_in)] + [f"outputs[{i}]" for i in range(n_out)]
        batch, one = (["n"], ["1"]) if self.dynamic_batch else ([], [])
        arena: list[str] = []
        if self.arena_bytes is not None:
            # generic code has no arena of its own: the wrapper uses a static one
            # (so NAME_run, unlike NAME, is not reentrant).
            args.append(f"{name}_arena")
            arena = [
                (
                    f"    static unsigned char {name}_arena[{max(1, self.arena_bytes)}]"
                    f" __attribute__((aligned({ARENA_ALIGNMENT})));"
                )
            ]
        return [
            "/* The signature as JSON, for tools (`bnnc run` reads it). */",
            f"extern const char {signature_symbol(name)}[];",
            "",
            "/* The same ABI in a form generic code can use (see runtime/run_model.c). */",
            f"static const unsigned long {name}_input_numel[{max(n_in, 1)}] = {{{in_numel}}};",
            f"static const unsigned long {name}_output_numel[{max(n_out, 1)}] = {{{out_numel}}};",
            f"static inline void {name}_run(const float *const *inputs, float *const *outputs) {{",
            *arena,
            f"    {name}({', '.join(one + args)});",
            "}",
            "/* A dynamic-batch model runs n samples (the numel above are per sample);",
            " * a fixed-batch one runs its compiled batch once (n must be 1). */",
            f"static const int {name}_dynamic_batch = {int(self.dynamic_batch)};",
            f"static inline void {name}_run_batch(long long n, const float *const *inputs, float *const *outputs) {{",
            *arena,
            *([] if self.dynamic_batch else ["    (void)n;"]),
            f"    {name}({', '.join(batch + args)});",
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
            data.get("arena_bytes"),
            bool(data.get("dynamic_batch", False)),
        )


def _spec(typ) -> TensorSpec:
    assert isinstance(typ, TensorType)
    return TensorSpec(tuple(typ.get_shape()), _DTYPES.get(str(typ.element_type), str(typ.element_type)))


def planned_arena(module: ModuleOp, name: str = "forward") -> int | None:
    """The arena size the plan-memory pass gave function `name` (its attribute
    ARENA_ATTR, kept by the lowering to the llvm dialect), or None (no plan)."""
    for op in module.ops:
        sym = op.properties.get("sym_name")
        if getattr(sym, "data", None) == name and ARENA_ATTR in op.attributes:
            return int(op.attributes[ARENA_ATTR].value.data)  # type: ignore[attr-defined]
    return None


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


# ---------------------------------------------------------------------------
# Size limits: refuse absurd shapes with a clear error before anything is
# allocated for them (the IR parser expands splat constants into Python lists,
# example inputs are real tensors, and byte offsets must fit in int64).
# ---------------------------------------------------------------------------

MAX_TENSOR_BYTES = 1 << 40
"""No tensor, memref or vector type (or model input) may need more than 1 TiB."""

MAX_SPLAT_ELEMENTS = 1 << 24
"""A splat constant in textual IR (`dense<0.0> : tensor<...>`) is expanded
element by element when parsed: at most 16M elements (~128 MiB while parsing)."""

_SHAPED_TYPE = re.compile(r"\b(tensor|memref|vector)<\s*((?:\[?\s*\d+\s*\]?\s*x\s*)+)([A-Za-z]\w*)")
_SPLAT = re.compile(r"\bdense<\s*([^\s\"\[<>][^<>\"\[]*?)>\s*:\s*(?:tensor|vector)<\s*((?:\d+\s*x\s*)+)")


def _element_bytes(element_type: str) -> int:
    m = re.fullmatch(r"[a-z]*?(\d+)", element_type)
    return max(1, (int(m.group(1)) + 7) // 8) if m else 8


def _human_bytes(n: int) -> str:
    for unit, size in (("EiB", 1 << 60), ("PiB", 1 << 50), ("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def shape_size_problem(shape: tuple[int, ...] | list[int], element_bytes: int = 4, limit: int = MAX_TENSOR_BYTES) -> str | None:
    """Why a tensor of `shape` is refused (negative or absurdly large), or None."""
    if any(d < 0 for d in shape):
        return "dimensions must be >= 0"
    numel = math.prod(shape)
    nbytes = numel * element_bytes
    if nbytes > limit:
        overflow = " (its element count overflows int64)" if numel >= 1 << 63 else ""
        return f"it would need {_human_bytes(nbytes)}{overflow}, more than the {_human_bytes(limit)} bnnc accepts"
    return None


def check_ir_text_sizes(text: str, where: str) -> None:
    """Raise IRError if textual IR names a shaped type over MAX_TENSOR_BYTES or a
    splat constant over MAX_SPLAT_ELEMENTS; run before parsing, which would allocate them."""
    from bnnc.runtime.errors import IRError

    for m in _SHAPED_TYPE.finditer(text):
        dims = [int(d) for d in re.findall(r"\d+", m.group(2))]
        problem = shape_size_problem(dims, _element_bytes(m.group(3)))
        if problem is not None:
            line = text.count("\n", 0, m.start()) + 1
            raise IRError(f"{where}:{line}: type {m.group(0)}> is too large: {problem}")
    for m in _SPLAT.finditer(text):
        numel = math.prod(int(d) for d in re.findall(r"\d+", m.group(2)))
        if numel > MAX_SPLAT_ELEMENTS:
            line = text.count("\n", 0, m.start()) + 1
            raise IRError(
                f"{where}:{line}: splat constant of {numel} elements is too large "
                f"(at most {MAX_SPLAT_ELEMENTS} elements in textual IR)"
            )
