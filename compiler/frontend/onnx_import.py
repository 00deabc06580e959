"""Import an ONNX (or QONNX) model into the bnn dialect.

Steps:
  1. onnx_load.load_onnx_file: parse, external data from inside the model's
     folder only, ONNX's checker. Opsets 13 and later.
  2. Input shapes: the graph's, with symbolic dimensions (a dynamic batch)
     taken from the caller's shapes (`--input-shape`, `example_inputs`).
     onnx.shape_inference then gives every intermediate its static shape; a
     node it cannot see through (QONNX custom ops) is inferred alone once its
     inputs are known.
  3. Liveness from the graph outputs, then translation in graph order.
     A node whose inputs are all constants (weights computed from
     initialisers, Shape arithmetic, Constant, ...) is evaluated at import
     with onnx.reference (numpy; QONNX ops with their numpy definition in
     onnx_ops_qonnx), so `Sign(W) * ReduceMean(Abs(W))` reaches the passes as
     a plain constant. Every other node goes to its handler in an onnx_ops_*
     module, which emits bnn ops with ONNX's semantics: Sign is bnn.signum
     (sign(0) = 0), comparisons are bnn.compare f32 masks, Where is bnn.where.
     Nothing is pattern-matched here; recognize-binarization decides which
     tensors are binarisations, as for every frontend.

Locations: `loc("module.path"(file:line:0))` from the metadata torch.onnx
writes (name scopes, stack trace), else the node's name.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from xdsl.dialects.builtin import FileLineColLoc, IntAttr, ModuleOp, NameLoc, StringAttr, TensorType, UnknownLoc, f32
from xdsl.ir import Attribute, Block, SSAValue

from bnnc.errors import InternalError, ModelLoadError, UnsupportedError

from .ir_builder import IRBuilder
from .onnx_load import MIN_OPSET, load_onnx_file
from .onnx_registry import HANDLERS, ONNX_DOMAIN, QONNX_DOMAIN, Mask, canonical_domain

__all__ = ["OnnxImporter", "import_onnx"]

# Ops that draw random numbers: never folded, never compiled.
_NONDETERMINISTIC = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli"}
# A folded constant larger than this many elements is refused (a hostile
# ConstantOfShape/Expand/Tile/Range could otherwise exhaust memory).
MAX_CONSTANT_ELEMENTS = 1 << 28


class OnnxImporter(IRBuilder):
    """Translates one ONNX graph; handlers read inputs and attributes through it."""

    def __init__(self, model: Any, input_shapes: Sequence[Sequence[int]] | None, func_name: str, path: str):
        super().__init__(func_name)
        import onnx

        self.onnx = onnx
        self.path = path
        self.model = model
        self.opsets = {canonical_domain(o.domain): o.version for o in model.opset_import}
        version = self.opsets.get(ONNX_DOMAIN, MIN_OPSET)
        if version < MIN_OPSET:
            raise UnsupportedError(
                f"{path}: ONNX opset {version}; bnnc reads opset {MIN_OPSET} and later\n"
                f"  hint: re-export with opset_version>={MIN_OPSET}, or upgrade the file with "
                f"onnx.version_converter.convert_version(model, {MIN_OPSET})"
            )
        self.graph = model.graph
        self.consts: dict[str, np.ndarray] = {}
        self.values: dict[str, SSAValue] = {}
        self.masks: set[str] = set()  # runtime names holding booleans
        self.unavailable: dict[str, str] = {}  # outputs bnnc does not compute -> what they are
        self.inferred: dict[str, tuple[int, tuple[int, ...]]] = {}
        self._read_initializers()
        self.inputs = self._input_shapes(input_shapes)
        self._infer_graph()

    # -- setup

    def _read_initializers(self) -> None:
        from onnx import numpy_helper

        for t in self.graph.initializer:
            try:
                self.consts[t.name] = numpy_helper.to_array(t)
            except Exception as exc:
                raise ModelLoadError(f"{self.path}: initializer `{t.name}` is malformed: {exc}") from None
        for s in self.graph.sparse_initializer:
            try:
                self.consts[s.values.name] = numpy_helper.to_array(s)
            except Exception as exc:
                raise ModelLoadError(f"{self.path}: sparse initializer `{s.values.name}` is malformed: {exc}") from None

    def _input_shapes(self, given: Sequence[Sequence[int]] | None) -> list[tuple[str, tuple[int, ...]]]:
        """The runtime inputs (graph inputs that are not initialisers) with static shapes."""
        from onnx import TensorProto

        inputs = [i for i in self.graph.input if i.name not in self.consts]
        if given is not None and len(given) != len(inputs):
            raise ModelLoadError(
                f"{self.path}: the model has {len(inputs)} input(s) ({', '.join(i.name for i in inputs)}) "
                f"but {len(given)} shape(s) were given"
            )
        out = []
        for k, vi in enumerate(inputs):
            tt = vi.type.tensor_type
            if not vi.type.HasField("tensor_type") or tt.elem_type != TensorProto.FLOAT:
                kind = TensorProto.DataType.Name(tt.elem_type) if vi.type.HasField("tensor_type") else "a non-tensor"
                raise UnsupportedError(
                    f"{self.path}: input `{vi.name}` is {kind}; bnnc compiles models whose inputs are float32 tensors"
                )
            dims = list(tt.shape.dim) if tt.HasField("shape") else None
            want = tuple(int(d) for d in given[k]) if given is not None else None
            if dims is None:
                if want is None:
                    raise ModelLoadError(f"{self.path}: input `{vi.name}` has no shape; give it with --input-shape")
                out.append((vi.name, want))
                continue
            if want is not None and len(want) != len(dims):
                raise ModelLoadError(
                    f"{self.path}: input `{vi.name}` has rank {len(dims)} but the shape given for it, "
                    f"{','.join(map(str, want))}, has rank {len(want)}"
                )
            shape = []
            for i, d in enumerate(dims):
                static = d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                if want is not None:
                    if static is not None and static != want[i]:
                        raise ModelLoadError(
                            f"{self.path}: input `{vi.name}` has size {static} in dimension {i}, "
                            f"but the shape given for it says {want[i]}"
                        )
                    shape.append(want[i])
                elif static is None:
                    sym = d.dim_param or "?"
                    raise ModelLoadError(
                        f"{self.path}: input `{vi.name}` has a symbolic dimension `{sym}` (dimension {i}); "
                        "bnnc compiles static shapes\n  hint: give the shape with --input-shape "
                        "(e.g. --input-shape 1,3,32,32), or example_inputs= in the API"
                    )
                else:
                    shape.append(static)
            if any(s < 1 for s in shape):
                raise ModelLoadError(f"{self.path}: input `{vi.name}` has an empty shape {tuple(shape)}")
            out.append((vi.name, tuple(shape)))
        return out

    def _infer_graph(self) -> None:
        """Static shapes of every intermediate that ONNX's inference reaches."""
        onnx = self.onnx
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        del model.graph.value_info[:]
        shapes = dict(self.inputs)
        for vi in model.graph.input:
            if vi.name in shapes:
                dims = vi.type.tensor_type.shape
                del dims.dim[:]
                for s in shapes[vi.name]:
                    dims.dim.add().dim_value = s
        try:
            model = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
        except Exception:  # inference is an aid: handlers fall back to per-node inference
            return
        for vi in [*model.graph.value_info, *model.graph.output]:
            self._remember(vi)

    def _remember(self, vi: Any) -> None:
        if not vi.type.HasField("tensor_type"):
            return
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            return
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        if all(d >= 0 for d in dims):
            self.inferred[vi.name] = (tt.elem_type, tuple(dims))

    # -- errors and locations

    def describe(self, node: Any) -> str:
        path, src = _scope(node)
        parts = [f"(node `{node.name}`)" if node.name else ""]
        if path:
            parts.append(f"in module `{path}`")
        if src is not None:
            parts.append(f"at {src[0]}:{src[1]}")
        return " ".join(p for p in parts if p)

    def unsupported(self, node: Any, what: str, hint: str) -> UnsupportedError:
        where = self.describe(node)
        return UnsupportedError(f"{what} {where}\n  hint: {hint}" if where else f"{what}\n  hint: {hint}")

    # -- inputs and attributes for handlers

    def has_input(self, node: Any, i: int) -> bool:
        return len(node.input) > i and node.input[i] != ""

    def is_const(self, node: Any, i: int) -> bool:
        return self.has_input(node, i) and node.input[i] in self.consts

    def const(self, node: Any, i: int, what: str = "") -> np.ndarray:
        """Input i as a constant array (it must be one)."""
        name = node.input[i] if self.has_input(node, i) else ""
        if name not in self.consts:
            raise self.unsupported(
                node,
                f"{node.op_type} with a computed {what or f'input {i}'} (`{name}`)",
                "bnnc needs this operand to be constant (an initializer or computed from initializers only)",
            )
        return self.consts[name]

    def value(self, node: Any, i: int) -> SSAValue:
        """Input i as an f32 tensor (a bool mask as 0.0/1.0; constants as arith.constant)."""
        name = node.input[i]
        if name in self.consts:
            arr = self.float_const(node, self.consts[name])
            return self.const_tensor(arr.reshape(1) if arr.ndim == 0 else arr)
        return self.values[name]

    def float_const(self, node: Any, arr: np.ndarray) -> np.ndarray:
        """A constant as float32, refusing values float32 cannot hold exactly."""
        a = np.asarray(arr)
        if a.dtype == np.float32:
            return a
        if a.dtype == np.bool_:
            return a.astype(np.float32)
        f = a.astype(np.float32)
        if a.dtype.kind in "iuf" and not np.array_equal(f.astype(a.dtype), a, equal_nan=True):
            raise self.unsupported(node, f"a {a.dtype} constant that float32 cannot hold exactly", "use float32 constants")
        if a.dtype.kind not in "iufb":
            raise self.unsupported(node, f"a constant of dtype {a.dtype}", "bnnc computes in float32")
        return f

    def is_mask(self, node: Any, i: int) -> bool:
        name = node.input[i]
        if name in self.consts:
            return self.consts[name].dtype == np.bool_
        return name in self.masks

    def shape(self, node: Any, i: int) -> tuple[int, ...]:
        name = node.input[i]
        if name in self.consts:
            return tuple(self.consts[name].shape)
        return tuple(self.values[name].type.get_shape())

    def attr(self, node: Any, name: str, default: Any = None) -> Any:
        for a in node.attribute:
            if a.name == name:
                value = self.onnx.helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def opset(self, domain: str = ONNX_DOMAIN) -> int:
        return self.opsets.get(domain, 1)

    def out_type(self, node: Any, i: int = 0) -> TensorType:
        """The static f32 type of output i, from ONNX's shape inference."""
        return TensorType(f32, list(self.out_shape(node, i)))

    def out_shape(self, node: Any, i: int = 0) -> tuple[int, ...]:
        name = node.output[i]
        if name not in self.inferred:
            self._infer_node(node)
        if name not in self.inferred:
            raise self.unsupported(
                node,
                f"{node.op_type} whose output shape ONNX's shape inference cannot determine",
                "bnnc compiles static shapes; export with fixed input shapes",
            )
        return self.inferred[name][1]

    def _infer_node(self, node: Any) -> None:
        """Shape inference of one node from its inputs' now known shapes."""
        onnx = self.onnx
        helper = onnx.helper
        inputs, inits = [], []
        for name in node.input:
            if not name or any(v.name == name for v in inputs):
                continue
            if name in self.consts:
                arr = self.consts[name]
                if arr.size <= 64:
                    inits.append(onnx.numpy_helper.from_array(arr, name))
                elem = helper.np_dtype_to_tensor_dtype(arr.dtype)
                inputs.append(helper.make_tensor_value_info(name, elem, list(arr.shape)))
            elif name in self.values:
                elem = onnx.TensorProto.BOOL if name in self.masks else onnx.TensorProto.FLOAT
                inputs.append(helper.make_tensor_value_info(name, elem, list(self.values[name].type.get_shape())))
        outputs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
        graph = helper.make_graph([node], "one", inputs, outputs, initializer=inits)
        model = helper.make_model(graph, opset_imports=list(self.model.opset_import))
        try:
            model = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
        except Exception:
            return
        for vi in [*model.graph.value_info, *model.graph.output]:
            self._remember(vi)

    # -- folding

    def _fold(self, node: Any) -> list[np.ndarray] | None:
        """Evaluate a node whose inputs are all constants, or None if it cannot be."""
        domain = canonical_domain(node.domain)
        if node.op_type in _NONDETERMINISTIC:
            return None
        args = [self.consts[n] if n else None for n in node.input]
        if domain == QONNX_DOMAIN:
            from .onnx_ops_qonnx import fold_qonnx

            return fold_qonnx(self, node, args)
        if domain != ONNX_DOMAIN:
            return None
        return self.run_reference(node, {n: self.consts[n] for n in node.input if n})

    def run_reference(self, node: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Evaluate `node` on the arrays `feeds` (by input name) with
        onnx.reference at the model's opsets: ONNX's own semantics, in numpy."""
        from onnx.reference import ReferenceEvaluator

        names = [n for n in dict.fromkeys(node.input) if n]
        fn = self.onnx.helper.make_function(
            "bnnc", "fold", names, [o for o in node.output if o], [node], list(self.model.opset_import)
        )
        try:
            outs = ReferenceEvaluator(fn).run(None, {n: feeds[n] for n in names}, attributes={})
        except Exception as exc:
            raise self.unsupported(
                node, f"{node.op_type} could not be evaluated on its constant operands ({exc})", "check the operator's inputs"
            ) from None
        return [np.asarray(o) for o in outs]

    # -- main

    def _live_nodes(self) -> list[Any]:
        producers: dict[str, Any] = {}
        for node in self.graph.node:
            for o in node.output:
                if o:
                    producers[o] = node
        live: set[int] = set()
        stack = [o.name for o in self.graph.output]
        while stack:
            name = stack.pop()
            node = producers.get(name)
            if node is None or id(node) in live:
                continue
            live.add(id(node))
            stack.extend(n for n in node.input if n)
            for a in node.attribute:  # values a subgraph reads from the outer scope
                if a.type == self.onnx.AttributeProto.GRAPH:
                    stack.extend(_outer_names(a.g))
        return [n for n in self.graph.node if id(n) in live]

    def _emit(self, node: Any) -> None:
        domain = canonical_domain(node.domain)
        known = {n for n in node.input if n}
        missing = [n for n in known if n not in self.consts and n not in self.values]
        for name in missing:
            if name in self.unavailable:
                raise self.unsupported(
                    node, f"{node.op_type} reading {self.unavailable[name]}", "bnnc computes only the main result of that op"
                )
        if missing:
            raise ModelLoadError(
                f"{self.path}: node `{node.name or node.op_type}` reads `{missing[0]}`, which no earlier node, "
                "input or initializer defines (the graph is not topologically sorted or is malformed)"
            )
        if all(n in self.consts for n in known):
            for o in node.output:  # refuse before allocating, where inference knows the size
                if o in self.inferred and int(np.prod(self.inferred[o][1], dtype=np.float64)) > MAX_CONSTANT_ELEMENTS:
                    raise self.unsupported(node, f"a constant of shape {self.inferred[o][1]}", "the model is too large")
            outs = self._fold(node)
            if outs is not None:
                for name, arr in zip(node.output, outs):
                    if arr.size > MAX_CONSTANT_ELEMENTS:
                        raise self.unsupported(node, f"a constant of {arr.size} elements", "the model is too large")
                    self.consts[name] = arr
                return
        handler = HANDLERS.get((domain, node.op_type))
        if handler is None:
            where = f"domain `{node.domain}`" if node.domain else "the standard ONNX domain"
            raise self.unsupported(
                node,
                f"unsupported ONNX op {node.op_type} ({where})",
                "see docs/onnx.md for the supported ops; rewrite this part of the model with those",
            )
        outs = handler(self, node)
        for k, (name, out) in enumerate(zip(node.output, outs)):
            if name and out is None:
                self.unavailable.setdefault(name, f"output {k} of {node.op_type}")
            if not name or out is None:
                continue
            if isinstance(out, np.ndarray):
                self.consts[name] = out
            elif isinstance(out, Mask):
                self.values[name] = out.value
                self.masks.add(name)
            else:
                self.values[name] = out
            if isinstance(out, (Mask, SSAValue)):
                self._check_shape(node, name, out.value if isinstance(out, Mask) else out)
        for k in range(len(outs), len(node.output)):
            if node.output[k]:
                self.unavailable.setdefault(node.output[k], f"output {k} of {node.op_type}")

    def _check_shape(self, node: Any, name: str, value: SSAValue) -> None:
        """A handler's result must have the shape ONNX infers (a frontend bug otherwise)."""
        got = tuple(value.type.get_shape())
        want = self.inferred.get(name)
        if want is not None and want[1] != got:
            raise InternalError(f"{node.op_type} node `{node.name}` produced shape {got}, ONNX infers {want[1]}")
        if want is None:
            from onnx import TensorProto

            self.inferred[name] = (TensorProto.BOOL if name in self.masks else TensorProto.FLOAT, got)

    def run(self) -> ModuleOp:
        block = Block(arg_types=[TensorType(f32, list(shape)) for _, shape in self.inputs])
        for (name, _), arg in zip(self.inputs, block.args):
            self.values[name] = arg
            arg.name_hint = re.sub(r"[^A-Za-z0-9_]", "_", name) or None
        for node in self._live_nodes():
            self.loc = _location(node)
            self._emit(node)
        self.loc = UnknownLoc()
        results = []
        for out in self.graph.output:
            name = out.name
            if name in self.masks:
                raise UnsupportedError(
                    f"{self.path}: output `{name}` is a boolean tensor; bnnc's compiled models return float32\n"
                    "  hint: Cast it to float in the model"
                )
            if name in self.consts:
                arr = self.consts[name]
                if arr.dtype != np.float32:
                    raise UnsupportedError(f"{self.path}: output `{name}` is a constant {arr.dtype} tensor; bnnc returns float32")
                results.append(self.const_tensor(arr))
            elif name in self.values:
                results.append(self.values[name])
            else:
                raise ModelLoadError(f"{self.path}: output `{name}` is not produced by any node")
        return self.finish(block, results)


def _outer_names(graph: Any) -> list[str]:
    names = []
    for node in graph.node:
        names.extend(n for n in node.input if n)
    return names


def _scope(node: Any) -> tuple[str, tuple[str, int] | None]:
    """(module path, (file, line)) from torch.onnx's node metadata, if any."""
    meta = {p.key: p.value for p in node.metadata_props}
    path = ""
    scopes = meta.get("pkg.torch.onnx.name_scopes")
    if scopes:
        try:
            parts = ast.literal_eval(scopes)
        except (ValueError, SyntaxError):
            parts = []
        if isinstance(parts, list) and len(parts) >= 2:
            path = str(parts[-2])
    src = None
    trace = meta.get("pkg.torch.onnx.stack_trace")
    if trace:
        frames = re.findall(r'File "([^"]+)", line (\d+)', trace)
        user = [f for f in frames if f"{os.sep}torch{os.sep}" not in f[0]]
        if user or frames:
            file, line = (user or frames)[-1]
            src = (file, int(line))
    return path, src


def _location(node: Any) -> Attribute:
    path, src = _scope(node)
    inner: Attribute = FileLineColLoc(StringAttr(src[0]), IntAttr(src[1]), IntAttr(0)) if src is not None else UnknownLoc()
    name = path or node.name or node.op_type
    return NameLoc(StringAttr(name), inner)


def import_onnx(
    model: Any, *, input_shapes: Sequence[Sequence[int]] | None = None, func_name: str = "forward"
) -> ModuleOp:
    """A path to an .onnx file (or an onnx.ModelProto) -> one `func.func
    @<func_name>` of bnn ops. `input_shapes` fix symbolic dimensions.

    Raises ModelLoadError for unreadable, malformed or hostile files and
    UnsupportedError naming the ONNX op and node for what bnnc cannot compile."""
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        path = os.fsdecode(model) if isinstance(model, bytes) else os.fspath(model)
        proto = load_onnx_file(path)
    else:
        path = "<onnx model>"
        proto = model
    if proto.functions:
        from onnx import inliner

        proto = inliner.inline_local_functions(proto)
    return OnnxImporter(proto, input_shapes, func_name, path).run()


# The handler modules register themselves in HANDLERS when imported.
from . import (
    onnx_ops_elementwise,  # noqa: F401
    onnx_ops_movement,  # noqa: F401
    onnx_ops_nn,  # noqa: F401
    onnx_ops_qonnx,  # noqa: F401
)
