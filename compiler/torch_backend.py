"""`torch.compile(model, backend="bnnc")`.

Dynamo hands the backend one FX graph per captured region (a graph break
splits a forward into several) and the graph's example inputs. The backend
returns a dispatcher that compiles the graph on first use of each concrete
input signature (shapes, dtypes and the values of symbolic-size inputs) and
caches the compiled code per signature, so a shape seen before never
recompiles. A symbolic batch dimension (Dynamo marks a dimension dynamic
after it sees a second size) is served by one dynamic-batch build for every
N when the graph is batch-independent; any other symbolic dimension is
specialised per concrete shape.

bnnc never raises from inside a torch.compile'd call for a graph it cannot
take: such a graph runs in eager PyTorch, with one warning per graph
(`BnncFallbackWarning`) saying why. The cases are: an op or pattern bnnc
cannot compile exactly (the bnnc error's first line), a module in training
mode (bnnc compiles inference: batch statistics, dropout and buffer updates
stay PyTorch's), and calls that need gradients (grad mode on and an input or
parameter requiring grad: bnnc's outputs carry no autograd history). Graphs
with no binary layer (the float glue around a graph break) also run eagerly,
without a warning (logged at INFO). `options={"fallback": False}` makes every
refusal raise its bnnc error instead. Errors that are bugs in bnnc (not a
`BnncError`) always propagate.

Registered through the `torch_dynamo_backends` entry point, so no import of
bnnc is needed before torch.compile. Documented in docs/torch-compile.md.
"""

from __future__ import annotations

import inspect
import logging
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

log = logging.getLogger("bnnc.torch_backend")

# The bnn ops that mean a graph has binary work worth compiling.
_BINARY_OPS = frozenset({"bnn.bconv2d", "bnn.bdense"})


class BnncFallbackWarning(UserWarning):
    """A torch.compile graph runs in eager PyTorch because bnnc cannot compile it exactly."""


