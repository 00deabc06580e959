"""bnnc's Python API."""

from __future__ import annotations

from typing import Any

from bnnc.driver import CompileOptions, build, jit


def compile(
    model: Any,
    example_inputs: Any = None,
    *,
    target: str = "host",
    cpu: str | None = None,
    features: str | None = None,
    pipeline: str | None = None,
    num_threads: int | None = None,
    plugins: tuple[str, ...] = (),
    trust: bool = False,
    check_bounds: bool = False,
    static_memory: bool = False,
    cache: bool = True,
    dynamic_batch: bool = False,
) -> Any:
    """Compile a PyTorch BNN to native code for this machine and return a callable.

    `model`: a torch.nn.Module (with `example_inputs`, a tensor or tuple of
    tensors fixing the input shapes), a torch.export.ExportedProgram, or the
    path of a `.pt2` / TorchScript `.pt` file. The callable takes torch tensors
    (→ torch tensors) or numpy arrays (→ numpy arrays) of exactly the example
    shapes, float32. `num_threads` (default: all cores) splits the conv layers'
    output rows between threads; results are bit-identical at any count.
    `plugins` are pass plugin files whose passes `pipeline` may name
    (e.g. pipeline="bnn=fold-weight-binarization,my-pass").
    `check_bounds` guards every memory access with an index check that aborts
    the process with the layer's location (a debugging build, see check-bounds).
    `static_memory` runs the model in one scratch arena planned by liveness
    (the plan-memory pass) instead of allocating per layer; results are identical.
    `cache` looks the compile up in (and saves it to) the persistent compile
    cache (`bnnc.compile_cache`: $BNNC_CACHE_DIR or $XDG_CACHE_HOME/bnnc), so a
    second compile of the same model, even in a new process, loads machine code.
    `dynamic_batch` compiles one function for any batch size N >= 1 (the
    callable then takes inputs of any N; see bnnc.dynamic_batch): the model
    must compute its samples independently, which is checked (an nn.Module or
    ExportedProgram, exported again with a symbolic batch), else refused.
    Raises a `bnnc.errors.BnncError` subclass on anything it cannot compile
    exactly.
    """
    if target != "host":
        from bnnc.errors import TargetError

        raise TargetError(
            f"bnnc.compile returns code that runs in this process, so target must be 'host', not '{target}'; "
            "use `bnnc compile MODEL -target=... --emit=obj` for other targets"
        )
    options = CompileOptions(
        target=target, cpu=cpu, features=features, pipeline=pipeline, num_threads=num_threads, plugins=tuple(plugins),
        check_bounds=check_bounds, static_memory=static_memory, dynamic_batch=dynamic_batch,
    )
    if dynamic_batch:  # the per-sample network, once checked batch-independent
        from bnnc.dynamic_batch import batch_examples, per_sample_program

        example_inputs = batch_examples(model, example_inputs)
        if hasattr(model, "graph_signature"):  # an ExportedProgram
            model, example_inputs = per_sample_program(model, example_inputs), None
    compiled = jit(build(model, example_inputs, options, trust=trust, cache=cache, for_jit=True))
    # compiled.summary() imports the model again and runs the graph passes, on first use only.
    from functools import partial

    from bnnc.summary import summarize_model

    compiled.summary_source = partial(summarize_model, model, example_inputs, options, trust=trust)
    return compiled
