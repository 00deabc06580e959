"""`bnnc profile`: where a compiled model's time goes, layer by layer.

The model is compiled with per-layer timing (CompileOptions.profile_layers:
the entry function reads clock_gettime(CLOCK_MONOTONIC) around each layer
call and adds the nanoseconds to a counter global, bnnc.codegen.add_layer_timers),
run many times, and each layer's median time is set against its MACs from
bnnc.summary (same order: one layer function per bnn op) and against the
roofline of the cores it runs on. The whole model's median and spread are
measured on the same build (the timers add two clock reads per layer, tens
of nanoseconds each), next to PyTorch eager on the same input when the model
came from PyTorch.

The roofline is per core, times the model's threads for a layer that runs
on the thread pool (one core otherwise): bit-MACs per cycle of xor +
popcount + add for the vector instructions the target has (instruction-mix
bounds and measured ceilings, docs/summary-and-profile.md), fp32 FMA MACs per
cycle for float layers, times the clock frequency: /sys's cpuinfo_max_freq,
else the fastest "cpu MHz" in /proc/cpuinfo, unless given (--ghz); the
report says which. Layers without MACs (packing, adds, pooling) are
memory-bound and get no roofline share.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bnnc.errors import BnncError, InternalError
from bnnc.summary import ModelSummary, _clip, human_count, render
from bnnc.target import Target


@dataclass
class Roofline:
    """Peak throughput per core for one instruction set, and the clock."""

    isa: str
    bitmac_per_cycle: float
    mac_per_cycle: float  # fp32 MACs (FMA lanes x FMA ports)
    ghz: float
    ghz_source: str
    cores: int = 1

    @property
    def bitmac_per_s(self) -> float:
        return self.bitmac_per_cycle * self.ghz * 1e9 * self.cores

    @property
    def mac_per_s(self) -> float:
        return self.mac_per_cycle * self.ghz * 1e9 * self.cores


def _isa_peaks(target: Target) -> tuple[str, float, float]:
    """(name, bit-MAC/cycle, fp32 MAC/cycle) per core: the instruction-mix
    bounds of xor + popcount + add (two vector ports, three ops per vector of
    bit-MACs) and of FMA (two ports)."""
    if target.is_x86:
        if target.has_vpopcntdq and target.vector_bits >= 512:
            return "AVX-512 VPOPCNTDQ (zmm)", 341.0, 32.0
        if target.has_vpopcntdq:
            return "AVX-512 VPOPCNTDQ (ymm)", 170.7, 32.0 if target.has_avx512f else 16.0
        if target.has_avx2:
            return "AVX2 (nibble-table popcount)", 94.0, 16.0
        return "x86-64 scalar popcnt", 64.0, 8.0
    if target.is_aarch64:
        return "AArch64 NEON (cnt + uadalp)", 85.3, 8.0
    return f"{target.arch} scalar", 64.0 / 3, 2.0


def host_ghz() -> tuple[float, str]:
    """The host's clock in GHz and where it came from."""
    try:
        khz = int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text().strip())
        return khz / 1e6, "cpuinfo_max_freq"
    except (OSError, ValueError):
        pass
    try:
        mhz = [float(line.split(":", 1)[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.lower().startswith("cpu mhz")]
        if mhz:
            return max(mhz) / 1e3, "/proc/cpuinfo 'cpu MHz'"
    except (OSError, ValueError):
        pass
    return 3.0, "assumed (no /proc/cpuinfo figure; pass --ghz)"


def roofline(target: Target, cores: int, ghz: float | None = None) -> Roofline:
    isa, bits, macs = _isa_peaks(target)
    source = "--ghz"
    if ghz is None:
        ghz, source = host_ghz()
    return Roofline(isa, bits, macs, ghz, source, cores)


@dataclass
class LayerProfile:
    index: int
    function: str
    op: str
    location: str
    kind: str
    threads: int  # 1, or the model's threads for a layer run on the thread pool
    ms: float  # median over the runs
    percent: float  # of the sum of the layers
    bit_macs: int
    float_macs: int
    gbitmac_per_s: float | None
    gflop_per_s: float | None  # 2 FLOPs per float MAC
    roofline_percent: float | None


@dataclass
class Timing:
    median_ms: float
    min_ms: float
    p10_ms: float
    p90_ms: float
    max_ms: float
    runs: int

    @staticmethod
    def of(seconds: list[float]) -> Timing:
        ms = sorted(s * 1e3 for s in seconds)
        q = statistics.quantiles(ms, n=10, method="inclusive") if len(ms) > 1 else [ms[0]] * 9
        return Timing(statistics.median(ms), ms[0], q[0], q[-1], ms[-1], len(ms))


@dataclass
class ModelProfile:
    model: str
    threads: int
    roofline: Roofline
    layers: list[LayerProfile] = field(default_factory=list)
    bnnc: Timing | None = None
    pytorch: Timing | None = None
    pytorch_threads: int | None = None

    @property
    def layers_ms(self) -> float:
        return sum(layer.ms for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        roof = asdict(self.roofline)
        roof.update(bitmac_per_s=self.roofline.bitmac_per_s, mac_per_s=self.roofline.mac_per_s)
        return {
            "model": self.model,
            "threads": self.threads,
            "roofline": roof,
            "layers": [asdict(layer) for layer in self.layers],
            "layers_ms": self.layers_ms,
            "bnnc": asdict(self.bnnc) if self.bnnc else None,
            "pytorch": asdict(self.pytorch) if self.pytorch else None,
            "pytorch_threads": self.pytorch_threads,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def __str__(self) -> str:
        return format_profile(self)


def layer_profiles(
    summary: ModelSummary, ns_per_run: np.ndarray, roof: Roofline, parallel: np.ndarray | None = None
) -> list[LayerProfile]:
    """Join the per-layer times with the summary's MACs and the roofline of
    the cores each layer runs on (`parallel[i]`: layer i is on the thread
    pool, all of roof.cores; else one core)."""
    if len(ns_per_run) != len(summary.layers):
        raise InternalError(
            f"{len(ns_per_run)} timed layer calls but {len(summary.layers)} layers in the graph"
        )
    total = float(np.sum(ns_per_run)) or 1.0
    out = []
    for i, (layer, ns) in enumerate(zip(summary.layers, ns_per_run)):
        seconds = float(ns) / 1e9
        cores = roof.cores if parallel is not None and parallel[i] else 1
        bit_rate = layer.bit_macs / seconds / 1e9 if layer.bit_macs and seconds > 0 else None
        flop_rate = 2 * layer.float_macs / seconds / 1e9 if layer.float_macs and seconds > 0 else None
        share = None
        if seconds > 0 and (layer.bit_macs or layer.float_macs):
            ideal = (layer.bit_macs / roof.bitmac_per_s + layer.float_macs / roof.mac_per_s) * roof.cores / cores
            share = 100.0 * ideal / seconds
        out.append(
            LayerProfile(
                index=layer.index,
                function=layer.function,
                op=layer.op,
                location=layer.location,
                kind=layer.kind,
                threads=cores,
                ms=seconds * 1e3,
                percent=100.0 * float(ns) / total,
                bit_macs=layer.bit_macs,
                float_macs=layer.float_macs,
                gbitmac_per_s=bit_rate,
                gflop_per_s=flop_rate,
                roofline_percent=share,
            )
        )
    return out


def _time(fn: Any, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def profile_model(
    model: Any,
    inputs: list[np.ndarray] | None = None,
    options: Any = None,
    *,
    example_inputs: Any = None,
    runs: int = 100,
    warmup: int = 5,
    trust: bool = False,
    ghz: float | None = None,
    compare_pytorch: bool = True,
) -> ModelProfile:
    """Compile `model` with per-layer timing, run it `runs` times on `inputs`
    (seeded normal values of the signature's shapes if None) and report."""
    import dataclasses

    from bnnc.codegen import JitModule, optimize
    from bnnc.context import make_context
    from bnnc.driver import CompileOptions, llvm_ir
    from bnnc.pipeline import run_passes
    from bnnc.runtime.compiled_model import CompiledModel
    from bnnc.runtime.signature import signature_of
    from bnnc.summary import import_graph

    if runs < 1:
        raise BnncError(f"--runs must be at least 1, got {runs}")
    options = dataclasses.replace(options or CompileOptions(), profile_layers=True)
    target = options.resolved_target()
    if not target.is_host:
        raise BnncError("bnnc profile runs the model here: the target must be the host")
    module, summary = import_graph(model, example_inputs, options, trust=trust)
    options.name = summary.name
    signature = signature_of(module, options.name)
    pipeline = options.resolved_pipeline()
    for stage in ("loops", "llvm"):
        run_passes(module, pipeline.stages.get(stage, ""), make_context(), options.instrument, options.plugins, options.verify_each)
    built = optimize(llvm_ir(module, signature, target.triple, profile_layers=True), target, opt_level=options.opt_level)
    engine = JitModule(built, target)
    compiled = CompiledModel(engine.address_of(signature.name), signature, engine)
    if inputs is None:
        rng = np.random.default_rng(0)
        inputs = [rng.standard_normal(s.shape).astype(s.dtype) for s in signature.inputs]
    arrays = [np.require(a, requirements="C") for a in inputs]
    compiled(*arrays)  # checks the inputs once
    for _ in range(warmup):
        compiled.run_numpy(arrays)
    seconds, per_run = [], []
    for _ in range(runs):  # the counters are read and reset between runs, outside the timed call
        compiled.reset_layer_times()
        start = time.perf_counter()
        compiled.run_numpy(arrays)
        seconds.append(time.perf_counter() - start)
        per_run.append(compiled.layer_times_ns())
    threads = options.resolved_threads()
    roof = roofline(target, threads, ghz)
    # The median run of each layer: robust to the runs a loaded machine stalls.
    layer_ns = np.median(np.stack(per_run), axis=0)
    parallel = _parallel_flags(engine, len(layer_ns))
    rows = layer_profiles(summary, layer_ns, roof, parallel)
    report = ModelProfile(summary.name, threads, roof, rows, Timing.of(seconds))
    eager = _pytorch_callable(model, trust=trust, example_inputs=example_inputs) if compare_pytorch else None
    if eager is not None:
        import torch

        tensors = [torch.from_numpy(a) for a in arrays]
        saved = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.no_grad():
                for _ in range(warmup):
                    eager(*tensors)
                report.pytorch = Timing.of(_time(lambda: eager(*tensors), runs))
                report.pytorch_threads = threads
        finally:
            torch.set_num_threads(saved)
    return report


def _parallel_flags(engine: Any, count: int) -> np.ndarray:
    """Which layers run on the thread pool (bnnc.codegen.PROFILE_PARALLEL)."""
    import ctypes

    from bnnc.codegen import PROFILE_PARALLEL

    flags = (ctypes.c_int8 * count).from_address(engine.address_of(PROFILE_PARALLEL))
    return np.array(flags, dtype=bool)


def _pytorch_callable(model: Any, *, trust: bool, example_inputs: Any) -> Any:
    """The PyTorch model to time next to bnnc, when the model is PyTorch's."""
    import os

    try:
        import torch
    except ImportError:
        return None
    if isinstance(model, torch.nn.Module):
        return model
    if isinstance(model, torch.export.ExportedProgram):
        return model.module()
    if isinstance(model, str) or hasattr(model, "__fspath__"):
        path = os.fspath(model).lower()
        if path.endswith(".pt2"):
            return torch.export.load(os.fspath(model)).module()
        if path.endswith((".pt", ".pth")):
            from bnnc.frontend.loaders import load_model_file

            return load_model_file(os.fspath(model), trust=trust, example_inputs=example_inputs).module()
    return None


# ----------------------------------------------------------------- printing


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_profile(p: ModelProfile) -> str:
    headers = ["#", "op", "location", "kind", "thr", "ms", "%", "MACs", "Gbit-MAC/s", "GFLOP/s", "% roof"]
    rows = [
        [
            str(layer.index),
            layer.op.removeprefix("bnn."),
            _clip(layer.location or "-", 60),
            layer.kind,
            str(layer.threads),
            f"{layer.ms:.5f}",
            f"{layer.percent:.1f}",
            human_count(layer.bit_macs + layer.float_macs) if layer.bit_macs or layer.float_macs else "-",
            _fmt(layer.gbitmac_per_s, ".1f"),
            _fmt(layer.gflop_per_s, ".2f"),
            _fmt(layer.roofline_percent, ".1f"),
        ]
        for layer in p.layers
    ]
    r = p.roofline
    lines = [
        f"bnnc profile: @{p.model}, {p.threads} thread(s), median of {p.bnnc.runs if p.bnnc else 0} runs per layer",
        *render(headers, rows, {0, 4, 5, 6, 7, 8, 9, 10}),
        "",
        (
            f"roofline: {r.isa}, {r.bitmac_per_cycle:g} bit-MAC/cycle and {r.mac_per_cycle:g} fp32 MAC/cycle per core "
            f"x {r.cores} core(s) x {r.ghz:.2f} GHz ({r.ghz_source})"
        ),
        (
            f"layers: {p.layers_ms:.4f} ms per run (sum of the layer medians; the whole model adds the call from "
            "Python, output allocation and buffer management)"
        ),
    ]
    if p.bnnc is not None:
        t = p.bnnc
        lines.append(
            f"whole model (bnnc):   median {t.median_ms:.4f} ms  (min {t.min_ms:.4f}, p10 {t.p10_ms:.4f}, "
            f"p90 {t.p90_ms:.4f}, max {t.max_ms:.4f}; {t.runs} runs)"
        )
    if p.pytorch is not None:
        t = p.pytorch
        lines.append(
            f"whole model (PyTorch eager, {p.pytorch_threads} thread(s)): median {t.median_ms:.4f} ms  (min {t.min_ms:.4f}, "
            f"p10 {t.p10_ms:.4f}, p90 {t.p90_ms:.4f}, max {t.max_ms:.4f})"
        )
        if p.bnnc is not None and p.bnnc.median_ms > 0:
            lines.append(f"speed-up over PyTorch eager: {t.median_ms / p.bnnc.median_ms:.1f}x")
    return "\n".join(lines) + "\n"


def plot_profile(p: ModelProfile, path: str) -> None:
    """A horizontal bar chart of the layers' ms (matplotlib, the `plot` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BnncError("--plot needs matplotlib: pip install 'bnnc[plot]'") from None
    colours = {"binary": "tab:blue", "binary-weight": "tab:cyan", "float": "tab:orange"}
    labels = [f"{layer.index} {layer.op.removeprefix('bnn.')} {layer.location.split(' (')[0]}" for layer in p.layers]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(p.layers) + 1.2))
    ax.barh(range(len(p.layers)), [layer.ms for layer in p.layers], color=[colours.get(layer.kind, "grey") for layer in p.layers])
    ax.set_yticks(range(len(p.layers)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ms per run")
    ax.set_title(f"bnnc profile: @{p.model} ({p.threads} thread(s); blue binary, orange float)", fontsize=9)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except (OSError, ValueError) as e:
        raise BnncError(f"cannot write the plot {path}: {e}") from None
    finally:
        plt.close(fig)
