"""Dynamic batch: one compiled function serves any batch size N.

Design. bnnc compiles the per-sample network (the graph at batch 1) and gives
the entry point a batch loop around it: `NAME(n, in0, ..., out0, ...)` calls
the per-sample function on sample i of every buffer, for i in [0, n). This is
the batch loop as the outermost loop of every layer, hoisted over the whole
network: the layers keep their static shapes, tiles and memory plan, and the
result for each sample is exactly the fixed-batch build's (same code, same
order of operations), so results are bit-identical at every N.

It is only correct when the network treats samples independently, which
`batch_examples` checks before anything is compiled: torch.export must accept
a symbolic batch dimension (`Dim`) on every input, and in the exported graph
every tensor computed from the inputs has the batch symbol as its leading
dimension and nowhere else (so nothing reduces, concatenates, reshapes or
broadcasts across samples), no op names dimension 0 in a `dim` argument (a
flip, cumsum, softmax or sort over the batch), and the batch size itself is
only used as the leading size of a reshape. Anything else is refused with
an UnsupportedError naming the op.

Threads split the batch: the per-sample function is compiled single-threaded
and the entry point hands contiguous ranges of samples to min(threads, n)
threads (pthread_create), the caller taking the first range. The split does
not change any sample's result.
"""

from __future__ import annotations

import logging
from typing import Any

from bnnc.errors import UnsupportedError
from bnnc.runtime.signature import Signature

SAMPLE_SUFFIX = "__bnnc_sample"

_RESHAPES = {"view", "reshape", "_unsafe_view", "expand", "view_copy", "_reshape_alias"}


def sample_name(name: str) -> str:
    """The symbol of the per-sample function behind the batch entry point `name`."""
    return f"{name}{SAMPLE_SUFFIX}"


def batch_examples(model: Any, example_inputs: Any) -> tuple:
    """Check that `model` (an nn.Module or ExportedProgram) computes every
    sample of a batch independently; return batch-1 example inputs (the first
    sample of each example) for compiling the per-sample network."""
    import torch

    if isinstance(model, torch.export.ExportedProgram):
        if example_inputs is None:  # one sample per input, from the program's input shapes
            shapes = [
                tuple(n.meta["val"].shape)
                for n in model.graph.nodes
                if n.op == "placeholder" and n.name in model.graph_signature.user_inputs
            ]
            if any(not isinstance(d, int) for shape in shapes for d in shape[1:]):
                raise UnsupportedError("dynamic batch: the program has symbolic dimensions besides the batch; give the input shapes")
            example_inputs = tuple(torch.zeros((1, *shape[1:])) for shape in shapes)
        model = model.module(check_guards=False)  # (its input-shape guards are the old batch's)
    if not isinstance(model, torch.nn.Module):
        raise UnsupportedError(
            f"dynamic batch needs a torch.nn.Module or an ExportedProgram (to re-export with a symbolic batch), "
            f"not a {type(model).__name__}; compile a fixed batch size instead"
        )
    if example_inputs is None:
        raise UnsupportedError("compiling an nn.Module needs example_inputs (a tuple of tensors of the input shapes)")
    examples = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    for i, x in enumerate(examples):
        if not isinstance(x, torch.Tensor) or x.dim() == 0 or x.shape[0] < 1:
            raise UnsupportedError(
                f"dynamic batch: input {i} has no batch dimension (every input needs its batch as dimension 0, size >= 1)"
            )
    first = tuple(x[:1].detach().clone() for x in examples)
    pair = tuple(torch.cat([x, x]) for x in first)  # batch 2: torch.export specialises sizes 0 and 1
    batch = torch.export.Dim("batch", min=1)
    was_training = model.training
    _set_training(model, False)
    # a failed trace is our answer, not news: torch's fake-tensor logger prints its traceback at ERROR
    fake_log = logging.getLogger("torch._subclasses.fake_tensor")
    fake_level = fake_log.level
    fake_log.setLevel(logging.CRITICAL)
    try:
        ep = torch.export.export(model, pair, dynamic_shapes=_batch_specs(model, pair, batch), strict=False)
    except Exception as exc:  # torch raises many exception types here
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnsupportedError(
            f"dynamic batch: torch.export cannot make the batch dimension symbolic: {first_line}\n"
            "  hint: the model's computation depends on the batch size (for a .pt2 or ExportedProgram: export it with "
            "a dynamic batch, dynamic_shapes={0: Dim('batch')} per input), or compile a fixed batch size"
        ) from None
    finally:
        fake_log.setLevel(fake_level)
        _set_training(model, was_training)
    check_batch_independent(ep)
    return first


