"""Lowerings of the bnn reduce ops (dialects/bnn_reduce.py) to loop nests."""

from __future__ import annotations

from xdsl.ir import Operation

from bnnc.passes._lowering import Lowering, WorkOf

REDUCE_LOWERINGS: dict[type[Operation], Lowering] = {}
# Ops whose kernels split their work between threads, with how much work each is.
REDUCE_THREADED: dict[type[Operation], WorkOf] = {}
