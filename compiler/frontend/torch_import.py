"""Import a torch.export ExportedProgram (core ATen) into the bnn dialect.

Steps:
  1. ``ep.run_decompositions()`` to core ATen.
  2. Constant folding with torch itself: every node whose inputs are all
     parameters, buffers or lifted constants is evaluated eagerly, so every
     spelling of weight binarisation (sign(W) * mean|W|, STEs, ...) becomes a
     plain constant tensor.
  3. Activation binarisation idioms (see idioms.py) are recognised and each
     becomes one ``bnn.sign``; the helper ops they leave behind are dead.
  4. Liveness from the graph outputs, then emission in graph order of the
     live nodes only (so dead polynomials of Bi-Real's ApproxSign and
     unsupported dead ops never matter).

Every emitted op carries ``loc(module.path(file:line:0))`` from the FX node.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind
from torch.fx import Node
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import (
    BytesAttr,
    DenseIntOrFPElementsAttr,
    FileLineColLoc,
    IntAttr,
    ModuleOp,
    NameLoc,
    StringAttr,
    TensorType,
    UnknownLoc,
    f32,
    i64,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue

from bnnc.dialects import bnn
from bnnc.errors import UnsupportedError

from . import idioms
from .idioms import Binarized, strip

aten = torch.ops.aten

__all__ = ["import_program", "export_module"]


# ------------------------------------------------------------------ helpers


def export_module(model: torch.nn.Module, example_inputs: tuple) -> ExportedProgram:
    """torch.export.export(model.eval(), example_inputs), with torch's failures as UnsupportedError."""
    if not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,)
    model = model.eval()
    try:
        return torch.export.export(model, example_inputs, strict=False)
    except Exception as exc:  # torch raises many exception types here
        msg = str(exc).strip().splitlines()
        first = msg[0] if msg else type(exc).__name__
        raise UnsupportedError(
            f"torch.export could not capture {type(model).__name__}: {first}\n"
            "  hint: bnnc compiles what torch.export can trace; make the forward free of data-dependent "
            "Python control flow, or export it yourself and pass the ExportedProgram"
        ) from exc


def node_module_path(node: Node) -> str:
    stack = node.meta.get("nn_module_stack")
    if stack:
        path, typ = list(stack.values())[-1]
        path = re.sub(r"^L\['self'\]\.?", "", str(path))
        path = re.sub(r"\[['\"]?([^'\"\]]+)['\"]?\]", r".\1", path)  # L['self'].layer1[0] forms
        path = path.replace("._modules.", ".").strip(".")
        if path:
            return path
        name = getattr(typ, "__name__", str(typ))
        return name.rsplit(".", 1)[-1]
    return ""


def node_source(node: Node) -> tuple[str, int] | None:
    trace = node.meta.get("stack_trace")
    if not trace:
        return None
    frames = re.findall(r'File "([^"]+)", line (\d+)', trace)
    if not frames:
        return None
    # the user's frame: the last one outside torch's own sources (nn.functional etc.)
    user = [f for f in frames if not f[0].startswith(_TORCH_DIR)]
    file, line = (user or frames)[-1]
    return file, int(line)


_TORCH_DIR = __import__("os").path.dirname(torch.__file__)


def node_location(node: Node) -> Attribute:
    path = node_module_path(node)
    src = node_source(node)
    if src is None and not path:
        return UnknownLoc()
    inner: Attribute = (
        FileLineColLoc(StringAttr(src[0]), IntAttr(src[1]), IntAttr(0)) if src is not None else UnknownLoc()
    )
    return NameLoc(StringAttr(path or node.name), inner)


def op_name(node: Node) -> str:
    t = node.target
    if isinstance(t, torch._ops.OpOverload):
        return f"aten.{t._schema.name.split('::')[-1]}.{t._overloadname}" if t.namespace == "aten" else str(t)
    return getattr(t, "__name__", str(t))


def describe(node: Node) -> str:
    """` in module `a.b` (file.py:12)` for error messages."""
    parts = []
    path = node_module_path(node)
    if path:
        parts.append(f"in module `{path}`")
    src = node_source(node)
    if src is not None:
        parts.append(f"at {src[0]}:{src[1]}")
    return (" " + " ".join(parts)) if parts else ""


def unsupported(node: Node, what: str, hint: str) -> UnsupportedError:
    return UnsupportedError(f"{what}{describe(node)}\n  hint: {hint}")


def _pair(v: Any, default: Sequence[int] | None = None) -> tuple[int, int]:
    if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
        assert default is not None
        return tuple(default)  # type: ignore[return-value]
    if isinstance(v, int):
        return (v, v)
    v = list(v)
    if len(v) == 1:
        return (int(v[0]), int(v[0]))
    return (int(v[0]), int(v[1]))


def _arg(node: Node, i: int, name: str, default: Any = None) -> Any:
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


# x-like factories are constants (only x's shape matters): target -> fill value, or
# the index of the argument holding it.
_LIKE_FILL: dict[Any, Any] = {
    aten.ones_like.default: 1.0,
    aten.zeros_like.default: 0.0,
    aten.full_like.default: 1,
}


