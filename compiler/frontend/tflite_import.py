"""Import a TFLite model (with Larq Compute Engine's custom ops) into the bnn dialect.

The translation is faithful and op by op, as in the PyTorch frontend: each
TFLite op becomes the bnn ops computing what TFLite/LCE computes, and the
shared passes (recognize-binarization, fold-weight-binarization, the fusions)
do the rest. Handlers live in the tflite_ops_* modules, one per op family.

Layout. TFLite tensors are NHWC; the bnn dialect is NCHW. Every rank-4 tensor
is kept NCHW inside the function, the function's arguments and results keep
the file's layout (a bnn.gather transposes at the boundary), and the ops that
depend on the layout (reshape, concatenation, mean, pad, transpose,
broadcasting of lower-rank operands) map their axes, or move data through a
gather computed on element positions (a plain bnn.reshape where the order
does not change).

Bitpacked LCE tensors (int32 words, channel i in bit i, bit 1 = negative) are
never materialised as words here: such a tensor is represented by the ±1 f32
tensor it encodes (LceQuantize is bnn.sign), and the pack-bits pass chooses
bnnc's own packing later.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
from xdsl.dialects.builtin import (
    ModuleOp,
    NameLoc,
    StringAttr,
    TensorType,
    UnknownLoc,
    f32,
)
from xdsl.ir import Block, Operation, SSAValue

from bnnc.dialects import bnn, bnn_math
from bnnc.dialects.bnn_movement import GatherOp
from bnnc.errors import InternalError, ModelLoadError, UnsupportedError
from bnnc.frontend.ir_builder import IRBuilder

from .tflite_reader import TFLGraph, TFLOp, TFLTensor, read_tflite

__all__ = ["import_tflite", "TFLiteImporter", "HANDLERS", "handles"]

FLOAT32, INT32 = 0, 2

HANDLERS: dict[str, Callable[["TFLiteImporter", TFLOp], None]] = {}


def handles(*names: str):
    """Register the decorated function as the handler of the TFLite ops `names`."""

    def deco(fn):
        for name in names:
            HANDLERS[name] = fn
        return fn

    return deco


def to_internal(shape: Sequence[int]) -> tuple[int, ...]:
    """The bnn (NCHW) shape of a TFLite (NHWC) shape."""
    shape = tuple(shape)
    return (shape[0], shape[3], shape[1], shape[2]) if len(shape) == 4 else shape


def nhwc_axis(axis: int, rank: int) -> int:
    """The bnn axis of TFLite axis `axis` of a rank-`rank` tensor."""
    if axis < 0:
        axis += rank
    if not 0 <= axis < rank:
        raise UnsupportedError(f"axis {axis} out of range for rank {rank}")
    return (0, 2, 3, 1)[axis] if rank == 4 else axis


class TFLiteImporter(IRBuilder):
    def __init__(self, graph: TFLGraph, func_name: str, path: str):
        super().__init__(func_name)
        self.graph = graph
        self.path = path
        self.values: dict[int, SSAValue] = {}
        # bitpacked LCE tensors: index -> the channel count their words encode
        self.packed: dict[int, int] = {}
        self.op: TFLOp | None = None

    # ------------------------------------------------------------ errors

    def where(self) -> str:
        if self.op is None:
            return ""
        outs = [self.graph.tensors[i].name for i in self.op.outputs]
        return f" (op #{self.op.index} {self.op.name}" + (f", output `{outs[0]}`" if outs else "") + ")"

    def unsupported(self, what: str, hint: str = "") -> UnsupportedError:
        return UnsupportedError(f"{what}{self.where()}" + (f"\n  hint: {hint}" if hint else ""))

    def malformed(self, what: str) -> ModelLoadError:
        return ModelLoadError(f"{self.path}: {what}{self.where()}")

    # ------------------------------------------------------------ tensors

    def tensor(self, index: int) -> TFLTensor:
        return self.graph.tensors[index]

    def shape(self, index: int) -> tuple[int, ...]:
        return self.tensor(index).shape

    def const(self, index: int) -> np.ndarray | None:
        """Constant data of tensor `index` (TFLite layout), or None."""
        if index < 0:
            return None
        return self.tensor(index).data

    def require_const(self, index: int, what: str) -> np.ndarray:
        data = self.const(index)
        if data is None:
            raise self.unsupported(f"the {what} must be a constant tensor")
        return data

    def float_type(self, index: int) -> TensorType:
        return TensorType(f32, list(to_internal(self.shape(index))))

    def input(self, op: TFLOp, i: int) -> int:
        if i >= len(op.inputs) or op.inputs[i] < 0:
            raise self.malformed(f"input {i} is missing")
        return op.inputs[i]

    def value(self, index: int) -> SSAValue:
        """The SSA value of tensor `index` in bnn layout (constants are materialised)."""
        if index in self.values:
            return self.values[index]
        t = self.tensor(index)
        if t.data is None:
            raise self.malformed(f"tensor `{t.name}` is read before any op writes it")
        if index in self.packed:
            raise self.unsupported(f"constant bitpacked tensor `{t.name}`")
        return self.f32_const(self.float_data(t))

    def float_data(self, t: TFLTensor) -> np.ndarray:
        """Constant data as f32 in bnn layout; refuses quantized and integer data that f32 cannot hold."""
        assert t.data is not None
        if t.quantized and t.type != FLOAT32:
            raise self.unsupported(f"quantized constant `{t.name}` ({t.type_name})", "bnnc compiles float32 models")
        data = t.data
        if data.dtype != np.float32:
            f = data.astype(np.float32)
            if data.dtype.kind in "iu" and not np.array_equal(f.astype(data.dtype), data):
                raise self.unsupported(f"constant `{t.name}` ({t.type_name}) is not exact in float32")
            data = f
        return data.transpose(0, 3, 1, 2) if data.ndim == 4 else data

    def define(self, index: int, value: SSAValue) -> None:
        self.values[index] = value

    # ------------------------------------------------------------ emission

    def emit(self, op: Operation) -> SSAValue:
        return self.add(op).results[0]

    def f32_const(self, value: np.ndarray) -> SSAValue:
        return self.const_tensor(value, "f32")

    def i64_const(self, value: np.ndarray) -> SSAValue:
        return self.const_tensor(value, "i64")

    def move(
        self,
        value: SSAValue,
        tfl_shape: Sequence[int],
        fn: Callable[[np.ndarray], np.ndarray],
        out_tfl_shape: Sequence[int] | None = None,
        *,
        tflite_layout_result: bool = False,
    ) -> SSAValue:
        """Data movement on the TFLite view of `value`: `fn` maps an array of
        element positions (TFLite layout) to the result's positions (TFLite
        layout); the result (in bnn layout, or with `tflite_layout_result` in
        TFLite's) is a bnn.gather, or a bnn.reshape when the order of elements
        does not change."""
        tfl_shape = tuple(tfl_shape)
        positions = np.arange(int(np.prod(tfl_shape, dtype=np.int64)), dtype=np.int64)
        internal = positions.reshape(to_internal(tfl_shape))
        view = internal.transpose(0, 2, 3, 1) if len(tfl_shape) == 4 else internal
        out = np.asarray(fn(view))
        if out_tfl_shape is not None:
            out = out.reshape(tuple(out_tfl_shape))
        index = out.transpose(0, 3, 1, 2) if out.ndim == 4 and not tflite_layout_result else out
        result_type = TensorType(f32, list(index.shape))
        if np.array_equal(index.reshape(-1), positions[: index.size]) and index.size == positions.size:
            if tuple(index.shape) == tuple(value.type.get_shape()):  # type: ignore[union-attr]
                return value
            return self.emit(bnn.ReshapeOp(value, result_type))
        return self.emit(GatherOp([value], self.i64_const(np.ascontiguousarray(index)), result_type))

    def operand(self, index: int, rank: int) -> SSAValue:
        """Tensor `index` as an operand of an elementwise op whose result has
        TFLite rank `rank`: lower-rank operands broadcast in TFLite's (NHWC)
        sense, so they are brought to rank 4 NHWC and then to bnn layout."""
        t = self.tensor(index)
        if len(t.shape) == rank or rank != 4:
            return self.value(index)
        full = (1,) * (rank - len(t.shape)) + t.shape
        if t.data is not None and index not in self.values:
            return self.f32_const(self.float_data(TFLTensor(t.index, t.name, full, t.type, t.data.reshape(full), t.quantized)))
        return self.move(self.value(index), t.shape, lambda a: a.reshape(full))

    def activation(self, value: SSAValue, code: int) -> SSAValue:
        """TFLite's fused activation function `code` applied to `value`."""
        if code == 0:
            return value
        if code == 1:
            return self.emit(bnn.ReluOp(value))
        if code == 2:
            return self.emit(bnn.HardtanhOp(value, -1.0, 1.0))
        if code == 3:
            return self.emit(bnn.HardtanhOp(value, 0.0, 6.0))
        if code == 4:
            return self.emit(bnn_math.UnaryMathOp(value, "tanh"))
        raise self.unsupported(f"fused activation function {code}", "supported: NONE, RELU, RELU_N1_TO_1, RELU6, TANH")

    # ------------------------------------------------------------ main

    def run(self) -> ModuleOp:
        g = self.graph
        arg_types = []
        for i in g.inputs:
            t = g.tensors[i]
            if t.type != FLOAT32:
                hint = "int8-quantized models are not supported: convert the model with float32 inputs and outputs"
                raise UnsupportedError(f"{self.path}: input `{t.name}` is {t.type_name}; bnnc compiles float32 models\n  hint: {hint}")
            if t.data is not None:
                raise ModelLoadError(f"{self.path}: input `{t.name}` is a constant")
            arg_types.append(TensorType(f32, list(t.shape)))
        block = Block(arg_types=arg_types)
        for i, arg in zip(g.inputs, block.args):
            arg.name_hint = _ssa_name(g.tensors[i].name)
            shape = g.tensors[i].shape
            self.loc = NameLoc(StringAttr(g.tensors[i].name), UnknownLoc())
            self.values[i] = arg if len(shape) != 4 else self._to_internal(arg, shape)
        for op in g.ops:
            self.op = op
            self.loc = NameLoc(StringAttr(g.tensors[op.outputs[0]].name if op.outputs else op.name), UnknownLoc())
            handler = HANDLERS.get(op.name)
            if handler is None:
                raise self.unsupported(
                    f"unsupported TFLite op {op.name}",
                    "docs/tflite.md lists the supported builtins and LCE ops",
                )
            handler(self, op)
            for out in op.outputs:
                if out not in self.values:
                    raise InternalError(f"{op.name} did not define output {out}{self.where()}")
        self.op = None
        results = []
        for i in g.outputs:
            t = g.tensors[i]
            self.loc = NameLoc(StringAttr(t.name), UnknownLoc())
            if i in self.packed or t.type != FLOAT32:
                raise UnsupportedError(f"{self.path}: output `{t.name}` is {t.type_name}; bnnc compiles float32 outputs")
            v = self.value(i)
            results.append(self.move(v, t.shape, lambda a: a, tflite_layout_result=True) if len(t.shape) == 4 else v)
        return self.finish(block, results)

    def _to_internal(self, arg: SSAValue, shape: Sequence[int]) -> SSAValue:
        """An NHWC function argument as an NCHW value (a transposing gather)."""
        positions = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
        index = np.ascontiguousarray(positions.transpose(0, 3, 1, 2))
        if shape[1] * shape[2] == 1 or shape[3] == 1:
            return self.emit(bnn.ReshapeOp(arg, TensorType(f32, list(to_internal(shape)))))
        return self.emit(GatherOp([arg], self.i64_const(index), TensorType(f32, list(index.shape))))


def _ssa_name(name: str) -> str:
    import re

    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_")
    return cleaned if cleaned and not cleaned[0].isdigit() else f"in_{cleaned}"


def import_tflite(path: str, *, func_name: str = "forward") -> ModuleOp:
    """Import a .tflite file (TFLite builtins + LCE ops) into one `func.func`
    of bnn ops whose inputs and outputs keep the file's layout and dtype."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelLoadError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ModelLoadError(f"{path}: is a directory, not a model file")
    return TFLiteImporter(read_tflite(path), func_name, path).run()


# The handler modules register themselves in HANDLERS when imported.
from . import (
    tflite_ops_elementwise,  # noqa: E402,F401
    tflite_ops_lce,  # noqa: E402,F401
    tflite_ops_movement,  # noqa: E402,F401
    tflite_ops_nn,  # noqa: E402,F401
)
