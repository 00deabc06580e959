"""The compile driver: model → bnn IR → loops → llvm dialect → LLVM IR →
machine code. The API, the CLI and the torch.compile backend all go through it,
so every entry point compiles the same way."""

from __future__ import annotations

import functools
import gc
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from xdsl.dialects.builtin import ModuleOp

from bnnc import progress
from bnnc.errors import BnncError, IRError, ModelLoadError, TargetError, UnsupportedError
from bnnc.passes._parallel_contract import MAX_THREADS
from bnnc.pipeline import Instrumentation, Pipeline, parse_pipeline, run_passes
from bnnc.runtime.signature import Signature, signature_of
from bnnc.stages import STAGES
from bnnc.target import Target, resolve_target


_F = TypeVar("_F", bound=Callable[..., Any])


def _without_gc(fn: _F) -> _F:
    """Run `fn` with Python's cyclic GC off. Compiling builds hundreds of
    thousands of IR objects that stay alive until it ends, and each full
    collection rescans all of them (~2 s of a ~10 s Bi-Real-Net-18 build);
    what the compile leaves behind is collected once GC is back on."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()

    return wrapper  # type: ignore[return-value]


@dataclass
class CompileOptions:
    target: str = "host"
    cpu: str | None = None
    features: str | None = None
    pipeline: str | None = None
    name: str = "forward"
    opt_level: int = 2  # O3 compiles ~50% longer here and runs no faster
    # Threads the conv kernels use; None means all cores for host code and 1
    # for artifacts of other targets.
    num_threads: int | None = None
    # Smallest layer (inner-loop steps) worth threads; None: the pass's default.
    thread_min_work: int | None = None
    plugins: tuple[str, ...] = ()
    # Verify after every pass of every stage; by default every graph-level
    # (bnn) pass is verified, the mechanical lowering stages at their end.
    verify_each: bool = False
    # Guard every memory access of the loop IR (the check-bounds pass).
    check_bounds: bool = False
    # One caller-provided scratch arena, planned by liveness (plan-memory),
    # instead of allocations; always on for bare-metal targets.
    static_memory: bool = False
    # Time each layer call of the entry function into counters the runtime
    # reads (bnnc profile); off, the generated code is unchanged.
    profile_layers: bool = False
    # One entry point for any batch size N (bnnc.dynamic_batch): the model is
    # the per-sample network (import it at batch 1), called in a batch loop.
    dynamic_batch: bool = False
    # Processes that optimise and compile a host-JIT build's parts in
    # parallel (bnnc.llvm_jobs); None: the cores available, at most 8. The
    # machine code does not depend on it (bnnc.llvm_split).
    jobs: int | None = None
    instrument: Instrumentation = field(default_factory=Instrumentation)

    def resolved_target(self) -> Target:
        return resolve_target(self.target, self.cpu, self.features)

    def resolved_threads(self) -> int:
        if self.num_threads is None:
            return (os.cpu_count() or 1) if self.target == "host" else 1
        if not 1 <= self.num_threads <= MAX_THREADS:
            raise BnncError(f"num_threads must be 1..{MAX_THREADS}, got {self.num_threads}")
        return self.num_threads

    def resolved_jobs(self) -> int:
        from bnnc.llvm_jobs import default_jobs

        if self.jobs is None:
            return default_jobs()
        if self.jobs < 1:
            raise BnncError(f"jobs must be at least 1, got {self.jobs}")
        return self.jobs

    def resolved_pipeline(self) -> Pipeline:
        target = self.resolved_target()
        return parse_pipeline(
            self.pipeline, target, self.resolved_threads(), self.thread_min_work, self.check_bounds,
            self.static_memory or target.is_bare_metal,
        )


def load_ir(path: str) -> ModuleOp:
    """A `.mlir` file of bnn IR → its module, verified (xDSL's verifier, and
    no value used before its definition); absurd shapes are refused first."""
    from pathlib import Path

    from xdsl.parser import Parser
    from xdsl.utils.exceptions import ParseError

    from bnnc.context import make_context
    from bnnc.opt import check_all_values_defined, check_defined_before_use  # (also hardens xDSL's lexer)
    from bnnc.runtime.signature import check_ir_text_sizes

    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ModelLoadError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise IRError(f"{path} is not UTF-8 text IR ({e.reason} at byte {e.start})") from None
    check_ir_text_sizes(text, path)
    try:
        module = Parser(make_context(), text, path).parse_module()
        check_all_values_defined(module, path)
        module.verify()
        check_defined_before_use(module, path)
    except (ParseError, IRError) as e:
        raise IRError(f"malformed IR in {path}:\n{e}") from None
    except Exception as e:
        raise IRError(f"invalid IR in {path}: {e}") from None
    return module


def ir_entry(module: ModuleOp, path: str, requested: str | None, default: str) -> str:
    """The function of a `.mlir` module to compile: `requested`, else `default`
    if the module has it, else the module's only function."""
    from xdsl.dialects import func

    names = [op.sym_name.data for op in module.ops if isinstance(op, func.FuncOp)]
    if requested is not None:
        if requested not in names:
            raise IRError(f"{path} has no function @{requested}; its functions: {', '.join('@' + n for n in names) or 'none'}")
        return requested
    if default in names:
        return default
    if len(names) == 1:
        return names[0]
    raise IRError(
        f"{path} has {len(names)} functions ({', '.join('@' + n for n in names) or 'none'}); "
        "choose the entry point with --name"
    )


