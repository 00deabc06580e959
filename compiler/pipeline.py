"""Named pass pipelines and the pass manager that runs them.

A pipeline is a list of stages; each stage is a comma-separated xDSL pass
spec and ends at an IR level the user can stop at and print with `--emit`:
  bnn   graph-level bnn dialect (after the graph passes)
  loops scf/memref/arith/math (after bufferization and lowering)
  llvm  the llvm dialect (ready for llvmlite)
The IR is verified after every pass; a pass that breaks it is reported by name.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass, PassPipeline
from xdsl.printer import Printer
from xdsl.utils.exceptions import DiagnosticException, PassFailedException, VerifyException

from bnnc.errors import PassError
from bnnc.passes.registry import all_passes
from bnnc.stages import STAGES
from bnnc.target import Target

# Graph-level passes run on the imported bnn dialect (the middle end):
# binarisers recognised from the values tensors can take, binary ops from weight binarisation, fused epilogues, exact zero padding, pooling
# and thresholds on packed bits, the channel-packed layout chosen once.
GRAPH_PASSES = [
    "recognize-binarization",
    "recognize-prelu",
    "fold-weight-binarization",
    "fuse-output-transform",
    "fuse-residual-add",
    "fuse-conv-bn",
    "fuse-conv-relu",
    "zero-padding-correction",
    "binary-maxpool",
    "fuse-bn-sign",
    "pack-bits",
    "fuse-bn-pack",
    "channels-last",
    "fuse-conv-maxpool",
    "canonicalize",
    "cse",
    "dce",
]
# Bufferize and lower bnn to loops over memrefs (LLVM cleans the loops up).
LOOP_PASSES = ["convert-bnn-to-loops", "remove-dead-arguments", "dedupe-layer-functions"]
# Loops to the llvm dialect; MLIR's pass names and order.
LLVM_PASSES = [
    "convert-scf-to-cf",
    "convert-memref-to-llvm",
    "convert-vector-to-llvm",
    "convert-math-to-llvm",
    "convert-arith-to-llvm",
    "convert-cf-to-llvm",
    "convert-func-to-llvm",
    "lower-parallel-calls",
    "reconcile-unrealized-casts",
]


@dataclass(frozen=True)
class Pipeline:
    """The pass spec of each stage, in order."""

    stages: dict[str, str]

    def spec(self, stop_after: str = "llvm") -> str:
        specs = []
        for stage in STAGES:
            if self.stages.get(stage):
                specs.append(self.stages[stage])
            if stage == stop_after:
                break
        return ",".join(specs)

    def describe(self) -> str:
        return "\n".join(f"{stage}: {self.stages.get(stage, '')}" for stage in STAGES)


def kernel_options(target: Target | None, num_threads: int = 1, thread_min_work: int | None = None) -> str:
    """The kernels' inputs for a target: vector width and vector register
    count (Target.vector_registers: 32 zmm with AVX-512, else 16; AArch64 32), the popcount
    accumulator lane width where it is not 64 bits (Target.popcount_accumulator_bits),
    and threads."""
    if target is None:
        return "" if num_threads == 1 else f"{{num_threads={num_threads}}}"
    registers = target.vector_registers
    extra = "" if thread_min_work is None else f" thread_min_work={thread_min_work}"
    if target.popcount_accumulator_bits != 64:
        extra += f" popcount_bits={target.popcount_accumulator_bits}"
    return f"{{vector_bits={target.vector_bits} registers={registers} num_threads={num_threads}{extra}}}"


def default_pipeline(target: Target | None = None, num_threads: int = 1, thread_min_work: int | None = None) -> Pipeline:
    """What `bnnc compile` runs; the loop IR is the same for every target except
    for the register tile and thread count, LLVM generates the target's instructions."""
    loops = [LOOP_PASSES[0] + kernel_options(target, num_threads, thread_min_work), *LOOP_PASSES[1:]]
    return Pipeline({"bnn": ",".join(GRAPH_PASSES), "loops": ",".join(loops), "llvm": ",".join(llvm_passes(target))})


