"""Handlers of the compare ops (translated one to one into dialects/bnn_compare.py)."""

from __future__ import annotations

import torch

aten = torch.ops.aten
