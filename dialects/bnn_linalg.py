"""Float linear algebra beyond conv2d/linear with constant weights: transposed
convolution and products of two activations."""

from __future__ import annotations

from xdsl.ir import Operation

LINALG_OPS: list[type[Operation]] = []
