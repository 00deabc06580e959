"""The `bnnc` command line: compile, run, opt.

Errors a user can fix (bad model, bad input, unknown target or pass) print one
`bnnc: error: ...` message and exit with code 2; set BNNC_TRACEBACK=1 to see
the Python traceback of an internal error.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from bnnc.cli_common import EXIT_INTERNAL, EXIT_USAGE, add_instrumentation_args, instrumentation_from_args, run_command

__all__ = ["EXIT_INTERNAL", "EXIT_USAGE", "build_parser", "main"]

_EMIT_HELP = (
    "what to write: bnn (graph IR), loops (scf/memref IR), llvm (llvm dialect), "
    "ll (LLVM IR), asm, obj (ELF object + C header), so (shared library); default obj"
)


_CHECK_BOUNDS_HELP = (
    "guard every memory access with an index check that aborts with the layer's location "
    "(the check-bounds pass; for debugging: slower code, needs libc's write/abort)"
)
_STATIC_MEMORY_HELP = (
    "no allocation: the entry point takes one scratch arena (last argument, size in the header), "
    "buffers share it by liveness (the plan-memory pass; always on for cortex-m4/cortex-m7)"
)


def _add_target_args(p: argparse.ArgumentParser) -> None:
    from bnnc.target import describe_targets

    p.add_argument("--target", default="host", help=f"{describe_targets()}. LLVM style -target=aarch64 works too")
    p.add_argument("--cpu", default=None, help="LLVM CPU name, e.g. cortex-a72, x86-64-v3, sapphirerapids")
    p.add_argument("--features", default=None, help="LLVM feature string, e.g. +dotprod or +avx512vpopcntdq")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--input-shape",
        action="append",
        default=None,
        metavar="SHAPE",
        help="shape of an input, e.g. 1,3,224,224 (repeat per input); needed for TorchScript .pt files",
    )
    p.add_argument(
        "--trust",
        action="store_true",
        help="allow loading a pickled nn.Module (torch.save); unpickling can run arbitrary code",
    )
    p.add_argument("--name", default=None, help="entry point symbol (default: from the model file name)")


def _add_pipeline_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pipeline", default=None, help="named pipeline or 'bnn=...;loops=...;llvm=...' (see --print-pipeline)")
    p.add_argument("--print-pipeline", action="store_true", help="print the pass pipeline and exit")
    add_instrumentation_args(p)
    p.add_argument(
        "--verify-each",
        action="store_true",
        help="verify the IR after every lowering pass too (graph passes always are; slower)",
    )
    p.add_argument(
        "--load-pass-plugin",
        action="append",
        default=[],
        metavar="FILE.py",
        help="load the ModulePass classes in FILE.py so --pipeline can name them",
    )


def build_parser() -> argparse.ArgumentParser:
    from bnnc.stages import EMIT_KINDS

    parser = argparse.ArgumentParser(prog="bnnc", description="bnnc: compile PyTorch binary neural networks to native code")
    parser.add_argument("--version", action="version", version=f"bnnc {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("compile", help="compile a model (.pt2, TorchScript .pt, or bnn .mlir) to IR, assembly or an artifact")
    c.add_argument("model", help="a .pt2 from torch.export.save, a TorchScript .pt, or a .mlir file of bnn IR")
    c.add_argument("-o", "--output", default=None, help="output file (default: stdout for text, MODEL stem + suffix otherwise)")
    c.add_argument("--emit", default="obj", choices=EMIT_KINDS, help=_EMIT_HELP)
    _add_target_args(c)
    c.add_argument(
        "--num-threads",
        type=int,
        default=1,
        metavar="N",
        help="threads the conv layers of the artifact use (default 1; they call pthread_create)",
    )
    c.add_argument("--check-bounds", action="store_true", help=_CHECK_BOUNDS_HELP)
    c.add_argument(
        "--dynamic-batch",
        action="store_true",
        help="one entry point for any batch size: NAME(long long n, in..., out...) (a batch-independent "
        ".pt2/.pt model; --input-shape gives one sample's shape with any batch; --emit=obj|so)",
    )
    c.add_argument("--static-memory", action="store_true", help=_STATIC_MEMORY_HELP)
    c.add_argument(
        "-j", "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="for --emit=obj|so: LLVM processes that optimise and compile the model's parts in parallel "
        "(default: the cores this process may use, at most 8; the machine code is the same for any N)",
    )
    c.add_argument(
        "--no-cache",
        action="store_true",
        help="for --emit=obj|so: neither read nor write the compile cache ($BNNC_CACHE_DIR, else $XDG_CACHE_HOME/bnnc)",
    )
    _add_model_args(c)
    _add_pipeline_args(c)

    r = sub.add_parser(
        "run",
        help="run a model or a compiled artifact (.so/.o; a foreign-architecture one under qemu-<arch>) on .npy inputs",
    )
    r.add_argument(
        "model",
        help="a .pt2 / TorchScript .pt / .mlir model (compiled on the fly), or a .so/.o from bnnc compile: a host .so "
        "is loaded in process; a host .o, or an aarch64 artifact, is built into examples/c/run_model and run "
        "(under qemu-aarch64 -L /usr/aarch64-linux-gnu for aarch64)",
    )
    r.add_argument("--input", action="append", required=True, metavar="X.npy", help="input array (repeat per input)")
    r.add_argument("--output", action="append", required=True, metavar="Y.npy", help="where to write each output")
    r.add_argument(
        "--num-threads", type=int, default=None, metavar="N", help="threads for a model compiled on the fly (default: all cores)"
    )
    r.add_argument("--check-bounds", action="store_true", help=_CHECK_BOUNDS_HELP + "; for a model compiled on the fly")
    r.add_argument("--static-memory", action="store_true", help=_STATIC_MEMORY_HELP + "; for a model compiled on the fly")
    r.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the compile cache ($BNNC_CACHE_DIR, else $XDG_CACHE_HOME/bnnc)",
    )
    _add_model_args(r)

    _add_summary_profile_parsers(sub)

    o = sub.add_parser("opt", help="run passes on textual IR (the lit tests' driver)", add_help=False)
    o.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the opt driver; see `bnnc opt --help`")
    return parser


def _add_summary_profile_parsers(sub: argparse._SubParsersAction) -> None:
    """`bnnc summary` and `bnnc profile` (bnnc.summary, bnnc.profile)."""
    s = sub.add_parser("summary", help="per-layer parameters, bytes, MACs (binary and float) and activation memory of a model")
    s.add_argument("model", help="a .pt2 / TorchScript .pt / .onnx / .tflite / .mlir model")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    _add_model_args(s)
    p = sub.add_parser("profile", help="compile with per-layer timers, run many times, and report where the time goes")
    p.add_argument("model", help="a .pt2 / TorchScript .pt / .onnx / .tflite / .mlir model")
    p.add_argument("--input", action="append", default=None, metavar="X.npy", help="input array (repeat per input; default: seeded random values)")
    p.add_argument("--num-threads", type=int, default=None, metavar="N", help="threads the model uses (default: all cores)")
    p.add_argument("--runs", type=int, default=100, metavar="R", help="timed runs (default 100)")
    p.add_argument("--ghz", type=float, default=None, help="clock for the roofline (default: from /sys or /proc/cpuinfo)")
    p.add_argument("--no-pytorch", action="store_true", help="do not time PyTorch eager next to bnnc")
    p.add_argument("--json", action="store_true", help="print the profile as JSON")
    p.add_argument("--plot", default=None, metavar="FILE.svg", help="draw a bar chart of the layers (needs matplotlib: bnnc[plot])")
    _add_model_args(p)


def _summary_inputs(args: argparse.Namespace) -> tuple[list | None, tuple | None]:
    """(input arrays, example tensors) for summary/profile: from --input files,
    else --input-shape."""
    arrays = [_read_npy(path) for path in getattr(args, "input", None) or []] or None
    examples = _shapes(args)
    if examples is None and arrays is not None and not args.model.endswith(".mlir"):
        import numpy as np
        import torch

        examples = tuple(torch.from_numpy(np.asarray(a)) for a in arrays)
    return arrays, examples


def cmd_summary(args: argparse.Namespace) -> int:
    from bnnc.driver import CompileOptions
    from bnnc.summary import summarize_model

    _, examples = _summary_inputs(args)
    options = CompileOptions(name=args.name or "forward")
    summary = summarize_model(args.model, examples, options, trust=args.trust)
    sys.stdout.write(summary.to_json() + "\n" if args.json else str(summary))
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from bnnc.driver import CompileOptions
    from bnnc.profile import plot_profile, profile_model

    arrays, examples = _summary_inputs(args)
    options = CompileOptions(name=args.name or "forward", num_threads=args.num_threads)
    report = profile_model(
        args.model, arrays, options, example_inputs=examples, runs=args.runs, trust=args.trust, ghz=args.ghz,
        compare_pytorch=not args.no_pytorch,
    )
    if args.plot:
        plot_profile(report, args.plot)
    sys.stdout.write(report.to_json() + "\n" if args.json else str(report))
    return 0


def _version() -> str:
    from bnnc import __version__

    return __version__


def normalize_llvm_style(argv: Sequence[str], long_options: set[str]) -> list[str]:
    """Accept LLVM's single-dash long options (-target=aarch64, -emit obj)."""
    out = []
    for arg in argv:
        m = re.match(r"^-([A-Za-z][A-Za-z0-9-]+)(=.*)?$", arg)
        if m and f"--{m.group(1)}" in long_options:
            arg = f"-{arg}"
        out.append(arg)
    return out


