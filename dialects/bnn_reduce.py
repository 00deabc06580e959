"""Reductions and normalisations of the bnn dialect (sum, max, variance,
softmax, layer/group/instance norm)."""

from __future__ import annotations

from xdsl.ir import Operation

REDUCE_OPS: list[type[Operation]] = []
