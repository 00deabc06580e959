"""Where a long pass is, for the compiler's progress line.

Passes cannot import the compiler (`bnnc.progress` draws the line), so a pass
that works layer by layer calls `layer(...)` here and the compiler installs a
listener; without one (bnnc opt, tests, other users of the passes) it costs
one check."""

from __future__ import annotations

from collections.abc import Callable

from xdsl.dialects.builtin import NameLoc
from xdsl.ir import Attribute

_listener: Callable[[str], None] | None = None


def set_listener(listener: Callable[[str], None] | None) -> None:
    """Send `layer` reports to `listener` (None: drop them)."""
    global _listener
    _listener = listener


def layer(index: int, count: int, name: str, location: Attribute | None = None) -> None:
    """Report that layer `index` (1-based) of `count`, `name`, is being worked on;
    a `NameLoc` location adds the source module path."""
    if _listener is None:
        return
    where = f" ({location.desc.data})" if isinstance(location, NameLoc) else ""
    _listener(f"layer {index}/{count} {name}{where}")