@_without_gc
def import_model(
    model: Any,
    example_inputs: tuple | None = None,
    *,
    name: str = "forward",
    trust: bool = False,
) -> ModuleOp:
    """An nn.Module (with example inputs), an ExportedProgram, or a model file
    path (.pt2, .pt, .onnx, .tflite, or .mlir bnn IR with a function @`name`)
    → the bnn dialect, verified."""
    if (isinstance(model, str) or hasattr(model, "__fspath__")) and os.fspath(model).lower().endswith(".mlir"):
        module = load_ir(os.fspath(model))
        ir_entry(module, os.fspath(model), name, name)
        return module
    import torch

    from bnnc.frontend.loaders import load_model_file
    from bnnc.frontend.torch_import import export_module, import_program

    if isinstance(model, str) or hasattr(model, "__fspath__"):
        if os.fspath(model).lower().endswith(".tflite"):  # TFLite / Larq Compute Engine flatbuffer
            from bnnc.frontend.tflite_import import import_tflite

            return import_tflite(os.fspath(model), func_name=name)
        if os.fspath(model).lower().endswith(".onnx"):  # ONNX / QONNX protobuf; shapes fix symbolic dims
            from bnnc.frontend.onnx_import import import_onnx

            examples = example_inputs if isinstance(example_inputs, (tuple, list)) or example_inputs is None else (example_inputs,)
            shapes = None if examples is None else [tuple(t.shape) for t in examples]
            return import_onnx(os.fspath(model), input_shapes=shapes, func_name=name)
    if isinstance(model, str | bytes) or hasattr(model, "__fspath__"):
        ep = load_model_file(str(model), trust=trust, example_inputs=example_inputs)
    elif isinstance(model, torch.export.ExportedProgram):
        ep = model
    elif isinstance(model, torch.nn.Module):
        if example_inputs is None:
            raise UnsupportedError(
                "compiling an nn.Module needs example_inputs (a tuple of tensors of the input shapes)"
            )
        if isinstance(example_inputs, torch.Tensor):
            example_inputs = (example_inputs,)
        ep = export_module(model, tuple(example_inputs))
    else:
        raise UnsupportedError(
            f"cannot compile a {type(model).__name__}: pass a torch.nn.Module, a torch.export.ExportedProgram "
            "or the path of a .pt2 / TorchScript .pt file"
        )
    module = import_program(ep, func_name=name)
    module.verify()
    return module


@_without_gc
def lower(module: ModuleOp, options: CompileOptions, stop_after: str = "llvm", *, verify_result: bool = True) -> ModuleOp:
    """Run the pipeline on `module` in place up to the end of `stop_after`;
    without `verify_result` the last stage's output is not verified by xDSL
    (a build's llvm dialect, which LLVM's verifier checks once translated)."""
    if stop_after not in STAGES:
        raise BnncError(f"unknown IR stage '{stop_after}'; stages are {', '.join(STAGES)}")
    from bnnc.context import make_context  # (all dialects: not needed for a compile-cache hit)

    pipeline = options.resolved_pipeline()
    ctx = make_context()
    run = [stage for stage in STAGES[: STAGES.index(stop_after) + 1] if pipeline.stages.get(stage)]
    for stage in run:
        # The graph passes are verified one by one; the mechanical lowering
        # stages once, at the end of the last one run, unless LLVM verifies
        # the result (a build: xDSL's verify of Bi-Real-Net-18's llvm dialect
        # costs ~1.4 s, quadratic in the blocks of a function; a lowering
        # that breaks the IR still fails, at LLVM's parse or verifier, and
        # --verify-each names the pass); with pass plugins, every stage.
        run_passes(
            module, pipeline.stages[stage], ctx, options.instrument, options.plugins, options.verify_each or stage == "bnn",
            on_pass=lambda name, stage=stage: progress.stage("passes", f"{stage}: {name}"),
            verify=options.verify_each or stage == "bnn" or (stage == run[-1] and verify_result) or bool(options.plugins),
        )
    return module


def with_arena(signature: Signature, module: ModuleOp) -> Signature:
    """`signature` with the arena size of the lowered `module`'s static memory
    plan (None without one): the entry point then takes the arena last."""
    import dataclasses

    from bnnc.runtime.signature import planned_arena

    return dataclasses.replace(signature, arena_bytes=planned_arena(module, signature.name))


@_without_gc
def llvm_ir(module: ModuleOp, signature: Signature, triple: str = "", *, profile_layers: bool = False) -> str:
    """LLVM IR text of an llvm-dialect module, with the signature embedded as a
    JSON string so artifacts describe themselves (`bnnc run` reads it)."""
    from bnnc.codegen import to_llvmlite_ir

    entry = signature.name if profile_layers else None
    return f"{to_llvmlite_ir(module, triple, profile_entry=entry)}\n{signature.llvm_global()}\n"


