"""Whole models on the thread pool: every layer split (thread_min_work=0), at
thread counts below, at and above the core count; results must equal the
single-thread build bit for bit and PyTorch's within its tolerance, also when
one compiled model is called from several Python threads at once."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import bnn_models as bm
from differential import assert_matches_torch

from bnnc.driver import CompileOptions, build, import_model, jit

FACTORIES = {f.__name__.removeprefix("make_"): f for f in bm.MODEL_FACTORIES}
MODELS = ["bireal", "densenet", "reactnet", "odd_shapes", "binary_mlp"]


def _compiled(model: torch.nn.Module, x: torch.Tensor, threads: int):
    module = import_model(model, (x,))
    return jit(build(module, options=CompileOptions(num_threads=threads, thread_min_work=0)))


@pytest.mark.parametrize("name", MODELS)
def test_every_thread_count_gives_the_single_thread_result(name):
    model, x = FACTORIES[name](0)
    inputs = [x.numpy(), torch.randn_like(x).numpy(), (3.0 * torch.randn_like(x)).numpy()]
    single = _compiled(model, x, 1)
    expected = [np.asarray(single(xi)) for xi in inputs]
    for threads in (2, 3, 8):  # 8 > cores: workers wait for a core, callers take their blocks
        cm = _compiled(model, x, threads)
        for xi, want in zip(inputs, expected):
            got = np.asarray(cm(xi))
            assert np.array_equal(got, want), f"{name}: {threads} threads differ from 1 thread"
            assert_matches_torch(model, (torch.from_numpy(xi),), torch.from_numpy(got))


def test_concurrent_calls_of_one_threaded_model_are_independent():
    """Each call has its own pool (on its stack): calls from four Python
    threads at once all get their own input's result."""
    model, x = FACTORIES["bireal"](0)
    cm = _compiled(model, x, 2)
    inputs = [torch.randn_like(x).numpy() for _ in range(4)]
    expected = [np.asarray(cm(xi)).copy() for xi in inputs]
    failures: list[str] = []

    def worker(i: int) -> None:
        for _ in range(20):
            got = np.asarray(cm(inputs[i]))
            if not np.array_equal(got, expected[i]):
                failures.append(f"call with input {i} returned another result")
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
