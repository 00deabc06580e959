"""Lowerings of the bnn movement ops (dialects/bnn_movement.py) to loop nests."""

from __future__ import annotations

from xdsl.ir import Operation

from bnnc.passes._lowering import Lowering, WorkOf

MOVEMENT_LOWERINGS: dict[type[Operation], Lowering] = {}
# Ops whose kernels split their work between threads, with how much work each is.
MOVEMENT_THREADED: dict[type[Operation], WorkOf] = {}
