"""A one-line progress indicator for long compiles (Bi-Real-Net-18 takes tens of
seconds cold): the stage, the pass, and the layer it is on, rewritten in place
on stderr, e.g.

    bnnc: passes: loops: convert-bnn-to-loops: layer 12/59 forward_12_bconv2d (layer2.0.conv1) (3.1 s)

Only when stderr is a terminal: pipes, logs and tests see nothing.
BNNC_PROGRESS=0 turns it off on a terminal too. Passes report layers through
`bnnc.passes._progress` (they cannot import this module); the listener is
installed only while a line is shown."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from bnnc.passes import _progress as _pass_progress


class Progress:
    """`stage("passes", "loops")` redraws the line; `item("layer 3/9 ...")`
    adds what the stage is on; `done()` erases it."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = os.environ.get("BNNC_PROGRESS", "1") != "0" and _is_tty(self.stream)
        self.enabled = enabled
        self._start = time.perf_counter()
        self._shown = False
        self._stage = ""

    def stage(self, name: str, detail: str = "") -> None:
        if not self.enabled:
            return
        self._stage = f"{name}{': ' + detail if detail else ''}"
        self._draw(self._stage)

    def item(self, what: str) -> None:
        """What the current stage is on (a layer, a function)."""
        if self.enabled:
            self._draw(f"{self._stage}: {what}" if self._stage else what)

    def _draw(self, text: str) -> None:
        elapsed = time.perf_counter() - self._start
        line = f"bnnc: {text}"
        clock = f" ({elapsed:.1f} s)"
        width = 150 - len(clock)  # keep the clock when the line is clipped
        self.stream.write(f"\r\x1b[K{line[:width]}{clock}")
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


def _get() -> Progress:
    global _current
    if _current is None:
        _current = Progress()
        if _current.enabled:
            _pass_progress.set_listener(_current.item)
    return _current


def stage(name: str, detail: str = "") -> None:
    """Show `name` (and `detail`) as the current stage of this compile."""
    _get().stage(name, detail)


def item(what: str) -> None:
    """Show what the current stage is on (a layer, a function)."""
    if _current is not None:
        _current.item(what)


def done() -> None:
    """Erase the line at the end of a compile (the next one restarts the clock)."""
    global _current
    if _current is not None:
        _current.done()
        _current = None
        _pass_progress.set_listener(None)
