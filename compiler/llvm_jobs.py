"""Run LLVM's optimisation and code generation on the parts of a split module
(`bnnc.llvm_split`) in parallel: part 0 in this process, each other part in
a child Python process that loads only llvmlite and `bnnc.machine_code`
(about 0.15 s to start). LLVM holds no lock Python could share, so threads
would not help, and forking a process that may run threads (PyTorch's,
a compiled model's pool) is unsafe.

Protocol of a child: one JSON line on stdin (target, optimisation level,
whether the object is for the JIT, whether to measure the artifact facts
of the optimised part), then the part's IR text; it writes the object
code's length (8 bytes, little-endian), the object code and, if asked, the
facts as JSON (bnnc.artifact_facts) to stdout and exits 0, or writes an
error to stderr and exits 1.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence

import bnnc
from bnnc.artifact_facts import ArtifactFacts, measure_module
from bnnc.target import Target

# More parts than this cost more in process start-up and duplicated
# declarations than they save on today's networks (Bi-Real-Net-18: 16 layer
# functions after dedupe-layer-functions).
MAX_JOBS = 8


def default_jobs() -> int:
    """The cores this process may run on, at most MAX_JOBS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_JOBS))


Compiled = tuple[bytes, ArtifactFacts | None]


def compile_part(text: str, target: Target, opt_level: int, jit: bool, facts: bool = False) -> Compiled:
    """Object code for one part (the same steps as a whole module's build),
    and the artifact facts of its optimised IR if `facts`."""
    from bnnc.machine_code import optimize, target_machine

    optimized = optimize(text, target, opt_level=opt_level)
    return target_machine(target, jit=jit).emit_object(optimized), measure_module(optimized) if facts else None


def compile_parts(
    texts: Sequence[str], target: Target, opt_level: int, *, jit: bool, facts: bool = False
) -> list[Compiled]:
    """Object code (and artifact facts, if `facts`) for every part, in
    order; the parts after the first run in child processes while this one
    compiles the first."""
    request = json.dumps({
        "target": [target.name, target.triple, target.cpu, target.features], "opt_level": opt_level, "jit": jit,
        "facts": facts,
    })
    children = [_start(request, text) for text in texts[1:]]
    results = [compile_part(texts[0], target, opt_level, jit, facts)]
    for child, text in zip(children, texts[1:]):
        done = None if child is None else _finish(child)
        # (a child that could not run, e.g. with no Python to start, or
        # failed, or sent no facts when asked: compile here, which gives
        # the error LLVM gives)
        ok = done is not None and (done[1] is not None or not facts)
        results.append(done if ok else compile_part(text, target, opt_level, jit, facts))
    return results


# A child runs the bnnc package this process runs, loaded from where this
# one's came from (not whatever `import bnnc` finds from the current
# directory, which `python -c` searches first), with this import path less "".
_CHILD = """import importlib.util, sys
sys.path[:] = {paths!r}
spec = importlib.util.spec_from_file_location("bnnc", {init!r}, submodule_search_locations={package!r})
sys.modules["bnnc"] = bnnc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bnnc)
from bnnc.llvm_jobs import main
main()
"""


def _start(request: str, text: str) -> tuple[subprocess.Popen, threading.Thread] | None:
    """A child compiling `text`, or None if no process can be started (the
    part is then compiled here)."""
    if not os.path.basename(sys.executable or "").startswith(("python", "pypy")):
        return None  # embedded in another program: sys.executable is not a Python to start
    code = _CHILD.format(
        paths=[os.path.abspath(p) for p in sys.path if p],
        init=os.path.abspath(bnnc.__file__ or ""),
        package=[os.path.abspath(p) for p in bnnc.__path__],
    )
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except OSError:
        return None
    stdin = child.stdin
    assert stdin is not None

    def feed() -> None:  # (in a thread: the child reads only once Python has started)
        try:
            stdin.write(request.encode() + b"\n" + text.encode())
            stdin.close()
        except OSError:  # it died; _finish reports why
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    return child, feeder


def _finish(started: tuple[subprocess.Popen, threading.Thread]) -> Compiled | None:
    """The child's object code and artifact facts (if asked), or None if it failed."""
    child, feeder = started
    feeder.join()
    child.stdin = None  # (closed by the feeder; communicate would flush it)
    out, _ = child.communicate()
    if child.returncode != 0 or len(out) < 8:
        return None
    (size,) = struct.unpack_from("<Q", out)
    if size == 0 or 8 + size > len(out):
        return None
    rest = out[8 + size:]
    try:
        return out[8:8 + size], ArtifactFacts.from_json(rest.decode()) if rest else None
    except (ValueError, KeyError, TypeError):
        return None


def main() -> None:
    """A child: compile the part on stdin, write its object code to stdout."""
    data = sys.stdin.buffer.read()
    line, _, text = data.partition(b"\n")
    try:
        request = json.loads(line)
        target = Target(*request["target"])
        obj, facts = compile_part(
            text.decode(), target, int(request["opt_level"]), bool(request["jit"]), bool(request.get("facts"))
        )
    except Exception as e:  # noqa: BLE001  (reported to the parent, which raises it)
        sys.stderr.write(f"{type(e).__name__}: {e}\n")
        sys.exit(1)
    sys.stdout.buffer.write(struct.pack("<Q", len(obj)) + obj + (facts.to_json().encode() if facts else b""))
    sys.stdout.buffer.flush()
