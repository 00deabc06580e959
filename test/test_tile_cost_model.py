"""The register-tile cost model (`choose_tile`): how many output pixels and
channel vectors one microkernel tile keeps in registers, per target."""

from __future__ import annotations

import pytest

from bnnc.passes._microkernel import choose_tile


@pytest.mark.parametrize(
    "vector_bits, element_bits, registers, channels, expected",
    [
        (256, 32, 16, 64, (8, 4, 2)),  # AVX2, f32: 4 vectors of 8 lanes, (16 - 4 - 2) // 4 = 2 pixels
        (512, 32, 32, 64, (16, 4, 6)),  # AVX-512: 32 registers, pixels capped at 6
        (128, 32, 32, 64, (4, 4, 6)),  # NEON f32
        (256, 64, 16, 64, (4, 4, 2)),  # 64-bit popcount accumulators
        (256, 32, 16, 8, (8, 1, 6)),  # one vector covers the channels: (16 - 1 - 2) // 1 capped at 6
        (256, 32, 16, 12, (8, 2, 6)),  # channels rounded up to whole vectors
    ],
)
def test_choose_tile(vector_bits, element_bits, registers, channels, expected):
    tile = choose_tile(vector_bits, element_bits, registers, channels)
    assert (tile.lanes, tile.vectors, tile.pixels) == expected
    assert tile.channels == tile.lanes * tile.vectors


@pytest.mark.parametrize("vector_bits", [32, 64, 128, 256, 512])
@pytest.mark.parametrize("registers", [16, 32])  # x86 (16 ymm, 32 zmm), AArch64 (32)
@pytest.mark.parametrize("channels", [1, 3, 16, 64, 1000])
def test_choose_tile_fits_the_register_file(vector_bits, registers, channels):
    """Accumulators + one register per weight vector + two spare never exceed
    the register file of a real target."""
    tile = choose_tile(vector_bits, 32, registers, channels)
    assert 1 <= tile.vectors <= 4 and 1 <= tile.pixels <= 6
    assert tile.lanes == max(1, vector_bits // 32)
    assert tile.pixels * tile.vectors + tile.vectors + 2 <= registers
    # never more vectors than the channels need
    assert (tile.vectors - 1) * tile.lanes < channels


def test_scalar_target_has_one_lane():
    assert choose_tile(16, 32, 16, 64).lanes == 1
