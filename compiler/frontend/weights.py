"""Binary weight detection and bit packing.

A weight tensor W (Cout x ...) is *binary* when every output channel c holds
one magnitude alpha_c > 0: every |W[c, ...]| equals alpha_c up to a relative
tolerance of 1e-5.  alpha_c is the most frequent |w| in the channel, so weight
STE forms (``alpha * sign(W)`` computed as ``W + (alpha*sign(W) - W).detach()``
or similar) that leave 1-ulp noise on a few weights still recover the exact
scale.  A zero weight makes the channel (and so the tensor) non-binary.

Packing follows the bnn dialect: bit 1 means -1, channels are packed
little-endian into i64 words along the last axis, trailing bits are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

REL_TOL = 1e-5


@dataclass
class BinaryWeight:
    """A binary weight: W = alpha[c] * (1 - 2 * negative)."""

    negative: np.ndarray  # bool, same shape as W
    alpha: np.ndarray  # float32, shape (Cout,)

    @property
    def unit_scale(self) -> bool:
        return bool(np.all(self.alpha == 1.0))


def detect_binary(weight: torch.Tensor) -> BinaryWeight | None:
    """Return the binary decomposition of `weight`, or None if it is not binary."""
    if weight.dtype != torch.float32 or weight.dim() < 2 or weight.numel() == 0:
        return None
    w = weight.detach().cpu().numpy().reshape(weight.shape[0], -1)
    if not np.all(np.isfinite(w)):
        return None
    mag = np.abs(w)
    alphas = np.empty(w.shape[0], dtype=np.float32)
    for c in range(w.shape[0]):
        values, counts = np.unique(mag[c], return_counts=True)
        alpha = values[np.argmax(counts)]
        if not alpha > 0:
            return None
        if np.any(np.abs(mag[c] - alpha) > REL_TOL * alpha):
            return None
        alphas[c] = alpha
    negative = weight.detach().cpu().numpy() < 0
    return BinaryWeight(negative=negative, alpha=alphas)


def pack_bits(negative: np.ndarray) -> np.ndarray:
    """Pack a boolean array along its last axis into little-endian i64 words.

    Bit i of word j is element 64*j + i; trailing bits are 0.
    """
    *lead, k = negative.shape
    words = (k + 63) // 64
    padded = np.zeros((*lead, words * 64), dtype=np.uint8)
    padded[..., :k] = negative.astype(np.uint8)
    # np.packbits with bitorder="little" puts element i of each byte at bit i.
    packed = np.packbits(padded, axis=-1, bitorder="little")  # (..., words*8) bytes
    packed = np.ascontiguousarray(packed).view("<u8").astype(np.uint64)
    return packed.view(np.int64).reshape(*lead, words)


def pack_conv_weight(negative: np.ndarray) -> np.ndarray:
    """Cout x Cin_g x KH x KW booleans -> Cout x KH x KW x words(Cin_g) i64."""
    return pack_bits(np.transpose(negative, (0, 2, 3, 1)))


def pack_dense_weight(negative: np.ndarray) -> np.ndarray:
    """M x K booleans -> M x words(K) i64."""
    return pack_bits(negative)
