"""The fuzzer's worker process: checks recipes it reads from stdin, one JSON
object a line, and answers each with one JSON line.

Why a separate process: a miscompile can crash (SIGSEGV) and a bounds-checked
build aborts (SIGABRT); the parent (tools/fuzz.py) sees the worker die, reads
its stderr (where __bnnc_bounds_fail writes the location) and starts another.

Request: {"recipe": {...}, "threads": N, "thread_min_work": int|null, "aarch64": bool,
"onnx": bool, "nhwc": bool, "jobs": int|null, "inject": str|null}; "jobs" N builds the JIT
code as bnnc.compile does, a module split into N parts compiled in parallel
(null: one module that MCJIT compiles); "nhwc" compiles with every
float-result layer channels-last however small (fuzz graphs are below
channels-last's default min_elements, so they would all stay NCHW). thread_min_work 0 threads every layer, however
small (the fuzz graphs are small; the default threshold would leave most of
them on one thread).
Answer: {"status": "ok" | "mismatch" | "refused" | "error", "detail": str, "seconds": float};
an "ok" answer also says whether the ONNX leg ran ("onnx") and whether any
comparison needed the tie-aware explanation ("explained").
"ok" means every output matched PyTorch (assert_matches_torch, tie-aware) on
the example input and a second input, JIT at N threads with --check-bounds,
and, when asked, as an aarch64 object under qemu and through ONNX export
(torch.onnx.export, then bnnc.compile of the .onnx file) too. "refused" is a
bnnc.UnsupportedError (a model bnnc says it cannot compile exactly);
"error" is any other exception. `inject` (tests only) names a float op whose
presence makes the worker corrupt the compiled output, so the fuzzer's
failure path can be tested without a compiler bug.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "test"))


def _aarch64(model, x, xs, threads: int, min_work: int | None, pipeline: str | None) -> list:
    """Outputs of the model compiled to an aarch64 object (bounds-checked), run under qemu."""
    from bnnc.artifacts import write_artifact
    from bnnc.driver import CompileOptions, build
    from bnnc.runtime.emulated_run import run_artifact

    options = CompileOptions(
        target="aarch64", name="fuzz", num_threads=threads, thread_min_work=min_work, check_bounds=True,
        pipeline=pipeline,
    )
    built = build(model, (x,), options)
    with tempfile.TemporaryDirectory(prefix="bnnc-fuzz-") as tmp:
        path = str(Path(tmp) / "fuzz.o")
        write_artifact(built.llvm_module, built.target, built.signature, path, kind="obj")
        return [run_artifact(path, [xi.numpy()]) for xi in xs]


def _onnx(model, x, xs, options) -> list | str:
    """Outputs of the model exported with torch.onnx and compiled from the .onnx
    file (bounds-checked), or why the export failed (PyTorch's exporter, not bnnc)."""
    import torch


    with tempfile.TemporaryDirectory(prefix="bnnc-fuzz-") as tmp:
        path = str(Path(tmp) / "fuzz.onnx")
        try:
            torch.onnx.export(model, (x,), path, dynamo=True, external_data=False, verbose=False)
        except Exception as e:  # noqa: BLE001 (an exporter limitation is not a bnnc failure)
            return f"export failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        from bnnc.driver import build, jit

        compiled = jit(build(path, None, options, for_jit=options.jobs is not None))
        return [compiled(xi) for xi in xs]


def bnn_stage(request: dict) -> str | None:
    """The bnn-stage pipeline override a request asks for (None: bnnc's default)."""
    if not request.get("nhwc"):
        return None
    from pass_helpers import pipeline_with

    return pipeline_with(**{"channels-last": {"min_elements": 0, "every_float_bconv": "true"}})


def _refused(e: Exception, leg: str) -> dict:
    """A refusal (an UnsupportedError). bnnc's own consistency checks raise
    bnnc.errors.InternalError instead, which serve() reports as "error"."""
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    return {"status": "refused", "detail": leg + first}


def check(request: dict) -> dict:
    """Compile and compare one recipe (module docstring)."""
    import torch
    from differential import assert_matches_torch
    from graph_models import build, second_input

    import bnnc
    from bnnc.driver import CompileOptions, jit
    from bnnc.driver import build as bnnc_build

    recipe, threads = request["recipe"], int(request["threads"])
    model, x = build(recipe)
    xs = [x, second_input(x, recipe)]
    jobs = request.get("jobs")
    options = CompileOptions(num_threads=threads, thread_min_work=request.get("thread_min_work"), check_bounds=True,
                             pipeline=bnn_stage(request), jobs=jobs)
    try:
        compiled = jit(bnnc_build(model, (x,), options, for_jit=jobs is not None))
    except bnnc.UnsupportedError as e:
        return _refused(e, "")
    outs = [compiled(xi) for xi in xs]
    inject = request.get("inject")
    if inject and any(b.get("op") == inject for b in recipe["blocks"]):
        outs = [o + 1.0 for o in outs]
    checked = [assert_matches_torch(model, (xi,), o) for xi, o in zip(xs, outs)]
    verdicts: list[str] = list(checked)
    onnx_ran = False
    if request.get("aarch64"):
        try:
            for xi, o in zip(xs, _aarch64(model, x, xs, threads, request.get("thread_min_work"), bnn_stage(request))):
                checked.append(assert_matches_torch(model, (xi,), [torch.from_numpy(a) for a in o]))
                verdicts.append("aarch64: " + checked[-1])
        except AssertionError as e:
            raise AssertionError(f"aarch64 object under qemu: {e}") from None
    if request.get("onnx"):
        try:
            outs = _onnx(model, x, xs, options)
        except bnnc.UnsupportedError as e:
            return _refused(e, "onnx: ")
        if isinstance(outs, str):
            verdicts.append("onnx " + outs)
        else:
            try:
                for xi, o in zip(xs, outs):
                    checked.append(assert_matches_torch(model, (xi,), o))
                    verdicts.append("onnx: " + checked[-1])
                onnx_ran = True
            except AssertionError as e:
                raise AssertionError(f"onnx path (torch.onnx.export -> bnnc.compile(.onnx)): {e}") from None
    explained = any(v.explained for v in checked)
    return {"status": "ok", "detail": "; ".join(verdicts), "verdicts": verdicts, "onnx": onnx_ran, "explained": explained}


def serve() -> None:
    """Answer requests until stdin closes; stdout carries only answers."""
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything else printed goes to stderr
    import bnnc  # noqa: F401 (import once, before the first request is timed)

    for line in sys.stdin:
        request = json.loads(line)
        start = time.perf_counter()
        try:
            answer = check(request)
        except AssertionError as e:
            answer = {"status": "mismatch", "detail": str(e)}
        except Exception as e:  # noqa: BLE001 (every other failure is reported, not fatal)
            tb = traceback.format_exc(limit=-3)
            answer = {"status": "error", "detail": f"{type(e).__name__}: {e}\n{tb}"}
        answer["seconds"] = round(time.perf_counter() - start, 3)
        answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    serve()
