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
from graph_models import build, second_input  # noqa: E402

RECIPE = json.loads({recipe!r})
THREADS = {threads}

model, x = build(RECIPE)
print(model)
compiled = bnnc.compile(model, (x,), num_threads=THREADS, check_bounds=True)
for xi in (x, second_input(x, RECIPE)):
    print(assert_matches_torch(model, (xi,), compiled(xi)))
print("OK: bnnc matches PyTorch")
'''


def write_repro(out_dir: Path, *, kind: str, recipe: dict, threads: int, seed: int, index: int, detail: str,
                repo: Path) -> Path:
    """Write `<kind>_s<seed>_g<index>.py` (and the recipe as .json) into out_dir; return the script's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{kind}_s{seed}_g{index}"
    (out_dir / f"{stem}.json").write_text(json.dumps({"recipe": recipe, "threads": threads}, indent=1))
    body = "\n".join("    " + line for line in detail.strip().splitlines()[:40]).replace('"""', "'''")
    script = TEMPLATE.format(
        title=f"{kind} on a {len(recipe['blocks'])}-block graph at {threads} thread(s)",
        seed=seed, index=index, name=f"{stem}.py", detail=body, repo=str(repo),
        recipe=json.dumps(recipe, sort_keys=True), threads=threads,
    )
    path = out_dir / f"{stem}.py"
    path.write_text(script)
    return path
