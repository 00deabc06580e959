"""Handlers of the math ops (translated one to one into dialects/bnn_math.py)."""

from __future__ import annotations

import torch

aten = torch.ops.aten