def _set_training(model: Any, mode: bool) -> None:
    try:
        model.train(mode)
    except NotImplementedError:  # an ExportedProgram's module() is in eval mode for good
        pass


def per_sample_program(model: Any, examples: tuple) -> Any:
    """`model` (an nn.Module, or an ExportedProgram at another batch size)
    exported at batch 1 for the frontend; `examples` from batch_examples."""
    import torch

    if isinstance(model, torch.export.ExportedProgram):
        model = model.module(check_guards=False)  # (its input-shape guards are the old batch's)
    try:
        return torch.export.export(model, examples, strict=False)
    except Exception as exc:  # torch raises many exception types here
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnsupportedError(f"dynamic batch: torch.export cannot capture the model at batch 1: {first_line}") from None


def _batch_specs(model: Any, inputs: tuple, batch: Any) -> tuple:
    """torch.export's dynamic_shapes for a symbolic batch on every input (a
    forward(*inputs) takes them as one tuple argument)."""
    import inspect

    specs = tuple({0: batch} for _ in inputs)
    params = list(inspect.signature(model.forward).parameters.values())
    if len(params) == 1 and params[0].kind == inspect.Parameter.VAR_POSITIONAL:
        return (specs,)
    return specs


def check_batch_independent(ep: Any) -> None:
    """Raise UnsupportedError unless every op of `ep` (exported with a
    symbolic batch on dim 0 of every input) keeps samples apart."""
    import torch

    user = set(ep.graph_signature.user_inputs)
    graph = ep.graph
    placeholders = [n for n in graph.nodes if n.op == "placeholder" and n.name in user]
    symbol = str(placeholders[0].meta["val"].shape[0]) if placeholders else None
    dependent: set[Any] = set(placeholders)

    def where(node: Any) -> str:
        stack = node.meta.get("nn_module_stack")
        path = f" in `{list(stack.values())[-1][0]}`" if stack else ""
        return f"{node.target}{path}"

    def refuse(node: Any, why: str) -> None:
        raise UnsupportedError(
            f"dynamic batch: {where(node)} {why}, so samples of a batch are not computed independently; "
            "compile a fixed batch size instead"
        )

    for node in graph.nodes:
        if node.op != "call_function":
            continue
        inputs = [a for a in node.all_input_nodes if a in dependent]
        if not inputs:
            continue
        dependent.add(node)
        name = getattr(getattr(node.target, "_schema", None), "name", str(node.target)).split("::")[-1]
        _check_args(node, name, refuse)
        for a in inputs:  # the batch size itself: only as the leading size of a reshape
            if isinstance(a.meta.get("val"), torch.SymInt) and not _leading_size(node, name, a):
                refuse(node, "uses the batch size as a value")
        vals = node.meta.get("val")
        for val in vals if isinstance(vals, tuple | list) else [vals]:
            if isinstance(val, torch.Tensor):
                shape = [str(d) for d in val.shape]
                if not shape or shape[0] != symbol or any(symbol in d for d in shape[1:]):
                    refuse(node, f"gives shape ({', '.join(shape)}) from a batch of {symbol}")
    for node in graph.nodes:
        if node.op == "output":
            for out in node.args[0]:
                if isinstance(out, torch.fx.Node) and out not in dependent:
                    refuse(out, "gives an output that does not depend on the inputs")


def _check_args(node: Any, name: str, refuse: Any) -> None:
    schema = getattr(node.target, "_schema", None)
    if schema is None or name == "sym_size":  # (reading the batch size: its users are checked)
        return
    for arg, value in zip(schema.arguments, node.args):
        _check_arg(node, name, arg.name, value, refuse)
    for key, value in node.kwargs.items():
        _check_arg(node, name, key, value, refuse)
    if name == "index" and node.args[1] and node.args[1][0] is not None:
        refuse(node, "indexes dimension 0")


def _check_arg(node: Any, name: str, arg: str, value: Any, refuse: Any) -> None:
    if arg in ("training", "train") and value is True:
        refuse(node, "runs in training mode (batch statistics)")
    if "dim" not in arg or arg == "keepdim" or value is None:
        return
    rank = getattr(node.args[0].meta.get("val"), "ndim", None) if hasattr(node.args[0], "meta") else None
    values = list(value) if isinstance(value, list | tuple) else [value]
    if name == "permute":  # a permutation keeps samples apart iff it keeps dim 0 first
        if rank and values and values[0] % rank == 0:
            return
        refuse(node, f"moves the batch dimension (dims={value})")
    for v in values:
        if isinstance(v, int) and rank and v % rank == 0:
            refuse(node, f"works along dimension 0 (the batch; argument {arg}={value})")