# The conversions whose output holds `index` values (MLIR's index-bitwidth option).
INDEX_CONVERSIONS = frozenset(
    {
        "convert-memref-to-llvm",
        "convert-vector-to-llvm",
        "convert-arith-to-llvm",
        "convert-cf-to-llvm",
        "convert-func-to-llvm",
    }
)


def llvm_passes(target: Target | None) -> list[str]:
    """LLVM_PASSES with `index` as wide as the target's pointers: on a 32-bit
    target an i64 index takes a register pair, and the hot loops spill."""
    if target is None or target.pointer_bits == 64:
        return list(LLVM_PASSES)
    bits = f"{{index_bitwidth={target.pointer_bits}}}"
    return [p + bits if p in INDEX_CONVERSIONS else p for p in LLVM_PASSES]


def with_bounds_checks(pipeline: Pipeline) -> Pipeline:
    """The pipeline with `check-bounds` in its loops stage: right after the
    lowering (before dedupe-layer-functions, which then lifts each layer's
    location message like its other globals), or at the end of an overridden
    loops stage."""
    passes = [p for p in pipeline.stages.get("loops", "").split(",") if p]
    if "check-bounds" in passes:
        return pipeline
    at = passes.index("dedupe-layer-functions") if "dedupe-layer-functions" in passes else len(passes)
    passes.insert(at, "check-bounds")
    return Pipeline({**pipeline.stages, "loops": ",".join(passes)})


def with_static_memory(pipeline: Pipeline) -> Pipeline:
    """The pipeline with `plan-memory` at the end of its loops stage (after
    dedupe-layer-functions, so a shared kernel is planned once): one
    caller-provided arena instead of allocations (bare-metal targets, and
    `--static-memory` on the others)."""
    passes = [p for p in pipeline.stages.get("loops", "").split(",") if p]
    if "plan-memory" in passes:
        return pipeline
    return Pipeline({**pipeline.stages, "loops": ",".join([*passes, "plan-memory"])})


NAMED_PIPELINES: dict[str, Callable[[Target | None, int, int | None], Pipeline]] = {"default": default_pipeline}


def parse_pipeline(
    text: str | None,
    target: Target | None = None,
    num_threads: int = 1,
    thread_min_work: int | None = None,
    check_bounds: bool = False,
    static_memory: bool = False,
) -> Pipeline:
    """A named pipeline, or `bnn=a,b;loops=c;llvm=d` overriding stages of the
    default; `check_bounds` adds the check-bounds pass (with_bounds_checks),
    `static_memory` the plan-memory pass (with_static_memory)."""
    pipeline = _parse_pipeline(text, target, num_threads, thread_min_work)
    pipeline = with_bounds_checks(pipeline) if check_bounds else pipeline
    return with_static_memory(pipeline) if static_memory else pipeline


def _parse_pipeline(
    text: str | None, target: Target | None, num_threads: int, thread_min_work: int | None
) -> Pipeline:
    if text is None or text == "":
        return default_pipeline(target, num_threads, thread_min_work)
    if text in NAMED_PIPELINES:
        return NAMED_PIPELINES[text](target, num_threads, thread_min_work)
    stages = dict(default_pipeline(target, num_threads, thread_min_work).stages)
    for part in text.split(";"):
        stage, sep, spec = part.partition("=")
        if not sep or stage.strip() not in STAGES:
            raise PassError(
                f"cannot read pipeline '{text}': expected a name ({', '.join(NAMED_PIPELINES)}) "
                f"or 'stage=pass,pass;...' with stages {', '.join(STAGES)}"
            )
        stages[stage.strip()] = spec.strip()
    return Pipeline(stages)


