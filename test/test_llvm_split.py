"""Host-JIT builds split their LLVM module into parts that LLVM optimises and
compiles in parallel processes (bnnc.llvm_split, bnnc.llvm_jobs): the parts
define every function once, the linked result computes the bits of the
unsplit build, and a layer's machine code does not depend on the number of
parts."""

from __future__ import annotations

import re
import sys

import bnn_models as bm
import numpy as np
import pytest
import torch

from bnnc import llvm_jobs
from bnnc.codegen import to_llvmlite_module
from bnnc.driver import CompileOptions, build, import_model, jit, lower, signature_of, with_arena
from bnnc.llvm_split import is_layer_function, split_module
from bnnc.machine_code import emit_assembly, optimize

FACTORIES = {f.__name__.removeprefix("make_"): f for f in bm.MODEL_FACTORIES}
_DEFINE = re.compile(r'^define [^@]*@"((?:[^"\\]|\\.)*)"', re.MULTILINE)


def _llvm_module(name: str, threads: int = 1):
    model, x = FACTORIES[name](0)
    module = import_model(model, (x,))
    options = CompileOptions(num_threads=threads, thread_min_work=0)
    signature = signature_of(module, options.name)
    lower(module, options, "llvm", verify_result=False)
    signature = with_arena(signature, module)
    return to_llvmlite_module(module, options.resolved_target().triple), signature, options


@pytest.mark.parametrize("parts", [1, 2, 3, 5])
def test_parts_define_every_function_once_and_each_verifies(parts):
    llvm_module, signature, options = _llvm_module("bireal", threads=3)
    defined = sorted(f.name for f in llvm_module.functions if not f.is_declaration)
    layer = [f for f in llvm_module.functions if is_layer_function(f)]
    texts = split_module(llvm_module, parts, signature.llvm_global())
    assert len(texts) == min(parts, len(layer))
    names = [n for t in texts for n in _DEFINE.findall(t)]
    assert sorted(names) == defined, "every function is defined in exactly one part"
    assert f'define void @"{signature.name}"(' in texts[0], "the entry point is in part 0"
    assert not any(re.search(r'^define internal [^@]*@"\w+_\d+_', t, re.MULTILINE) for t in texts), (
        "layer functions are external in every split"
    )
    for text in texts:
        optimize(text, options.resolved_target(), opt_level=2)  # parses, verifies, optimises alone


@pytest.mark.parametrize(
    ("name", "threads"), [("bireal", 1), ("bireal", 3), ("densenet", 3), ("reactnet", 2), ("odd_shapes", 3), ("binary_mlp", 1)]
)
def test_split_builds_compute_the_unsplit_builds_bits(name, threads):
    model, x = FACTORIES[name](0)
    module = import_model(model, (x,))
    inputs = [x.numpy(), torch.randn_like(x).numpy(), (3.0 * torch.randn_like(x)).numpy()]
    options = CompileOptions(num_threads=threads, thread_min_work=0)
    whole = jit(build(module.clone(), options=options))  # one module, MCJIT compiles it
    want = [np.asarray(whole(xi)).copy() for xi in inputs]
    for jobs in (1, 3):
        options = CompileOptions(num_threads=threads, thread_min_work=0, jobs=jobs)
        built = build(module.clone(), options=options, for_jit=True)
        assert built.llvm_module is None and built.objects
        split = jit(built)
        for xi, w in zip(inputs, want):
            assert np.array_equal(np.asarray(split(xi)), w), f"{name}, {threads} threads, {jobs} jobs"


def _function_bodies(asm: str) -> dict[str, str]:
    """Each function's assembly, by name, without labels that number blocks module-wide."""
    bodies: dict[str, str] = {}
    for chunk in re.split(r"^\s*\.type\s+", asm, flags=re.MULTILINE)[1:]:
        name = chunk.split(",", 1)[0].strip().strip('"')
        if "@function" in chunk.split("\n", 1)[0]:
            body = chunk.split(".Lfunc_end", 1)[0]
            bodies[name] = re.sub(r"\.L\w+", ".L", body)
    return bodies


def test_a_layers_code_does_not_depend_on_the_number_of_parts():
    llvm_module, signature, options = _llvm_module("resnete")
    target = options.resolved_target()
    layer_names = {f.name for f in llvm_module.functions if is_layer_function(f)}
    seen: dict[str, str] = {}
    for parts in (1, 2, 3):
        llvm_module, signature, _ = _llvm_module("resnete")
        for text in split_module(llvm_module, parts, signature.llvm_global()):
            for name, body in _function_bodies(emit_assembly(optimize(text, target, opt_level=2), target)).items():
                if name in layer_names:
                    assert seen.setdefault(name, body) == body, f"{name} differs with {parts} parts"
    assert set(seen) == layer_names


def test_parts_compile_in_this_process_when_no_python_can_be_started(monkeypatch):
    llvm_module, signature, options = _llvm_module("odd_shapes")
    texts = split_module(llvm_module, 2, signature.llvm_global())
    target = options.resolved_target()
    monkeypatch.setattr(sys, "executable", "/usr/bin/blender")  # an embedding program, not a Python
    started = []
    monkeypatch.setattr(llvm_jobs.subprocess, "Popen", lambda *a, **k: started.append(a))
    objects = llvm_jobs.compile_parts(texts, target, 2, jit=True)
    assert not started and len(objects) == len(texts) and all(objects)


def test_a_failing_child_leaves_its_part_to_this_process(monkeypatch):
    llvm_module, signature, options = _llvm_module("odd_shapes")
    texts = split_module(llvm_module, 2, signature.llvm_global())
    target = options.resolved_target()
    real_start = llvm_jobs._start
    monkeypatch.setattr(llvm_jobs, "_start", lambda request, text: real_start("not json", text))
    objects = llvm_jobs.compile_parts(texts, target, 2, jit=True)
    assert objects == [llvm_jobs.compile_part(t, target, 2, True) for t in texts]


def test_default_jobs_follow_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.setattr(llvm_jobs.os, "sched_getaffinity", lambda pid: set(range(64)))
    assert llvm_jobs.default_jobs() == llvm_jobs.MAX_JOBS
    monkeypatch.setattr(llvm_jobs.os, "sched_getaffinity", lambda pid: {3})
    assert llvm_jobs.default_jobs() == 1
    with pytest.raises(Exception, match="jobs must be at least 1"):
        CompileOptions(jobs=0).resolved_jobs()


def test_children_import_the_bnnc_this_process_runs(monkeypatch, tmp_path):
    """A child is started with this process's import path made absolute: a
    `bnnc` package in the current directory (where `python -c` would look
    first) is not what it runs."""
    llvm_module, signature, options = _llvm_module("odd_shapes")
    texts = split_module(llvm_module, 2, signature.llvm_global())
    (tmp_path / "bnnc").mkdir()
    (tmp_path / "bnnc" / "__init__.py").write_text("raise SystemExit(3)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["", *sys.path])
    here = []
    real_compile_part = llvm_jobs.compile_part
    monkeypatch.setattr(llvm_jobs, "compile_part", lambda *a: here.append(1) or real_compile_part(*a))
    objects = llvm_jobs.compile_parts(texts, options.resolved_target(), 2, jit=True)
    assert len(here) == 1, "part 1 was compiled here: its child failed"
    assert objects[1] == real_compile_part(texts[1], options.resolved_target(), 2, True)
