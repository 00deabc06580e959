"""Read a .tflite flatbuffer into plain, validated Python data.

The flatbuffer is read with the PyPI `tflite` package (code generated from
TFLite's schema) and flexbuffer custom options with `flatbuffers.flexbuffers`;
nothing here parses bytes by hand. Flatbuffer accessors read lazily and trust
every offset, so the whole graph is materialised here, inside one guard: a
truncated file, an offset past the end, a negative or huge shape or malformed
custom options become one ModelLoadError, never a crash later in the
translation. Loading runs no code from the file.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bnnc.errors import ModelLoadError

__all__ = ["TFLTensor", "TFLOp", "TFLGraph", "read_tflite", "MAX_ELEMENTS"]

# A tensor larger than this (1 GiB of f32) is refused: no BNN has one, and a
# hostile shape must not make the compiler allocate index maps of that size.
MAX_ELEMENTS = 1 << 28
CUSTOM = 32  # BuiltinOperator.CUSTOM

# TensorType -> numpy dtype of constant data
_DTYPES = {0: "<f4", 1: "<f2", 2: "<i4", 3: "u1", 4: "<i8", 6: "?", 7: "<i2", 9: "i1", 10: "<f8"}
_TYPE_NAMES = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
    7: "int16", 8: "complex64", 9: "int8", 10: "float64",
}


@dataclass
class TFLTensor:
    index: int
    name: str
    shape: tuple[int, ...]
    type: int
    data: np.ndarray | None  # constant data in `shape`, or None for activations
    quantized: bool

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES.get(self.type, f"type {self.type}")


@dataclass
class TFLOp:
    index: int
    name: str  # builtin name (CONV_2D) or custom code (LceBconv2d)
    inputs: list[int]  # -1 = optional input absent
    outputs: list[int]
    options: Any = None  # the builtin options table (a `tflite` object), or None
    custom: dict[str, Any] = field(default_factory=dict)


@dataclass
class TFLGraph:
    tensors: list[TFLTensor]
    ops: list[TFLOp]
    inputs: list[int]
    outputs: list[int]
    version: int


def _builtin_names() -> dict[int, str]:
    import tflite

    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def _options_classes() -> dict[int, Any]:
    import tflite

    names = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_") and isinstance(v, int)}
    return {code: getattr(tflite, name) for code, name in names.items() if hasattr(tflite, name)}


def _vector(value: Any) -> list[int]:
    """A flatbuffer int vector (the generated code returns 0 when it is absent)."""
    if isinstance(value, int):
        return []
    return [int(v) for v in value]


def _check_shape(shape: list[int], what: str) -> tuple[int, ...]:
    if any(d < 1 for d in shape):
        raise ModelLoadError(f"{what} has shape {shape}: dimensions must be positive (dynamic or empty shapes are not supported)")
    if math.prod(shape) > MAX_ELEMENTS:
        raise ModelLoadError(f"{what} has shape {shape}: more than {MAX_ELEMENTS} elements")
    return tuple(shape)


def _buffer_data(model: Any, buf: bytes, index: int, tensor: TFLTensor) -> np.ndarray | None:
    if index == 0 or index >= model.BuffersLength():
        if index >= model.BuffersLength():
            raise ModelLoadError(f"tensor `{tensor.name}` refers to buffer {index}, the file has {model.BuffersLength()}")
        return None
    b = model.Buffers(index)
    offset, size = int(b.Offset()), int(b.Size())
    if offset > 1:  # data stored after the flatbuffer (models over 2 GB)
        if offset + size > len(buf):
            raise ModelLoadError(f"buffer {index} of tensor `{tensor.name}` ends at byte {offset + size}, past the end of the file ({len(buf)} bytes)")
        raw: Any = np.frombuffer(buf, dtype=np.uint8, count=size, offset=offset)
    else:
        if b.DataLength() == 0:
            return None
        raw = b.DataAsNumpy()
    dtype = _DTYPES.get(tensor.type)
    if dtype is None:
        raise ModelLoadError(f"constant tensor `{tensor.name}` has unsupported type {tensor.type_name}")
    need = math.prod(tensor.shape) * np.dtype(dtype).itemsize
    if raw.size != need:
        raise ModelLoadError(f"constant tensor `{tensor.name}` of shape {list(tensor.shape)} needs {need} bytes, its buffer holds {raw.size}")
    return np.frombuffer(raw.tobytes(), dtype=dtype).reshape(tensor.shape)


class BuiltinOptions:
    """A builtin options table read eagerly: each field accessor of the
    generated class (e.g. `StrideH()`) returns the value read inside the guard."""

    def __init__(self, kind: str, fields: dict[str, Any]):
        self.kind = kind
        self._fields = fields

    def __getattr__(self, name: str) -> Any:
        fields = self.__dict__.get("_fields", {})
        if name in fields:
            value = fields[name]
            return lambda: value
        raise AttributeError(name)


def _materialise(cls: Any, table: Any) -> BuiltinOptions:
    import inspect

    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    fields: dict[str, Any] = {}
    for name, fn in inspect.getmembers(obj, inspect.ismethod):
        if not name[:1].isupper() or name == "Init" or name.startswith("GetRootAs") or "BufferHasIdentifier" in name:
            continue
        if any(p.default is inspect.Parameter.empty for p in inspect.signature(fn).parameters.values()):
            continue
        value = fn()
        fields[name] = value.copy() if isinstance(value, np.ndarray) else value
    return BuiltinOptions(cls.__name__, fields)


def _custom_options(op: Any, name: str, index: int) -> dict[str, Any]:
    from flatbuffers import flexbuffers

    raw = op.CustomOptionsAsNumpy()
    if isinstance(raw, int) or len(raw) == 0:
        return {}
    try:
        value = flexbuffers.Loads(raw.tobytes())
    except Exception as exc:  # flexbuffers raises many types on bad input
        raise ModelLoadError(f"op #{index} ({name}): its custom options are truncated or malformed ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise ModelLoadError(f"op #{index} ({name}): its custom options are not a flexbuffer map")
    return value


def _read(buf: bytes) -> TFLGraph:
    import tflite

    if len(buf) < 8 or not tflite.Model.ModelBufferHasIdentifier(buf, 0):
        raise ModelLoadError("not a TFLite flatbuffer (no `TFL3` file identifier)")
    model = tflite.Model.GetRootAsModel(buf, 0)
    if model.SubgraphsLength() < 1:
        raise ModelLoadError("the model has no subgraph")
    if model.SubgraphsLength() > 1:
        raise ModelLoadError("the model has several subgraphs (control flow); bnnc reads single-graph models")
    g = model.Subgraphs(0)
    builtin_names = _builtin_names()
    options_classes = _options_classes()
    tensors: list[TFLTensor] = []
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        name = (t.Name() or b"").decode("utf-8", "replace")
        shape = _check_shape(_vector(t.ShapeAsNumpy()), f"tensor `{name}`")
        q = t.Quantization()
        quantized = q is not None and (q.ScaleLength() > 0 or q.ZeroPointLength() > 0)
        tensor = TFLTensor(i, name, shape, int(t.Type()), None, quantized)
        tensor.data = _buffer_data(model, buf, int(t.Buffer()), tensor)
        tensors.append(tensor)
    n = len(tensors)

    def check_refs(refs: list[int], what: str, optional: bool) -> list[int]:
        for r in refs:
            if not (-1 if optional else 0) <= r < n:
                raise ModelLoadError(f"{what} refers to tensor {r}; the graph has {n}")
        return refs

    ops: list[TFLOp] = []
    for i in range(g.OperatorsLength()):
        o = g.Operators(i)
        code_index = int(o.OpcodeIndex())
        if not 0 <= code_index < model.OperatorCodesLength():
            raise ModelLoadError(f"op #{i} refers to operator code {code_index}; the file has {model.OperatorCodesLength()}")
        oc = model.OperatorCodes(code_index)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        if code == CUSTOM:
            name = (oc.CustomCode() or b"").decode("utf-8", "replace")
        else:
            name = builtin_names.get(code, f"builtin operator {code}")
        op = TFLOp(
            i, name,
            check_refs(_vector(o.InputsAsNumpy()), f"op #{i} ({name})", True),
            check_refs(_vector(o.OutputsAsNumpy()), f"op #{i} ({name})", False),
        )
        if code == CUSTOM:
            op.custom = _custom_options(o, name, i)
        else:
            table = o.BuiltinOptions()
            cls = options_classes.get(int(o.BuiltinOptionsType()))
            if table is not None and cls is not None:
                op.options = _materialise(cls, table)
        ops.append(op)
    inputs = check_refs(_vector(g.InputsAsNumpy()), "the graph's inputs", False)
    outputs = check_refs(_vector(g.OutputsAsNumpy()), "the graph's outputs", False)
    return TFLGraph(tensors, ops, inputs, outputs, int(model.Version()))


def read_tflite(path: str) -> TFLGraph:
    """Read and validate a .tflite file; ModelLoadError names the path and what is wrong."""
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read: {exc.strerror}") from None
    if not buf:
        raise ModelLoadError(f"{path}: the file is empty")
    try:
        return _read(buf)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{path}: {exc}") from None
    except (struct.error, ValueError, IndexError, TypeError, OverflowError, AttributeError, MemoryError, KeyError, RecursionError) as exc:
        raise ModelLoadError(
            f"{path}: truncated or malformed TFLite flatbuffer (an offset or length points outside the file: "
            f"{type(exc).__name__})"
        ) from None
