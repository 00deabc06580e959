"""Lowerings of the bnn math ops (dialects/bnn_math.py) to loop nests."""

from __future__ import annotations

from xdsl.ir import Operation

from bnnc.passes._lowering import Lowering, WorkOf

MATH_LOWERINGS: dict[type[Operation], Lowering] = {}
# Ops whose kernels split their work between threads, with how much work each is.
MATH_THREADED: dict[type[Operation], WorkOf] = {}