@dataclass
class _Plan:
    deps: list[Node]
    emit: Callable[[], Any]


# ----------------------------------------------------------------- importer


class _Importer:
    def __init__(self, ep: ExportedProgram, func_name: str):
        try:
            self.ep = ep.run_decompositions()
        except Exception as exc:
            raise UnsupportedError(f"torch could not decompose the program to core ATen: {exc}") from exc
        self.func_name = func_name
        self.graph = self.ep.graph
        self.consts: dict[Node, Any] = {}
        self.user_inputs: list[Node] = []
        self.values: dict[Node, Any] = {}
        self.plans: dict[Node, _Plan] = {}
        self.const_cache: dict[tuple, SSAValue] = {}
        self.sign_cache: dict[tuple[Node, bool], SSAValue] = {}
        self.ops: list[Operation] = []
        self.loc: Attribute = UnknownLoc()
        self.match = idioms.BinarizeMatcher(self.consts)

    # -- setup

    def _collect_placeholders(self) -> None:
        ep = self.ep
        by_name = {n.name: n for n in self.graph.nodes if n.op == "placeholder"}
        for spec in ep.graph_signature.input_specs:
            node = by_name.get(getattr(spec.arg, "name", None))
            if node is None:
                continue
            if spec.kind == InputKind.USER_INPUT:
                self.user_inputs.append(node)
                continue
            if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
                if spec.target in ep.state_dict:
                    self.consts[node] = ep.state_dict[spec.target]
                elif spec.target in ep.constants:
                    self.consts[node] = ep.constants[spec.target]
                else:
                    raise UnsupportedError(f"the value of {spec.kind.name.lower()} `{spec.target}` is missing from the program")
                continue
            raise UnsupportedError(
                f"input `{node.name}` of kind {spec.kind.name} is not supported\n"
                "  hint: bnnc supports tensor inputs, parameters, buffers and constant tensors only"
            )
        for node in self.user_inputs:
            val = node.meta.get("val")
            if not isinstance(val, torch.Tensor):
                raise UnsupportedError(
                    f"input `{node.name}` is not a tensor ({type(val).__name__})\n"
                    "  hint: bnnc compiles models whose inputs are f32 tensors; bake other arguments into the model"
                )
            if val.dtype != torch.float32:
                raise UnsupportedError(
                    f"input `{node.name}` has dtype {val.dtype}; only torch.float32 inputs are supported\n"
                    "  hint: export the model with float32 example inputs"
                )
            if not all(isinstance(d, int) for d in val.shape):
                raise UnsupportedError(
                    f"input `{node.name}` has a dynamic shape {tuple(str(d) for d in val.shape)}; bnnc needs static shapes\n"
                    "  hint: export without dynamic_shapes (one compiled model per input shape)"
                )

    def _fold_constants(self) -> None:
        with torch.no_grad():
            for node in self.graph.nodes:
                if node.op != "call_function" or node in self.consts:
                    continue
                if isinstance(node.target, torch._ops.OpOverload):
                    tags = getattr(node.target, "tags", ())
                    if torch.Tag.nondeterministic_seeded in tags:
                        continue
                    if node.target._schema.is_mutable:
                        continue
                if "assert" in str(node.target):
                    continue
                like = _LIKE_FILL.get(node.target)
                if like is not None:
                    val = node.meta.get("val")
                    if isinstance(val, torch.Tensor) and all(isinstance(d, int) for d in val.shape):
                        fill = like if not isinstance(like, int) else node.args[like]
                        if not isinstance(fill, Node):
                            self.consts[node] = torch.full(tuple(val.shape), fill, dtype=val.dtype)
                    continue
                inputs = node.all_input_nodes
                if not all(n in self.consts for n in inputs):
                    continue
                args = torch.fx.node.map_arg(node.args, lambda n: self.consts[n])
                kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: self.consts[n])
                try:
                    self.consts[node] = node.target(*args, **kwargs)
                except Exception:
                    continue

    # -- emission utilities

    def add(self, op: Operation) -> Operation:
        op.location = self.loc
        self.ops.append(op)
        return op

    def result_type(self, node: Node, index: int | None = None) -> TensorType:
        val = node.meta.get("val")
        if index is not None and isinstance(val, (list, tuple)):
            val = val[index]
        if not isinstance(val, torch.Tensor):
            raise unsupported(node, f"{op_name(node)} does not produce a tensor", "bnnc compiles tensor programs")
        if val.dtype != torch.float32:
            raise unsupported(
                node,
                f"{op_name(node)} produces a {val.dtype} tensor; bnnc computes in float32 only",
                "keep activations in float32 (binarise with where(x >= 0, 1., -1.) rather than integer masks)",
            )
        if not all(isinstance(d, int) for d in val.shape):
            raise unsupported(node, f"{op_name(node)} has a dynamic shape", "export with static shapes")
        return TensorType(f32, list(val.shape))

    def const_tensor(self, value: torch.Tensor | np.ndarray, dtype: str = "f32") -> SSAValue:
        if isinstance(value, torch.Tensor):
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

    def const_float(self, node: Node, value: Any, rank: int) -> SSAValue:
        """A scalar or constant tensor operand as an f32 tensor constant."""
        if isinstance(value, Node):
            value = self.consts[value]
        if isinstance(value, torch.Tensor):
            t = value.detach()
            if t.dtype != torch.float32:
                f = t.to(torch.float32)
                if not torch.equal(f.to(t.dtype), t):
                    raise unsupported(node, f"constant of dtype {t.dtype} in {op_name(node)} is not exact in float32", "use float32 constants")
                t = f
            while t.dim() > rank and t.shape[0] == 1:
                t = t[0]
            if t.dim() == 0:
                t = t.reshape([1] * max(rank, 1))
            return self.const_tensor(t)
        if isinstance(value, (bool, int, float)):
            return self.const_tensor(np.full([1] * max(rank, 1), float(value), dtype=np.float32))
        raise unsupported(node, f"unsupported operand {value!r} of {op_name(node)}", "use tensors or numbers")

    def value(self, node: Node) -> SSAValue:
        if node in self.consts:
            val = self.consts[node]
            if not isinstance(val, torch.Tensor):
                raise unsupported(node, f"constant {node.name} is not a tensor", "use tensors")
            if val.dtype != torch.float32:
                raise unsupported(node, f"constant {node.name} has dtype {val.dtype}", "bnnc computes in float32 only")
            return self.const_tensor(val)
        v = self.values[node]
        if isinstance(v, tuple):
            raise unsupported(node, f"{op_name(node)} returns several values", "use element 0 only")
        return v

    def sign(self, src: Node, flip: bool, at: Node | None = None) -> SSAValue:
        """bnn.sign(src) (flip=False) or bnn.sign(-src) (flip=True), shared per source.

        `at` is the node that binarises (its location goes on the sign)."""
        key = (src, flip)
        if key not in self.sign_cache:
            saved = self.loc
            if at is not None:
                self.loc = node_location(at)
            x = self.value(src)
            if flip:
                x = self.add(bnn.MulOp(x, self.const_float(src, -1.0, len(x.type.get_shape())), x.type)).result
            self.sign_cache[key] = self.add(bnn.SignOp(x)).result
            self.loc = saved
        return self.sign_cache[key]

    def binarized_value(self, b: Binarized) -> SSAValue:
        s = self.sign(b.src, b.flip, b.at)
        if b.flip:
            s = self.add(bnn.MulOp(s, self.const_float(b.src, -1.0, len(s.type.get_shape())), s.type)).result
        return s

    # -- planning

    def check_sign_zero(self, node: Node, b: Binarized) -> None:
        if not b.torch_sign:
            return
        zero = idioms.may_be_exact_zero(b.src, self.consts, is_binarized=lambda n: self.match(n) is not None)
        if zero is not None:
            raise unsupported(
                node,
                f"torch.sign (aten.sign.default) of the output of {op_name(zero)}{describe(zero)}, which is exactly 0 "
                "for many inputs: torch.sign maps 0 to 0, bnnc's binarize maps 0 to +1, so the compiled model "
                "would compute a different function",
                "binarise with torch.where(x >= 0, 1., -1.) (0 -> +1), or move the sign before the relu/clamp",
            )

    def plan(self, node: Node) -> _Plan:
        if node in self.plans:
            return self.plans[node]
        if node.op == "placeholder":
            p = _Plan([], lambda: None)
        else:
            b = self.match(node)
            if b is not None and strip(node) is node:
                self.check_sign_zero(node, b)
                p = _Plan([b.src], lambda b=b: self.binarized_value(b))
            else:
                p = self._plan_op(node)
        self.plans[node] = p
        return p

    def node_deps(self, args: Any) -> list[Node]:
        deps: list[Node] = []
        torch.fx.node.map_arg(args, lambda n: deps.append(n) if n not in self.consts else None)
        return deps

    def _plan_op(self, node: Node) -> _Plan:
        if node.op != "call_function":
            raise unsupported(node, f"FX node kind `{node.op}` ({node.target})", "export with torch.export")
        t = node.target
        handler = _HANDLERS.get(t)
        if handler is None:
            raise unsupported(
                node,
                f"unsupported op {op_name(node)}",
                "bnnc supports convolutions, linear layers, batch norm, (P)ReLU, hardtanh, elementwise "
                "add/sub/mul/div, pooling, mean, cat and reshapes; rewrite this part of the model with those "
                "or run it outside the compiled model",
            )
        return handler(self, node)

    # -- main

    def run(self) -> ModuleOp:
        self._collect_placeholders()
        self._fold_constants()
        out_node = next(n for n in self.graph.nodes if n.op == "output")
        outputs = list(out_node.args[0]) if isinstance(out_node.args[0], (list, tuple)) else [out_node.args[0]]
        for o in outputs:
            if not isinstance(o, Node):
                raise UnsupportedError(f"the model returns a non-tensor value {o!r}; bnnc compiles tensor outputs only")

        # liveness
        live: set[Node] = set()
        stack = [o for o in outputs if o not in self.consts]
        while stack:
            n = stack.pop()
            if n in live:
                continue
            live.add(n)
            for d in self.plan(n).deps:
                if d not in live and d not in self.consts:
                    stack.append(d)

        # function signature
        arg_types = [TensorType(f32, list(n.meta["val"].shape)) for n in self.user_inputs]
        block = Block(arg_types=arg_types)
        for n, arg in zip(self.user_inputs, block.args):
            self.values[n] = arg
            arg.name_hint = re.sub(r"[^A-Za-z0-9_]", "_", n.name)

        for node in self.graph.nodes:
            if node in live and node.op != "placeholder":
                self.loc = node_location(node)
                self.values[node] = self.plan(node).emit()

        results = []
        for o in outputs:
            self.loc = node_location(o) if o.op != "placeholder" else UnknownLoc()
            v = self.value(o)
            if not isinstance(v.type, TensorType) or v.type.element_type != f32:
                raise UnsupportedError(f"output `{o.name}` is not an f32 tensor")
            results.append(v)
        self.loc = UnknownLoc()
        self.add(func.ReturnOp(*results))
        for op in self.ops:
            block.add_op(op)
        fn = func.FuncOp(self.func_name, ([a.type for a in block.args], [r.type for r in results]), Region(block))
        module = ModuleOp([fn])
        try:
            module.verify()
        except Exception as exc:
            raise UnsupportedError(f"internal error: the imported IR does not verify: {exc}") from exc
        return module


