"""Handlers of the movement ops (translated one to one into dialects/bnn_movement.py)."""

from __future__ import annotations

import torch

aten = torch.ops.aten
