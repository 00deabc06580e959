"""Whole models on the thread pool: every layer split (thread_min_work=0), at
thread counts below, at and above the core count; results must equal the
single-thread build bit for bit and PyTorch's within its tolerance, also when
one compiled model is called from several Python threads at once. The pool
outlives a call (its workers sleep between calls) and is joined when the
compiled model is collected: no thread outlives its model."""

from __future__ import annotations

import gc
import os
import threading
import time

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
    """One call at a time holds the model's pool, the others run their blocks
    alone: calls from four Python threads at once all get their own input's result."""
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


def _threads_of_this_process() -> set[str]:
    return set(os.listdir("/proc/self/task"))


def _stat(tid: str) -> list[str]:
    """The fields of /proc/self/task/<tid>/stat after the command name (state first)."""
    with open(f"/proc/self/task/{tid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def _cpu_seconds(tid: str) -> float:
    """User + system time of one thread of this process."""
    fields = _stat(tid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_the_pool_outlives_a_call_sleeps_between_calls_and_goes_with_its_model():
    """The workers start with the first call and are the same threads on the
    next one (not re-created per call); between calls they sleep instead of
    spinning; dropping the compiled model joins them, also for many models
    made and dropped in a loop (no thread leaks)."""
    model, x = FACTORIES["bireal"](0)
    # one compile (JIT objects), many loads
    cached = build(import_model(model, (x,)), options=CompileOptions(num_threads=3, thread_min_work=0), for_jit=True)
    xn = x.numpy()
    before = _threads_of_this_process()

    cm = jit(cached)
    want = np.asarray(cm(xn)).copy()
    workers = _threads_of_this_process() - before
    assert len(workers) == 2, f"a 3-thread pool should add 2 workers, added {len(workers)}"
    for _ in range(3):
        assert np.array_equal(np.asarray(cm(xn)), want)
    assert _threads_of_this_process() - before == workers, "the workers were re-created by a later call"
    busy = sum(_cpu_seconds(t) for t in workers)
    time.sleep(0.5)  # idle: a spinning worker would burn this whole half second
    idle = sum(_cpu_seconds(t) for t in workers) - busy
    assert idle < 0.1, f"idle workers used {idle:.2f} s of CPU in 0.5 s"
    states = {_stat(t)[0] for t in workers}
    assert states == {"S"}, f"idle workers should sleep (state S), not spin or yield: {states}"
    del cm
    gc.collect()
    assert not (_threads_of_this_process() & workers), "dropping the model left its workers running"

    for i in range(30):
        cm = jit(cached)
        if i % 3:  # some models never run (no pool started), the others do
            assert np.array_equal(np.asarray(cm(xn)), want)
        del cm
        gc.collect()
    assert _threads_of_this_process() <= before, "compiled models leaked threads"


def test_a_forked_child_starts_its_own_workers_and_exits_without_hanging():
    """fork() copies the pool's state but not its workers: the child's calls
    start workers of its own, and dropping the model there joins only those
    (joining the parent's would wait forever)."""
    model, x = FACTORIES["binary_mlp"](0)
    cm = _compiled(model, x, 2)
    xn = x.numpy()
    want = np.asarray(cm(xn)).copy()  # the parent's workers run
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status, never return into pytest
        status = 1
        try:
            cm.stop_threads()  # the parent's workers: forgotten here, not joined
            ok = all(np.array_equal(np.asarray(cm(xn)), want) for _ in range(3))  # the child's own workers
            ok = ok and len(os.listdir("/proc/self/task")) == 2
            cm.stop_threads()  # joins the child's worker
            status = 0 if ok and len(os.listdir("/proc/self/task")) == 1 else 1
        finally:
            os._exit(status)
    deadline = time.monotonic() + 120
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0, "the forked child computed a wrong result"
    assert np.array_equal(np.asarray(cm(xn)), want)  # the parent's pool still works


@pytest.mark.parametrize("threads", [0, -3, 1025, 2**31])
def test_thread_count_out_of_range_is_refused(threads):
    """A pool of N threads is N words of state and N argument blocks of code:
    a count outside 1..1024 is a clear error, not a compile that never ends."""
    import bnnc

    model, x = FACTORIES["binary_mlp"]()
    with pytest.raises(bnnc.BnncError, match=r"num_threads must be 1\.\.1024, got"):
        bnnc.compile(model.eval(), (x,), num_threads=threads)


class _Means(torch.nn.Module):
    """XNOR-Net's K map (channel mean of |x| at every pixel), a global mean,
    and a mean whose first output axis longer than 1 is the last."""

    def forward(self, x):
        k = x.abs().mean(dim=1, keepdim=True)
        return k * 2.0, x.mean(dim=(2, 3)), x[:, :1].mean(dim=(1, 2))


@pytest.mark.parametrize("shape", [(1, 64, 28, 28), (2, 5, 7, 3), (1, 3, 1, 9)])
def test_threaded_means_give_the_single_thread_bits(shape):
    """A mean splits its first output axis longer than 1 between threads
    (threaded however small here: thread_min_work=0); every output's sum is
    the same, so every thread count gives the same bits."""
    model = _Means()
    x = torch.randn(*shape)
    expected = [np.asarray(o) for o in _compiled(model, x, 1)(x.numpy())]
    for threads in (2, 3, 8):
        got = [np.asarray(o) for o in _compiled(model, x, threads)(x.numpy())]
        assert all(np.array_equal(g, w) for g, w in zip(got, expected)), f"{threads} threads"
    assert_matches_torch(model, (x,), [torch.from_numpy(w) for w in expected])