# ---------------------------------------------------------------- handlers

_HANDLERS: dict[Any, Callable[[_Importer, Node], _Plan]] = {}


def _handles(*targets: Any):
    def deco(fn):
        for t in targets:
            _HANDLERS[t] = fn
        return fn

    return deco


@_handles(*idioms.IDENTITY_OPS, aten._to_copy.default)
def _identity(imp: _Importer, node: Node) -> _Plan:
    src = node.args[0]
    imp.result_type(node)
    if node.target is aten._to_copy.default:
        extra = set(node.kwargs) - {"dtype", "memory_format", "layout", "device"}
        if extra:
            raise unsupported(node, f"{op_name(node)} with {sorted(extra)}", "remove the copy")
    return _Plan(imp.node_deps([src]), lambda: imp.value(src))


@_handles(*idioms.RESHAPES)
def _reshape(imp: _Importer, node: Node) -> _Plan:
    src = node.args[0]
    typ = imp.result_type(node)

    def emit():
        v = imp.value(src)
        if tuple(v.type.get_shape()) == tuple(typ.get_shape()):
            return v
        return imp.add(bnn.ReshapeOp(v, typ)).result

    return _Plan(imp.node_deps([src]), emit)


def _unary(ctor):
    def handler(imp: _Importer, node: Node) -> _Plan:
        src = node.args[0]
        imp.result_type(node)
        return _Plan(imp.node_deps([src]), lambda: imp.add(ctor(imp.value(src))).result)

    return handler


