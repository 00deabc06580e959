"""Import a torch.export ExportedProgram (core ATen) into the bnn dialect.

Steps:
  1. ``ep.run_decompositions()`` to core ATen.
  2. Constant folding with torch itself: every node whose inputs are all
     parameters, buffers or lifted constants is evaluated eagerly, so every
     spelling of weight binarisation (sign(W) * mean|W|, STEs, ...) becomes a
     plain constant tensor.
  3. Liveness from the graph outputs, then emission in graph order of the
     live nodes only (so dead polynomials of Bi-Real's ApproxSign and
     unsupported dead ops never matter).

The translation is faithful, op by op, with PyTorch's semantics: torch.sign
becomes the three-valued bnn.signum, comparisons and where become bnn.compare
and bnn.where, bool tensors are f32 masks. Nothing is pattern-matched here:
recognize-binarization (a pass every frontend shares) decides which tensors
are binarisations. Handlers live in the ops_* modules, one per op family.

Every emitted op carries ``loc(module.path(file:line:0))`` from the FX node.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind
from torch.fx import Node
from xdsl.dialects.builtin import (
    ModuleOp,
    TensorType,
    UnknownLoc,
    f32,
)
from xdsl.ir import Block, SSAValue

from bnnc.errors import UnsupportedError

from .fx_helpers import node_location, op_name, unsupported
from .ir_builder import IRBuilder
from .registry import HANDLERS, Plan

aten = torch.ops.aten

__all__ = ["import_program", "export_module"]


# ------------------------------------------------------------------ helpers


def export_module(model: torch.nn.Module, example_inputs: tuple) -> ExportedProgram:
    """torch.export.export of the model in eval mode (inference semantics), with
    torch's failures as UnsupportedError. The caller's module gets its own mode
    back afterwards: compiling must not switch a model out of training."""
    if not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,)
    modes = {m: m.training for m in model.modules()}
    model.eval()
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
    finally:
        for module, training in modes.items():
            module.training = training


# x-like factories are constants (only x's shape matters): target -> fill value, or
# the index of the argument holding it.
_LIKE_FILL: dict[Any, Any] = {
    aten.ones_like.default: 1.0,
    aten.zeros_like.default: 0.0,
    aten.full_like.default: 1,
}

# ----------------------------------------------------------------- importer


class Importer(IRBuilder):
    def __init__(self, ep: ExportedProgram, func_name: str):
        super().__init__(func_name)
        try:
            self.ep = ep.run_decompositions()
        except Exception as exc:
            raise UnsupportedError(f"torch could not decompose the program to core ATen: {exc}") from exc
        self.graph = self.ep.graph
        self.consts: dict[Node, Any] = {}
        self.user_inputs: list[Node] = []
        self.values: dict[Node, Any] = {}
        self.plans: dict[Node, Plan] = {}

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

    def _user_outputs(self, outputs: list) -> list:
        """The model's own outputs, without the write-backs of parameters and
        buffers it updates in place. An update computed from parameters alone
        (Brevitas' in-place weight clamp) is folded at compile time, so the
        compiled model computes the first call's function; one that depends
        on the input is refused."""
        specs = self.ep.graph_signature.output_specs
        if len(specs) != len(outputs):
            return outputs
        kept = []
        for spec, node in zip(specs, outputs):
            if spec.kind == OutputKind.USER_OUTPUT:
                kept.append(node)
            elif spec.kind in (OutputKind.BUFFER_MUTATION, OutputKind.PARAMETER_MUTATION) and node in self.consts:
                continue
            else:
                raise UnsupportedError(
                    f"the model updates `{spec.target}` in place ({spec.kind.name.lower()}) from its input\n"
                    "  hint: bnnc compiles inference functions; remove the in-place update (e.g. call model.eval())"
                )
        return kept

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

    def result_type(self, node: Node, index: int | None = None) -> TensorType:
        val = node.meta.get("val")
        if index is not None and isinstance(val, (list, tuple)):
            val = val[index]
        if not isinstance(val, torch.Tensor):
            raise unsupported(node, f"{op_name(node)} does not produce a tensor", "bnnc compiles tensor programs")
        if val.dtype not in (torch.float32, torch.bool):  # bool tensors are f32 masks (bnn_compare.py)
            raise unsupported(
                node,
                f"{op_name(node)} produces a {val.dtype} tensor; bnnc computes in float32 (and bool masks) only",
                "keep activations in float32 (binarise with where(x >= 0, 1., -1.) rather than integer masks)",
            )
        if not all(isinstance(d, int) for d in val.shape):
            raise unsupported(node, f"{op_name(node)} has a dynamic shape", "export with static shapes")
        return TensorType(f32, list(val.shape))

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
            if val.dtype not in (torch.float32, torch.bool):
                raise unsupported(node, f"constant {node.name} has dtype {val.dtype}", "bnnc computes in float32 only")
            return self.const_tensor(val.to(torch.float32))
        v = self.values[node]
        if isinstance(v, tuple):
            raise unsupported(node, f"{op_name(node)} returns several values", "use element 0 only")
        return v

    # -- planning

    def plan(self, node: Node) -> Plan:
        if node in self.plans:
            return self.plans[node]
        if node.op == "placeholder":
            p = Plan([], lambda: None)
        else:
            p = self._plan_op(node)
        self.plans[node] = p
        return p

    def node_deps(self, args: Any) -> list[Node]:
        deps: list[Node] = []
        torch.fx.node.map_arg(args, lambda n: deps.append(n) if n not in self.consts else None)
        return deps

    def _plan_op(self, node: Node) -> Plan:
        if node.op != "call_function":
            raise unsupported(node, f"FX node kind `{node.op}` ({node.target})", "export with torch.export")
        t = node.target
        handler = HANDLERS.get(t)
        if handler is None:
            raise unsupported(
                node,
                f"unsupported op {op_name(node)}",
                "see the README's \"What bnnc recognises and how\" for the supported ops; rewrite this part "
                "of the model with those or run it outside the compiled model",
            )
        return handler(self, node)

    # -- main

    def run(self) -> ModuleOp:
        self._collect_placeholders()
        self._fold_constants()
        out_node = next(n for n in self.graph.nodes if n.op == "output")
        outputs = list(out_node.args[0]) if isinstance(out_node.args[0], (list, tuple)) else [out_node.args[0]]
        outputs = self._user_outputs(outputs)
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
        return self.finish(block, results)


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
    return Importer(ep, func_name).run()



# The handler modules register themselves in HANDLERS when imported.
from . import ops_core  # noqa: E402,F401
from . import ops_pool  # noqa: E402,F401
from . import ops_reduce  # noqa: E402,F401
from . import ops_math  # noqa: E402,F401
from . import ops_movement  # noqa: E402,F401
from . import ops_linalg  # noqa: E402,F401
from . import ops_compare  # noqa: E402,F401