@dataclass
class Instrumentation:
    """What to print or time while passes run (MLIR's --print-ir-* / --timing)."""

    print_after_all: bool = False
    print_after: set[str] = field(default_factory=set)
    print_before: set[str] = field(default_factory=set)
    timing: bool = False
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    times: list[tuple[str, float]] = field(default_factory=list)
    verify_seconds: float = 0.0

    def dump(self, when: str, name: str, module: ModuleOp) -> None:
        self.stream.write(f"// -----// IR Dump {when} {name} //----- //\n")
        Printer(stream=self.stream).print_op(module)
        self.stream.write("\n\n")

    def report(self) -> str:
        total = sum(t for _, t in self.times)
        lines = ["===-------------------------------------------------------------------------===",
                 "                         ... Pass execution timing report ...",
                 "===-------------------------------------------------------------------------===",
                 f"  Total Execution Time: {total:.4f} seconds (and IR verification: {self.verify_seconds:.4f} seconds)",
                 "",
                 "  ----Wall Time----  ----Name----"]
        for name, t in self.times:
            pct = 100.0 * t / total if total else 0.0
            lines.append(f"  {t:8.4f} ({pct:5.1f}%)  {name}")
        lines.append(f"  {total:8.4f} (100.0%)  Total")
        return "\n".join(lines) + "\n"


def _passes_of(spec: str, plugins: Sequence[str] = ()) -> list[ModulePass]:
    if not spec:
        return []
    from bnnc.plugins import load_plugins

    available = {**all_passes(), **load_plugins(plugins)}
    try:
        return list(PassPipeline.parse_spec(available, spec).passes)
    except Exception as e:  # xDSL raises several kinds for a bad spec
        known = ", ".join(sorted(all_passes()))
        raise PassError(f"cannot build pass pipeline '{spec}': {e}\nknown passes: {known}") from None


def run_passes(
    module: ModuleOp,
    spec: str,
    ctx: Context,
    instrument: Instrumentation | None = None,
    plugins: Sequence[str] = (),
    verify_each: bool = True,
    on_pass: Callable[[str], None] | None = None,
    verify: bool = True,
) -> None:
    """Apply `spec` to `module`, verifying after each pass (or, without
    `verify_each`, once at the end; without `verify`, never); `plugins` are
    pass plugin files whose passes the spec may name; `on_pass` hears each
    pass's name before it runs."""
    apply_passes(module, _passes_of(spec, plugins), ctx, instrument, verify_each, verify, on_pass=on_pass)


def apply_passes(
    module: ModuleOp,
    passes: Sequence[ModulePass],
    ctx: Context,
    instrument: Instrumentation | None = None,
    verify_each: bool = True,
    verify: bool = True,
    on_pass: Callable[[str], None] | None = None,
) -> None:
    """The pass manager of `bnnc compile` and `bnnc opt`: apply `passes` in
    order with `instrument`'s printing and timing, verifying after each pass
    (without `verify_each`, once at the end; without `verify`, never).
    `on_pass` (the progress line) hears each pass's name before it runs."""
    inst = instrument or Instrumentation()
    for i, p in enumerate(passes):
        if on_pass is not None:
            on_pass(p.name)
        if p.name in inst.print_before:
            inst.dump("Before", p.name, module)
        start = time.perf_counter()
        try:
            p.apply(ctx, module)
        except PassFailedException as e:
            raise PassError(f"pass '{p.name}' failed: {e}") from None
        inst.times.append((p.name, time.perf_counter() - start))
        if verify and (verify_each or i == len(passes) - 1):
            start = time.perf_counter()
            try:
                module.verify()
            except (VerifyException, DiagnosticException) as e:
                what = f"pass '{p.name}'" if verify_each else f"one of the passes up to '{p.name}' (rerun with --verify-each)"
                raise PassError(f"{what} produced invalid IR: {e}") from None
            inst.verify_seconds += time.perf_counter() - start
        if inst.print_after_all or p.name in inst.print_after:
            inst.dump("After", p.name, module)
