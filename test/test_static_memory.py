"""The static memory plan (plan-memory, `static_memory=True`, `--static-memory`):
every model of the zoo computes bit-identical results with one planned arena
and with per-layer allocations, threaded or not, and the arena is the peak of
the live buffers, not their sum."""

from __future__ import annotations

import bnn_models as bm
import pytest
import torch

import bnnc
from bnnc.driver import CompileOptions, import_model, lower
from bnnc.passes.plan_memory import Buffer, place
from bnnc.runtime.signature import planned_arena


@pytest.mark.parametrize("factory", bm.MODEL_FACTORIES, ids=lambda f: f.__name__)
def test_zoo_identical_with_and_without_plan(factory):
    model, x = factory(0)
    threads = 2 if factory is bm.make_bireal else 1  # one threaded model: per-block scratch
    plain = bnnc.compile(model, (x,), num_threads=threads, cache=False)
    planned = bnnc.compile(model, (x,), num_threads=threads, static_memory=True, cache=False)
    assert plain.signature.arena_bytes is None
    assert planned.signature.arena_bytes is not None and planned.signature.arena_bytes > 0
    for xi in (x, torch.randn_like(x), torch.zeros_like(x)):
        assert torch.equal(plain(xi), planned(xi))


def test_no_allocator_left_and_arena_below_sum():
    model, x = bm.make_bireal(0)
    module = import_model(model, (x,))
    loops = lower(module.clone(), CompileOptions(num_threads=1), "loops")
    sizes = []
    for op in loops.walk():
        if op.name == "memref.alloc":
            t = op.results[0].type
            sizes.append(t.element_count() * (t.element_type.bitwidth // 8))
    planned = lower(module, CompileOptions(num_threads=1, static_memory=True), "llvm")
    text = str(planned)
    assert "aligned_alloc" not in text and "@free" not in text and "malloc" not in text
    arena = planned_arena(planned, "forward")
    assert arena is not None
    assert max(sizes) <= arena < sum(sizes)


def test_place_reuses_dead_space_and_keeps_live_buffers_apart():
    a, b, c = Buffer(100, 0, 1), Buffer(100, 1, 2), Buffer(100, 2, 3)
    size = place([a, b, c])
    assert a.offset != b.offset and b.offset != c.offset  # live together at 1, at 2
    assert a.offset == c.offset  # a is dead when c starts
    assert size == 256  # two slots, each 100 bytes rounded up to 128 (64-byte alignment)
