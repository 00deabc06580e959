"""A persistent compile cache, so that compiling the same model again (in a new
process) loads machine code instead of re-running import, passes and LLVM.

Where: `$BNNC_CACHE_DIR`, else `$XDG_CACHE_HOME/bnnc`, else `~/.cache/bnnc`;
off with `bnnc.compile(..., cache=False)`, `bnnc run --no-cache` or BNNC_NO_CACHE=1.
The directory is the user's own: bnnc trusts what is in it exactly as much as
the user's other files, and loads from it only object code bnnc wrote itself
(an entry is a header naming its key, then the object, checked by SHA-256; it
is linked by LLVM's MCJIT, never executed as a script, unpickled or dlopen'ed).

Key: SHA-256 over
  - the model: the bnn IR text after import (exact), or, for a `.pt2` / `.pt`
    file, the contents of its zip members (`torch.export.save` writes the same
    members on every save, but not the same zip bytes), its example input shapes
    and `trust`; a file key is an alias of the IR key it was compiled under;
  - every `CompileOptions` field but the instrumentation and `jobs`, the resolved target
    (triple, CPU, full feature string) and thread count, the contents of pass
    plugin files, and what the code is for (JIT or artifact);
  - bnnc's version and the SHA-256 of bnnc's own source files, and the versions
    of llvmlite, LLVM, xDSL, numpy and torch.
Entries are written to a temporary file in the cache directory and renamed
into place (atomic on POSIX), so concurrent compiles of one model at worst
write the same entry twice; any entry that fails its checks is ignored (and
rebuilt by the compile that finds it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import itertools
import json
import os
import struct
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

MAGIC = b"BNNCC02\n"  # 8 bytes; the digits are the format version
_HEADER = struct.Struct("<8sI")  # magic (padded to 8), header-JSON length
_MAX_HEADER = 1 << 20
_SUFFIX = ".bnncc"


def cache_dir() -> Path:
    """The cache directory (not created here)."""
    override = os.environ.get("BNNC_CACHE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bnnc"


def disabled() -> bool:
    """BNNC_NO_CACHE=1 turns the cache off for every compile (as --no-cache / cache=False)."""
    return os.environ.get("BNNC_NO_CACHE", "") not in ("", "0")


# --------------------------------------------------------------------------
# fingerprints
# --------------------------------------------------------------------------


def _bnnc_source_dirs() -> list[Path]:
    """The directories of bnnc's packages (the repository maps them from
    compiler/, dialects/, passes/, runtime/)."""
    dirs = []
    for name in ("bnnc", "bnnc.dialects", "bnnc.passes", "bnnc.runtime"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs.extend(Path(p) for p in spec.submodule_search_locations)
    return sorted(set(dirs))


@lru_cache(maxsize=1)
def environment_digest() -> str:
    """What the compiler itself is: bnnc's version and source files, and the
    versions of the libraries that shape its output. A change to any of them
    invalidates every entry."""
    import llvmlite
    import llvmlite.binding as llvm
    import numpy
    import xdsl

    import bnnc

    h = hashlib.sha256()
    h.update(f"bnnc {bnnc.__version__}\0python {sys.version_info[:2]}\0".encode())
    h.update(f"llvmlite {llvmlite.__version__} llvm {llvm.llvm_version_info}\0".encode())
    # xdsl.__version__ reads package metadata (0.1 s): its dist-info's name says it.
    dists = sorted(p.name for p in Path(xdsl.__file__).parent.parent.glob("xdsl-*.dist-info"))
    h.update(f"xdsl {dists} numpy {numpy.__version__}\0".encode())
    # torch's version without importing torch (seconds): its version.py.
    torch_spec = importlib.util.find_spec("torch")
    if torch_spec is not None and torch_spec.submodule_search_locations:
        version_py = Path(list(torch_spec.submodule_search_locations)[0]) / "version.py"
        h.update(b"torch\0" + (version_py.read_bytes() if version_py.is_file() else b"?"))
    for root in _bnnc_source_dirs():
        for path in sorted(root.rglob("*")):
            if path.suffix in (".py", ".c") and "__pycache__" not in path.parts and path.is_file():
                h.update(f"\0{path.relative_to(root)}\0".encode())
                h.update(path.read_bytes())
    return h.hexdigest()


def options_digest(options: Any, purpose: str) -> str:
    """Every field of a CompileOptions but the instrumentation and `jobs` (new fields are
    covered without a change here), plus what they resolve to on this machine."""
    # (`jobs` changes how fast LLVM runs, not the code: bnnc.llvm_split)
    fields = {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if f.name not in ("instrument", "jobs")}
    target = options.resolved_target()
    h = hashlib.sha256()
    h.update(json.dumps(
        {
            "fields": {k: repr(v) for k, v in sorted(fields.items())},
            "target": [target.name, target.triple, target.cpu, target.features],
            "threads": options.resolved_threads(),
            "purpose": purpose,
        },
        sort_keys=True,
    ).encode())
    for plugin in options.plugins:  # a plugin's passes are code we run: hash its text
        try:
            h.update(Path(plugin).read_bytes())
        except OSError:
            h.update(b"<unreadable plugin>")
    return h.hexdigest()


def _zip_members_digest(path: str) -> str | None:
    """SHA-256 of a zip's member names (less a common top-level folder, which
    torch.export.save names after the file) and contents; None if not a zip."""
    try:
        with zipfile.ZipFile(path) as z:
            infos = [i for i in z.infolist() if not i.is_dir()]
            names = [i.filename for i in infos]
            tops = {n.split("/", 1)[0] for n in names}
            strip = len(tops) == 1 and all("/" in n for n in names)
            h = hashlib.sha256()
            for info in sorted(infos, key=lambda i: i.filename):
                name = info.filename.split("/", 1)[1] if strip else info.filename
                h.update(f"\0{name}\0{info.file_size}\0".encode())
                with z.open(info) as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
            return h.hexdigest()
    except (OSError, zipfile.BadZipFile, ValueError, NotImplementedError, RuntimeError):
        return None


def source_key(model: Any, example_inputs: Any, options: Any, *, trust: bool, purpose: str) -> str | None:
    """A key computed from a `.pt2` / `.pt` file without loading it, or None
    when there is none (other inputs are keyed by their imported IR)."""
    if not (isinstance(model, str) or hasattr(model, "__fspath__")):
        return None
    path = os.fspath(model)
    if not path.lower().endswith((".pt2", ".pt")):
        return None
    members = _zip_members_digest(path)
    if members is None:
        return None
    examples = example_inputs if isinstance(example_inputs, (tuple, list)) or example_inputs is None else (example_inputs,)
    shapes = None if examples is None else [[list(getattr(t, "shape", ())), str(getattr(t, "dtype", ""))] for t in examples]
    model_part = json.dumps({"file": members, "inputs": shapes, "trust": trust}, sort_keys=True)
    return _key("file", model_part, options, purpose)


def ir_key(module: Any, options: Any, *, purpose: str) -> str:
    """The key of an imported bnn module: its printed IR (exact, and what every
    frontend produces)."""
    return _key("ir", hashlib.sha256(str(module).encode()).hexdigest(), options, purpose)


def _key(kind: str, model_part: str, options: Any, purpose: str) -> str:
    h = hashlib.sha256()
    for part in (kind, model_part, options_digest(options, purpose), environment_digest()):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


# --------------------------------------------------------------------------
# entries
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A cached compile: the model's signature (JSON), the target triple, and
    the object code bnnc emitted (one object per part of a split module:
    bnnc.llvm_split); `meta` holds what else a consumer needs."""

    signature_json: str
    triple: str
    objects: tuple[bytes, ...]
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