_HANDLERS[aten.relu.default] = _unary(bnn.ReluOp)
_HANDLERS[aten.abs.default] = _unary(bnn.AbsOp)


@_handles(aten.hardtanh.default, aten.clamp.default, aten.clamp_min.default)
def _clamp(imp: _Importer, node: Node) -> _Plan:
    src = node.args[0]
    imp.result_type(node)
    if node.target is aten.hardtanh.default:
        lo, hi = _arg(node, 1, "min_val", -1.0), _arg(node, 2, "max_val", 1.0)
    elif node.target is aten.clamp.default:
        lo, hi = _arg(node, 1, "min"), _arg(node, 2, "max")
    else:
        lo, hi = _arg(node, 1, "min"), None
    if isinstance(lo, Node) or isinstance(hi, Node):
        raise unsupported(node, f"{op_name(node)} with tensor bounds", "use number bounds")
    if lo is not None and hi is not None:
        return _Plan(imp.node_deps([src]), lambda: imp.add(bnn.HardtanhOp(imp.value(src), float(lo), float(hi))).result)
    if lo is not None and hi is None and float(lo) == 0.0:
        return _Plan(imp.node_deps([src]), lambda: imp.add(bnn.ReluOp(imp.value(src))).result)
    raise unsupported(
        node,
        f"{op_name(node)} with min={lo}, max={hi}",
        "bnnc supports clamp/hardtanh with both bounds and clamp(min=0) (relu)",
    )


