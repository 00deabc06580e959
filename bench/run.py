"""bnnc vs PyTorch, side by side in one process.

    python bench/run.py                  # layers, then whole networks (takes minutes: bnnc compiles each net)
    python bench/run.py --quick          # fewer runs, layers only
    python bench/run.py --layers-only | --networks-only [--json FILE]

Layers: one 3x3 stride-1 pad-1 binary conv per ANCHORS.md shape, batch 1,
compiled from textual bnn IR in two forms:
  packed  packed input words -> bnn.bconv2d -> packed output bits through
          per-channel thresholds (exact zero padding via pad_value = 1 plus the
          `correction` table): the layer as it runs inside a compiled BNN;
  float   f32 NCHW in (binarized inside) -> bnn.bconv2d with a multiplier ->
          f32 NCHW out (zero padding);
both checked bit-exactly against PyTorch before timing, next to PyTorch fp32
nn.Conv2d in NCHW and channels_last.

Networks: Bi-Real-Net-18, BinaryResNetE-18, BinaryDenseNet-28 and XNOR-Net
ResNet-18 (bench/networks.py) at 1x3x224x224 through `bnnc.compile`, next to the
same BNN in PyTorch fp32 eager and a fp32 ResNet-18 (NCHW and channels_last).

Times are medians of many runs after warm-up (time.perf_counter); the machine
is shared and noisy, so read the ratios. bnnc times call the compiled entry
point directly (inputs and outputs preallocated, no Python-side checks).
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
# torch.export's own deprecation noise (torch 2.13), not the user's business
warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
sys.path.insert(0, str(HERE))

import networks

from bnnc.dialects import bitpack

# ANCHORS.md's ceiling of xor + popcount + add for the Intel AVX-512 VPOPCNTDQ
# machine class: ~326 bit-MAC/cycle per core at ~3.0 GHz under load. The
# `% roof` columns use this host's ceiling, measured by roofline.py at the
# start of a run (--anchor-roof: this constant instead).
ANCHOR_GHZ = 3.0  # (bench/arm_mca.py turns measured times into cycles at it)
ANCHOR_ROOF = 326 * ANCHOR_GHZ * 1e9  # bit-MAC/s per core
ROOF = ANCHOR_ROOF  # main() sets the one in use

LAYER_SHAPES = [(64, 56), (128, 28), (256, 14), (512, 7)]  # channels, spatial size (ANCHORS.md)
WORD = 64


# ------------------------------------------------------------------ timing


def median_ms(fn: Callable[[], Any], runs: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def direct_caller(model: Any, inputs: list[np.ndarray]) -> Callable[[], Any]:
    """A zero-argument call of a bnnc CompiledModel's entry point with
    preallocated outputs (falls back to the public call)."""
    fn, sig = getattr(model, "_fn", None), getattr(model, "signature", None)
    if fn is None or sig is None:
        return lambda: model(*inputs)
    outputs = [np.empty(s.shape, dtype=getattr(s, "dtype", "float32")) for s in sig.outputs]
    keep = [np.ascontiguousarray(a) for a in inputs]
    pointers = [a.ctypes.data for a in (*keep, *outputs)]

    def call() -> None:
        fn(*pointers)

    call._keep = (model, keep, outputs)  # type: ignore[attr-defined]  (the model owns the JIT code)
    return call


def torch_caller(module: nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    def call() -> Any:
        with torch.inference_mode():
            return module(x)

    return call


# ------------------------------------------------------------------ machine


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "?"
    info["cpu"] = cpu
    info["cores"] = os.cpu_count()
    try:
        import llvmlite.binding as llvm

        info["llvm_host_cpu"] = llvm.get_host_cpu_name()
        info["avx512vpopcntdq"] = bool(llvm.get_host_cpu_features().get("avx512vpopcntdq", False))
    except Exception as e:  # noqa: BLE001
        info["llvm_host_cpu"] = f"? ({e})"
        info["avx512vpopcntdq"] = None
    repo = HERE.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=repo, capture_output=True, text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True, check=False).stdout.strip()
        info["bnnc_commit"] = commit + (" (+ uncommitted changes in the work tree)" if dirty else "")
    except OSError:
        info["bnnc_commit"] = "?"
    info["torch"] = torch.__version__
    info["python"] = platform.python_version()
    return info


def peers() -> dict[str, str]:
    out = {}
    for name in ("larq_compute_engine", "tvm"):
        try:
            mod = __import__(name)
            out[name] = f"installed {getattr(mod, '__version__', '?')} (not benchmarked here)"
        except Exception:  # noqa: BLE001
            out[name] = "not installed"
    return out


# ------------------------------------------------------------------ layers: IR text


def _dense(values: np.ndarray) -> str:
    if values.dtype.kind == "f":
        return json.dumps([float(v) for v in values.reshape(-1)]) if values.ndim == 1 else json.dumps(values.astype(float).tolist())
    return json.dumps(values.tolist())


def _window_attrs(c: int, pad_value: int, packed: bool) -> str:
    attrs = "strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64"
    attrs += f", pad_value = {pad_value} : i64"
    if packed:
        attrs += f", in_channels = {c} : i64"
    return "{" + attrs + "}"


def packed_layer_ir(c: int, hw: int, wpacked: np.ndarray, threshold: np.ndarray, correction: np.ndarray) -> str:
    words = c // WORD
    xt = f"tensor<1x{words}x{hw}x{hw}xi64>"
    wt = f"tensor<{c}x3x3x{words}xi64>"
    return f"""func.func @forward(%x: {xt}) -> {xt} {{
  %w = arith.constant dense<{_dense(wpacked)}> : {wt}
  %t = arith.constant dense<{_dense(threshold)}> : tensor<{c}xi64>
  %c = arith.constant dense<{_dense(correction)}> : tensor<{c}x3x3xi64>
  %y = bnn.bconv2d %x, %w threshold %t : tensor<{c}xi64> correction %c : tensor<{c}x3x3xi64> {_window_attrs(c, 1, True)} : {xt}, {wt} -> {xt}
  func.return %y : {xt}
}}
"""


def float_layer_ir(c: int, hw: int, wpacked: np.ndarray, alpha: np.ndarray) -> str:
    words = c // WORD
    xt = f"tensor<1x{c}x{hw}x{hw}xf32>"
    wt = f"tensor<{c}x3x3x{words}xi64>"
    return f"""func.func @forward(%x: {xt}) -> {xt} {{
  %w = arith.constant dense<{_dense(wpacked)}> : {wt}
  %m = arith.constant dense<{_dense(alpha)}> : tensor<{c}xf32>
  %y = bnn.bconv2d %x, %w multiplier %m : tensor<{c}xf32> {_window_attrs(c, 0, False)} : {xt}, {wt} -> {xt}
  func.return %y : {xt}
}}
"""


OPENMP_SETTLE_S = 0.3  # after PyTorch's all-cores calls, before bnnc's (see bench_layer)
THREADED = False  # set in main(): whether bnnc can split work between threads (a num_threads option)
ALL_CORES = os.cpu_count() or 1


def compile_ir(text: str, threads: int = 1) -> Any:
    from xdsl.parser import Parser

    import bnnc.context
    import bnnc.driver
    from bnnc.driver import CompileOptions

    module = Parser(bnnc.context.make_context(), text).parse_module()
    options = CompileOptions(name="forward", num_threads=threads) if THREADED else CompileOptions(name="forward")
    return bnnc.driver.jit(bnnc.driver.build(module, options=options, for_jit=True))


class WrongResult(AssertionError):
    pass


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}"[:300]


def bench_layer(c: int, hw: int, runs: int, seed: int = 0) -> dict[str, Any]:
    """One layer shape: compile the packed and the float form (1 thread, and all
    cores when bnnc can), check each bit-exactly against PyTorch, then time them
    next to PyTorch. A form that does not compile is reported in `errors`; a
    wrong result raises WrongResult."""
    if c % WORD:
        raise ValueError(f"layer channels must be a multiple of {WORD}, got {c}")
    rng = np.random.default_rng(seed + c * 1000 + hw)
    macs = hw * hw * c * c * 9
    row: dict[str, Any] = {"layer": f"{c}ch@{hw}x{hw}", "channels": c, "size": hw, "bit_macs": macs, "errors": {}}

    w_neg = rng.random((c, c, 3, 3)) < 0.5  # Cout x Cin x KH x KW, True = -1
    w_pm = np.where(w_neg, -1.0, 1.0).astype(np.float32)
    wpacked = bitpack.pack_conv_weight(w_neg)  # Cout x KH x KW x words
    x_neg = rng.random((1, c, hw, hw)) < 0.5
    x_pm = np.where(x_neg, -1.0, 1.0).astype(np.float32)
    ref_dot = F.conv2d(torch.from_numpy(x_pm), torch.from_numpy(w_pm), padding=1).numpy()  # exact integers

    # (a) packed in -> threshold -> packed out; pad_value = 1 plus the correction table = exact zero padding
    correction = bitpack.padding_correction(wpacked, c)  # Cout x KH x KW
    k = 9 * c
    threshold = rng.integers(-k // 16, k // 16 + 1, size=c).astype(np.int64)
    x_packed = bitpack.pack_activations(x_pm)
    want_bits = ref_dot < threshold[None, :, None, None]
    packed_ir = packed_layer_ir(c, hw, wpacked, threshold, correction)

    # (b) float NCHW in -> bconv2d with a multiplier -> float NCHW out, zero padding
    alpha = (rng.integers(32, 97, size=c) / 64.0).astype(np.float32)  # exact in f32
    want = (torch.from_numpy(ref_dot) * torch.from_numpy(alpha)[None, :, None, None]).numpy()
    float_ir = float_layer_ir(c, hw, wpacked, alpha)

    def check_packed(model: Any, what: str) -> None:
        got = bitpack.unpack_activations(model(x_packed), c)
        if not np.array_equal(got, want_bits):
            raise WrongResult(f"{row['layer']} {what}: {int((got != want_bits).sum())} of {got.size} output bits differ from PyTorch")

    def check_float(model: Any, what: str) -> None:
        got = model(x_pm)
        if not np.array_equal(got, want):
            diff = np.abs(got - want)
            raise WrongResult(
                f"{row['layer']} {what}: {int((diff > 0).sum())} of {got.size} outputs differ from PyTorch "
                f"(max abs diff {diff.max():g}, output scale {np.abs(want).max():g})"
            )

    variants = [("packed", packed_ir, check_packed, x_packed, 1), ("float", float_ir, check_float, x_pm, 1)]
    if THREADED and ALL_CORES > 1:
        variants += [("packed_mt", packed_ir, check_packed, x_packed, ALL_CORES), ("float_mt", float_ir, check_float, x_pm, ALL_CORES)]
    calls: dict[str, Callable[[], Any]] = {}
    for kind, text, check, inp, threads in variants:
        try:
            t0 = time.perf_counter()
            model = compile_ir(text, threads)
            row[f"compile_s_{kind}"] = time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001  (reported in the table; the bench continues)
            row["errors"][kind] = _short(e)
            if os.environ.get("BNNC_BENCH_TRACEBACK"):
                traceback.print_exc()
            continue
        check(model, f"{kind.replace('_mt', '')} bconv2d ({threads} thread{'s' if threads > 1 else ''})")
        calls[f"bnnc_{kind}_ms"] = direct_caller(model, [inp])
    row["verified"] = [k for k in ("packed", "float", "packed_mt", "float_mt") if f"bnnc_{k}_ms" in calls]

    # PyTorch fp32 conv, same shape
    conv = nn.Conv2d(c, c, 3, padding=1, bias=False).eval()
    xt = torch.randn(1, c, hw, hw)
    conv_cl = nn.Conv2d(c, c, 3, padding=1, bias=False).eval().to(memory_format=torch.channels_last)
    with torch.no_grad():
        conv_cl.weight.copy_(conv.weight)
    xt_cl = xt.contiguous(memory_format=torch.channels_last)
    calls["torch_nchw_ms"] = torch_caller(conv, xt)
    calls["torch_cl_ms"] = torch_caller(conv_cl, xt_cl)
    threaded_torch = {"torch_cl_mt_ms": torch_caller(conv_cl, xt_cl)} if THREADED and ALL_CORES > 1 else {}

    # Interleave in rounds so load changes on the shared machine hit all alike; all single-thread
    # rounds first, then the all-cores ones (idle spinning worker threads would steal the core otherwise).
    # PyTorch's OpenMP workers spin for a while after a parallel call: bnnc's 2-thread 64ch@56 layer
    # ran 0.16 ms right after 20 torch calls on 2 threads and 0.09-0.12 ms 0.2 s later, so every
    # all-cores PyTorch timing is followed by a pause before bnnc is timed again.
    samples: dict[str, list[float]] = {name: [] for name in (*calls, *threaded_torch)}
    rounds = 3
    single = {k: v for k, v in calls.items() if not k.endswith("_mt_ms")}
    multi = {k: v for k, v in calls.items() if k.endswith("_mt_ms")}
    for _ in range(rounds):
        for name, fn in single.items():
            samples[name].append(median_ms(fn, max(1, runs // rounds), warmup=2))
    for _ in range(rounds):
        for name, fn in multi.items():
            samples[name].append(median_ms(fn, max(1, runs // rounds), warmup=2))
        if threaded_torch:
            with torch_threads(ALL_CORES):
                for name, fn in threaded_torch.items():
                    samples[name].append(median_ms(fn, max(1, runs // rounds), warmup=2))
            time.sleep(OPENMP_SETTLE_S)
    for name, values in samples.items():
        row[name] = statistics.median(values)
    for kind in ("packed", "float", "packed_mt", "float_mt"):
        if f"bnnc_{kind}_ms" in row:
            row[f"bitmacs_{kind}"] = macs / (row[f"bnnc_{kind}_ms"] * 1e-3)
            row[f"roof_pct_{kind}"] = 100.0 * row[f"bitmacs_{kind}"] / ROOF
    return row


def _cell(r: dict[str, Any], key: str, fmt: str, width: int, scale: float = 1.0, suffix: str = "") -> str:
    if key not in r:
        return f"{'-':>{width}}"
    return f"{format(r[key] * scale, fmt)}{suffix}".rjust(width)


def _ratio(r: dict[str, Any], num: str, den: str, width: int) -> str:
    if num not in r or den not in r:
        return f"{'-':>{width}}"
    return f"{r[num] / r[den]:.1f}x".rjust(width)


def print_layers(rows: list[dict[str, Any]]) -> None:
    print(f"\nLayers: 3x3 binary conv, stride 1, pad 1, batch 1, single thread (median ms; roofline {ROOF:.3g} bit-MAC/s per core, "
          f"{'ANCHORS.md Intel class' if ROOF == ANCHOR_ROOF else 'measured on this host by bench/roofline.py'})")
    print("  packed = packed words in -> bconv2d -> thresholds -> packed words out; float = f32 NCHW in -> f32 NCHW out")
    print("  ratios are PyTorch fp32 ms / bnnc ms (higher = bnnc faster); CL = channels_last\n")
    head = (f"{'layer':<14}{'packed ms':>10}{'Gbit-MAC/s':>11}{'% roof':>8}{'float ms':>10}{'Gbit-MAC/s':>11}{'% roof':>8}"
            f"{'torch NCHW':>11}{'torch CL':>10}{'NCHW/pk':>9}{'CL/pk':>8}{'CL/float':>9}")
    print(head)
    print("-" * len(head))
    for r in rows:
        if "error" in r:
            print(f"{r['layer']:<14}ERROR: {r['error']}")
            continue
        print(
            f"{r['layer']:<14}{_cell(r, 'bnnc_packed_ms', '.3f', 10)}{_cell(r, 'bitmacs_packed', '.0f', 11, 1e-9)}"
            f"{_cell(r, 'roof_pct_packed', '.1f', 8, suffix='%')}"
            f"{_cell(r, 'bnnc_float_ms', '.3f', 10)}{_cell(r, 'bitmacs_float', '.0f', 11, 1e-9)}"
            f"{_cell(r, 'roof_pct_float', '.1f', 8, suffix='%')}"
            f"{_cell(r, 'torch_nchw_ms', '.3f', 11)}{_cell(r, 'torch_cl_ms', '.3f', 10)}"
            f"{_ratio(r, 'torch_nchw_ms', 'bnnc_packed_ms', 9)}{_ratio(r, 'torch_cl_ms', 'bnnc_packed_ms', 8)}"
            f"{_ratio(r, 'torch_cl_ms', 'bnnc_float_ms', 9)}"
        )
    mt = [r for r in rows if "torch_cl_mt_ms" in r]
    if mt:
        print(f"\n  all cores: bnnc num_threads={ALL_CORES}, torch.set_num_threads({ALL_CORES}); "
              f"x1 = the same layer's 1-thread ms / {ALL_CORES}-thread ms; % roof of {ALL_CORES} cores\n")
        head2 = (f"{'layer':<14}{'packed ms':>10}{'% roof':>8}{'vs 1 thr':>9}{'float ms':>10}{'vs 1 thr':>9}"
                 f"{'torch CL':>10}{'CL/pk':>8}{'CL/float':>9}")
        print(head2)
        print("-" * len(head2))
        for r in mt:
            print(
                f"{r['layer']:<14}{_cell(r, 'bnnc_packed_mt_ms', '.3f', 10)}{_cell(r, 'roof_pct_packed_mt', '.1f', 8, 1 / ALL_CORES, '%')}"
                f"{_ratio(r, 'bnnc_packed_ms', 'bnnc_packed_mt_ms', 9)}{_cell(r, 'bnnc_float_mt_ms', '.3f', 10)}"
                f"{_ratio(r, 'bnnc_float_ms', 'bnnc_float_mt_ms', 9)}{_cell(r, 'torch_cl_mt_ms', '.3f', 10)}"
                f"{_ratio(r, 'torch_cl_mt_ms', 'bnnc_packed_mt_ms', 8)}{_ratio(r, 'torch_cl_mt_ms', 'bnnc_float_mt_ms', 9)}"
            )
    failures = [(r["layer"], kind, err) for r in rows for kind, err in r.get("errors", {}).items()]
    for layer, kind, err in failures:
        print(f"  {layer} {kind}: bnnc failed: {err}")
    ok = [r for r in rows if r.get("verified")]
    if ok:
        print("\n  every compiled form was checked bit-exactly against PyTorch (sign input, +-1 weights) before timing")
        for kind in ("packed", "float"):
            times = [r[f"compile_s_{kind}"] for r in ok if f"compile_s_{kind}" in r]
            if times:
                print(f"  bnnc compile time per layer, {kind}: {min(times):.1f}-{max(times):.1f} s")


# ------------------------------------------------------------------ networks


def bench_networks(names: list[str], runs: int, shape=(1, 3, 224, 224)) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    import bnnc

    torch.manual_seed(123)
    x = torch.randn(*shape)
    xn = x.numpy()
    base: dict[str, Any] = {}
    ref = networks.resnet18()
    ref_cl = networks.resnet18().to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    base["resnet18_nchw_ms"] = median_ms(torch_caller(ref, x), runs)
    base["resnet18_cl_ms"] = median_ms(torch_caller(ref_cl, x_cl), runs)
    if THREADED and ALL_CORES > 1:
        with torch_threads(ALL_CORES):
            base["resnet18_cl_mt_ms"] = median_ms(torch_caller(ref_cl, x_cl), runs)
    print(f"\n  PyTorch fp32 ResNet-18: NCHW {base['resnet18_nchw_ms']:.2f} ms, channels_last {base['resnet18_cl_ms']:.2f} ms"
          + (f"; channels_last on {ALL_CORES} threads {base['resnet18_cl_mt_ms']:.2f} ms" if "resnet18_cl_mt_ms" in base else ""),
          flush=True)

    rows = []
    for name in names:
        row: dict[str, Any] = {"network": name}
        rows.append(row)
        try:
            model = networks.NETWORKS[name]()
            with torch.inference_mode():
                want = model(x).numpy()
            row["torch_ms"] = median_ms(torch_caller(model, x), runs)
            t0 = time.perf_counter()
            # = bnnc.compile(model, (x,), num_threads=1), with the imported IR kept for the all-cores build
            imported = bnnc.driver.import_model(model, (x,))
            fast = bnnc.driver.jit(bnnc.driver.build(imported.clone(), options=_net_options(1), for_jit=True))
            row["compile_s"] = time.perf_counter() - t0
            got = fast(xn)
            scale = float(np.abs(want).max())
            row["max_abs_diff"] = float(np.abs(got - want).max())
            row["rel_diff"] = row["max_abs_diff"] / scale if scale else row["max_abs_diff"]
            row["bnnc_ms"] = median_ms(direct_caller(fast, [xn]), runs)
            # re-time PyTorch right after bnnc so both see similar machine load
            row["torch_ms"] = min(row["torch_ms"], median_ms(torch_caller(model, x), runs))
            if THREADED and ALL_CORES > 1:
                fast_mt = bnnc.driver.jit(bnnc.driver.build(imported, options=_net_options(ALL_CORES), for_jit=True))
                got_mt = fast_mt(xn)
                if not np.array_equal(got_mt, got):
                    row["mt_mismatch"] = float(np.abs(got_mt - got).max())
                row["bnnc_mt_ms"] = median_ms(direct_caller(fast_mt, [xn]), runs)
                # 1 and N threads timed back to back, so both see similar machine load
                row["bnnc_ms"] = min(row["bnnc_ms"], median_ms(direct_caller(fast, [xn]), runs))
                row["mt_speedup"] = row["bnnc_ms"] / row["bnnc_mt_ms"]
                with torch_threads(ALL_CORES):
                    row["torch_mt_ms"] = median_ms(torch_caller(model, x), runs)
        except Exception as e:  # noqa: BLE001  (a row fails, the bench continues)
            row["error"] = _short(e)
            if os.environ.get("BNNC_BENCH_TRACEBACK"):
                traceback.print_exc()
        print_network_row(row, base, first=len(rows) == 1)
    return rows, base


def _net_options(threads: int) -> Any:
    from bnnc.driver import CompileOptions

    return CompileOptions(num_threads=threads) if THREADED else CompileOptions()


class torch_threads:
    def __init__(self, n: int):
        self.n = n

    def __enter__(self) -> None:
        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.old)


NET_HEAD = (f"{'network':<18}{'compile s':>10}{'bnnc ms':>9}{'torch ms':>10}{'torch/bnnc':>11}"
            f"{'R18 CL/bnnc':>12}{'R18 NCHW/bnnc':>14}{'rel diff':>10}")


def print_network_row(r: dict[str, Any], base: dict[str, Any], first: bool) -> None:
    if first:
        print()
        print(NET_HEAD)
        print("-" * len(NET_HEAD))
    if "error" in r:
        extra = ""
        if "torch_ms" in r:
            extra = f" (torch eager {r['torch_ms']:.2f} ms)"
        print(f"{r['network']:<18}ERROR: {r['error']}{extra}", flush=True)
        return
    flag = "" if r["rel_diff"] < 1e-3 else "  <- check"
    print(
        f"{r['network']:<18}{r['compile_s']:>10.1f}{r['bnnc_ms']:>9.2f}{r['torch_ms']:>10.2f}"
        f"{r['torch_ms'] / r['bnnc_ms']:>10.1f}x{base['resnet18_cl_ms'] / r['bnnc_ms']:>11.2f}x"
        f"{base['resnet18_nchw_ms'] / r['bnnc_ms']:>13.2f}x{r['rel_diff']:>10.1e}{flag}",
        flush=True,
    )
    if "bnnc_mt_ms" in r:
        print(
            f"{'  ' + str(ALL_CORES) + ' threads':<18}{'':>10}{r['bnnc_mt_ms']:>9.2f}{r['torch_mt_ms']:>10.2f}"
            f"{r['torch_mt_ms'] / r['bnnc_mt_ms']:>10.1f}x{base['resnet18_cl_mt_ms'] / r['bnnc_mt_ms']:>11.2f}x"
            f"{'':>14}{'':>10}  x{r['mt_speedup']:.2f} vs 1 thread"
            + (f"  <- {ALL_CORES}-thread output differs by {r['mt_mismatch']:.2g}" if "mt_mismatch" in r else ""),
            flush=True,
        )


# ------------------------------------------------------------------ main


def parse_shapes(text: str) -> list[tuple[int, int]]:
    shapes = []
    for item in text.split(","):
        c, hw = item.lower().split("x")
        shapes.append((int(c), int(hw)))
    return shapes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="bnnc vs PyTorch: binary conv layers and whole BNNs, side by side")
    ap.add_argument("--quick", action="store_true", help="fewer runs; skip the whole networks unless --networks-only")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--layers-only", action="store_true")
    group.add_argument("--networks-only", action="store_true")
    ap.add_argument("--networks", help=f"comma-separated subset of {','.join(networks.NETWORKS)}")
    ap.add_argument("--runs", type=int, help="timed runs per measurement (default 30 for layers, 10 for networks)")
    ap.add_argument("--single-thread", action="store_true", help="skip the all-cores builds and columns (halves bnnc compile time)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--anchor-roof", action="store_true",
                    help="%% roof against ANCHORS.md's Intel AVX-512 ceiling, not this host's measured one")
    ap.add_argument("--shapes", help=argparse.SUPPRESS)  # e.g. 64x8,128x4 (CxHW) for smoke tests
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    import bnnc
    import bnnc.driver

    global THREADED
    compile_params = inspect.signature(bnnc.compile).parameters
    threaded = THREADED = "num_threads" in compile_params
    global ALL_CORES
    if args.single_thread:
        ALL_CORES = 1  # no all-cores variants

    info = machine_info()
    peer = peers()
    print("bnnc benchmark")
    print(f"  date      {info['date']}")
    print(f"  machine   {info['cpu']}, {info['cores']} cores; llvmlite host CPU {info['llvm_host_cpu']}, "
          f"avx512vpopcntdq {'yes' if info['avx512vpopcntdq'] else 'no'}")
    print(f"  software  bnnc {info['bnnc_commit']}; torch {info['torch']}; python {info['python']}")
    print("  threads   single-thread columns: torch.set_num_threads(1); "
          + (f"bnnc built with num_threads=1; all-cores rows use num_threads={ALL_CORES} and torch.set_num_threads({ALL_CORES})"
             if threaded and ALL_CORES > 1 else "bnnc built with num_threads=1; no all-cores rows (--single-thread or 1 core)" if threaded else "bnnc.compile has no num_threads option, so no all-cores column"))
    for name, state in peer.items():
        print(f"  peer      {name}: {state}")
    print(f"  runs      median of {args.runs or (5 if args.quick else 30)} (layers) / {args.runs or (3 if args.quick else 10)} (networks) after warm-up", flush=True)

    global ROOF
    if not args.anchor_roof:
        import roofline

        roof = roofline.measure(0.3 if args.quick else 1.0)
        ROOF = roof.bitmac_per_s
        print(f"  roofline  {ROOF / 1e9:.0f} Gbit-MAC/s per core: an ideal xor + popcount + add loop on this host "
              f"(bench/roofline.py, tile {roof.tile[0]}x{roof.tile[1]}); ANCHORS.md's Intel class: {ANCHOR_ROOF / 1e9:.0f}", flush=True)
    result: dict[str, Any] = {"machine": info, "peers": peer, "roofline_bitmac_per_s": ROOF, "anchor_roofline_bitmac_per_s": ANCHOR_ROOF}
    status = 0

    if not args.networks_only:
        shapes = parse_shapes(args.shapes) if args.shapes else LAYER_SHAPES
        runs = args.runs or (5 if args.quick else 30)
        rows = []
        for c, hw in shapes:
            print(f"  layer {c}ch@{hw}x{hw} ...", flush=True)
            try:
                rows.append(bench_layer(c, hw, runs))
                if rows[-1]["errors"]:
                    status = 1
            except WrongResult:
                raise
            except Exception as e:  # noqa: BLE001
                rows.append({"layer": f"{c}ch@{hw}x{hw}", "error": _short(e)})
                status = 1
                if os.environ.get("BNNC_BENCH_TRACEBACK"):
                    traceback.print_exc()
        print_layers(rows)
        result["layers"] = rows

    if not args.layers_only and (not args.quick or args.networks_only or args.networks):
        names = args.networks.split(",") if args.networks else list(networks.NETWORKS)
        unknown = [n for n in names if n not in networks.NETWORKS]
        if unknown:
            ap.error(f"unknown network(s) {', '.join(unknown)}; choose from {', '.join(networks.NETWORKS)}")
        runs = args.runs or (3 if args.quick else 10)
        print(f"\nNetworks at 1x3x224x224, batch 1, single thread (median ms of {runs}); bnnc ms vs the same BNN in PyTorch fp32 "
              "eager, and vs a fp32 ResNet-18 (ratios: higher = bnnc faster); rel diff = max|bnnc - torch| / max|torch|")
        net_rows, base = bench_networks(names, runs)
        result["networks"] = net_rows
        result["baseline"] = base
        if any("error" in r for r in net_rows):
            status = 1
    elif not args.layers_only:
        print("\nNetworks: skipped in --quick mode (use --networks-only or --networks NAMES)")

    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
