"""bnnc: a compiler for binary neural networks.

    import bnnc
    fast = bnnc.compile(model, (example_input,))
    y = fast(x)
"""

__version__ = "0.1.0"

from bnnc.errors import (  # noqa: E402  (after __version__, which submodules read)
    BnncError,
    InputError,
    InternalError,
    IRError,
    ModelLoadError,
    PassError,
    TargetError,
    TracingError,
    UnsupportedError,
)

__all__ = [
    "compile",
    "BnncError",
    "InputError",
    "InternalError",
    "IRError",
    "ModelLoadError",
    "PassError",
    "TargetError",
    "TracingError",
    "UnsupportedError",
    "__version__",
]


def __getattr__(name: str):
    # `bnnc.compile` loads the driver on first use, so that importing a layer
    # below it (bnnc.dialects, bnnc.passes, bnnc.runtime) does not.
    if name == "compile":
        from bnnc.api import compile

        return compile
    raise AttributeError(f"module 'bnnc' has no attribute '{name}'")
