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


def test_cli_host_object_allocates_nothing(tmp_path):
    """`bnnc compile --static-memory` for the host: the object imports no
    allocator, the header states the arena, and `bnnc run` (the C runner,
    which passes the header's static arena) computes what the JIT computes."""
    import subprocess
    import sys

    import artifact_models as am
    import numpy as np

    from bnnc.runtime.artifact_loader import undefined_symbols

    model, x, _ = am.make_pure_binary(0)
    pt2 = tmp_path / "pure.pt2"
    torch.export.save(torch.export.export(model, (x,)), pt2)
    obj = tmp_path / "pure.o"
    bnnc_cli = [sys.executable, "-m", "bnnc.cli"]
    subprocess.run([*bnnc_cli, "compile", str(pt2), "--static-memory", "-o", str(obj)], check=True, capture_output=True)
    assert not {"aligned_alloc", "malloc", "free"} & {s.split("@")[0] for s in undefined_symbols(str(obj))}
    header = obj.with_suffix(".h").read_text()
    assert "void pure(const float *in0, float *out0, void *arena);" in header
    assert "#define PURE_ARENA_BYTES " in header
    np.save(tmp_path / "x.npy", x.numpy())
    run = subprocess.run(
        [*bnnc_cli, "run", str(obj), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")],
        capture_output=True, text=True, check=False,
    )
    assert run.returncode == 0, run.stderr
    expected = bnnc.compile(model, (x,), num_threads=1, cache=False)(x)
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "y.npy")), expected)
