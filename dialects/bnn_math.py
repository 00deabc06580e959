"""Elementwise float math of the bnn dialect (activation functions, roots,
exponentials, minimum/maximum): ops upstream xDSL lacks at tensor level."""

from __future__ import annotations

from xdsl.ir import Operation

MATH_OPS: list[type[Operation]] = []