def _leading_size(node: Any, name: str, size: Any) -> bool:
    if name not in _RESHAPES or len(node.args) < 2:
        return False
    sizes = node.args[1]
    return isinstance(sizes, list | tuple) and sizes and sizes[0] is size and all(s is not size for s in sizes[1:])


def check_sample_signature(signature: Signature) -> None:
    """The per-sample network (batch 1) must keep a batch dimension of 1 on every input and output."""
    for kind, specs in (("input", signature.inputs), ("output", signature.outputs)):
        for i, spec in enumerate(specs):
            if not spec.shape or spec.shape[0] != 1:
                raise UnsupportedError(
                    f"dynamic batch: {kind} {i} of the network at batch 1 has shape {list(spec.shape)}, "
                    "not a leading batch dimension of 1; compile a fixed batch size instead"
                )


def build(module: Any, signature: Signature, options: Any) -> Any:
    """driver.build's back half for a dynamic-batch build: `module` is the
    imported per-sample (batch-1) network with entry `signature.name`; the
    result's entry point takes the batch size first (Signature.dynamic_batch)."""
    import dataclasses

    from bnnc import driver, progress
    from bnnc.codegen import optimize, to_llvmlite_ir
    from bnnc.runtime.signature import planned_arena

    check_sample_signature(signature)
    target = options.resolved_target()
    threads = options.resolved_threads()
    sample = sample_name(signature.name)
    for op in module.ops:  # the imported function becomes the per-sample one
        if getattr(op.properties.get("sym_name"), "data", None) == signature.name:
            from xdsl.dialects.builtin import StringAttr

            op.properties["sym_name"] = StringAttr(sample)
    sample_options = dataclasses.replace(options, name=sample, num_threads=1, profile_layers=False)
    driver.lower(module, sample_options, "llvm", verify_result=False)  # LLVM verifies the translated IR
    if planned_arena(module, sample) is not None:
        raise UnsupportedError("dynamic batch with a static memory plan (caller-provided arena) is not supported")
    progress.stage("LLVM IR")
    text = to_llvmlite_ir(module, target.triple) + "\n"  # (no signature of its own: the artifact has one model)
    batch_signature = dataclasses.replace(signature, dynamic_batch=True)
    text += batch_signature.llvm_global() + "\n" + entry_ir(signature, threads, target.pointer_bits, text)
    progress.stage("LLVM optimisation", f"-O{options.opt_level}")
    return driver.Build(batch_signature, target, optimize(text, target, opt_level=options.opt_level))


