"""The exceptions bnnc raises. Every user-facing failure is a `BnncError`:
the CLI prints its message and exits with code 2, the API lets it propagate."""

from __future__ import annotations


class BnncError(Exception):
    """Base of every error bnnc reports to a user."""


class UnsupportedError(BnncError):
    """The model uses an op or pattern bnnc cannot compile exactly."""


class ModelLoadError(BnncError):
    """A model file is missing, malformed, truncated or untrusted."""


class InputError(BnncError):
    """A compiled model was called with inputs of the wrong count, shape or dtype."""


class TargetError(BnncError):
    """Unknown target, CPU or feature, or a toolchain the target needs is missing."""


class PassError(BnncError):
    """Unknown pass, bad pass options, a pass plugin that fails, or a pass that broke the IR."""


class IRError(BnncError):
    """Malformed textual IR or IR that fails verification."""