def _prelu_plan(imp: _Importer, node: Node, x: Node, slope: Any) -> _Plan:
    s = strip(slope)
    if not (isinstance(s, Node) and s in imp.consts and isinstance(imp.consts[s], torch.Tensor)):
        raise unsupported(node, "PReLU with a non-constant slope", "use a constant slope")
    w = imp.consts[s].detach().to(torch.float32)
    xshape = list(x.meta["val"].shape)
    # the slope broadcasts against x: one value, or one per channel (axis 1)
    aligned = [1] * (len(xshape) - w.dim()) + list(w.shape)
    if w.numel() == 1:
        flat = w.reshape(1)
    elif (
        len(xshape) >= 2
        and len(aligned) == len(xshape)
        and aligned[1] == xshape[1]
        and all(d == 1 for i, d in enumerate(aligned) if i != 1)
    ):
        flat = w.reshape(-1)
    elif w.dim() == 1 and len(xshape) >= 2 and w.numel() == xshape[1]:
        flat = w  # prelu.default / _prelu_kernel spell the per-channel slope as [C]
    else:
        raise unsupported(node, f"PReLU slope of shape {tuple(w.shape)}", "use one slope or one per channel")
    imp.result_type(node)
    return _Plan(imp.node_deps([x]), lambda: imp.add(bnn.PReluOp(imp.value(x), imp.const_tensor(flat))).result)


@_handles(aten._prelu_kernel.default, aten.prelu.default)
def _prelu(imp: _Importer, node: Node) -> _Plan:
    x, w = node.args[0], node.args[1]
    return _prelu_plan(imp, node, x, w)


@_handles(aten.where.self)
def _where(imp: _Importer, node: Node) -> _Plan:
    # PReLU's decomposition: where(x > 0, x, slope * x)
    cond, a, b = node.args[:3]
    cmp = idioms.match_compare_zero(cond, imp.consts)
    if cmp is not None and cmp[0] in ("gt", "ge") and idioms.same_value(a, cmp[1]):
        m = strip(b)
        if isinstance(m, Node) and m.op == "call_function" and m.target is aten.mul.Tensor:
            p, q = m.args[0], m.args[1]
            for slope, xx in ((p, q), (q, p)):
                if idioms.same_value(xx, cmp[1]) and strip(slope) in imp.consts:
                    return _prelu_plan(imp, node, cmp[1], slope)
    raise unsupported(
        node,
        "unsupported select aten.where.self (only binarisations where(x >= 0, 1., -1.) and PReLU are recognised)",
        "binarise with torch.where(x >= 0, 1., -1.); note where(x > 0, 1, -1) also works but maps 0 to -1",
    )


_ELEMENTWISE = {
    aten.add.Tensor: bnn.AddOp,
    aten.add.Scalar: bnn.AddOp,
    aten.sub.Tensor: bnn.SubOp,
    aten.sub.Scalar: bnn.SubOp,
    aten.mul.Tensor: bnn.MulOp,
    aten.mul.Scalar: bnn.MulOp,
    aten.div.Tensor: bnn.DivOp,
    aten.div.Scalar: bnn.DivOp,
    aten.rsub.Scalar: "rsub",
    aten.rsub.Tensor: "rsub",
}


@_handles(*_ELEMENTWISE)
def _elementwise(imp: _Importer, node: Node) -> _Plan:
    ctor = _ELEMENTWISE[node.target]
    alpha = node.kwargs.get("alpha", 1)
    if alpha != 1:
        raise unsupported(node, f"{op_name(node)} with alpha={alpha}", "write the scaling as a separate multiplication")
    a, b = node.args[0], node.args[1]
    if ctor == "rsub":
        a, b, ctor = b, a, bnn.SubOp
    typ = imp.result_type(node)
    rank = len(typ.get_shape())

    def operand(v: Any) -> SSAValue:
        if isinstance(v, Node) and v not in imp.consts:
            return imp.value(v)
        return imp.const_float(node, v, rank)

    return _Plan(imp.node_deps([a, b]), lambda: imp.add(ctor(operand(a), operand(b), typ)).result)


@_handles(aten.neg.default)
def _neg(imp: _Importer, node: Node) -> _Plan:
    src = node.args[0]
    typ = imp.result_type(node)
    rank = len(typ.get_shape())
    return _Plan(
        imp.node_deps([src]),
        lambda: imp.add(bnn.MulOp(imp.value(src), imp.const_float(node, -1.0, rank), typ)).result,
    )


@_handles(aten.cat.default)
def _cat(imp: _Importer, node: Node) -> _Plan:
    inputs = list(node.args[0])
    typ = imp.result_type(node)
    rank = len(typ.get_shape())
    axis = _arg(node, 1, "dim", 0)
    axis = axis + rank if axis < 0 else axis
    return _Plan(imp.node_deps(inputs), lambda: imp.add(bnn.CatOp([imp.value(i) for i in inputs], axis, typ)).result)


@_handles(operator.getitem)
def _getitem(imp: _Importer, node: Node) -> _Plan:
    src, idx = node.args[0], node.args[1]
    multi = (
        aten._native_batch_norm_legit_no_training.default,
        aten.native_batch_norm.default,
        aten.max_pool2d_with_indices.default,
    )
    if not (isinstance(src, Node) and src.target in multi):
        raise unsupported(node, f"indexing the result of {op_name(src) if isinstance(src, Node) else src}", "")
    if idx != 0:
        raise unsupported(
            node,
            f"result {idx} of {op_name(src)} (only the main result is supported)",
            "do not use pooling indices or batch statistics",
        )
    imp.result_type(node)
    return _Plan([src], lambda: imp.values[src][0])