def _long_options(parser: argparse.ArgumentParser) -> set[str]:
    found: set[str] = set()
    stack = [parser]
    while stack:
        p = stack.pop()
        for action in p._actions:
            found.update(s for s in action.option_strings if s.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
    return found


def _default_name(model: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_]", "_", Path(model).stem) or "model"
    return stem if not stem[0].isdigit() else f"m_{stem}"


def _parse_shapes(args: argparse.Namespace) -> list[tuple[int, ...]] | None:
    """The --input-shape values as tuples, refused when negative or absurdly large (nothing allocated)."""
    from bnnc.errors import BnncError
    from bnnc.runtime.signature import shape_size_problem

    if not args.input_shape:
        return None
    shapes = []
    for text in args.input_shape:
        try:
            shape = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
        except ValueError:
            raise BnncError(f"cannot read --input-shape '{text}': write it like 1,3,224,224") from None
        problem = shape_size_problem(shape)
        if problem is not None:
            raise BnncError(f"--input-shape {text}: {problem}")
        shapes.append(shape)
    return shapes


def _shapes(args: argparse.Namespace) -> tuple | None:
    """Example inputs (zeros) of the --input-shape shapes, if they fit in this machine's memory."""
    from bnnc.errors import BnncError
    from bnnc.runtime.signature import shape_size_problem

    shapes = _parse_shapes(args)
    if shapes is None:
        return None
    import torch

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for text, shape in zip(args.input_shape, shapes):
        problem = shape_size_problem(shape, limit=memory // 2)
        if problem is not None:
            raise BnncError(f"--input-shape {text}: {problem} (half of this machine's memory, for the example input)")
    return tuple(torch.zeros(shape) for shape in shapes)


def _import(args: argparse.Namespace, example_inputs: tuple | None = None, *, default_name: str = "forward"):
    """Import the model; sets args.name to the entry point's name."""
    if getattr(args, "dynamic_batch", False):
        return _import_per_sample(args, default_name)
    from bnnc.driver import import_model, ir_entry, load_ir
    from bnnc.errors import TracingError

    if args.model.endswith(".mlir"):
        module = load_ir(args.model)
        args.name = ir_entry(module, args.model, args.name, default_name)
        _check_input_shapes(args, module)
        return module
    explicit = _shapes(args)
    examples = example_inputs or explicit
    args.name = args.name or default_name
    try:
        module = import_model(args.model, examples, name=args.name, trust=args.trust)
    except TracingError as e:  # the example inputs torch traced with may be the wrong shape
        text = str(e)
        if examples is not None:
            shapes = ", ".join("x".join(map(str, t.shape)) for t in examples)
            source = "--input-shape" if explicit is not None else "the --input arrays"
            raise type(e)(
                f"{text}\n  hint: the model was traced with input shape(s) {shapes} (from {source}); "
                "check that each has the rank and sizes the model expects (e.g. 1,3,32,32 for one NCHW image)"
            ) from None
        raise
    _check_input_shapes(args, module)
    return module


def _import_per_sample(args: argparse.Namespace, default_name: str):
    """--dynamic-batch: the model's per-sample network (bnnc.dynamic_batch),
    checked batch-independent; sets args.name."""
    from bnnc.driver import import_model
    from bnnc.dynamic_batch import batch_examples, per_sample_program
    from bnnc.errors import UnsupportedError
    from bnnc.frontend.loaders import load_model_file

    if not args.model.lower().endswith((".pt2", ".pt", ".pth")):
        raise UnsupportedError(f"--dynamic-batch needs a PyTorch model (.pt2 or TorchScript .pt), not {args.model}")
    if args.emit not in ("obj", "so"):
        raise UnsupportedError(
            f"--dynamic-batch writes artifacts (--emit=obj or so), not --emit={args.emit}: "
            "the batch entry point is added when the artifact is built"
        )
    examples = _shapes(args)
    ep = load_model_file(args.model, trust=args.trust, example_inputs=examples)
    first = batch_examples(ep, examples)
    args.name = args.name or default_name
    return import_model(per_sample_program(ep, first), name=args.name)


def _check_input_shapes(args: argparse.Namespace, module) -> None:
    """--input-shape must agree with a model whose shapes are fixed (.pt2, .mlir)."""
    from bnnc.errors import InputError
    from bnnc.runtime.signature import signature_of

    if not args.input_shape:
        return
    wanted = [s.shape for s in signature_of(module, args.name).inputs]
    given = _parse_shapes(args)
    if given != wanted:
        fmt = lambda shapes: " ".join(",".join(map(str, s)) for s in shapes)  # noqa: E731
        raise InputError(
            f"--input-shape {fmt(given)} does not match the model's input shape(s) {fmt(wanted)} "
            f"({args.model} was exported for fixed shapes; re-export it for others)"
        )


def cmd_compile(args: argparse.Namespace) -> int:
    from xdsl.printer import Printer

    from bnnc import artifacts
    from bnnc.driver import CompileOptions, llvm_ir, lower, with_arena
    from bnnc.stages import STAGES
    from bnnc.runtime.signature import signature_of

    options = CompileOptions(
        target=args.target,
        cpu=args.cpu,
        features=args.features,
        pipeline=args.pipeline,
        name=args.name or _default_name(args.model),
        plugins=tuple(args.load_pass_plugin),
        num_threads=args.num_threads,
        verify_each=args.verify_each,
        check_bounds=args.check_bounds,
        static_memory=args.static_memory,
        dynamic_batch=args.dynamic_batch,
        instrument=instrumentation_from_args(args),
        jobs=args.jobs,
    )
    target = options.resolved_target()
    artifacts.check_features(target)
    options.resolved_jobs()  # (a bad --jobs is an error before any work)
    pipeline = options.resolved_pipeline()
    if args.print_pipeline:
        print(pipeline.describe())
        return 0
    if args.emit in ("obj", "so"):
        return _compile_artifact(args, options)
    module = _import(args, default_name=options.name)
    options.name = args.name
    signature = signature_of(module, args.name)
    stage = args.emit if args.emit in STAGES else "llvm"
    lower(module, options, stage)
    signature = with_arena(signature, module)
    if options.instrument.timing:
        sys.stderr.write(options.instrument.report())
    if args.emit in STAGES:
        text = _print(module, Printer)
        return _write_text(text, args.output)
    ir_text = llvm_ir(module, signature, target.triple)
    from bnnc.codegen import emit_assembly, optimize

    mod = optimize(ir_text, target, opt_level=options.opt_level)
    if args.emit == "ll":
        return _write_text(str(mod), args.output)
    return _write_text(emit_assembly(mod, target), args.output)  # asm (obj and so: _compile_artifact)


def _compile_artifact(args: argparse.Namespace, options) -> int:
    """--emit=obj|so through the compile cache (a fixed-shape .pt2/.pt file is
    looked up before it is loaded)."""
    from bnnc import artifacts
    from bnnc.compile_cache import artifact_build

    def importer():
        module = _import(args, default_name=options.name)
        options.name = args.name
        return module

    model = args.model if not args.input_shape else None  # shapes given: key the imported IR
    signature, code, facts = artifact_build(
        model, options, importer, kind=args.emit, trust=args.trust, cache=not args.no_cache
    )
    if options.instrument.timing:
        sys.stderr.write(options.instrument.report())
    out = args.output or f"{Path(args.model).stem}.{'o' if args.emit == 'obj' else 'so'}"
    written = artifacts.write_artifact(None, options.resolved_target(), signature, out, kind=args.emit, compiled=(code, facts))
    for path in written:
        print(f"bnnc: wrote {path}", file=sys.stderr)
    return 0


def _print(module, printer_cls) -> str:
    import io

    stream = io.StringIO()
    printer_cls(stream=stream).print_op(module)
    return stream.getvalue() + "\n"


def _write_text(text: str, output: str | None) -> int:
    if output in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(output).write_text(text)
    return 0


def _describe_array(array) -> str:
    return f"{array.dtype}[{', '.join(map(str, array.shape))}]"


def _read_npy(path: str):
    """A .npy file as an array, never unpickling (allow_pickle=False) and checking
    the header against the file's size first, so a lying header allocates nothing."""
    import numpy as np

    from bnnc.errors import InputError

    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
            if header is not None:
                shape, _, dtype = header(f)
                if dtype.hasobject:
                    raise InputError(
                        f"input {path} holds Python objects ({dtype}), which bnnc never unpickles: "
                        "expected a numeric array (float32)"
                    )
                available = os.fstat(f.fileno()).st_size - f.tell()
                needed = math.prod(shape) * dtype.itemsize
                if needed > available:
                    raise InputError(
                        f"input {path} is truncated: its header says {dtype}[{', '.join(map(str, shape))}] "
                        f"({needed} bytes) but {available} bytes follow"
                    )
        return np.load(path, allow_pickle=False)
    except InputError:
        raise
    except Exception as e:  # numpy's header parser raises ValueError, SyntaxError, tokenize errors...
        raise InputError(f"cannot read input {path} as a .npy array: {e}") from None


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from bnnc.errors import InputError, ModelLoadError

    inputs = [_read_npy(path) for path in args.input]
    for path, array in zip(args.input, inputs):  # (torch cannot even take these as example inputs)
        if array.dtype.fields is not None or not array.dtype.isnative or array.dtype.kind not in "biuf":
            raise InputError(f"input {path}: expected dtype float32, got {array.dtype} ({_describe_array(array)})")
    if args.model.endswith((".so", ".o")):
        from bnnc.runtime.artifact_loader import elf_machine, host_arch, load_artifact

        if elf_machine(args.model) == host_arch() and args.model.endswith(".so"):
            model = load_artifact(args.model, args.name)  # in process
        else:  # a foreign artifact (under qemu) or an object file: through the C example
            from bnnc.runtime.emulated_run import run_artifact

            model = lambda *xs: tuple(run_artifact(args.model, xs, args.name))  # noqa: E731
    else:
        from bnnc.driver import CompileOptions, build, jit

        import torch

        if args.model.endswith(".pt2") and not args.input_shape:  # fixed shapes: the cache keys the file itself
            args.name = args.name or "forward"
            module = args.model
        else:
            examples = _shapes(args) or tuple(torch.from_numpy(np.asarray(x)) for x in inputs)
            module = _import(args, examples)
        options = CompileOptions(
            name=args.name, num_threads=args.num_threads, check_bounds=args.check_bounds, static_memory=args.static_memory
        )
        model = jit(build(module, None, options, cache=not args.no_cache, for_jit=True))
    signature = getattr(model, "signature", None)
    # (a dynamic-batch model checks its inputs' batch size itself)
    if signature is not None and len(signature.inputs) == len(inputs) and not signature.dynamic_batch:
        for path, array, spec in zip(args.input, inputs, signature.inputs):
            if array.dtype != np.dtype(spec.dtype):
                raise InputError(f"input {path}: expected dtype {spec.dtype} ({spec.describe()}), got {array.dtype}")
            if tuple(array.shape) != spec.shape:
                raise InputError(
                    f"input {path}: expected shape {list(spec.shape)}, got {list(array.shape)} "
                    f"(the model was compiled for {spec.describe()}; recompile for other shapes)"
                )
    outputs = model(*inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    if len(outputs) != len(args.output):
        raise ModelLoadError(f"the model has {len(outputs)} output(s) but {len(args.output)} --output path(s) were given")
    for path, value in zip(args.output, outputs):
        np.save(path, value)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from bnnc.errors import BnncError

    # torch.export's deprecation chatter is not the user's concern at the CLI.
    warnings.filterwarnings("ignore", category=FutureWarning)
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "opt":
        return _run_opt(argv[1:])
    args = parser.parse_args(normalize_llvm_style(argv, _long_options(parser)))
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    command = {"compile": cmd_compile, "run": cmd_run, "summary": cmd_summary, "profile": cmd_profile}[args.command]
    return run_command(lambda: command(args), user_errors=(BnncError,))


def _run_opt(argv: list[str]) -> int:
    from bnnc.opt import opt_main

    return opt_main(argv)


if __name__ == "__main__":
    sys.exit(main())
