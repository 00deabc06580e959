"""`torch.compile(model, backend="bnnc")`.

Dynamo hands the backend an FX GraphModule and example inputs; bnnc exports
that graph with torch.export, compiles it like any model, and returns a
callable with the graph's calling convention (it returns a tuple/list when the
graph does). Registered through the `torch_dynamo_backends` entry point, so no
import of bnnc is needed before torch.compile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch


def bnnc_backend(gm: torch.fx.GraphModule, example_inputs: Sequence[torch.Tensor], **options: Any) -> Callable[..., Any]:
    """A torch.compile backend: unsupported graphs raise a bnnc error (no silent
    fallback to eager, so a model never runs in a form you did not ask for)."""
    from bnnc.driver import CompileOptions, build, jit
    from bnnc.frontend.torch_import import export_module

    state = _state_positions(gm)
    user = [i for i in range(len(example_inputs)) if i not in state]
    frozen = _Frozen(gm, {i: example_inputs[i] for i in state}, len(example_inputs)).eval()
    ep = export_module(frozen, tuple(example_inputs[i] for i in user))
    compiled = jit(build(ep, None, CompileOptions(**options)))
    returns_sequence = _returns_sequence(gm)

    def run(*args: torch.Tensor) -> Any:
        out = compiled(*(args[i] for i in user))
        outs = out if isinstance(out, tuple) else (out,)
        return list(outs) if returns_sequence else outs[0]

    return run


def _state_positions(gm: torch.fx.GraphModule) -> set[int]:
    """Graph inputs that are the module's parameters and buffers (Dynamo lifts
    them to inputs); bnnc freezes them into the compiled code as constants."""
    positions = set()
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    for i, node in enumerate(placeholders):
        arg = node.meta.get("grapharg")
        name = getattr(getattr(arg, "source", None), "name", "")
        name = name() if callable(name) else str(name)
        if "._parameters[" in name or "._buffers[" in name:
            positions.add(i)
    return positions


class _Frozen(torch.nn.Module):
    """The Dynamo graph with its parameter/buffer inputs bound to their values
    at compile time (inference: later weight updates need a recompile)."""

    def __init__(self, gm: torch.fx.GraphModule, state: dict[int, torch.Tensor], arity: int):
        super().__init__()
        self.gm = gm
        self.arity = arity
        self.slots = sorted(state)
        for k, i in enumerate(self.slots):
            self.register_buffer(f"state{k}", state[i].detach().clone(), persistent=False)

    def forward(self, *user_inputs: torch.Tensor) -> Any:
        it = iter(user_inputs)
        state = {i: getattr(self, f"state{k}") for k, i in enumerate(self.slots)}
        return self.gm(*(state[i] if i in state else next(it) for i in range(self.arity)))


def _returns_sequence(gm: torch.fx.GraphModule) -> bool:
    for node in gm.graph.nodes:
        if node.op == "output":
            return isinstance(node.args[0], tuple | list)
    return False
