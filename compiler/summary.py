"""`bnnc summary`: what a compiled model is made of, layer by layer.

Computed from the bnn-dialect IR after the graph passes, i.e. from the ops
bnnc actually lowers: one row per op (one layer function `<fn>_<i>_<op>` each,
the same order in which `bnnc profile` times them), with its source location,
shapes, whether it is binary, its parameters and their bytes as stored
(binary weights as packed i64 words), its MACs (bit-MACs for xor-popcount
layers, float MACs otherwise) and the bytes of its output.

Counting rules, one function per op family (`_conv_like`, `_dense_like`,
`_other`): a MAC is one multiply-accumulate of the op as PyTorch defines it
(a conv's Cout * Cin/groups * KH * KW * OH * OW per image), so bit-MACs and
float MACs compare directly. Parameters are the elements of an op's constant
operands, except that a packed binary weight counts its bits (Cout * Cin/groups
* KH * KW), not its words, and tables (a binary conv's zero-padding
`correction`, derived from the weights; a gather's indices) are no
parameters; "bytes" are what all the constants occupy in the compiled code
(words padded to 64 channels, splats expanded, tables included). A constant two ops share is counted
at its first user.

Activation memory is each op's output tensor; the peak replays
convert-bnn-to-loops' buffer lifetimes (an output is allocated when its op
runs and freed after its last use; model inputs and outputs count throughout).
Scratch space inside a kernel (padded rows) is not included.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    FileLineColLoc,
    ModuleOp,
    NameLoc,
    TensorType,
    UnknownLoc,
)
from xdsl.ir import Attribute, Operation, SSAValue

from bnnc.dialects import bnn

BINARY, BINARY_WEIGHT, FLOAT = "binary", "binary-weight", "float"
# Ops on packed bits (no MACs): binary like the convs they feed.
_BIT_OPS = (bnn.PackOp, bnn.SignOp, bnn.BMaxPool2dOp)


@dataclass
class LayerSummary:
    """One op of the graph: one layer function of the compiled code."""

    index: int  # position in the entry function (kernel `<fn>_<index>_<op>`)
    function: str  # the layer function's name
    op: str
    location: str
    inputs: list[str]  # tensor types, e.g. 1x16x8x8xf32 (packed bits: i64 words)
    output: str
    kind: str  # binary / binary-weight / float
    params: int
    param_bytes: int
    weights: int  # of params: the weight's elements (a packed weight's bits)
    weight_bytes: int  # of param_bytes: the weight as stored (packed words)
    bit_macs: int
    float_macs: int
    activation_bytes: int


@dataclass
class ModelSummary:
    """A model's layers and totals; str() is the table, to_json() the same data."""

    name: str
    layers: list[LayerSummary] = field(default_factory=list)
    params_before: int = 0
    bytes_before: int = 0
    before_source: str = ""  # where the "before" figures come from
    peak_activation_bytes: int = 0

    @property
    def params_after(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def bytes_after(self) -> int:
        return sum(layer.param_bytes for layer in self.layers)

    @property
    def bit_macs(self) -> int:
        return sum(layer.bit_macs for layer in self.layers)

    @property
    def float_macs(self) -> int:
        return sum(layer.float_macs for layer in self.layers)

    @property
    def binary_mac_share(self) -> float:
        total = self.bit_macs + self.float_macs
        return self.bit_macs / total if total else 0.0

    def totals(self) -> dict[str, Any]:
        return {
            "params_before": self.params_before,
            "bytes_before": self.bytes_before,
            "before_source": self.before_source,
            "params_after": self.params_after,
            "bytes_after": self.bytes_after,
            "bit_macs": self.bit_macs,
            "float_macs": self.float_macs,
            "binary_mac_share": self.binary_mac_share,
            "peak_activation_bytes": self.peak_activation_bytes,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.name, "layers": [asdict(layer) for layer in self.layers], "totals": self.totals()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def __str__(self) -> str:
        return format_table(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython shows the table
        p.text(str(self))


# ----------------------------------------------------------------- counting


def _shape(value: SSAValue) -> tuple[int, ...]:
    typ = value.type
    assert isinstance(typ, TensorType)
    return tuple(typ.get_shape())


def _type_bytes(typ: Attribute) -> int:
    """Bytes of a tensor of this type as stored (i1 as a byte)."""
    assert isinstance(typ, TensorType)
    width = getattr(typ.element_type, "width", None)
    bits = width.data if width is not None else typ.element_type.bitwidth
    return math.prod(typ.get_shape()) * max(1, (bits + 7) // 8)


def _type_text(typ: Attribute) -> str:
    if not isinstance(typ, TensorType):
        return str(typ)
    return "x".join(map(str, [*typ.get_shape(), typ.element_type]))


def _constant(value: SSAValue) -> np.ndarray | None:
    owner = value.owner
    if isinstance(owner, arith.ConstantOp) and isinstance(owner.value, DenseIntOrFPElementsAttr):
        from bnnc.dialects.dense import to_numpy

        return to_numpy(owner.value)
    return None


def _is_binary_weight(weight: np.ndarray) -> bool:
    """A float weight that is +-alpha_c per output channel (a binary-weight
    layer on real activations, which stays a float op)."""
    rows = np.abs(weight.reshape(weight.shape[0], -1))
    return bool(weight.size) and bool(np.all(rows > 0)) and bool(np.all(rows == rows[:, :1]))


def _conv_like(op: Operation) -> tuple[str, int, int, int | None]:
    """(kind, bit-MACs, float MACs, logical weight count or None) of a conv."""
    out = _shape(op.results[0])
    if isinstance(op, bnn.BConv2dOp):
        cout, kh, kw, _ = _shape(op.weight)
        groups = op.groups.value.data
        cin = op.in_channels.value.data if op.in_channels is not None else _shape(op.input)[1]
        per_out = (cin // groups) * kh * kw
        oh, ow = op.output_hw()
        return BINARY, out[0] * cout * per_out * oh * ow, 0, cout * per_out
    weight = _shape(op.weight)
    macs = math.prod(out) * math.prod(weight[1:])
    if isinstance(op, bnn.Conv2dOp) and op.max_pool() is not None:  # the conv's pixels, not the pooled ones
        macs = out[0] * weight[0] * math.prod(op.output_hw()) * math.prod(weight[1:])
    w = _constant(op.weight)
    kind = BINARY_WEIGHT if w is not None and _is_binary_weight(w) else FLOAT
    return kind, 0, macs, None


def _dense_like(op: Operation) -> tuple[str, int, int, int | None]:
    """(kind, bit-MACs, float MACs, logical weight count or None) of a dense layer or matmul."""
    out = _shape(op.results[0])
    if isinstance(op, bnn.BDenseOp):
        k = _shape(op.input)[-1]
        return BINARY, math.prod(out) * k, 0, out[-1] * k
    if isinstance(op, bnn.MatmulOp):
        lhs = _shape(op.lhs)
        k = lhs[-2] if op.transpose_lhs is not None else lhs[-1]
        w = _constant(op.rhs)
        kind = BINARY_WEIGHT if w is not None and w.ndim == 2 and _is_binary_weight(w.T) else FLOAT
        return kind, 0, math.prod(out) * k, None
    k = _shape(op.input)[-1]
    w = _constant(op.weight)
    kind = BINARY_WEIGHT if w is not None and _is_binary_weight(w) else FLOAT
    return kind, 0, math.prod(out) * k, None


def _other(op: Operation) -> tuple[str, int, int, int | None]:
    """Ops without MACs: bit ops are binary, the rest float."""
    return (BINARY if isinstance(op, _BIT_OPS) else FLOAT), 0, 0, None


_FAMILIES = {
    bnn.BConv2dOp: _conv_like,
    bnn.Conv2dOp: _conv_like,
    bnn.BDenseOp: _dense_like,
    bnn.LinearOp: _dense_like,
    bnn.MatmulOp: _dense_like,
}


def _is_table(op: Operation, operand: SSAValue) -> bool:
    """A constant that is stored but no parameter: a binary conv's zero-padding
    correction (derived from the weights), a gather's index table (a layout)."""
    return operand is getattr(op, "correction", None) or (isinstance(op, bnn.GatherOp) and operand is op.index)


def _stored_bytes(op: Operation, operand: SSAValue) -> int:
    """The bytes the compiled code keeps of a constant operand. A gather whose
    index is separable keeps only its non-affine axis tables (a permutation,
    such as the layout transposes channels-last inserts, keeps none)."""
    if isinstance(op, bnn.GatherOp) and operand is op.index and len(op.inputs) == 1:
        from bnnc.dialects.bnn_movement import gather_index
        from bnnc.passes._lower_movement import merge_axes, separable

        index = gather_index(op)
        plan = separable(index) if index is not None else None
        if plan is not None:
            return sum(8 * axis.size for axis in merge_axes(plan[1]) if axis.affine() is None)
    return _type_bytes(operand.type)


def _channels_last(op: Operation) -> bool:
    """An op that writes its result N x H x W x C (channels-last): a binary
    conv's float result, a float conv or pool next to them."""
    kinds = (bnn.BConv2dOp, bnn.Conv2dOp, bnn.MaxPool2dOp, bnn.AvgPool2dOp, bnn.BatchNormOp)
    return isinstance(op, kinds) and op.channels_last is not None


def _fused_pool(op: Operation) -> str:
    """` + relu`, ` + max pool 3x3/2` on a float conv with a fused ReLU
    (fuse-conv-relu) or max pool (fuse-conv-maxpool)."""
    if not isinstance(op, bnn.Conv2dOp):
        return ""
    relu = " + relu" if op.relu is not None else ""
    pool = op.max_pool()
    if pool is None:
        return relu
    (kh, kw), (sh, sw), _, _ = pool
    return f"{relu} + max pool {kh}x{kw}/{sh if sh == sw else f'{sh}x{sw}'}"


def _location(loc: Attribute) -> str:
    """`module.path (file.py:12)` from the frontend's NameLoc(FileLineColLoc)."""
    if isinstance(loc, NameLoc):
        inner = _location(loc.location)
        return f"{loc.desc.data} ({inner})" if inner else loc.desc.data
    if isinstance(loc, FileLineColLoc):
        import os

        path = loc.filename.data
        relative = os.path.relpath(path) if os.path.isabs(path) else path
        return f"{relative if not relative.startswith('..') else os.path.basename(path)}:{loc.line.data}"
    if isinstance(loc, UnknownLoc):
        return ""
    return str(loc)


def _entry(module: ModuleOp, name: str | None) -> func.FuncOp:
    funcs = [op for op in module.ops if isinstance(op, func.FuncOp) and op.body.blocks]
    for fn in funcs:
        if fn.sym_name.data == name:
            return fn
    if len(funcs) == 1 and name is None:
        return funcs[0]
    from bnnc.errors import IRError

    raise IRError(f"the module has no function @{name}")


def summarize(module: ModuleOp, name: str | None = None) -> ModelSummary:
    """The summary of `module`'s function @`name`, bnn IR after the graph
    passes (the `bnn` stage). "Before" figures are left for the caller."""
    fn = _entry(module, name)
    fn_name = fn.sym_name.data
    body = [op for op in fn.body.block.ops if not isinstance(op, func.ReturnOp)]
    ret = fn.body.block.last_op
    summary = ModelSummary(fn_name)
    seen: set[SSAValue] = set()
    for index, op in enumerate(body):
        if isinstance(op, arith.ConstantOp):
            continue
        kind, bit_macs, float_macs, weight_count = _FAMILIES.get(type(op), _other)(op)
        params = param_bytes = weights = weight_bytes = 0
        for operand in op.operands:
            if not isinstance(operand.owner, arith.ConstantOp) or operand in seen:
                continue
            seen.add(operand)
            param_bytes += _stored_bytes(op, operand)
            if _is_table(op, operand):
                continue
            count = math.prod(_shape(operand))
            if operand is getattr(op, "weight", getattr(op, "rhs", None)):
                count = weight_count if weight_count is not None else count
                weights, weight_bytes = count, _type_bytes(operand.type)
            params += count
        summary.layers.append(
            LayerSummary(
                index=index,
                function=f"{fn_name}_{index}_{op.name.split('.')[-1]}",
                op=op.name,
                location=_location(op.location),
                inputs=[_type_text(v.type) for v in op.operands if not isinstance(v.owner, arith.ConstantOp)],
                output=_type_text(op.results[0].type) + (" (NHWC)" if _channels_last(op) else "") + _fused_pool(op),
                kind=kind,
                params=params,
                param_bytes=param_bytes,
                weights=weights,
                weight_bytes=weight_bytes,
                bit_macs=bit_macs,
                float_macs=float_macs,
                activation_bytes=_type_bytes(op.results[0].type),
            )
        )
    summary.peak_activation_bytes = _peak_activation(fn, body, ret)
    return summary


def _peak_activation(fn: func.FuncOp, body: list[Operation], ret: Operation | None) -> int:
    """Largest sum of live tensors while the ops run in order (the lowering's
    allocation and free points), counting inputs and outputs throughout."""
    last_use: dict[SSAValue, int] = {}
    for i, op in enumerate(body):
        for v in op.operands:
            last_use[v] = i
    keep = set(ret.operands) if ret is not None else set()
    live = sum(_type_bytes(a.type) for a in fn.body.block.args)
    peak = live
    for i, op in enumerate(body):
        if isinstance(op, arith.ConstantOp):
            continue
        result = op.results[0]
        live += _type_bytes(result.type)
        peak = max(peak, live)
        for v in set(op.operands):
            if last_use.get(v) == i and not isinstance(v.owner, arith.ConstantOp) and v not in keep and v.owner in body:
                live -= _type_bytes(v.type)
        if result not in last_use and result not in keep:  # never used
            live -= _type_bytes(result.type)
    return peak


def state_dict_totals(state: dict[str, Any]) -> tuple[int, int]:
    """(elements, bytes) of a PyTorch state_dict's tensors."""
    count = size = 0
    for tensor in state.values():
        if hasattr(tensor, "numel"):
            count += int(tensor.numel())
            size += int(tensor.numel()) * int(tensor.element_size())
    return count, size


# ----------------------------------------------------------------- building


def import_graph(model: Any, example_inputs: Any = None, options: Any = None, *, trust: bool = False) -> tuple[ModuleOp, ModelSummary]:
    """Import `model` (anything bnnc.compile takes, or a .mlir path), run the
    graph passes on it, and summarise; returns the module at the bnn stage (to
    lower further) and the summary. "Before" is the float model's state_dict
    for PyTorch models, else the imported file's weights. The summary's name is
    the entry function (for a .mlir file: options.name, else its only one)."""
    import dataclasses
    import os

    from bnnc.driver import CompileOptions, import_model, ir_entry, load_ir, lower

    options = dataclasses.replace(options) if options is not None else CompileOptions()
    state = None
    if isinstance(model, ModuleOp):
        module = model
    else:
        path = os.fspath(model) if isinstance(model, str) or hasattr(model, "__fspath__") else None
        source = model
        if path is not None and path.lower().endswith(".mlir"):
            module = load_ir(path)
            options.name = ir_entry(module, path, None if options.name == "forward" else options.name, options.name)
        else:
            if path is not None and not path.lower().endswith((".onnx", ".tflite")):
                from bnnc.frontend.loaders import load_model_file

                source = load_model_file(path, trust=trust, example_inputs=example_inputs)
            state = _state_dict(source)
            module = import_model(source, example_inputs, name=options.name, trust=trust)
    imported = summarize(module, options.name)  # (packed weights, as in a .mlir of bnn IR, count their bits)
    before = imported.params_after, imported.bytes_after
    lower(module, options, "bnn")
    summary = summarize(module, options.name)
    if state is not None:
        summary.params_before, summary.bytes_before = state_dict_totals(state)
        summary.before_source = "PyTorch state_dict"
    else:
        summary.params_before, summary.bytes_before = before
        summary.before_source = "imported weights"
    return module, summary


def summarize_model(model: Any, example_inputs: Any = None, options: Any = None, *, trust: bool = False) -> ModelSummary:
    """The summary of `model` (see import_graph)."""
    return import_graph(model, example_inputs, options, trust=trust)[1]


def _state_dict(model: Any) -> dict[str, Any] | None:
    """The float model's state_dict, for an nn.Module or an ExportedProgram."""
    try:
        import torch
    except ImportError:
        return None
    if isinstance(model, torch.export.ExportedProgram):
        return dict(model.state_dict)
    if isinstance(model, torch.nn.Module):
        return dict(model.state_dict())
    return None


# ----------------------------------------------------------------- printing


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def human_count(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def render(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    """Aligned text columns (`right`: right-aligned column indices)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(summary: ModelSummary) -> str:
    headers = ["#", "op", "location", "input", "output", "kind", "params", "bytes", "bit-MACs", "float MACs", "act. bytes"]
    rows = [
        [
            str(layer.index),
            layer.op.removeprefix("bnn."),
            _clip(layer.location or "-", 60),
            ", ".join(layer.inputs),
            layer.output,
            layer.kind,
            f"{layer.params:,}",
            f"{layer.param_bytes:,}",
            f"{layer.bit_macs:,}",
            f"{layer.float_macs:,}",
            f"{layer.activation_bytes:,}",
        ]
        for layer in summary.layers
    ]
    lines = [f"bnnc summary: @{summary.name}", *render(headers, rows, {0, 6, 7, 8, 9, 10})]
    t = summary
    lines += [
        "",
        f"parameters before ({t.before_source}): {t.params_before:,} in {human_bytes(t.bytes_before)} ({t.bytes_before:,} bytes)",
        f"parameters after (bnnc, as stored):  {t.params_after:,} in {human_bytes(t.bytes_after)} ({t.bytes_after:,} bytes)"
        + (f", {t.bytes_before / t.bytes_after:.1f}x smaller" if t.bytes_after else ""),
        f"MACs: {t.bit_macs:,} bit-MACs + {t.float_macs:,} float MACs ({100 * t.binary_mac_share:.1f}% binary)",
        f"peak activation memory: {human_bytes(t.peak_activation_bytes)} ({t.peak_activation_bytes:,} bytes)",
    ]
    return "\n".join(lines) + "\n"