def entry_ir(signature: Signature, threads: int, pointer_bits: int, existing_ir: str) -> str:
    """LLVM IR of the batch entry point `NAME(i64 n, ptr in0, ..., ptr out0, ...)`
    and its range worker, calling the per-sample function `sample_name(NAME)`.
    `existing_ir` is the module's own text (to declare only what it lacks)."""
    name = signature.name
    sample = sample_name(name)
    specs = [*signature.inputs, *signature.outputs]
    k = len(specs)
    size = {"float32": 4, "int64": 8}
    strides = [spec.numel * size.get(spec.dtype, 4) for spec in specs]
    job = f'%"{name}.job"'
    part = f'@"{name}__bnnc_batch_range"'
    tid = f"i{pointer_bits}"
    lines = [
        f"{job} = type {{ i64, i64, i64, [{k} x ptr] }}",
        "",
        f"; samples [t*n/T, (t+1)*n/T) of job {{n, t, T, buffers}}",
        f"define internal ptr {part}(ptr %job) {{",
        "entry:",
        f"  %np = getelementptr {job}, ptr %job, i32 0, i32 0",
        "  %n = load i64, ptr %np",
        f"  %tp = getelementptr {job}, ptr %job, i32 0, i32 1",
        "  %t = load i64, ptr %tp",
        f"  %Tp = getelementptr {job}, ptr %job, i32 0, i32 2",
        "  %T = load i64, ptr %Tp",
        "  %a = mul i64 %t, %n",
        "  %lo = udiv i64 %a, %T",
        "  %t1 = add i64 %t, 1",
        "  %b = mul i64 %t1, %n",
        "  %hi = udiv i64 %b, %T",
    ]
    for j in range(k):
        lines += [
            f"  %pp{j} = getelementptr {job}, ptr %job, i32 0, i32 3, i64 {j}",
            f"  %p{j} = load ptr, ptr %pp{j}",
        ]
    lines += [
        "  br label %head",
        "head:",
        "  %i = phi i64 [ %lo, %entry ], [ %next, %body ]",
        "  %more = icmp ult i64 %i, %hi",
        "  br i1 %more, label %body, label %done",
        "body:",
    ]
    for j in range(k):
        lines += [f"  %o{j} = mul i64 %i, {strides[j]}", f"  %q{j} = getelementptr i8, ptr %p{j}, i64 %o{j}"]
    lines += [
        f'  call void @"{sample}"({", ".join(f"ptr %q{j}" for j in range(k))})',
        "  %next = add i64 %i, 1",
        "  br label %head",
        "done:",
        "  ret ptr null",
        "}",
        "",
    ]
    params = ", ".join(["i64 %n", *(f"ptr %a{j}" for j in range(k))])
    lines += [
        f'define void @"{name}"({params}) {{',
        "entry:",
        "  %any = icmp sgt i64 %n, 0",
        "  br i1 %any, label %go, label %ret",
        "go:",
        f"  %few = icmp slt i64 %n, {threads}",
        f"  %T = select i1 %few, i64 %n, i64 {threads}",
        f"  %jobs = alloca {job}, i64 {threads}",
        f"  %tids = alloca {tid}, i64 {threads}",
        f"  %ok = alloca i1, i64 {threads}",
        "  br label %fill",
        "fill:",
        "  %f = phi i64 [ 0, %go ], [ %f1, %fill ]",
        f"  %fj = getelementptr {job}, ptr %jobs, i64 %f",
        f"  %fn = getelementptr {job}, ptr %fj, i32 0, i32 0",
        "  store i64 %n, ptr %fn",
        f"  %ft = getelementptr {job}, ptr %fj, i32 0, i32 1",
        "  store i64 %f, ptr %ft",
        f"  %fT = getelementptr {job}, ptr %fj, i32 0, i32 2",
        "  store i64 %T, ptr %fT",
    ]
    for j in range(k):
        lines += [
            f"  %fp{j} = getelementptr {job}, ptr %fj, i32 0, i32 3, i64 {j}",
            f"  store ptr %a{j}, ptr %fp{j}",
        ]
    lines += [
        "  %f1 = add i64 %f, 1",
        "  %filled = icmp slt i64 %f1, %T",
        "  br i1 %filled, label %fill, label %spawn.head",
    ]
    if threads > 1:
        lines += [
            "spawn.head:",
            "  %s = phi i64 [ 1, %fill ], [ %s1, %spawn ]",
            "  %spawning = icmp slt i64 %s, %T",
            "  br i1 %spawning, label %spawn, label %own",
            "spawn:",
            f"  %sj = getelementptr {job}, ptr %jobs, i64 %s",
            f"  %st = getelementptr {tid}, ptr %tids, i64 %s",
            f"  %rc = call i32 @pthread_create(ptr %st, ptr null, ptr {part}, ptr %sj)",
            "  %started = icmp eq i32 %rc, 0",
            "  %so = getelementptr i1, ptr %ok, i64 %s",
            "  store i1 %started, ptr %so",
            "  %s1 = add i64 %s, 1",
            "  br label %spawn.head",
            "own:",
            f"  %r0 = call ptr {part}(ptr %jobs)",
            "  br label %join.head",
            "join.head:",
            "  %w = phi i64 [ 1, %own ], [ %w1, %joined ]",
            "  %joining = icmp slt i64 %w, %T",
            "  br i1 %joining, label %join, label %ret",
            "join:",
            "  %wo = getelementptr i1, ptr %ok, i64 %w",
            "  %wok = load i1, ptr %wo",
            "  br i1 %wok, label %wait, label %inline",
            "wait:",
            f"  %wt = getelementptr {tid}, ptr %tids, i64 %w",
            f"  %wid = load {tid}, ptr %wt",
            f"  %jrc = call i32 @pthread_join({tid} %wid, ptr null)",
            "  br label %joined",
            "inline:",  # the thread could not be started: its samples run here
            f"  %wj = getelementptr {job}, ptr %jobs, i64 %w",
            f"  %r1 = call ptr {part}(ptr %wj)",
            "  br label %joined",
            "joined:",
            "  %w1 = add i64 %w, 1",
            "  br label %join.head",
        ]
    else:
        lines += ["spawn.head:", f"  %r0 = call ptr {part}(ptr %jobs)", "  br label %ret"]
    lines += ["ret:", "  ret void", "}", ""]
    if threads > 1:
        if "@pthread_create(" not in existing_ir:
            lines.append("declare i32 @pthread_create(ptr, ptr, ptr, ptr)")
        if "@pthread_join(" not in existing_ir:
            lines.append(f"declare i32 @pthread_join({tid}, ptr)")
    return "\n".join(lines) + "\n"