@_handles(aten._native_batch_norm_legit_no_training.default, aten.native_batch_norm.default)
def _batch_norm(imp: _Importer, node: Node) -> _Plan:
    if node.target is aten.native_batch_norm.default:
        x, w, b, mean, var, training, _momentum, eps = node.args[:8]
        if training:
            raise unsupported(node, "batch norm in training mode", "call model.eval() before exporting")
    else:
        x, w, b, mean, var, _momentum, eps = node.args[:7]
    for p, what in ((w, "weight"), (b, "bias"), (mean, "running_mean"), (var, "running_var")):
        if p is not None and p not in imp.consts:
            raise unsupported(node, f"batch norm with a non-constant {what}", "use nn.BatchNorm2d in eval mode")
    if mean is None or var is None:
        raise unsupported(node, "batch norm without running statistics", "use track_running_stats=True")
    c = imp.consts[mean].numel()

    def vec(p: Any, fill: float) -> SSAValue:
        if p is None:
            return imp.const_tensor(np.full([c], fill, dtype=np.float32))
        return imp.const_tensor(imp.consts[p].detach().to(torch.float32).reshape(-1))

    def emit():
        op = bnn.BatchNormOp(imp.value(x), vec(mean, 0), vec(var, 1), vec(w, 1), vec(b, 0), float(eps))
        return (imp.add(op).result, None, None)

    return _Plan(imp.node_deps([x]), emit)


def _pool_args(node: Node, kernel_i: int = 1):
    kernel = _pair(_arg(node, 1, "kernel_size"))
    stride = _pair(_arg(node, 2, "stride", []), kernel)
    padding = _pair(_arg(node, 3, "padding", 0))
    return kernel, stride, padding


@_handles(aten.max_pool2d_with_indices.default, aten.max_pool2d.default)
def _max_pool(imp: _Importer, node: Node) -> _Plan:
    x = node.args[0]
    kernel, stride, padding = _pool_args(node)
    dilation = _pair(_arg(node, 4, "dilation", 1))
    ceil_mode = _arg(node, 5, "ceil_mode", False)
    typ = imp.result_type(node, 0)
    _check_ceil(node, x, typ, kernel, stride, padding, dilation, ceil_mode)
    tuple_result = node.target is aten.max_pool2d_with_indices.default

    def emit():
        op = imp.add(bnn.MaxPool2dOp(imp.value(x), typ, kernel=kernel, strides=stride, padding=padding, dilations=dilation))
        return (op.result, None) if tuple_result else op.result

    return _Plan(imp.node_deps([x]), emit)


def _check_ceil(node, x, typ, kernel, stride, padding, dilation, ceil_mode) -> None:
    if not ceil_mode:
        return
    h, w = list(x.meta["val"].shape)[2:]
    floor = (
        bnn.conv_output_size(h, kernel[0], stride[0], padding[0], dilation[0]),
        bnn.conv_output_size(w, kernel[1], stride[1], padding[1], dilation[1]),
    )
    if tuple(typ.get_shape()[2:]) != floor:
        raise unsupported(node, f"{op_name(node)} with ceil_mode=True", "use ceil_mode=False (pad the input instead)")


@_handles(aten.avg_pool2d.default)
def _avg_pool(imp: _Importer, node: Node) -> _Plan:
    x = node.args[0]
    kernel, stride, padding = _pool_args(node)
    ceil_mode = _arg(node, 4, "ceil_mode", False)
    count_include_pad = _arg(node, 5, "count_include_pad", True)
    divisor = _arg(node, 6, "divisor_override", None)
    typ = imp.result_type(node)
    _check_ceil(node, x, typ, kernel, stride, padding, (1, 1), ceil_mode)
    return _Plan(
        imp.node_deps([x]),
        lambda: imp.add(
            bnn.AvgPool2dOp(
                imp.value(x),
                typ,
                kernel=kernel,
                strides=stride,
                padding=padding,
                count_include_pad=bool(count_include_pad),
                divisor_override=divisor,
            )
        ).result,
    )


@_handles(aten._adaptive_avg_pool2d.default, aten.adaptive_avg_pool2d.default)
def _adaptive(imp: _Importer, node: Node) -> _Plan:
    x = node.args[0]
    typ = imp.result_type(node)
    if len(typ.get_shape()) != 4:
        raise unsupported(node, f"{op_name(node)} on a rank-{len(typ.get_shape())} tensor", "use NCHW inputs")
    return _Plan(imp.node_deps([x]), lambda: imp.add(bnn.AdaptiveAvgPool2dOp(imp.value(x), typ)).result)


