"""The errors a compiled model's runtime raises, and their base `BnncError`.

They live here, in the lowest layer that raises them, so that runtime/ needs
nothing from the compiler; `bnnc.errors` re-exports them with the errors only
the compiler raises. The CLI prints a `BnncError`'s message and exits with
code 2; the API lets it propagate."""

from __future__ import annotations


class BnncError(Exception):
    """Base of every error bnnc reports to a user."""


class ModelLoadError(BnncError):
    """A model file is missing, malformed, truncated or untrusted."""


class InputError(BnncError):
    """A compiled model was called with inputs of the wrong count, shape or dtype."""


class TargetError(BnncError):
    """Unknown target, CPU or feature, or a toolchain the target needs is missing."""


class IRError(BnncError):
    """Malformed textual IR or IR that fails verification."""
