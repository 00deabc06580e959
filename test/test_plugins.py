"""Pass plugins: --load-pass-plugin=FILE.py on `bnnc opt` and `bnnc compile`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from ir_helpers import functions, op_counts

from bnnc.cli import main

BCONV_IR = """\
builtin.module {
  func.func @f(%x: tensor<1x4xf32>) -> tensor<1x4xf32> {
    %s = bnn.sign %x : tensor<1x4xf32>
    func.return %s : tensor<1x4xf32>
  }
}
"""

PLUGIN = '''
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, UnitAttr
from xdsl.passes import ModulePass


@dataclass(frozen=True)
class TagFuncs(ModulePass):
    """Marks every function with a `tagged_by_plugin` unit attribute."""

    name = "tag-funcs"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for f in op.walk():
            if isinstance(f, func.FuncOp):
                f.attributes["tagged_by_plugin"] = UnitAttr()
'''


def _tagged(ir: str) -> bool:
    """Whether the plugin's pass ran: the module has functions and each has its attribute."""
    funcs = functions(ir).values()
    return bool(funcs) and all("tagged_by_plugin" in f.attributes for f in funcs)


def run_main(capsys, *args):
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


def assert_user_error(rc, err, *needles):
    assert rc == 2, err
    assert err.count("bnnc: error:") == 1, err
    assert "Traceback" not in err, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in:\n{err}"


@pytest.fixture
def ir(tmp_path):
    path = tmp_path / "f.mlir"
    path.write_text(BCONV_IR)
    return path


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_opt_runs_plugin_pass(capsys, tmp_path, ir):
    plugin = write(tmp_path, "tag_plugin.py", PLUGIN)
    rc, out, err = run_main(capsys, "opt", f"--load-pass-plugin={plugin}", ir, "-p", "canonicalize,tag-funcs")
    assert rc == 0, err
    assert _tagged(out) and op_counts(out)["bnn.sign"] > 0
    # the space-separated spelling, and the plugin's pass in the instrumentation
    rc, out, err = run_main(capsys, "opt", "--load-pass-plugin", plugin, ir, "-p", "tag-funcs", "--print-ir-after=tag-funcs", "--timing")
    assert rc == 0, err
    assert _tagged(out)
    assert "// -----// IR Dump After tag-funcs //----- //" in err and "tag-funcs" in err.split("Wall Time")[-1]


def test_opt_without_plugin_does_not_know_the_pass(capsys, ir):
    rc, out, err = run_main(capsys, "opt", ir, "-p", "tag-funcs")
    assert_user_error(rc, err, "tag-funcs")


def test_compile_pipeline_with_plugin_pass(capsys, tmp_path, ir):
    plugin = write(tmp_path, "tag_plugin2.py", PLUGIN)
    rc, out, err = run_main(
        capsys, "compile", ir, f"--load-pass-plugin={plugin}", "--pipeline", "bnn=canonicalize,tag-funcs", "--emit=bnn",
    )
    assert rc == 0, err
    assert _tagged(out) and op_counts(out)["bnn.sign"] > 0
    rc, out, err = run_main(
        capsys, "compile", ir, f"--load-pass-plugin={plugin}", "--pipeline", "bnn=canonicalize,tag-funcs", "--print-pipeline",
    )
    assert rc == 0 and out.splitlines()[0] == "bnn: canonicalize,tag-funcs", err
    # and all the way to an object
    obj = tmp_path / "f.o"
    rc, out, err = run_main(
        capsys, "compile", ir, f"--load-pass-plugin={plugin}", "--pipeline", "bnn=canonicalize,tag-funcs",
        "--emit=obj", "-o", obj,
    )
    assert rc == 0, err
    assert obj.read_bytes()[:4] == b"\x7fELF"


def test_compile_subprocess_with_plugin(tmp_path, ir):
    plugin = write(tmp_path, "tag_plugin3.py", PLUGIN)
    env = dict(os.environ)
    env.pop("BNNC_TRACEBACK", None)
    r = subprocess.run(
        [sys.executable, "-m", "bnnc.cli", "opt", str(ir), f"--load-pass-plugin={plugin}", "-p", "tag-funcs"],
        capture_output=True, text=True, env=env,
    )
    assert r.returncode == 0, r.stderr
    assert _tagged(r.stdout)


BAD_PLUGINS = {
    "syntax": ("def broken(:\n    pass\n", ["failed to import", "SyntaxError"]),
    "raises": ("raise RuntimeError('plugin says no')\n", ["failed to import", "RuntimeError", "plugin says no"]),
    "import_error": ("import no_such_module_for_bnnc_tests\n", ["failed to import", "no_such_module_for_bnnc_tests"]),
    "no_pass": ("X = 1\n\ndef helper():\n    return 2\n", ["defines no pass", "ModulePass"]),
    "collides": (
        PLUGIN.replace('name = "tag-funcs"', 'name = "canonicalize"'),
        ["canonicalize", "collides with a built-in pass"],
    ),
    "twice": (
        PLUGIN + PLUGIN.replace("class TagFuncs", "class TagFuncsAgain"),
        ["tag-funcs", "defined twice"],
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_PLUGINS))
@pytest.mark.parametrize("command", ["opt", "compile"])
def test_bad_plugin(capsys, tmp_path, ir, kind, command):
    text, needles = BAD_PLUGINS[kind]
    plugin = write(tmp_path, f"bad_{kind}.py", text)
    if command == "opt":
        args = ["opt", f"--load-pass-plugin={plugin}", ir, "-p", "canonicalize"]
    else:
        args = ["compile", ir, f"--load-pass-plugin={plugin}", "--pipeline", "bnn=canonicalize", "--emit=bnn"]
    rc, out, err = run_main(capsys, *args)
    assert_user_error(rc, err, f"bad_{kind}.py", *needles)
    assert out == ""


@pytest.mark.parametrize("command", ["opt", "compile"])
def test_missing_plugin_file(capsys, tmp_path, ir, command):
    missing = tmp_path / "nowhere.py"
    if command == "opt":
        args = ["opt", f"--load-pass-plugin={missing}", ir]
    else:
        args = ["compile", ir, f"--load-pass-plugin={missing}", "--emit=bnn"]
    rc, out, err = run_main(capsys, *args)
    assert_user_error(rc, err, "nowhere.py", "no such file")


def test_bad_plugin_subprocess_has_no_traceback(tmp_path, ir):
    plugin = write(tmp_path, "bad_sub.py", "raise ValueError('boom')\n")
    env = dict(os.environ)
    env.pop("BNNC_TRACEBACK", None)
    r = subprocess.run(
        [sys.executable, "-m", "bnnc.cli", "opt", str(ir), f"--load-pass-plugin={plugin}", "-p", "canonicalize"],
        capture_output=True, text=True, env=env,
    )
    assert_user_error(r.returncode, r.stderr, "bad_sub.py", "ValueError", "boom")
