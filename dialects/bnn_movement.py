"""Data movement of the bnn dialect: ops that only rearrange, repeat or select
elements (permute, slice, expand, pad modes, upsampling)."""

from __future__ import annotations

from xdsl.ir import Operation

MOVEMENT_OPS: list[type[Operation]] = []