@dataclass
class Build:
    """A model compiled to an optimised LLVM module for one target."""

    signature: Signature
    target: Target
    llvm_module: Any  # llvmlite.binding.ModuleRef; None for a build of objects
    objects: tuple[bytes, ...] | None = None  # object code, one per part (bnnc.llvm_split)
    facts: Any = None  # bnnc.artifact_facts.ArtifactFacts of a linker's build, measured on its parts


@_without_gc
def build(
    model: Any,
    example_inputs: tuple | None = None,
    options: CompileOptions | None = None,
    *,
    trust: bool = False,
    cache: bool = False,
    for_jit: bool = False,
    for_linker: bool = False,
) -> Build:
    """Compile `model`. With `for_jit`, a host build is object code for `jit`,
    made by parallel processes (bnnc.llvm_jobs); with `cache` it goes through
    the persistent compile cache (bnnc.compile_cache) as well. With
    `for_linker`, it is object code in parts for an artifact's linker, with
    the artifact facts measured on them (bnnc.artifacts). Otherwise it is an optimised LLVM
    module (for artifacts and assembly)."""
    from bnnc.codegen import optimize

    options = options or CompileOptions()
    target = options.resolved_target()
    if options.profile_layers and (target.pointer_bits != 64 or target.is_bare_metal):
        # the timers read clock_gettime into a {i64, i64} timespec: 64-bit Linux
        raise TargetError(f"per-layer timing needs a 64-bit Linux target, not '{target.name}'")
    if cache:
        from bnnc.compile_cache import cached_build

        return cached_build(model, example_inputs, options, trust=trust)
    try:
        progress.stage("import")
        module = (
            model if isinstance(model, ModuleOp) else import_model(model, example_inputs, name=options.name, trust=trust)
        )
        signature = signature_of(module, options.name)
        if options.dynamic_batch:
            from bnnc import dynamic_batch

            return dynamic_batch.build(module, signature, options)
        lower(module, options, "llvm", verify_result=False)  # codegen.optimize verifies the LLVM IR
        signature = with_arena(signature, module)
        progress.stage("LLVM IR")
        if for_jit and target.is_host:
            return Build(signature, target, None, jit_objects(module, signature, target, options))
        if for_linker:
            from bnnc.artifact_facts import combine

            parts = parallel_objects(module, signature, target, options, jit=False, facts=True)
            return Build(signature, target, None, tuple(c for c, _ in parts), combine([f for _, f in parts if f is not None]))
        text = llvm_ir(module, signature, target.triple, profile_layers=options.profile_layers)
        progress.stage("LLVM optimisation", f"-O{options.opt_level}")
        return Build(signature, target, optimize(text, target, opt_level=options.opt_level))
    finally:
        progress.done()


def jit_objects(module: ModuleOp, signature: Signature, target: Target, options: CompileOptions) -> tuple[bytes, ...]:
    """JIT object code for an llvm-dialect `module` (parallel_objects)."""
    return tuple(code for code, _ in parallel_objects(module, signature, target, options, jit=True))


def parallel_objects(
    module: ModuleOp, signature: Signature, target: Target, options: CompileOptions, *, jit: bool,
    facts: bool = False,
) -> list[tuple[bytes, Any]]:
    """Object code for an llvm-dialect `module`: its LLVM module split into
    parts (bnnc.llvm_split) that LLVM optimises and compiles in parallel,
    each with its artifact facts (bnnc.artifact_facts) if `facts`. JIT parts are linked by
    the JIT; an artifact's (`jit` false: position-independent, the symbols
    the split makes external hidden) by the linker (bnnc.artifacts)."""
    from bnnc.codegen import to_llvmlite_module
    from bnnc.llvm_jobs import compile_parts
    from bnnc.llvm_split import split_module

    entry = signature.name if options.profile_layers else None
    llvm_module = to_llvmlite_module(module, target.triple, profile_entry=entry)
    parts = split_module(llvm_module, options.resolved_jobs(), signature.llvm_global(), hidden=not jit)
    progress.stage("LLVM optimisation and code generation", f"-O{options.opt_level}, {len(parts)} parts")
    return compile_parts(parts, target, options.opt_level, jit=jit, facts=facts)


def jit(built: Build) -> Any:
    """Load a host build into this process and return a callable CompiledModel."""
    from bnnc.codegen import JitModule
    from bnnc.runtime.compiled_model import CompiledModel

    if not built.target.is_host:
        raise BnncError(
            f"a model built for target '{built.target.name}' cannot run in this process; "
            "write an artifact with `bnnc compile --emit=obj|so` instead"
        )
    if built.llvm_module is None and built.objects is not None:
        from bnnc.compile_cache import ObjectJit

        engine: Any = ObjectJit(built.objects, built.target)
    else:
        engine = JitModule(built.llvm_module, built.target)
    return CompiledModel(engine.address_of(built.signature.name), built.signature, engine)
