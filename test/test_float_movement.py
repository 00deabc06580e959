"""Data movement compiled end to end against PyTorch eager: ops that only move
values must give PyTorch's result bit for bit (NaN, -0.0 and infinities
included), at 1, 2 and 3 threads; bilinear resizing within float rounding.
Also the gather kernel at the IR level, for indices that are not separable
(the full-table path), with fill values and several inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from xdsl.parser import Parser

from bnnc.context import make_context
from bnnc.driver import CompileOptions, build, jit
from bnnc.frontend.torch_import import export_module, import_program
from bnnc.passes._lower_movement import merge_axes, separable, transposed_pair

THREADS = [1, 2, 3]


class Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


def _special(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Random values with the ones a copy must keep exactly: -0.0, inf, NaN."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    u = torch.rand(shape, generator=g)
    x[u < 0.05] = -0.0
    x[(u >= 0.05) & (u < 0.08)] = float("inf")
    x[(u >= 0.08) & (u < 0.1)] = float("nan")
    return x


def _compile(fn, inputs: tuple[torch.Tensor, ...], threads: int):
    """thread_min_work=0 makes every threaded kernel split its work even on these small tensors."""
    options = CompileOptions(num_threads=threads, thread_min_work=0)
    return jit(build(Fn(fn), inputs, options))


def _bits(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().numpy(), dtype=np.float32).view(np.int32)


def _as_tuple(y):
    return tuple(y) if isinstance(y, (tuple, list)) else (y,)


MOVES = {
    "permute": (lambda x: x.permute(0, 2, 3, 1), (2, 3, 4, 5)),
    "transpose": (lambda x: x.transpose(1, 3), (1, 3, 4, 5)),
    "t": (lambda x: x.t(), (5, 7)),
    "movedim_3d": (lambda x: x.movedim(0, -1), (3, 4, 5)),
    "slice_steps": (lambda x: x[:, 1:, ::2, 1:-1:3], (2, 3, 7, 9)),
    "slice_negative_clamped": (lambda x: x[:, -2:, -100:3, 2:100], (1, 4, 5, 6)),
    "narrow": (lambda x: x.narrow(2, 1, 3), (1, 2, 5, 4)),
    "select": (lambda x: x[:, 1], (2, 3, 4, 5)),
    "select_negative": (lambda x: x[..., -1], (2, 3, 4, 5)),
    "split": (lambda x: torch.split(x, 2, dim=1), (1, 5, 3, 3)),
    "split_sizes": (lambda x: torch.split(x, [1, 3, 2], dim=2), (1, 2, 6, 3)),
    "chunk": (lambda x: x.chunk(3, dim=3), (1, 2, 3, 7)),
    "unbind": (lambda x: x.unbind(1), (2, 3, 2, 2)),
    "tensor_split": (lambda x: torch.tensor_split(x, 3, dim=1), (1, 5, 2, 2)),
    "repeat": (lambda x: x.repeat(2, 1, 3, 2), (1, 2, 3, 4)),
    "repeat_new_axes": (lambda x: x.repeat(2, 1, 1, 1), (3, 4)),
    "expand": (lambda x: x.expand(2, 3, 4, 5), (1, 3, 1, 5)),
    "expand_then_add": (lambda x: x.expand(2, 3, 4, 5) + 1.0, (3, 1, 5)),
    "flip": (lambda x: x.flip(2, 3), (1, 2, 3, 4)),
    "flip_channels": (lambda x: x.flip(1), (2, 5, 3, 3)),
    "roll": (lambda x: torch.roll(x, (1, -2), (2, 3)), (1, 2, 4, 5)),
    "rot90": (lambda x: torch.rot90(x, 1, (2, 3)), (1, 2, 3, 4)),
    "reflect_2d": (lambda x: F.pad(x, (2, 1, 1, 3), mode="reflect"), (2, 3, 5, 6)),
    "reflect_1d": (lambda x: F.pad(x, (3, 1), mode="reflect"), (2, 3, 5)),
    "reflect_3d": (lambda x: F.pad(x, (1, 1, 1, 0, 0, 1), mode="reflect"), (1, 2, 3, 3, 3)),
    "replicate_2d": (lambda x: F.pad(x, (2, 0, 3, 1), mode="replicate"), (1, 3, 4, 5)),
    "replicate_1d": (lambda x: F.pad(x, (0, 4), mode="replicate"), (1, 2, 3)),
    "circular": (lambda x: F.pad(x, (1, 2, 2, 1), mode="circular"), (1, 2, 3, 4)),
    "constant_spatial": (lambda x: F.pad(x, (1, 2, 0, 1), value=-1.5), (1, 2, 3, 4)),
    "constant_channels": (lambda x: F.pad(x, (0, 0, 0, 0, 2, 1), value=0.5), (1, 2, 3, 4)),
    "constant_crop": (lambda x: F.pad(x, (-1, 2, 1, -2)), (1, 2, 5, 6)),
    "constant_rank2": (lambda x: F.pad(x, (1, 1, 2, 0), value=3.0), (3, 4)),
    "constant_rank3_crop_all": (lambda x: F.pad(x, (-1, -1)), (2, 3, 4)),
    "pad_of_pad": (lambda x: F.pad(F.pad(x, (1, 1, 0, 0, 1, 0), value=2.0), (0, 0, 1, 1, 0, 1), value=-2.0), (1, 2, 2, 3)),
    "nearest_x2": (lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), (1, 2, 3, 4)),
    "nearest_fractional": (lambda x: F.interpolate(x, scale_factor=1.7, mode="nearest"), (1, 2, 5, 4)),
    "nearest_size": (lambda x: F.interpolate(x, size=(7, 3), mode="nearest"), (1, 2, 3, 5)),
    "nearest_exact": (lambda x: F.interpolate(x, size=(5, 7), mode="nearest-exact"), (1, 2, 3, 4)),
    "nearest_1d": (lambda x: F.interpolate(x, scale_factor=3, mode="nearest"), (1, 2, 4)),
    "upsample_module": (nn.Upsample(scale_factor=(2, 3)), (1, 3, 2, 2)),
    "pixel_shuffle": (lambda x: F.pixel_shuffle(x, 2), (1, 8, 3, 2)),
    "pixel_unshuffle": (lambda x: F.pixel_unshuffle(x, 2), (1, 2, 4, 6)),
    "channel_shuffle": (lambda x: F.channel_shuffle(x, 3), (1, 6, 2, 2)),
    "channel_shuffle_by_hand": (lambda x: x.view(2, 2, 3, 2, 2).transpose(1, 2).reshape(2, 6, 2, 2), (2, 6, 2, 2)),
    "index_list": (lambda x: x[:, [2, 0, 1, 2]], (1, 3, 2, 2)),
    "index_2d": (lambda x: x[:, :, torch.tensor([[1, 0], [2, 2]])], (1, 2, 3, 2)),
    "index_two_tensors": (lambda x: x[0, :, torch.tensor([0, 2, 1]), torch.tensor([1, 1, 0])], (1, 2, 3, 2)),
    "index_negative": (lambda x: x[:, :, torch.tensor([-1, 0])], (1, 2, 3, 2)),
    "index_select": (lambda x: torch.index_select(x, 3, torch.tensor([3, 0, 0])), (1, 2, 2, 4)),
    "gather_const": (lambda x: torch.gather(x, 1, torch.tensor([[[[0, 1]], [[1, 0]]]]).expand(1, 2, 3, 2)), (1, 2, 3, 2)),
    "diagonal": (lambda x: torch.diagonal(x, 0, 2, 3), (1, 2, 3, 3)),
    "unfold": (lambda x: x.unfold(3, 2, 1), (1, 2, 2, 4)),
    "chain": (lambda x: x.permute(0, 3, 1, 2)[:, 1:].flip(1).repeat(1, 1, 2, 1)[..., ::2], (1, 3, 4, 5)),
    "select_to_scalar": (lambda x: x[0, 1, 2], (1, 2, 3)),
    # bnn.cat: one flat run per source and outer index, split between threads
    "cat_channels": (lambda x: torch.cat([x[:, 1:], x, x[:, :1]], 1), (2, 3, 4, 5)),
    "cat_batch": (lambda x: torch.cat([x, x[:1]], 0), (2, 3, 4, 5)),
    "cat_rows": (lambda x: torch.cat([x[:, :, 1:], x], 2), (2, 3, 4, 5)),
    "cat_last_axis": (lambda x: torch.cat([x, x[..., :2]], 3), (2, 3, 4, 5)),
    # the blocked transpose (rows not a multiple of its block, a batch outside)
    "nchw_to_nhwc_blocks": (lambda x: x.permute(0, 2, 3, 1), (2, 5, 7, 9)),
    "nhwc_to_nchw_blocks": (lambda x: x.permute(0, 3, 1, 2), (1, 6, 5, 37)),
    # register blocks (16 x 16 with 512-bit vectors): several row spans and
    # column blocks, rows and columns left over for the scalar copy
    "nhwc_to_nchw_register_blocks": (lambda x: x.permute(0, 3, 1, 2), (2, 9, 8, 70)),
    "nchw_to_nhwc_register_blocks": (lambda x: x.permute(0, 2, 3, 1), (1, 35, 9, 11)),
}


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("name", sorted(MOVES))
def test_movement_bit_exact(name, threads):
    fn, shape = MOVES[name]
    x = _special(shape, seed=len(name) * 31 + threads)
    want = _as_tuple(fn(x))
    got = _as_tuple(_compile(fn, (x,), threads)(x))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert tuple(g.shape) == tuple(w.shape)
        np.testing.assert_array_equal(_bits(g), _bits(w))


def _overwrite(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    z = x.clone()
    z[:, 1:3] = y  # functionalised to slice_scatter: a gather from both inputs
    return z


def test_gather_from_two_inputs():
    x, y = _special((1, 4, 3, 3), 1), _special((1, 2, 3, 3), 2)
    for threads in THREADS:
        got = _compile(_overwrite, (x, y), threads)(x, y)
        np.testing.assert_array_equal(_bits(got), _bits(_overwrite(x, y)))


BILINEAR = [
    ((2, 3, 3, 3), dict(scale_factor=2, align_corners=False)),
    ((1, 2, 3, 5), dict(size=(7, 4), align_corners=False)),
    ((1, 2, 4, 4), dict(size=(9, 13), align_corners=True)),
    ((1, 2, 5, 7), dict(scale_factor=(1.7, 0.6), align_corners=False)),
    ((1, 1, 6, 6), dict(size=(3, 4), align_corners=True)),
    ((1, 2, 11, 13), dict(size=(29, 31), align_corners=False)),
    ((1, 2, 3, 3), dict(size=(3, 7), align_corners=False)),
    ((1, 2, 1, 3), dict(size=(1, 5), align_corners=True)),
]


@pytest.mark.parametrize("shape, kwargs", BILINEAR)
def test_bilinear_within_rounding(shape, kwargs):
    """PyTorch's CPU kernel fixes neither the association nor where FMAs
    contract, so the result is checked to a few float32 ulp of PyTorch's."""

    def fn(x):
        return F.interpolate(x, mode="bilinear", **kwargs)

    x = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape)))
    want = fn(x)
    results = [_compile(fn, (x,), threads)(x) for threads in THREADS]
    for got in results:
        assert got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(_bits(got), _bits(results[0]))


