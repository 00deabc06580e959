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
    assert not started and len(objects) == len(texts) and all(code and ir is None for code, ir in objects)


def test_a_failing_child_leaves_its_part_to_this_process(monkeypatch):
    llvm_module, signature, options = _llvm_module("odd_shapes")
    texts = split_module(llvm_module, 2, signature.llvm_global())
    target = options.resolved_target()
    real_start = llvm_jobs._start
    monkeypatch.setattr(llvm_jobs, "_start", lambda request, text: real_start("not json", text))
    objects = llvm_jobs.compile_parts(texts, target, 2, jit=True)
    assert objects == [llvm_jobs.compile_part(t, target, 2, True) for t in texts]
    assert all(ir is None for _, ir in objects)


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


# --------------------------------------------------------------------------
# artifacts: the parts of a split module linked into one .so or .o
# --------------------------------------------------------------------------


def test_an_artifacts_split_makes_its_symbols_hidden():
    """An artifact's parts are linked into one library that exports only what
    the unsplit one does: what the split makes external is hidden, where it
    is defined and where it is declared; the entry point is not."""
    llvm_module, signature, _ = _llvm_module("bireal", threads=2)
    layer = {f.name for f in llvm_module.functions if is_layer_function(f)}
    texts = split_module(llvm_module, 3, signature.llvm_global(), hidden=True)
    for name in layer:
        (where,) = [t for t in texts if re.search(rf'^define hidden [^@]*@"{name}"\(', t, re.MULTILINE)]
        assert all(re.search(rf'^declare hidden [^@]*@"{name}"\(', t, re.MULTILINE) for t in texts if t is not where and f'@"{name}"(' in t)
    assert f'define void @"{signature.name}"(' in texts[0]
    shared = re.findall(r'^(@"[^"]+") = hidden (?:global|constant)', texts[0], re.MULTILINE)
    for ref in shared:
        assert all(f"{ref} = external hidden" in t for t in texts[1:] if ref in t)


def _optimized_globals(text: str) -> set[str]:
    return set(re.findall(r'^(@"?[^\s=]+"?) = (?!external)', text, re.MULTILINE))


def test_a_split_keeps_no_global_the_unsplit_build_drops():
    """Every global an optimised part defines, the optimised whole module
    defines too. (Bi-Real-Net-18's classifier kept its 2 MB of float weights
    twice: its kernel reads its own repacked copy, and the original, still a
    parameter of the now external kernel, could no longer be dropped; the
    pipeline's remove-dead-arguments drops such parameters.)"""
    llvm_module, signature, options = _llvm_module("bireal")
    target = options.resolved_target()
    whole = _optimized_globals(str(optimize(f"{llvm_module}\n{signature.llvm_global()}", target, opt_level=2)))
    llvm_module, signature, options = _llvm_module("bireal")
    texts = split_module(llvm_module, 2, signature.llvm_global(), hidden=True)
    # (each part optimised as llvm_jobs.compile_part optimises it)
    parts = set().union(*(_optimized_globals(str(optimize(text, target, opt_level=2))) for text in texts))
    assert parts == whole


@pytest.mark.parametrize(("kind", "target"), [("so", "host"), ("obj", "host"), ("so", "aarch64")])
def test_artifact_parts_link_into_the_unsplit_artifact(tmp_path, kind, target):
    """`bnnc compile --emit=so|obj` compiles the parts of a split module in
    parallel and links them (a .o with ld -r): the artifact computes the
    unsplit one's bits, its header (scratch memory, mutable globals, libc
    symbols, threads) is the same, and it exports the same symbols."""
    from bnnc import artifacts
    from bnnc.runtime.artifact_loader import elf_symbols
    from bnnc.runtime.emulated_run import run_artifact

    if kind == "obj" and artifacts.find_relocatable_linker(CompileOptions(target=target).resolved_target()) is None:
        pytest.fail("GNU ld is missing (binutils; scripts/test.sh installs it)")
    model, x = FACTORIES["bireal"](0)
    module = import_model(model, (x,))
    paths = {}
    for jobs in (None, 3):  # None: one module, as --emit=asm builds it
        options = CompileOptions(target=target, num_threads=2, thread_min_work=0, jobs=jobs)
        built = build(module.clone(), options=options, for_linker=jobs is not None)
        path = tmp_path / f"{jobs}.{'o' if kind == 'obj' else 'so'}"
        compiled = None if jobs is None else (built.objects, built.facts)
        artifacts.write_artifact(built.llvm_module, built.target, built.signature, str(path), kind=kind, compiled=compiled)
        assert jobs is None or len(built.objects) == 3
        paths[jobs] = path
    inputs = [x.numpy(), torch.randn_like(x).numpy()]
    for xi in inputs:
        want, got = (run_artifact(str(paths[j]), [xi]) for j in (None, 3))
        assert all(np.array_equal(a, b) for a, b in zip(want, got))
    assert paths[3].with_suffix(".h").read_text() == paths[None].with_suffix(".h").read_text()

    def exported(path):
        return sorted(s.name for s in elf_symbols(str(path)) if s.defined and s.binding == 1)

    if kind == "so":
        assert exported(paths[3]) == exported(paths[None])


def test_a_child_measures_its_part_as_this_process_would(monkeypatch):
    """An artifact's parts come back from the processes of llvm_jobs with
    their artifact facts (scratch memory, mutable globals, threads), not
    their optimised IR: the facts a child sends equal those measured here on
    the same part, and the combined facts equal the whole module's."""
    from bnnc.artifact_facts import combine, measure, measure_module

    llvm_module, signature, options = _llvm_module("bireal")
    target = options.resolved_target()
    whole = measure(optimize(f"{llvm_module}\n{signature.llvm_global()}", target, opt_level=2))
    llvm_module, signature, options = _llvm_module("bireal")
    texts = split_module(llvm_module, 2, signature.llvm_global(), hidden=True)
    calls_here = []
    real = llvm_jobs.compile_part
    monkeypatch.setattr(llvm_jobs, "compile_part", lambda *a: calls_here.append(a) or real(*a))
    compiled = llvm_jobs.compile_parts(texts, target, 2, jit=False, facts=True)
    assert len(calls_here) == 1  # part 0 here, part 1 in a child (not recompiled here after a failure)
    here = [measure_module(optimize(text, target, opt_level=2)) for text in texts]
    assert [facts for _, facts in compiled] == here
    assert here[1].scratch_allocations > 0  # (the child's part has something to measure)
    assert combine(here) == whole
