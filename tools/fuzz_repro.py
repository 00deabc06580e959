"""Writes a fuzzer failure as a repro script a user can run with `python`.

Why a script and not just the recipe: a bug report should be one file that
builds the model with torch, compiles it with bnnc exactly as the fuzzer did
(threads, bounds checks) and compares with PyTorch. The script carries the
recipe as data and builds it with the repository's test/graph_models.py
(path recorded at write time; BNNC_REPO overrides it), so it needs nothing
else from the fuzzer.
"""

from __future__ import annotations

import json
from pathlib import Path

TEMPLATE = '''"""bnnc fuzzer repro: {title}

Found by tools/fuzz.py (seed {seed}, graph {index}), shrunk to the recipe
below. Run: python {name}
Exit 0 means bnnc now matches PyTorch on this graph.

Failure when found:
{detail}
"""
import json
import os
import sys

REPO = os.environ.get("BNNC_REPO", {repo!r})
sys.path.insert(0, os.path.join(REPO, "test"))

import torch  # noqa: E402

import bnnc  # noqa: E402
from differential import assert_matches_torch  # noqa: E402
from bnnc.driver import CompileOptions, jit  # noqa: E402
from bnnc.driver import build as bnnc_build  # noqa: E402
from graph_models import build, second_input  # noqa: E402
from pass_helpers import pipeline_with  # noqa: E402

RECIPE = json.loads({recipe!r})
THREADS = {threads}
MIN_WORK = {min_work}  # 0: every layer threaded; None: bnnc's default threshold
NHWC = {nhwc}  # True: every float-result layer channels-last, however small
JOBS = {jobs}  # N: the JIT code is a module split into N parts (bnnc.compile's way); None: one module
PIPELINE = pipeline_with(**{{"channels-last": {{"min_elements": 0}}}}) if NHWC else None

model, x = build(RECIPE)
xs = [x, second_input(x, RECIPE)]
print(model)
options = CompileOptions(num_threads=THREADS, thread_min_work=MIN_WORK, check_bounds=True, pipeline=PIPELINE, jobs=JOBS)
compiled = jit(bnnc_build(model, (x,), options, for_jit=JOBS is not None))
for xi in xs:
    print("jit:", assert_matches_torch(model, (xi,), compiled(xi)))
{extra}print("OK: bnnc matches PyTorch")
'''


AARCH64 = '''
# as an aarch64 object under qemu-aarch64 (needs qemu-user, gcc-aarch64-linux-gnu)
import tempfile  # noqa: E402

from bnnc.artifacts import write_artifact  # noqa: E402
from bnnc.runtime.emulated_run import run_artifact  # noqa: E402

built = bnnc_build(model, (x,), CompileOptions(target="aarch64", name="fuzz", num_threads=THREADS, thread_min_work=MIN_WORK,
                                             check_bounds=True, pipeline=PIPELINE))
with tempfile.TemporaryDirectory() as tmp:
    write_artifact(built.llvm_module, built.target, built.signature, tmp + "/fuzz.o", kind="obj")
    for xi in xs:
        out = run_artifact(tmp + "/fuzz.o", [xi.numpy()])
        print("aarch64:", assert_matches_torch(model, (xi,), [torch.from_numpy(a) for a in out]))
'''

ONNX = '''
# through ONNX: torch.onnx.export, then bnnc.compile of the .onnx file
import tempfile  # noqa: E402

with tempfile.TemporaryDirectory() as tmp:
    torch.onnx.export(model, (x,), tmp + "/fuzz.onnx", dynamo=True, external_data=False)
    from_onnx = jit(bnnc_build(tmp + "/fuzz.onnx", None, options, for_jit=JOBS is not None))
    for xi in xs:
        print("onnx:", assert_matches_torch(model, (xi,), from_onnx(xi)))
'''


def write_repro(out_dir: Path, *, kind: str, request: dict, seed: int, index: int, detail: str, repo: Path) -> Path:
    """Write `<kind>_s<seed>_g<index>.py` (and the request as .json, for
    `tools/fuzz.py --recipe`) into out_dir; return the script's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{kind}_s{seed}_g{index}"
    recipe, threads = request["recipe"], request["threads"]
    keep = {k: request[k] for k in ("recipe", "threads", "thread_min_work", "aarch64", "onnx", "nhwc", "jobs") if k in request}
    (out_dir / f"{stem}.json").write_text(json.dumps(keep, indent=1))
    extra = (AARCH64 if request.get("aarch64") else "") + (ONNX if request.get("onnx") else "")
    body = "\n".join("    " + line for line in detail.strip().splitlines()[:40]).replace('"""', "'''")
    script = TEMPLATE.format(
        title=f"{kind} on a {len(recipe['blocks'])}-block graph at {threads} thread(s)",
        seed=seed, index=index, name=f"{stem}.py", detail=body, repo=str(repo),
        recipe=json.dumps(recipe, sort_keys=True), threads=threads, extra=extra, min_work=request.get("thread_min_work"),
        nhwc=bool(request.get("nhwc")), jobs=request.get("jobs"),
    )
    path = out_dir / f"{stem}.py"
    path.write_text(script)
    return path