@_handles(aten.mean.dim, aten.mean.default)
def _mean(imp: _Importer, node: Node) -> _Plan:
    x = node.args[0]
    rank = len(x.meta["val"].shape)
    if node.target is aten.mean.default:
        dims, keepdim = list(range(rank)), False
    else:
        dims = _arg(node, 1, "dim", None)
        dims = list(range(rank)) if dims is None or dims == [] else list(dims)
        keepdim = _arg(node, 2, "keepdim", False)
    if node.kwargs.get("dtype") not in (None, torch.float32):
        raise unsupported(node, f"{op_name(node)} with dtype={node.kwargs['dtype']}", "compute in float32")
    dims = sorted({d + rank if d < 0 else d for d in dims})
    typ = imp.result_type(node)
    in_shape = list(x.meta["val"].shape)
    kept = TensorType(f32, [1 if i in dims else s for i, s in enumerate(in_shape)])

    def emit():
        v = imp.add(bnn.MeanOp(imp.value(x), dims, kept)).result
        if not keepdim and tuple(kept.get_shape()) != tuple(typ.get_shape()):
            v = imp.add(bnn.ReshapeOp(v, typ)).result
        return v

    return _Plan(imp.node_deps([x]), emit)


# ---------------------------------------------------------- conv and dense


@dataclass
class _BinInput:
    bin: Binarized
    pads: tuple[int, int, int, int] | None  # (left, right, top, bottom) of a constant_pad_nd around it
    pad_value: float  # the value PyTorch's padded binarised tensor holds at padded positions
    padded: Node | None  # the node whose shape is the padded tensor's