def bnnc_backend(
    gm: torch.fx.GraphModule,
    example_inputs: Sequence[Any],
    options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Callable[..., Any]:
    """A torch.compile backend. `options` (torch.compile's `options=`) holds
    CompileOptions fields (num_threads, pipeline, ...), `fallback` (default
    True: graphs bnnc refuses run eagerly with a warning; False: raise) and
    `dynamic_batch` (default True: a symbolic batch uses one dynamic-batch build)."""
    settings = {**(options or {}), **kwargs}
    fallback = bool(settings.pop("fallback", True))
    dynamic_batch = bool(settings.pop("dynamic_batch", True))
    import dataclasses

    from bnnc.driver import CompileOptions

    known = {f.name for f in dataclasses.fields(CompileOptions)} - {"instrument", "dynamic_batch"}
    if unknown := sorted(set(settings) - known):
        from bnnc.errors import BnncError

        raise BnncError(
            f"unknown bnnc backend option(s) {', '.join(unknown)}; known: fallback, dynamic_batch, {', '.join(sorted(known))}"
        )
    compile_options = CompileOptions(**settings)
    graph = _GraphInfo(gm, example_inputs)
    reason = _training_reason(gm) or _gradient_reason(graph, example_inputs)
    if reason is not None:
        if not fallback:
            from bnnc.errors import UnsupportedError

            raise UnsupportedError(reason)
        _warn(graph, reason)
        return gm.forward
    return _Dispatcher(graph, compile_options, fallback=fallback, dynamic_batch=dynamic_batch)


class _GraphInfo:
    """What the dispatcher needs to know about a Dynamo graph: which inputs are
    the module's state (frozen at compile time), which are symbolic sizes, and
    how it returns."""

    def __init__(self, gm: torch.fx.GraphModule, example_inputs: Sequence[Any]):
        self.gm = gm
        self.arity = len(example_inputs)
        placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        state_positions = _state_positions(placeholders)
        with torch.inference_mode(False), torch.no_grad():
            # (clones made outside inference mode, so torch.export can trace them)
            self.state = {i: example_inputs[i].detach().clone() for i in state_positions}
        self.sizes = [i for i, x in enumerate(example_inputs) if isinstance(x, int | torch.SymInt)]
        self.tensors = [i for i in range(self.arity) if i not in self.state and i not in self.sizes]
        self.symbols = {i: str(example_inputs[i]) for i in self.sizes}
        self.symbolic_dims = {
            i: [d for d, size in enumerate(example_inputs[i].shape) if isinstance(size, torch.SymInt)]
            for i in self.tensors
            if isinstance(example_inputs[i], torch.Tensor)
        }
        # a fake-tensor example tells which dims Dynamo made symbolic; real ones carry it in the node meta
        for i in self.tensors:
            val = placeholders[i].meta.get("example_value")
            if isinstance(val, torch.Tensor):
                self.symbolic_dims[i] = [d for d, s in enumerate(val.shape) if isinstance(s, torch.SymInt)]
        # a size input that is a dimension of a tensor input is read off that tensor when traced
        self.size_sources: dict[int, tuple[int, int]] = {}
        for i in self.sizes:
            for k, t in enumerate(self.tensors):
                val = placeholders[t].meta.get("example_value")
                dims = [d for d, s in enumerate(getattr(val, "shape", ())) if str(s) == self.symbols[i]]
                if dims and i not in self.size_sources:
                    self.size_sources[i] = (k, dims[0])
        self.returns_sequence = _returns_sequence(gm)
        self.warned = False
        self.label = _graph_label(gm)

    def frozen(self, sizes: dict[int, int]) -> torch.nn.Module:
        """The graph as a module of the tensor inputs alone (state and sizes bound)."""
        other = {i: v for i, v in sizes.items() if i not in self.size_sources}
        return _Frozen(self.gm, {**self.state, **other}, self.arity, self.size_sources).eval()


class _Dispatcher:
    """The callable the backend returns: compiled code per concrete input
    signature (or eager PyTorch for a graph bnnc does not take)."""

    def __init__(self, graph: _GraphInfo, options: Any, *, fallback: bool, dynamic_batch: bool):
        self.graph = graph
        self.options = options
        self.fallback = fallback
        self.dynamic_batch = dynamic_batch and self._batch_symbolic()
        self.compiled: dict[tuple, Any] = {}
        self.builds = 0  # compiles done (tests and users can check that shapes are cached)
        self._lock = threading.Lock()

    def _batch_symbolic(self) -> bool:
        """Only dim 0 is symbolic, in every tensor input, all with the same symbol."""
        g = self.graph
        dims = [g.symbolic_dims.get(i, []) for i in g.tensors]
        return bool(g.tensors) and len(g.sizes) == 1 and all(d == [0] for d in dims)

    def __call__(self, *args: Any) -> Any:
        key = self._key(args)
        run = self.compiled.get(key)
        if run is None:
            with self._lock:  # (two threads calling with a new shape compile it once)
                run = self.compiled.get(self._key(args))
                if run is None:
                    run = self._compile(args)
                    # (keyed after compiling: a refused dynamic batch keys by the full shape)
                    self.compiled[self._key(args)] = run
        return run(*args)

    def _key(self, args: Sequence[Any]) -> tuple:
        g = self.graph
        if self.dynamic_batch:  # one build for every batch size
            return tuple((tuple(args[i].shape[1:]), args[i].dtype) for i in g.tensors)
        return tuple(
            (tuple(args[i].shape), args[i].dtype) if isinstance(args[i], torch.Tensor) else int(args[i])
            for i in [*g.tensors, *g.sizes]
        )

    def _compile(self, args: Sequence[Any]) -> Callable[..., Any]:
        """A callable (taking the graph's arguments) for the signature of
        `args`: compiled code, or the graph itself when bnnc refuses it."""
        from bnnc.errors import BnncError

        g = self.graph
        try:
            compiled = self._build(args)
        except BnncError as e:
            if not self.fallback:
                raise
            _warn(g, str(e))
            return g.gm
        except _NoBinaryWork:
            log.info("bnnc: %s has no binary layer; it runs in eager PyTorch", g.label)
            return g.gm

        def run(*args: Any) -> Any:
            out = compiled(*(args[i] for i in g.tensors))
            outs = out if isinstance(out, tuple) else (out,)
            return list(outs) if g.returns_sequence else outs[0]

        return run

    def _build(self, args: Sequence[Any]) -> Any:
        from bnnc.driver import build, import_model, jit, lower

        g = self.graph
        with torch.inference_mode(False), torch.no_grad():
            sizes = {i: int(args[i]) for i in g.sizes}
            examples = tuple(torch.zeros(tuple(args[i].shape), dtype=args[i].dtype) for i in g.tensors)
            frozen = g.frozen(sizes)
            model_inputs, options = examples, self.options
            if self.dynamic_batch:
                from bnnc.dynamic_batch import batch_examples
                from bnnc.errors import UnsupportedError

                try:
                    model_inputs = batch_examples(frozen, examples)
                    options = _with(self.options, dynamic_batch=True)
                except UnsupportedError as e:  # samples interact: one build per batch size instead
                    log.info("bnnc: %s: no dynamic batch (%s)", g.label, str(e).splitlines()[0])
                    self.dynamic_batch = False
            module = import_model(frozen, model_inputs, name=options.name)
        probe = module.clone()
        lower(probe, options, "bnn")
        if not any(op.name in _BINARY_OPS for op in probe.walk()):
            raise _NoBinaryWork
        self.builds += 1
        return jit(build(module, None, options, cache=True))


class _NoBinaryWork(Exception):
    """The graph has no binary layer: PyTorch runs it as well as bnnc would."""


def _with(options: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(options, **changes)


def _warn(graph: _GraphInfo, reason: str) -> None:
    if graph.warned:
        return
    graph.warned = True
    first = reason.strip().splitlines()[0] if reason.strip() else "unknown reason"
    warnings.warn(f"bnnc: {graph.label} runs in eager PyTorch: {first}", BnncFallbackWarning, stacklevel=3)


def _graph_label(gm: torch.fx.GraphModule) -> str:
    """`graph of <module path>` from the first node that records one."""
    for node in gm.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if stack:
            path = next(iter(stack.values()))[0]
            return f"the torch.compile graph of {_clean_path(path)}"
    return "a torch.compile graph"


def _clean_path(path: str) -> str:
    return path.replace("L['self']", "self").replace("L['", "").replace("']", "") or "self"


# Functions whose `training` argument (True) means batch statistics, random
# dropout or buffer updates: the module is in training mode.
def _training_reason(gm: torch.fx.GraphModule) -> str | None:
    """Why this graph is a training-mode graph, or None."""
    for node in gm.graph.nodes:
        if node.op == "call_method" and str(node.target).endswith("_") and _is_state(node.args[0]):
            where = _where(node)
            return (
                f"the module is in training mode (it updates {node.args[0].name}{where}): bnnc compiles inference "
                "only; call model.eval() before torch.compile"
            )
        if node.op != "call_function" or not callable(node.target):
            continue
        name = getattr(node.target, "__name__", "")
        if "norm" not in name and "dropout" not in name:
            continue
        try:
            bound = inspect.signature(node.target).bind(*node.args, **node.kwargs)
        except (TypeError, ValueError):
            continue
        flag = bound.arguments.get("training", bound.arguments.get("train", bound.arguments.get("use_input_stats")))
        if flag is True:
            return (
                f"the module is in training mode ({name} with training=True{_where(node)}): bnnc compiles "
                "inference only; call model.eval() before torch.compile"
            )
    return None


def _gradient_reason(graph: _GraphInfo, example_inputs: Sequence[Any]) -> str | None:
    """Dynamo compiles a graph per grad mode; with grad on and an input or
    parameter requiring grad, the caller expects outputs it can backpropagate."""
    if not torch.is_grad_enabled():
        return None
    if any(isinstance(x, torch.Tensor) and x.requires_grad for x in example_inputs):
        return (
            "the outputs need gradients (grad mode is on and an input or parameter requires grad) and bnnc "
            "computes none; call the model under torch.no_grad() or torch.inference_mode()"
        )
    return None


def _is_state(arg: Any) -> bool:
    return isinstance(arg, torch.fx.Node) and arg.op == "placeholder" and ("_buffers_" in arg.name or "_parameters_" in arg.name)


def _where(node: torch.fx.Node) -> str:
    stack = node.meta.get("nn_module_stack")
    if stack:
        path, _type = list(stack.values())[-1]
        return f" in {_clean_path(path)}"
    return ""


def _state_positions(placeholders: list[torch.fx.Node]) -> set[int]:
    """Graph inputs that are the module's parameters and buffers (Dynamo lifts
    them to inputs); bnnc freezes them into the compiled code as constants."""
    positions = set()
    for i, node in enumerate(placeholders):
        arg = node.meta.get("grapharg")
        name = getattr(getattr(arg, "source", None), "name", "")
        name = name() if callable(name) else str(name)
        if "._parameters[" in name or "._buffers[" in name:
            positions.add(i)
    return positions


class _Frozen(torch.nn.Module):
    """The Dynamo graph with its parameter/buffer inputs bound to their values
    at compile time (inference: later weight updates need a recompile) and its
    symbolic-size inputs bound to one signature's values."""

    def __init__(
        self, gm: torch.fx.GraphModule, bound: dict[int, Any], arity: int, sizes: dict[int, tuple[int, int]] | None = None
    ):
        super().__init__()
        self.gm = gm
        self.arity = arity
        self.sizes = dict(sizes or {})  # size input -> (tensor input, dim) it is read from
        self.slots = sorted(i for i, v in bound.items() if isinstance(v, torch.Tensor))
        self.ints = {i: v for i, v in bound.items() if not isinstance(v, torch.Tensor)}
        for k, i in enumerate(self.slots):
            self.register_buffer(f"state{k}", bound[i], persistent=False)

    def forward(self, *user_inputs: torch.Tensor) -> Any:
        it = iter(user_inputs)
        bound: dict[int, Any] = {i: getattr(self, f"state{k}") for k, i in enumerate(self.slots)}
        bound.update(self.ints)
        bound.update({i: user_inputs[k].shape[d] for i, (k, d) in self.sizes.items()})
        return self.gm(*(bound[i] if i in bound else next(it) for i in range(self.arity)))


def _returns_sequence(gm: torch.fx.GraphModule) -> bool:
    for node in gm.graph.nodes:
        if node.op == "output":
            return isinstance(node.args[0], tuple | list)
    return False
