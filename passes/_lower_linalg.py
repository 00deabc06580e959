"""Lowerings of the bnn linalg ops (dialects/bnn_linalg.py) to loop nests."""

from __future__ import annotations

from xdsl.ir import Operation

from bnnc.passes._lowering import Lowering, WorkOf

LINALG_LOWERINGS: dict[type[Operation], Lowering] = {}
# Ops whose kernels split their work between threads, with how much work each is.
LINALG_THREADED: dict[type[Operation], WorkOf] = {}