def _path(key: str) -> Path:
    return cache_dir() / key[:2] / f"{key}{_SUFFIX}"


def _write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or all of the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _encode(key: str, header: dict[str, Any], payload: bytes) -> bytes:
    header = {**header, "key": key, "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    text = json.dumps(header, sort_keys=True).encode()
    return _HEADER.pack(MAGIC, len(text)) + text + payload


def _decode(key: str, data: bytes) -> tuple[dict[str, Any], bytes] | None:
    """The header and payload of an entry, or None if anything is off."""
    if len(data) < _HEADER.size:
        return None
    magic, n = _HEADER.unpack_from(data)
    if magic != MAGIC or n > _MAX_HEADER or len(data) < _HEADER.size + n:
        return None
    try:
        header = json.loads(data[_HEADER.size : _HEADER.size + n])
    except (ValueError, UnicodeDecodeError):
        return None
    payload = data[_HEADER.size + n :]
    if (
        not isinstance(header, dict)
        or header.get("key") != key
        or header.get("size") != len(payload)
        or header.get("sha256") != hashlib.sha256(payload).hexdigest()
    ):
        return None
    return header, payload


def _read(key: str) -> tuple[dict[str, Any], bytes] | None:
    try:
        data = _path(key).read_bytes()
    except OSError:
        return None
    return _decode(key, data)


def load(key: str) -> Entry | None:
    """The entry under `key` (following one alias), or None: missing, corrupt,
    truncated, or written for another key are all misses."""
    found = _read(key)
    if found is not None and "alias" in found[0]:
        target = found[0]["alias"]
        found = _read(target) if isinstance(target, str) and "alias" not in target else None
    if found is None:
        return None
    header, payload = found
    try:
        if "alias" in header:
            return None
        sizes = [int(n) for n in header["objects"]]
        if sum(sizes) != len(payload) or min(sizes, default=-1) < 0:
            return None
        objects = tuple(payload[end - n : end] for n, end in zip(sizes, itertools.accumulate(sizes)))
        return Entry(str(header["signature"]), str(header["triple"]), objects, dict(header.get("meta", {})))
    except (KeyError, TypeError, ValueError):
        return None


def store(key: str, entry: Entry) -> None:
    """Save `entry` under `key`; a cache that cannot be written is not an error
    (the compile already succeeded)."""
    header = {"signature": entry.signature_json, "triple": entry.triple, "meta": entry.meta,
              "objects": [len(o) for o in entry.objects]}
    try:
        _write_atomic(_path(key), _encode(key, header, b"".join(entry.objects)))
    except OSError:
        pass


def store_alias(key: str, target_key: str) -> None:
    """Make `key` (a file key) find the entry of `target_key` (its IR key)."""
    try:
        _write_atomic(_path(key), _encode(key, {"alias": target_key}, b""))
    except OSError:
        pass


# --------------------------------------------------------------------------
# loading cached code
# --------------------------------------------------------------------------


class ObjectJit:
    """Links the object code bnnc emitted for the host JIT (`driver.jit_objects`:
    one object per part, which call each other) into this process with MCJIT,
    as `JitModule` does for a module. Keep it alive while addresses from it
    are in use."""

    def __init__(self, objects: Sequence[bytes], target: Any):
        import llvmlite.binding as llvm

        from bnnc.errors import TargetError
        from bnnc.machine_code import target_machine

        if target.triple != llvm.get_process_triple():
            raise TargetError(f"cannot JIT for '{target.triple}' on a '{llvm.get_process_triple()}' host")
        self.target = target
        self._tm = target_machine(target, jit=True)  # (llvmlite only: a cache hit loads no xDSL)
        empty = llvm.parse_assembly(f'target triple = "{target.triple}"\n')
        self._engine = llvm.create_mcjit_compiler(empty, self._tm)
        self._objects = [llvm.ObjectFileRef.from_data(code) for code in objects]
        for obj in self._objects:
            self._engine.add_object_file(obj)
        self._engine.finalize_object()

    def address_of(self, symbol: str) -> int:
        addr = self._engine.get_function_address(symbol)
        if not addr:
            addr = self._engine.get_global_value_address(symbol)
        if not addr:
            raise KeyError(f"symbol '{symbol}' not found in the cached object")
        return addr


def _lookup(key: str, file_key: str | None, from_entry: Any) -> Any | None:
    """The usable build stored under `key` (None: absent, damaged or stale);
    a hit also records the model file's key as an alias of it."""
    if (entry := load(key)) is None or (hit := from_entry(entry)) is None:
        return None
    if file_key is not None:
        store_alias(file_key, key)
    return hit


def _store(key: str, entry: Entry, file_key: str | None) -> None:
    store(key, entry)
    if file_key is not None:
        store_alias(file_key, key)


def _instrumented(options: Any) -> bool:
    """IR dumps and timings describe a compile that runs: never serve them from the cache."""
    inst = options.instrument
    return bool(inst.print_after_all or inst.print_after or inst.print_before or inst.timing)


def cached_build(model: Any, example_inputs: Any, options: Any, *, trust: bool) -> Any:
    """`driver.build` for the host JIT through the cache: a `.pt2`/`.pt` file is
    looked up before it is even loaded, anything else after import (by its IR);
    a miss compiles, emits the JIT object once and stores it under both keys."""
    from bnnc import driver, progress
    from bnnc.runtime.signature import Signature

    target = options.resolved_target()
    if _instrumented(options) or not target.is_host or disabled():
        return driver.build(model, example_inputs, options, trust=trust, for_jit=True)

    def from_entry(entry: Entry) -> Any | None:
        if entry.triple != target.triple:
            return None
        try:
            signature = Signature.from_json(entry.signature_json)
        except Exception:  # a malformed signature is a corrupt entry
            return None
        return driver.Build(signature, target, None, entry.objects)

    try:
        progress.stage("compile cache")
        file_key = source_key(model, example_inputs, options, trust=trust, purpose="jit")
        if file_key is not None and (entry := load(file_key)) is not None and (hit := from_entry(entry)) is not None:
            return hit
        progress.stage("import")
        module = model if isinstance(model, driver.ModuleOp) else driver.import_model(
            model, example_inputs, name=options.name, trust=trust
        )
        key = ir_key(module, options, purpose="jit")
        if (hit := _lookup(key, file_key, from_entry)) is not None:
            return hit
        built = driver.build(module, None, options, for_jit=True)
        assert built.objects is not None
        _store(key, Entry(built.signature.to_json(), target.triple, built.objects), file_key)
        return built
    finally:
        progress.done()


# --------------------------------------------------------------------------
# artifacts (bnnc compile --emit=obj|so)
# --------------------------------------------------------------------------


def artifact_build(
    model: Any, options: Any, importer: Any, *, kind: str = "obj", trust: bool = False, cache: bool = True
) -> tuple[Any, tuple[bytes, ...], Any]:
    """The signature, relocatable object code and measured facts
    (artifacts.ArtifactFacts) of a `kind` ("obj" or "so") artifact for
    `options`' target, through the cache as for the JIT: a `.pt2`/`.pt`
    `model` path is looked up before `importer()` imports it, anything else by
    the imported IR. The object code is the parts of a split module, compiled
    in parallel (driver.parallel_objects), when the artifact's linker can join
    them: always for a `.so`, for an object if GNU ld -r is there; else one
    object, what `codegen.emit_object` writes (purpose "object": JIT code is
    other code). Linking and writing the header stay with the caller."""
    from bnnc import artifacts, driver, progress
    from bnnc.runtime.signature import Signature

    target = options.resolved_target()
    use_cache = cache and not disabled() and not _instrumented(options)
    linkable = kind == "so" or artifacts.find_relocatable_linker(target) is not None

    def from_entry(entry: Entry) -> tuple[Any, tuple[bytes, ...], Any] | None:
        try:
            if entry.triple != target.triple:
                return None
            if not entry.objects or (len(entry.objects) > 1 and not linkable):
                return None
            return Signature.from_json(entry.signature_json), entry.objects, artifacts.ArtifactFacts(
                scratch_bytes=entry.meta["scratch_bytes"],
                scratch_allocations=int(entry.meta["scratch_allocations"]),
                mutable_globals=tuple(entry.meta["mutable_globals"]),
                creates_threads=bool(entry.meta["creates_threads"]),
            )
        except Exception:  # a malformed entry is a corrupt one
            return None

    try:
        file_key = None
        if use_cache:
            progress.stage("compile cache")
            file_key = source_key(model, None, options, trust=trust, purpose="object")
            if file_key is not None and (entry := load(file_key)) is not None and (hit := from_entry(entry)):
                return hit
        progress.stage("import")
        module = importer()
        key = ir_key(module, options, purpose="object") if use_cache else None
        if key is not None and (hit := _lookup(key, file_key, from_entry)) is not None:
            return hit
        from bnnc.codegen import emit_object

        built = driver.build(module, None, options, for_linker=linkable)
        if built.objects is not None:
            assert built.facts is not None
            code, facts = built.objects, built.facts
        else:  # (a dynamic-batch build is one module)
            progress.stage("machine code")
            code, facts = (emit_object(built.llvm_module, target),), artifacts.measure(built.llvm_module)
        if key is not None:
            meta = {
                "scratch_bytes": facts.scratch_bytes,
                "scratch_allocations": facts.scratch_allocations,
                "mutable_globals": list(facts.mutable_globals),
                "creates_threads": facts.creates_threads,
            }
            _store(key, Entry(built.signature.to_json(), target.triple, code, meta), file_key)
        return built.signature, code, facts
    finally:
        progress.done()
