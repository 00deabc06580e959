"""Lowerings of the bnn compare ops (dialects/bnn_compare.py) to loop nests."""

from __future__ import annotations

from xdsl.ir import Operation

from bnnc.passes._lowering import Lowering, WorkOf

COMPARE_LOWERINGS: dict[type[Operation], Lowering] = {}
# Ops whose kernels split their work between threads, with how much work each is.
COMPARE_THREADED: dict[type[Operation], WorkOf] = {}
