"""What an artifact's header documents beyond its signature (scratch memory,
mutable globals, threads), measured on optimised LLVM IR.

Kept apart from `bnnc.artifacts` and free of xDSL so that the processes of
`bnnc.llvm_jobs` measure their own part and send back these few facts, not
the part's whole optimised IR (megabytes of text per part of Bi-Real-Net-18).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

# The thread pool's state global of a function ends with this (the contract
# of bnnc.passes._parallel_contract.pool_global, which loads no xDSL either).
from bnnc.passes._parallel_contract import pool_global


@dataclass(frozen=True)
class ArtifactFacts:
    """What the header documents beyond the signature, measured on the artifact."""

    libc_symbols: tuple[str, ...] = ()
    scratch_bytes: int | None = None  # sum of the scratch allocations; None: not all sizes are constant
    scratch_allocations: int = 0
    mutable_globals: tuple[str, ...] = ()
    creates_threads: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> ArtifactFacts:
        data = json.loads(text)
        return ArtifactFacts(
            libc_symbols=tuple(data["libc_symbols"]),
            scratch_bytes=data["scratch_bytes"],
            scratch_allocations=int(data["scratch_allocations"]),
            mutable_globals=tuple(data["mutable_globals"]),
            creates_threads=bool(data["creates_threads"]),
        )


_ALLOCATION = re.compile(r"call [^\n]*@(?:aligned_alloc|malloc)\(([^)]*)\)")
_CONSTANT_SIZE = re.compile(r"i(?:32|64) (\d+)\s*$")  # size_t is i32 on 32-bit targets
_MUTABLE_GLOBAL = re.compile(r'^@("?[^\s=]+"?) = (?![^\n]*\bconstant\b)[^\n]*\bglobal\b', re.MULTILINE)


def measure_module(module: Any) -> ArtifactFacts:
    """The facts of one optimised LLVM module (a ModuleRef or its IR text)."""
    text = str(module)
    sizes = _ALLOCATION.findall(text)
    total: int | None = 0
    for args in sizes:
        m = _CONSTANT_SIZE.search(args)
        total = None if m is None or total is None else total + int(m.group(1))
    mutable = {m.group(1): None for m in _MUTABLE_GLOBAL.finditer(text) if not _thread_pool_state(m.group(1).strip('"'))}
    return ArtifactFacts(
        scratch_bytes=total,
        scratch_allocations=len(sizes),
        mutable_globals=tuple(mutable),
        creates_threads="@pthread_create" in text,
    )


def combine(parts: list[ArtifactFacts]) -> ArtifactFacts:
    """The facts of the parts of a split module, linked into one artifact
    (a global defined in one part and declared in others counts once)."""
    sizes = [p.scratch_bytes for p in parts]
    return ArtifactFacts(
        scratch_bytes=None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None),
        scratch_allocations=sum(p.scratch_allocations for p in parts),
        mutable_globals=tuple({name: None for p in parts for name in p.mutable_globals}),
        creates_threads=any(p.creates_threads for p in parts),
    )


def measure(*modules: Any) -> ArtifactFacts:
    """The facts of an optimised LLVM module, or of the parts of a split one
    (modules or IR texts)."""
    return combine([measure_module(m) for m in modules])


def _thread_pool_state(name: str) -> bool:
    """The thread pool's own globals (its state, taken by one call at a time,
    and the destructor list that joins its workers) keep calls reentrant."""
    return name.endswith(pool_global("")) or name == "llvm.global_dtors"
