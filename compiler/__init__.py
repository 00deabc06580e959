"""bnnc: a compiler for binary neural networks.

    import bnnc
    fast = bnnc.compile(model, (example_input,))
    y = fast(x)
"""

__version__ = "0.1.0"

from bnnc.api import compile  # noqa: E402  (after __version__, which submodules read)
from bnnc.errors import (  # noqa: E402
    BnncError,
    InputError,
    IRError,
    ModelLoadError,
    PassError,
    TargetError,
    UnsupportedError,
)

__all__ = [
    "compile",
    "BnncError",
    "InputError",
    "IRError",
    "ModelLoadError",
    "PassError",
    "TargetError",
    "UnsupportedError",
    "__version__",
]
