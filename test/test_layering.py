"""The layering rules of docs/architecture.md, checked on the source so that a
violation fails CI instead of waiting for a reader to notice:

    dialects  <--  passes  <--  compiler  -->  runtime

Every import statement in dialects/, passes/ and runtime/ (at module level or
inside a function: a lazy import is still a dependency) is resolved to a
module name and checked against what its layer may import. Two subprocess
checks then confirm what the rules are for: `bnnc opt` and every pass load no
LLVM backend, and `bnnc --help` loads neither xDSL, llvmlite nor torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# folder -> (its import name, the bnnc modules it may import (prefixes), third-party modules it must not import)
LAYERS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "dialects": ("bnnc.dialects", ("bnnc.dialects",), ("llvmlite", "torch")),
    "passes": ("bnnc.passes", ("bnnc.dialects", "bnnc.passes"), ("llvmlite",)),
    "runtime": ("bnnc.runtime", ("bnnc.runtime",), ("llvmlite",)),
}


def imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file; `from X import
    Y` counts as X.Y, since Y may be a submodule (`from bnnc import errors`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_violations(folder: str) -> list[str]:
    """Each import in `folder` that its layer may not make, as 'file:line: module'."""
    package, allowed, forbidden = LAYERS[folder]
    problems = []
    for path in sorted((REPO / folder).rglob("*.py")):
        sub = ".".join(path.relative_to(REPO / folder).with_suffix("").parts)
        own_package = package if path.name == "__init__.py" or "." not in sub else f"{package}.{sub.rsplit('.', 1)[0]}"
        for line, module in sorted(imported_modules(path, own_package)):
            bad_bnnc = _within(module, "bnnc") and not any(_within(module, p) for p in allowed)
            bad_other = any(_within(module, f) for f in forbidden)
            if bad_bnnc or bad_other:
                problems.append(f"{path.relative_to(REPO)}:{line}: {module}")
    return problems


@pytest.mark.parametrize("folder", sorted(LAYERS))
def test_layer_imports_only_what_it_may(folder):
    assert layer_violations(folder) == []


def test_the_check_sees_a_violation(tmp_path, monkeypatch):
    """The checker itself: a pass that imports the driver (lazily, by a relative
    import from the compiler package, or as `from bnnc import X`) is caught."""
    bad = tmp_path / "passes"
    bad.mkdir()
    (bad / "p.py").write_text(
        "from bnnc.dialects import bnn\nfrom bnnc.passes._graph import x\n"
        "def f():\n    from bnnc.driver import build\n    import llvmlite.binding\n"
        "from bnnc import errors\nfrom .. import codegen\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert layer_violations("passes") == [
        "passes/p.py:4: bnnc.driver.build",
        "passes/p.py:5: llvmlite.binding",
        "passes/p.py:6: bnnc.errors",
        "passes/p.py:7: bnnc.codegen",
    ]


def _loaded_after(code: str) -> set[str]:
    """The top-level packages loaded by running `code` in a fresh interpreter."""
    probe = code + "\nimport sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


def test_opt_and_every_pass_load_no_backend():
    """`bnnc opt` and pass plugins do not pay for llvmlite (or torch)."""
    loaded = _loaded_after(
        "import bnnc.opt\nfrom bnnc.passes.registry import all_passes\nall_passes()\n"
        "import pkgutil, importlib, bnnc.passes\n"
        "for m in pkgutil.iter_modules(bnnc.passes.__path__):\n"
        "    importlib.import_module('bnnc.passes.' + m.name)\n"
    )
    assert "xdsl" in loaded and not loaded & {"llvmlite", "torch"}


@pytest.mark.parametrize("argv", [["--help"], ["compile", "--help"], ["run", "--help"], ["--version"]])
def test_help_loads_no_compiler(argv):
    """`bnnc --help` answers without importing xDSL, llvmlite or torch."""
    code = f"import sys\nfrom bnnc.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert not _loaded_after(code) & {"xdsl", "llvmlite", "torch"}
