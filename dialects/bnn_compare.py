"""Comparison, selection and PyTorch's three-valued sign: the ops a frontend
translates binarisers into, before recognize-binarization reads their values."""

from __future__ import annotations

from xdsl.ir import Operation

COMPARE_OPS: list[type[Operation]] = []
