"""The exceptions bnnc raises. Every user-facing failure is a `BnncError`:
the CLI prints its message and exits with code 2, the API lets it propagate.

The errors the runtime raises too are defined in `bnnc.runtime.errors` (so
runtime/ imports nothing of the compiler) and re-exported here; this module
adds the ones only the compiler raises."""

from __future__ import annotations

from bnnc.runtime.errors import BnncError, InputError, IRError, ModelLoadError, TargetError

__all__ = [
    "BnncError",
    "IRError",
    "InputError",
    "InternalError",
    "ModelLoadError",
    "PassError",
    "TargetError",
    "TracingError",
    "UnsupportedError",
]


class UnsupportedError(BnncError):
    """The model uses an op or pattern bnnc cannot compile exactly."""


class PassError(BnncError):
    """Unknown pass, bad pass options, a pass plugin that fails, or a pass that broke the IR."""


class TracingError(ModelLoadError):
    """torch could not trace the model (torch.export) or convert it (TorchScript)
    with the example inputs it was given, so their shapes may be what is wrong:
    the CLI adds a hint naming the shapes it traced with."""


class InternalError(RuntimeError):
    """A bug in bnnc caught by one of its own consistency checks (a frontend
    whose IR does not verify, a shape that disagrees with ONNX's inference).
    Deliberately not a `BnncError`: the CLI reports it as an internal error
    (exit 3) and tools tell it from a refusal by its type."""
