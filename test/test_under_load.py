"""Under load (issue 12): compiled models are called from many Python threads
at once, while other code compiles, with inputs in any memory layout.

- Eight threads make CALLS calls in total to two compiled models (one with
  num_threads=2, one single-threaded): every result is bit-identical to the
  single-threaded reference, and resident memory stops growing after warm-up.
- Compiling in one thread while another runs a compiled model works.
- Non-contiguous torch views (transposed, sliced, expanded, channels_last) and
  numpy arrays (transposed, strided, broadcast, Fortran, reversed) give the
  same result as their contiguous copies.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import bnnc

CALLS = 100_000
THREADS = 8
SHAPE = (1, 4, 6, 6)


class BinaryConv(nn.Conv2d):
    def forward(self, x):
        w = self.weight
        alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
        return F.conv2d(x, torch.sign(w) * alpha, None, self.stride, self.padding)


class Small(nn.Module):
    """Float stem, BN, sign, two binary convs, pooling, linear: small enough for 10^5 calls."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(4, width, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(width)
        self.conv1 = BinaryConv(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = BinaryConv(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, 5)

    def forward(self, x):
        x = self.bn0(self.stem(x))
        x = self.bn1(self.conv1(torch.sign(x)))
        x = self.bn2(self.conv2(torch.sign(x))) + x
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _model(seed: int = 0, width: int = 8) -> nn.Module:
    torch.manual_seed(seed)
    m = Small(width).eval()
    with torch.no_grad():
        for bn in (m.bn0, m.bn1, m.bn2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2)
    return m


@pytest.fixture(scope="module")
def models() -> dict[str, object]:
    model = _model()
    x = torch.randn(*SHAPE)
    return {
        "torch": model,
        "single": bnnc.compile(model, (x,), num_threads=1),
        "threaded": bnnc.compile(model, (x,), num_threads=2),
    }


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_eight_threads_two_models_bit_identical_and_memory_flat(models):
    """CALLS calls from THREADS threads (numpy and torch inputs, both models): every
    result equals the single-threaded reference bit for bit; RSS flat after warm-up."""
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(32)]
    inputs[1][0, 0, 0, 0] = 0.0  # exact zeros and signed zeros reach the binarizers
    inputs[2][:] = -0.0
    single, threaded = models["single"], models["threaded"]
    reference = [single(x) for x in inputs]  # one thread, one model
    for x, ref in zip(inputs, reference):
        assert _same_bits(threaded(x), ref)  # (the threaded model agrees even alone)
        np.testing.assert_allclose(ref, models["torch"](torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-4)
    torch_inputs = [torch.from_numpy(x.copy()) for x in inputs]

    per_thread = CALLS // THREADS
    done = [0] * THREADS
    mismatches: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS + 1)

    def worker(t: int) -> None:
        local = np.random.default_rng(100 + t)
        try:
            start.wait()
            for n in range(per_thread):
                i = int(local.integers(len(inputs)))
                model = threaded if (n + t) % 2 else single
                if n % 5 == 0:
                    y = model(torch_inputs[i]).numpy()
                else:
                    y = model(inputs[i])
                if not _same_bits(y, reference[i]):
                    mismatches.append(f"thread {t} call {n} input {i} ({'threaded' if (n + t) % 2 else 'single'})")
                done[t] = n + 1
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    began = time.perf_counter()
    start.wait()
    samples: list[tuple[int, int]] = []  # (calls done, RSS kB)
    while any(th.is_alive() for th in threads):
        samples.append((sum(done), _rss_kb()))
        time.sleep(0.05)
    for th in threads:
        th.join()
    wall = time.perf_counter() - began
    samples.append((sum(done), _rss_kb()))
    assert not errors, errors[:3]
    assert sum(done) == per_thread * THREADS == CALLS
    assert not mismatches, f"{len(mismatches)} results differ from the reference, e.g. {mismatches[:5]}"

    warm = [rss for calls, rss in samples if calls >= CALLS // 5]
    assert len(warm) >= 5, f"too few RSS samples after warm-up: {samples}"
    growth = max(warm) - warm[0]
    print(f"{CALLS} calls from {THREADS} threads in {wall:.1f} s ({CALLS / wall:.0f}/s); RSS after warm-up "
          f"{warm[0] // 1024} -> max {max(warm) // 1024} MiB ({len(samples)} samples)")
    # a leak of even 100 bytes per call would be 8 MB here
    assert growth < 8 * 1024, f"RSS grew by {growth} kB after warm-up: {samples[::max(1, len(samples) // 20)]}"


def test_compile_while_another_thread_runs(models):
    """A compiled model keeps giving the reference result while the main thread compiles another."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    ref = models["single"](x)
    stop = threading.Event()
    calls = [0]
    bad: list[str] = []

    def runner() -> None:
        try:
            while not stop.is_set():
                for model in (models["threaded"], models["single"]):
                    if not _same_bits(model(x), ref):
                        bad.append(f"call {calls[0]}")
                    calls[0] += 1
        except BaseException as e:  # noqa: BLE001
            bad.append(repr(e))

    th = threading.Thread(target=runner)
    th.start()
    try:
        other = _model(seed=3, width=16)
        x2 = torch.randn(1, 4, 8, 8)
        fast = bnnc.compile(other, (x2,), num_threads=2)
        fast_again = bnnc.compile(_model(seed=4), (torch.randn(*SHAPE),), num_threads=1)
    finally:
        stop.set()
        th.join()
    assert not bad, bad[:5]
    assert calls[0] > 10, "the runner thread barely ran while compiling"
    np.testing.assert_allclose(fast(x2).numpy(), other(x2).detach().numpy(), rtol=1e-4, atol=1e-4)
    assert fast_again(torch.from_numpy(x)).shape == (1, 5)


def _torch_views() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    n, c, h, w = SHAPE
    return {
        "transposed": torch.randn(n, c, w, h, generator=g).transpose(2, 3),
        "permuted": torch.randn(h, w, n, c, generator=g).permute(2, 3, 0, 1),
        "sliced": torch.randn(n, c + 2, 2 * h, w + 3, generator=g)[:, 1 : c + 1, ::2, 2 : w + 2],
        "expanded": torch.randn(n, c, 1, w, generator=g).expand(n, c, h, w),
        "expanded_channels": torch.randn(n, 1, h, w, generator=g).expand(n, c, h, w),
        "channels_last": torch.randn(*SHAPE, generator=g).contiguous(memory_format=torch.channels_last),
        "storage_offset": torch.randn(n, c, h + 1, w, generator=g)[:, :, 1:],
    }


def _unaligned(a: np.ndarray) -> np.ndarray:
    """The same values at an address that is not a multiple of 4."""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    out = raw[1:].view(np.float32).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def _numpy_views() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(6)
    n, c, h, w = SHAPE
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    return {
        "transposed": f(n, c, w, h).transpose(0, 1, 3, 2),
        "strided": f(n, c, 2 * h, 2 * w)[:, :, ::2, 1::2],
        "reversed": f(*SHAPE)[:, ::-1, :, ::-1],
        "broadcast": np.broadcast_to(f(1, c, 1, w), SHAPE),
        "fortran": np.asfortranarray(f(*SHAPE)),
        "read_only": (lambda a: (a.setflags(write=False), a)[1])(f(*SHAPE)),
        "unaligned": _unaligned(f(*SHAPE)),
    }


@pytest.mark.parametrize("name", sorted(_torch_views()))
@pytest.mark.parametrize("which", ["single", "threaded"])
def test_noncontiguous_torch_views(models, name, which):
    """A view gives the result of its contiguous copy, bit for bit, and is left unchanged."""
    view = _torch_views()[name]
    assert not view.is_contiguous()
    before = view.clone()
    model = models[which]
    y = model(view)
    assert isinstance(y, torch.Tensor)
    assert _same_bits(y.numpy(), model(view.contiguous()).numpy())
    assert torch.equal(view, before)
    np.testing.assert_allclose(y.numpy(), models["torch"](view).detach().numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(_numpy_views()))
def test_noncontiguous_numpy_arrays(models, name):
    """numpy arrays in any layout give the result of their C-contiguous copy."""
    array = _numpy_views()[name]
    before = array.copy()
    for which in ("single", "threaded"):
        y = models[which](array)
        assert isinstance(y, np.ndarray)
        assert _same_bits(y, models[which](np.ascontiguousarray(array)))
    assert np.array_equal(array, before)
