"""A one-line progress indicator for long compiles (Bi-Real-Net-18 takes tens of
seconds cold): the stage and what it is on, rewritten in place on stderr.

Only when stderr is a terminal: pipes, logs and tests see nothing.
BNNC_PROGRESS=0 turns it off on a terminal too."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO


class Progress:
    """`stage("lowering", "loops")` redraws the line; `done()` erases it."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = os.environ.get("BNNC_PROGRESS", "1") != "0" and _is_tty(self.stream)
        self.enabled = enabled
        self._start = time.perf_counter()
        self._shown = False

    def stage(self, name: str, detail: str = "") -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self._start
        text = f"bnnc: {name}{': ' + detail if detail else ''} ({elapsed:.1f} s)"
        self.stream.write(f"\r\x1b[K{text[:150]}")
        self.stream.flush()
        self._shown = True

    def done(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


_current: Progress | None = None


def stage(name: str, detail: str = "") -> None:
    """Show `name` (and `detail`) as the current stage of this compile."""
    global _current
    if _current is None:
        _current = Progress()
    _current.stage(name, detail)


def done() -> None:
    """Erase the line at the end of a compile (the next one restarts the clock)."""
    global _current
    if _current is not None:
        _current.done()
        _current = None
