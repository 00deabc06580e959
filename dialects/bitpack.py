"""The bit layout of packed `bnn` tensors, in one place (as LCE keeps one
bitpack.h): word counts for the dialect's type rules, and the NumPy packers,
unpackers and popcounts the passes fold constants with and the tests build
expectations with.

The layout: channels are packed into little-endian 64-bit words, bit i of
word j holding channel 64j + i; bit 1 means -1 (binarize(x) = -1 for x < 0),
so popcount(a xor w) counts disagreements and dot = K - 2 * popcount. With
groups, each group's channels start at a word boundary. Trailing bits of a
group's last word are 0, so they never count. Activations are
N x words x H x W, conv weights Cout x KH x KW x words(Cin/groups), dense
weights Cout x words(K).

The loop-level code that packs at run time (`bnn.pack`'s lowering) writes
the same layout; its tests compare it with `pack_activations`.
"""

from __future__ import annotations

import numpy as np

WORD_BITS = 64


def words_for(bits: int) -> int:
    """Number of i64 words that hold `bits` packed channels."""
    return (bits + WORD_BITS - 1) // WORD_BITS


def packed_words(channels: int, groups: int) -> int:
    """Words per pixel of a packed tensor: each group starts at a word boundary."""
    return groups * words_for(channels // groups)


# --------------------------------------------------------------------- packing


def pack_bits(negative: np.ndarray) -> np.ndarray:
    """Booleans (True = -1) packed along the last axis into i64 words, trailing bits 0."""
    *lead, k = negative.shape
    words = words_for(k)
    padded = np.zeros((*lead, words * WORD_BITS), dtype=np.uint8)
    padded[..., :k] = negative.astype(np.uint8)
    packed = np.packbits(padded, axis=-1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").view(np.int64).reshape(*lead, words)


def unpack_bits(words: np.ndarray, count: int) -> np.ndarray:
    """The first `count` bits along the last axis of i64 words, as booleans (True = -1)."""
    as_bytes = np.ascontiguousarray(words.astype("<i8")).view(np.uint8).reshape(*words.shape, 8)
    bits = np.unpackbits(as_bytes, axis=-1, bitorder="little").reshape(*words.shape[:-1], -1)
    return bits[..., :count].astype(bool)


def pack_conv_weight(negative: np.ndarray) -> np.ndarray:
    """Cout x Cin_g x KH x KW booleans -> Cout x KH x KW x words(Cin_g) i64."""
    return pack_bits(np.transpose(negative, (0, 2, 3, 1)))


def unpack_conv_weight(words: np.ndarray, channels_per_group: int) -> np.ndarray:
    """Cout x KH x KW x words -> Cout x Cin_g x KH x KW booleans (True = -1)."""
    return np.transpose(unpack_bits(words, channels_per_group), (0, 3, 1, 2))


def pack_activations(values: np.ndarray, groups: int = 1) -> np.ndarray:
    """N x C x ... values -> N x packed_words(C, groups) x ... i64, bit 1 where
    the value is < 0 (what `bnn.pack` computes)."""
    n, c, *spatial = values.shape
    cg = c // groups
    grouped = (values < 0).reshape(n, groups, cg, *spatial)
    packed = pack_bits(np.moveaxis(grouped, 2, -1))  # N x G x ... x words
    return np.ascontiguousarray(np.moveaxis(packed, -1, 2).reshape(n, groups * words_for(cg), *spatial))


def unpack_activations(words: np.ndarray, channels: int, groups: int = 1) -> np.ndarray:
    """N x packed_words(C, groups) x ... i64 -> N x C x ... booleans (True = -1)."""
    n, _, *spatial = words.shape
    cg = channels // groups
    grouped = words.reshape(n, groups, words_for(cg), *spatial)
    bits = unpack_bits(np.moveaxis(grouped, 2, -1), cg)  # N x G x ... x Cg
    return np.moveaxis(bits, -1, 2).reshape(n, channels, *spatial)


# ------------------------------------------------------------------- counting

_BYTE_POP = np.array([i.bit_count() for i in range(256)], dtype=np.int64)


def popcount(words: np.ndarray) -> np.ndarray:
    """Per-element popcount of an i64 array."""
    as_bytes = np.ascontiguousarray(words.astype("<i8")).view(np.uint8).reshape(*words.shape, 8)
    return _BYTE_POP[as_bytes].sum(axis=-1)


def valid_bit_mask(channels: int) -> np.ndarray:
    """i64 words with the bits of `channels` packed channels set (trailing bits 0)."""
    return pack_bits(np.ones(channels, dtype=bool))


def padding_correction(weight: np.ndarray, channels_per_group: int) -> np.ndarray:
    """Cout x KH x KW: what a tap padded with +1 (all bits 0) contributes to the
    dot product, Cg - 2 * popcount(w): zero padding subtracts it at the borders."""
    return (channels_per_group - 2 * popcount(weight).sum(axis=-1)).astype(np.int64)


def epilogue_offsets(multiplier: np.ndarray, bias: np.ndarray, description: str | None) -> np.ndarray | None:
    """For the {0, 1}-input popcount form (recognize-binarization's `description`
    says "unipolar (popcount form"), per channel the integer k with bias ==
    f32(multiplier * k) (else 0); None for any other layer or if no channel has
    one. Its float result is then (dot + k) * multiplier, not fma(dot, multiplier,
    bias): the bias is 0.5 * sum(W) = m * S, whose rounding error the fma would
    leave where the exact value m * (dot + S) is 0 (a tie a later sign decides;
    PyTorch's sum of {0, alpha} terms gives 0 or noise there). Other layers keep
    the fma: a batch norm's is what PyTorch computes. Lowering and fuse-bn-sign's
    thresholds both read it."""
    if description is None or "unipolar (popcount form" not in description:
        return None
    m = np.asarray(multiplier, dtype=np.float32).astype(np.float64)
    b32 = np.broadcast_to(np.asarray(bias, dtype=np.float32), m.shape)
    b = b32.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(m != 0, np.rint(b / np.where(m != 0, m, 1.0)), 0.0)
    ok = (np.abs(k) <= 2**20) & (b != 0) & ((m * k).astype(np.float32) == b32)
    return np.where(ok, k, 0).astype(np.int64) if ok.any() else None


def binarized_description(op: object) -> str | None:
    """The `bnnc.binarized` text recognize-binarization left on a binary layer."""
    attr = getattr(op, "attributes", {}).get("bnnc.binarized")
    return getattr(attr, "data", None)
