"""Passes users add: a Python file given with --load-pass-plugin, or an
installed package exposing passes in the `bnnc.passes` entry-point group.

A plugin file defines one or more xDSL `ModulePass` subclasses with a `name`;
an entry point names one such class (`my-pass = "pkg.module:MyPass"`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from xdsl.passes import ModulePass

from bnnc.errors import PassError
from bnnc.passes.registry import all_passes

ENTRY_POINT_GROUP = "bnnc.passes"


def _passes_in_file(path: str) -> list[type[ModulePass]]:
    file = Path(path)
    if not file.is_file():
        raise PassError(f"pass plugin {path}: no such file")
    module_name = f"bnnc_plugin_{file.stem}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise PassError(f"pass plugin {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[module_name]
        raise PassError(f"pass plugin {path} failed to import: {type(e).__name__}: {e}") from None
    found = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, ModulePass) and v.__module__ == module_name and isinstance(getattr(v, "name", None), str)
    ]
    if not found:
        raise PassError(f"pass plugin {path} defines no pass: add a subclass of xdsl.passes.ModulePass with a `name`")
    return found


def _entry_point_passes() -> list[tuple[str, type[ModulePass]]]:
    found = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as e:
            raise PassError(f"pass plugin entry point '{ep.name}' ({ep.value}) failed to import: {e}") from None
        if not (isinstance(cls, type) and issubclass(cls, ModulePass)):
            raise PassError(f"pass plugin entry point '{ep.name}' ({ep.value}) is not a ModulePass subclass")
        found.append((ep.value, cls))
    return found


def load_plugins(paths: Sequence[str] = ()) -> dict[str, Callable[[], type[ModulePass]]]:
    """Pass name -> factory for every plugin pass; a name that collides with a
    built-in pass or another plugin is an error."""
    builtin = all_passes()
    plugins: dict[str, Callable[[], type[ModulePass]]] = {}
    sources: list[tuple[str, type[ModulePass]]] = [(p, cls) for p in paths for cls in _passes_in_file(p)]
    sources += _entry_point_passes()
    for origin, cls in sources:
        name = cls.name
        if name in builtin:
            raise PassError(f"pass plugin {origin}: pass name '{name}' collides with a built-in pass; rename it")
        if name in plugins:
            raise PassError(f"pass plugin {origin}: pass name '{name}' is defined twice")
        plugins[name] = (lambda c: lambda: c)(cls)
    return plugins