def test_bilinear_identity_size_is_a_copy():
    x = _special((1, 2, 3, 4), 5)
    got = _compile(lambda t: F.interpolate(t, size=(3, 4), mode="bilinear"), (x,), 1)(x)
    np.testing.assert_array_equal(_bits(got[~torch.isnan(got)]), _bits(x[~torch.isnan(x)]))


def test_movement_then_binary_conv():
    """A gather between a binariser and a binary conv keeps the model exact."""
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 8, 3, padding=1, bias=False)

    def fn(x):
        s = torch.where(x >= 0, 1.0, -1.0)
        s = F.pixel_unshuffle(s.flip(3), 2)
        return F.conv2d(s, torch.sign(conv.weight) * conv.weight.abs().mean(), padding=1)

    x = torch.randn(1, 1, 6, 6)
    got = _compile(fn, (x,), 1)(x)
    np.testing.assert_allclose(got.numpy(), fn(x).detach().numpy(), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------- IR level


def _gather_ir(in_shape, index: np.ndarray, fill: float | None) -> str:
    t = lambda s: f"tensor<{'x'.join(map(str, s))}xf32>"  # noqa: E731
    it = f"tensor<{'x'.join(map(str, index.shape))}xi64>"
    values = np.array2string(index, separator=", ", threshold=1 << 30).replace("\n", "")
    attr = "" if fill is None else f" {{fill = {fill!r} : f32}}"
    return f"""func.func @forward(%x: {t(in_shape)}) -> {t(index.shape)} {{
  %i = arith.constant dense<{values}> : {it}
  %y = bnn.gather %x at %i{attr} : ({t(in_shape)}, {it}) -> {t(index.shape)}
  func.return %y : {t(index.shape)}
}}"""


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("fill", [None, -2.5])
def test_gather_table_path(threads, fill):
    """A random index (not separable) reads the full table; -1 gives the fill."""
    rng = np.random.default_rng(threads)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    index = rng.integers(-1 if fill is not None else 0, x.size, size=(3, 5, 2))
    assert separable(index) is None
    module = Parser(make_context(), _gather_ir(x.shape, index, fill)).parse_module()
    fn = jit(build(module, options=CompileOptions(num_threads=threads, pipeline="bnn=", thread_min_work=0)))
    want = np.where(index >= 0, x.reshape(-1)[np.maximum(index, 0)], np.float32(fill or 0.0))
    np.testing.assert_array_equal(fn(x), want)


def test_separable_analysis():
    """permute is affine per axis; merged contiguous runs become one axis;
    reflection padding needs a table; constant padding marks fill entries."""
    idx = torch.arange(24).reshape(1, 2, 3, 4).permute(0, 2, 3, 1).numpy()
    base, axes = separable(idx)
    merged = merge_axes(axes)
    assert base == 0 and [a.size for a in merged] == [12, 2] and all(a.affine() for a in merged)
    idx = torch.arange(24).reshape(1, 2, 3, 4)[:, :, 1:].numpy()
    base, axes = separable(idx)
    assert base == 4 and [a.size for a in merge_axes(axes)] == [2, 8]
    refl = F.pad(torch.arange(12.0).reshape(1, 1, 3, 4), (1, 1, 1, 1), mode="reflect").long().numpy()
    _, axes = separable(refl)
    assert [a.affine() is None for a in merge_axes(axes)] == [True, True]
    padded = F.pad(torch.arange(12.0).reshape(1, 3, 4), (1, 0, 0, 0, 0, 1), value=-1.0).long().numpy()
    _, axes = separable(padded)
    assert [int((a.table < 0).sum()) for a in axes] == [1, 0, 1]
    assert separable(np.array([[0, 1], [1, 0]])) is None


def test_computed_index_is_refused():
    from bnnc.errors import UnsupportedError

    class Dyn(nn.Module):
        def forward(self, x):
            return torch.gather(x, 1, (x > 0).long())

    with pytest.raises(UnsupportedError, match="computed index"):
        import_program(export_module(Dyn(), (torch.randn(1, 2, 3),)))


def test_layout_transposes_take_the_blocked_path():
    """NCHW <-> NHWC swap their two innermost (merged) axes: the blocked copy;
    a slice or a flip does not."""
    for shape, perm in (((1, 64, 56, 56), (0, 2, 3, 1)), ((1, 56, 56, 64), (0, 3, 1, 2)), ((2, 3, 4, 5), (0, 2, 3, 1))):
        index = np.arange(np.prod(shape)).reshape(shape).transpose(perm)
        base, axes = separable(np.ascontiguousarray(index))
        assert transposed_pair(merge_axes(axes))
    flip = np.arange(24).reshape(2, 3, 4)[:, ::-1]
    assert not transposed_pair(merge_axes(separable(np.ascontiguousarray(flip))[1]))
