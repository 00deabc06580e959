"""The progress line of long compiles (bnnc.progress): stage, pass and layer
on a terminal, nothing in pipes, and the line erased at the end."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

from bnnc import progress
from bnnc.passes import _progress as pass_progress
from bnnc.progress import Progress


class _FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_item_adds_what_the_stage_is_on():
    tty = _FakeTty()
    p = Progress(tty, enabled=True)
    p.stage("passes", "loops: convert-bnn-to-loops")
    p.item("layer 2/7 forward_3_bconv2d (layer1.conv)")
    last = tty.getvalue().rsplit("\r\x1b[K", 1)[-1]
    assert last.startswith("bnnc: passes: loops: convert-bnn-to-loops: layer 2/7 forward_3_bconv2d (layer1.conv) (")
    assert last.endswith(" s)")
    p.item("x" * 400)  # clipped, but the clock stays
    last = tty.getvalue().rsplit("\r\x1b[K", 1)[-1]
    assert len(last) <= 150 and last.endswith(" s)")


def test_pass_layer_reports_reach_the_line_only_while_it_is_shown(monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr(progress, "Progress", lambda: Progress(_FakeTty(), enabled=True))
    monkeypatch.setattr(progress, "_current", None)
    progress.stage("passes", "loops")
    progress._current.item = seen.append  # type: ignore[union-attr]
    pass_progress.set_listener(progress._current.item)  # (what _get installed, now recording)
    pass_progress.layer(1, 2, "forward_0_bconv2d")
    progress.done()
    pass_progress.layer(2, 2, "forward_1_bconv2d")  # no line: dropped
    assert seen == ["layer 1/2 forward_0_bconv2d"]
    assert pass_progress._listener is None


def _two_layer_ir(tmp_path: Path) -> Path:
    """bnn IR of sign -> binary conv -> sign -> binary conv (two layer
    functions), written once so the compile under test needs no torch.export."""
    import torch
    import torch.nn.functional as F

    from bnnc import driver

    w = torch.sign(torch.randn(8, 8, 3, 3, generator=torch.Generator().manual_seed(0)))

    class TwoLayers(torch.nn.Module):
        def forward(self, x):
            return F.conv2d(torch.sign(F.conv2d(torch.sign(x), w, padding=1)), w, padding=1)

    path = tmp_path / "two_layers.mlir"
    path.write_text(str(driver.import_model(TwoLayers(), (torch.randn(1, 8, 6, 6),))))
    return path


def _stderr_of_compile(ir: Path, out: Path, *, tty: bool) -> str:
    """stderr of `bnnc compile ir --emit=obj` (cache off), on a pseudo-terminal or a pipe."""
    env = {**os.environ, "BNNC_NO_CACHE": "1"}
    env.pop("BNNC_PROGRESS", None)
    cmd = [sys.executable, "-m", "bnnc.cli", "compile", str(ir), "--emit=obj", "-o", str(out)]
    if not tty:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, env=env, stderr=slave, stdout=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO once the child has closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=600) == 0
    return b"".join(chunks).decode(errors="replace")


def test_terminal_shows_stage_pass_and_layer_and_pipes_see_nothing(tmp_path):
    ir = _two_layer_ir(tmp_path)
    text = _stderr_of_compile(ir, tmp_path / "a.o", tty=True)
    for shown in (
        "bnnc: passes: bnn: recognize-binarization",
        "bnnc: passes: loops: convert-bnn-to-loops: layer 1/",
        "_bconv2d",  # a layer function by name
        "bnnc: passes: llvm: convert-memref-to-llvm",
        "bnnc: LLVM IR: function 1/",
        "bnnc: LLVM optimisation and code generation",  # (the parts of the object, in parallel)
    ):
        assert shown in text, (shown, text)
    layers = [part for part in text.split("\r\x1b[K") if "convert-bnn-to-loops: layer " in part]
    assert len(layers) >= 2  # one line per layer
    # the last thing written erases the line; the artifact's own report follows on new lines
    before_report = text.split("bnnc: wrote")[0]
    assert before_report.endswith("\r\x1b[K"), repr(before_report[-60:])
    piped = _stderr_of_compile(ir, tmp_path / "b.o", tty=False)
    assert "\x1b" not in piped and "\r" not in piped
    assert piped.splitlines() == [f"bnnc: wrote {tmp_path / 'b.o'}", f"bnnc: wrote {tmp_path / 'b.h'}"]


def test_lowering_verifies_graph_passes_each_and_the_lowering_once(monkeypatch):
    """driver.lower verifies every graph (bnn) pass, the mechanical lowering
    stages once at the end of the last stage run, and every stage with
    --verify-each or pass plugins (the compile-time saving must not hide a
    broken pass)."""
    from bnnc import driver
    from bnnc.driver import CompileOptions

    calls: list[tuple[str, bool, bool]] = []

    def record(module, spec, ctx, instrument=None, plugins=(), verify_each=True, on_pass=None, verify=True):
        calls.append((spec.split(",")[0], verify_each, verify))

    monkeypatch.setattr(driver, "run_passes", record)
    driver.lower(None, CompileOptions())
    assert [(v_each, v) for _, v_each, v in calls] == [(True, True), (False, False), (False, True)]
    calls.clear()
    driver.lower(None, CompileOptions(), "loops")
    assert [v for *_, v in calls] == [True, True]
    calls.clear()
    driver.lower(None, CompileOptions(pipeline="llvm="))  # an empty last stage: the loops stage is the last run
    assert [v for *_, v in calls] == [True, True]
    for options in (CompileOptions(verify_each=True), CompileOptions(plugins=(__file__,))):
        calls.clear()
        driver.lower(None, options)
        assert all(v for *_, v in calls) and len(calls) == 3
