"""Discovers bnnc's passes: every module `passes/<flag_with_underscores>.py`
defines one `ModulePass` whose `name` is the flag."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from xdsl.passes import ModulePass

import bnnc.passes as _package


def _loader(module_name: str, flag: str) -> Callable[[], type[ModulePass]]:
    def load() -> type[ModulePass]:
        module = importlib.import_module(f"bnnc.passes.{module_name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, ModulePass) and getattr(value, "name", None) == flag:
                return value
        raise LookupError(f"bnnc.passes.{module_name} defines no ModulePass named '{flag}'")

    return load


def bnnc_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Flag -> lazy factory for every pass shipped with bnnc."""
    found: dict[str, Callable[[], type[ModulePass]]] = {}
    for info in pkgutil.iter_modules(_package.__path__):
        if info.name.startswith("_") or info.name == "registry":
            continue
        flag = info.name.replace("_", "-")
        found[flag] = _loader(info.name, flag)
    return found


def all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """xDSL's upstream passes plus bnnc's (bnnc's win on a name clash)."""
    from xdsl.transforms import get_all_passes

    passes = dict(get_all_passes())
    passes.update(bnnc_passes())
    return passes