def _pad_amounts(node: Node, pad: Sequence[int]) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) of a constant_pad_nd on an NCHW tensor."""
    pad = [int(p) for p in pad]
    rank = len(node.args[0].meta["val"].shape) if isinstance(node.args[0], Node) else 0
    if rank != 4 or len(pad) % 2 or len(pad) > 4 and any(pad[4:]) or min(pad) < 0:
        raise unsupported(
            node,
            f"aten.constant_pad_nd.default with pad {pad} on a rank-{rank} tensor",
            "pad only the two spatial dimensions of an NCHW tensor, by non-negative amounts",
        )
    pad = (pad + [0, 0, 0, 0])[:4]
    return pad[0], pad[1], pad[2], pad[3]


def _binarize_scalar(b: Binarized, v: float) -> float:
    """The value of the binarisation `b` (as PyTorch computes it) at a padded input value v."""
    if b.flip:
        return 1.0 if v > 0 else -1.0
    if b.torch_sign:
        return float(np.sign(v))
    return 1.0 if v >= 0 else -1.0


def _binary_input(imp: _Importer, conv: Node, inp: Node) -> _BinInput | None:
    """A conv/linear input that is a binarisation, possibly padded before or after."""
    n = strip(inp)
    if isinstance(n, Node) and n.op == "call_function" and n.target is aten.constant_pad_nd.default:
        b = imp.match(n.args[0])
        if b is None:
            return None
        imp.check_sign_zero(n, b)
        return _BinInput(b, _pad_amounts(n, n.args[1]), float(_arg(n, 2, "value", 0.0)), n)
    b = imp.match(n)
    if b is None:
        return None
    src = strip(b.src)
    if isinstance(src, Node) and src.op == "call_function" and src.target is aten.constant_pad_nd.default:
        # binarise(pad(x, v)) = pad(binarise(x), binarise(v)): exact also for
        # torch.sign of a zero pad (0 there), which bnn.sign of the pad is not.
        value = float(_arg(src, 2, "value", 0.0))
        inner = imp.match(n)
        b2 = Binarized(src.args[0], flip=inner.flip, torch_sign=inner.torch_sign, at=inner.at)
        imp.check_sign_zero(conv, b2)
        return _BinInput(b2, _pad_amounts(src, src.args[1]), _binarize_scalar(b, value), n)
    imp.check_sign_zero(conv, b)
    return _BinInput(b, None, 0.0, None)


def _emit_binary_input(imp: _Importer, bi: _BinInput) -> SSAValue:
    x = imp.binarized_value(bi.bin)
    if bi.pads is not None:
        typ = TensorType(f32, list(bi.padded.meta["val"].shape))
        x = imp.add(bnn.PadOp(x, bi.pads, bi.pad_value, typ)).result
    return x


@_handles(aten.convolution.default)
def _convolution(imp: _Importer, node: Node) -> _Plan:
    """A float bnn.conv2d with the constant-folded weight; fold-weight-binarization
    turns it into a bnn.bconv2d when the input is binarised and W is +-alpha_c."""
    inp, w, bias, stride, padding, dilation, transposed, _out_pad, groups = node.args[:9]
    if transposed:
        raise unsupported(node, "transposed convolution (aten.convolution.default, transposed=True)", "use conv2d")
    if len(stride) != 2:
        raise unsupported(node, f"{len(stride)}-D convolution (aten.convolution.default)", "bnnc supports conv2d only")
    if w not in imp.consts:
        raise unsupported(
            node,
            "convolution with a weight computed from the input (aten.convolution.default)",
            "the weights must be parameters or computed from parameters only",
        )
    if bias is not None and bias not in imp.consts:
        raise unsupported(node, "convolution with a non-constant bias", "use a parameter bias")
    W = imp.consts[w].detach().to(torch.float32)
    bias_t = imp.consts[bias].detach().to(torch.float32).reshape(-1) if bias is not None else None
    typ = imp.result_type(node)
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)

    def conv(x: SSAValue) -> SSAValue:
        return imp.add(
            bnn.Conv2dOp(
                x,
                imp.const_tensor(W),
                typ,
                strides=stride,
                padding=padding,
                dilations=dilation,
                groups=int(groups),
                bias=imp.const_tensor(bias_t) if bias_t is not None else None,
            )
        ).result

    bi = _binary_input(imp, node, inp)
    if bi is not None:
        return _Plan([bi.bin.src], lambda: conv(_emit_binary_input(imp, bi)))
    return _Plan(imp.node_deps([inp]), lambda: conv(imp.value(inp)))


def _dense_plan(imp: _Importer, node: Node, inp: Node, W: torch.Tensor, bias_t: torch.Tensor | None) -> _Plan:
    """A float bnn.linear; fold-weight-binarization makes it a bnn.bdense."""
    typ = imp.result_type(node)
    if len(inp.meta["val"].shape) != 2:
        raise unsupported(node, f"{op_name(node)} on a rank-{len(inp.meta['val'].shape)} input", "flatten to 2-D first")
    bi = imp.match(inp)

    def linear(x: SSAValue) -> SSAValue:
        b = imp.const_tensor(bias_t) if bias_t is not None else None
        return imp.add(bnn.LinearOp(x, imp.const_tensor(W), typ, b)).result

    if bi is not None:
        imp.check_sign_zero(node, bi)
        return _Plan([bi.src], lambda: linear(imp.binarized_value(bi)))
    return _Plan(imp.node_deps([inp]), lambda: linear(imp.value(inp)))


def _const_or_fail(imp: _Importer, node: Node, arg: Any, what: str) -> torch.Tensor:
    if not (isinstance(arg, Node) and arg in imp.consts and isinstance(imp.consts[arg], torch.Tensor)):
        raise unsupported(
            node,
            f"{op_name(node)} with a {what} computed from the input (matrix products between activations are not supported)",
            "the weights must be parameters or computed from parameters only",
        )
    return imp.consts[arg].detach().to(torch.float32)


@_handles(aten.addmm.default, aten.mm.default, aten.linear.default)
def _dense(imp: _Importer, node: Node) -> _Plan:
    m = imp.result_type(node).get_shape()[-1]
    if node.target is aten.addmm.default:
        bias, inp, wt = node.args[:3]
        if node.kwargs.get("beta", 1) != 1 or node.kwargs.get("alpha", 1) != 1:
            raise unsupported(node, "aten.addmm.default with alpha/beta != 1", "use nn.Linear")
        W = _const_or_fail(imp, node, wt, "weight").t()
        b = _const_or_fail(imp, node, bias, "bias")
        if b.numel() == m:
            b = b.reshape(-1)
        else:
            raise unsupported(node, f"aten.addmm.default with a bias of shape {tuple(b.shape)}", "use nn.Linear")
    elif node.target is aten.mm.default:
        inp, wt = node.args[:2]
        W, b = _const_or_fail(imp, node, wt, "weight").t(), None
    else:
        inp, w = node.args[:2]
        bias = _arg(node, 2, "bias")
        W = _const_or_fail(imp, node, w, "weight")
        b = _const_or_fail(imp, node, bias, "bias").reshape(-1) if bias is not None else None
    if not isinstance(inp, Node) or inp in imp.consts:
        raise unsupported(node, f"{op_name(node)} of a constant", "")
    return _dense_plan(imp, node, inp, W.contiguous(), b)


# ---------------------------------------------------------------- public


def import_program(ep: ExportedProgram, *, func_name: str = "forward") -> ModuleOp:
    """Import an ExportedProgram into one `func.func @<func_name>` of bnn ops.

    Raises UnsupportedError naming the ATen op, its module path and source line
    for anything bnnc cannot compile exactly.
    """
    if not isinstance(ep, ExportedProgram):
        raise UnsupportedError(
            f"import_program expects a torch.export.ExportedProgram, got {type(ep).__name__}\n"
            "  hint: use bnnc.frontend.torch_import.export_module(model, example_inputs)"
        )
    return _Importer(ep, func_name).run()


@_handles(aten.constant_pad_nd.default)
def _pad(imp: _Importer, node: Node) -> _Plan:
    x = node.args[0]
    pads = _pad_amounts(node, node.args[1])
    value = float(_arg(node, 2, "value", 0.0))
    typ = imp.result_type(node)
    return _Plan(imp.node_deps([x]), lambda: imp.add(bnn.PadOp(imp.value(x), pads, value, typ)).result)
