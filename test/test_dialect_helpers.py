"""The dialect layer's shared helpers: the packed bit layout (bitpack) and op
copying (clone_with), which passes and tests use instead of restating them."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.dialects.builtin import StringAttr, TensorType, f32, i64
from xdsl.ir import Block
from xdsl.utils.test_value import create_ssa_value

from bnnc.dialects import bitpack, bnn


def _reference_pack(values: np.ndarray, groups: int) -> np.ndarray:
    """Bit by bit, as the layout is written down: bit c % 64 of word
    g * words(C/G) + c // 64 is set when channel g * C/G + c is negative."""
    n, c = values.shape[:2]
    cg = c // groups
    words = bitpack.words_for(cg)
    out = np.zeros((n, groups * words, *values.shape[2:]), dtype=np.uint64)
    for g in range(groups):
        for ch in range(cg):
            out[:, g * words + ch // 64] |= (values[:, g * cg + ch] < 0).astype(np.uint64) << np.uint64(ch % 64)
    return out.view(np.int64)


@pytest.mark.parametrize("channels,groups", [(1, 1), (3, 1), (64, 1), (65, 1), (130, 2), (200, 4)])
def test_activations_round_trip_in_the_documented_layout(channels, groups):
    x = np.random.default_rng(channels).standard_normal((2, channels, 3, 5))
    packed = bitpack.pack_activations(x, groups)
    assert packed.shape == (2, bitpack.packed_words(channels, groups), 3, 5)
    np.testing.assert_array_equal(packed, _reference_pack(x, groups))
    np.testing.assert_array_equal(bitpack.unpack_activations(packed, channels, groups), x < 0)


def test_conv_weight_round_trip_and_padding_correction():
    negative = np.random.default_rng(1).random((5, 70, 3, 3)) < 0.5
    words = bitpack.pack_conv_weight(negative)
    assert words.shape == (5, 3, 3, 2)
    np.testing.assert_array_equal(bitpack.unpack_conv_weight(words, 70), negative)
    # a +1-padded tap contributes sum_c w = (#+1) - (#-1) = Cg - 2 * popcount(w)
    signs = np.where(negative, -1, 1)
    np.testing.assert_array_equal(bitpack.padding_correction(words, 70), signs.sum(axis=1))


def test_popcount_and_valid_bits():
    words = np.random.default_rng(2).integers(-(2**63), 2**63 - 1, size=(4, 7), dtype=np.int64)
    expect = [[int(v).bit_count() for v in row] for row in words.view(np.uint64)]
    np.testing.assert_array_equal(bitpack.popcount(words), expect)
    mask = bitpack.valid_bit_mask(70).view(np.uint64)
    assert mask.tolist() == [2**64 - 1, 2**6 - 1]
    assert bitpack.popcount(bitpack.valid_bit_mask(64)).tolist() == [64]


def test_clone_with_replaces_arguments_and_keeps_the_rest():
    x = create_ssa_value(TensorType(f32, [1, 70, 8, 8]))
    w = create_ssa_value(TensorType(i64, [16, 3, 3, 2]))
    m = create_ssa_value(TensorType(f32, [16]))
    out = TensorType(f32, [1, 16, 8, 8])
    conv = bnn.BConv2dOp(x, w, out, strides=(1, 1), padding=(1, 1), dilations=(1, 1), multiplier=m, clamp_min=-1.0)
    conv.attributes["bnnc.binarized"] = StringAttr("why")
    Block([conv])
    new = conv.clone_with(pad_value=1, multiplier=None)
    assert new.pad_value.value.data == 1 and new.multiplier is None
    assert new.clamp_bounds() == (-1.0, None) and new.window() == conv.window()
    assert new.attributes["bnnc.binarized"] == StringAttr("why") and new.location == conv.location
    with pytest.raises(TypeError, match="no constructor argument"):
        conv.clone_with(kernel=3)
    dense_in, dense_w = create_ssa_value(TensorType(f32, [2, 70])), create_ssa_value(TensorType(i64, [4, 2]))
    dense = bnn.BDenseOp(dense_in, dense_w, TensorType(f32, [2, 4]))
    assert dense.clone_with(clamp_max=2.0).clamp_bounds() == (None, 2.0)
