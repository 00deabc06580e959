"""Split a model's LLVM module into parts that LLVM optimises and compiles
separately (in parallel: `bnnc.llvm_jobs`), to be linked as one program by
the JIT.

What goes where:
- a *layer function* (internal and `noinline`: what `to_llvmlite_module`
  makes of every kernel convert-bnn-to-loops outlined) goes to any part:
  the parts are balanced by IR size, largest functions first;
- everything else (the entry points, the thread pool, the layer timers,
  globals with more than one user) is in part 0.

A layer function's machine code must not depend on how many parts there
are (a model compiled on 1 core and on 8 runs the same kernels): so every
layer function is external in every split, even into 1 part, whichever part
its callers are in, and so is every global with more than one user (defined
in part 0, declared where used). A global used by one function
stays internal, next to it. LLVM optimises functions one at a time (layer
functions are `noinline`), so this loses only what it could infer about a
layer function from its one call site.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llvmlite import ir

# A reference to a global symbol in llvmlite's IR text (it always quotes names;
# a `"` inside a name or a c"..." string constant is escaped as \22).
_REFERENCE = re.compile(r'@"(?:[^"\\]|\\.)*"')
_INTERNAL = ("internal", "private")


@dataclass
class _Part:
    definitions: list[str] = field(default_factory=list)
    defined: set[str] = field(default_factory=set)  # references (@"name") defined here
    size: int = 0


def is_layer_function(fn: ir.Function) -> bool:
    return not fn.is_declaration and fn.linkage in _INTERNAL and "noinline" in fn.attributes


def split_module(module: ir.Module, parts: int, extra_text: str = "", *, hidden: bool = False) -> list[str]:
    """The IR text of up to `parts` modules that together define what `module`
    does; `extra_text` (top-level IR) goes into part 0. Changes the linkage of
    `module`'s layer functions and shared globals to external; with `hidden`,
    external with hidden visibility (an artifact's parts: linked into one
    object or library, they export only what the unsplit module exports, and
    position-independent code reaches them directly, not through the GOT)."""
    layer = [v for v in module.globals.values() if isinstance(v, ir.Function) and is_layer_function(v)]
    if not layer:
        return [f"{module}\n{extra_text}"]
    # (llvmlite has no visibility field; "hidden" in the linkage's place prints
    # as `define hidden` / `@g = hidden global`, LLVM's syntax for it)
    external = "hidden" if hidden else ""
    layer_refs = {fn.get_reference() for fn in layer}
    for fn in layer:
        fn.linkage = external
    functions = [v for v in module.globals.values() if isinstance(v, ir.Function) and not v.is_declaration]
    texts = {fn.get_reference(): str(fn) for fn in functions}
    uses = {ref: set(_REFERENCE.findall(text)) for ref, text in texts.items()}

    users: dict[str, set[str]] = {}
    for ref, used in uses.items():
        for name in used:
            users.setdefault(name, set()).add(ref)
    for name in _REFERENCE.findall(extra_text):
        users.setdefault(name, set()).add("")
    variables = [v for v in module.globals.values() if isinstance(v, ir.GlobalVariable)]
    for var in variables:
        text = str(var) if var.initializer is not None and not _is_plain_data(var) else ""
        uses[var.get_reference()] = set(_REFERENCE.findall(text)) - {var.get_reference()}
        for name in uses[var.get_reference()]:
            users.setdefault(name, set()).add(var.get_reference())
    # A non-layer function a layer function calls is reached from other parts.
    for fn in functions:
        ref = fn.get_reference()
        if ref not in layer_refs and fn.linkage in _INTERNAL and any(
            u in layer_refs for u in users.get(ref, ())
        ):
            fn.linkage = external
            texts[ref] = str(fn)

    split = [_Part() for _ in range(max(1, min(parts, len(layer))))]
    home: dict[str, int] = {}
    for ref in texts.keys() - layer_refs:
        home[ref] = 0
        split[0].size += len(texts[ref])
    for fn in sorted(layer, key=lambda f: (-len(texts[f.get_reference()]), f.name)):
        i = min(range(len(split)), key=lambda k: (split[k].size, k))
        home[fn.get_reference()] = i
        split[i].size += len(texts[fn.get_reference()])

    for var in variables:
        ref = var.get_reference()
        owners = users.get(ref, set())
        if len(owners) == 1 and (owner := next(iter(owners))) in home:
            i = home[owner]
        else:
            i = 0
            if owners and var.linkage in _INTERNAL:  # (an unused one stays internal: LLVM drops it)
                var.linkage = external
        split[i].definitions.append(str(var))
        split[i].defined.add(ref)
    for fn in functions:
        ref = fn.get_reference()
        split[home[ref]].definitions.append(texts[ref])
        split[home[ref]].defined.add(ref)

    made_hidden = {v.get_reference() for v in (*functions, *variables) if hidden and v.linkage == "hidden"}
    declarations = _declarations(module, made_hidden)
    header = [
        f'target triple = "{module.triple}"\ntarget datalayout = "{module.data_layout}"\n',
        *(t.get_declaration() for t in module.get_identified_types().values()),
    ]
    metadata = module._get_metadata_lines()  # (unnamed !N nodes are numbered module-wide: all go to every part)
    out = []
    for i, part in enumerate(split):
        used = set().union(*(uses[r] for r in part.defined))
        if i == 0:
            used |= set(_REFERENCE.findall(extra_text))
        needed = [declarations[r] for r in sorted(used - part.defined) if r in declarations]
        tail = extra_text if i == 0 else ""
        out.append("\n".join([*header, *needed, *part.definitions, *metadata, tail]))
    return out


def _is_plain_data(var: ir.GlobalVariable) -> bool:
    """An array of bytes or numbers, which refers to no symbol (weights: not worth rendering twice)."""
    return isinstance(var.value_type, ir.ArrayType) and not isinstance(var.value_type.element, (ir.PointerType, ir.BaseStructType))


def _declarations(module: ir.Module, hidden: set[str]) -> dict[str, str]:
    """A declaration of every global symbol of `module`, by reference; those
    in `hidden` (defined in another part) with hidden visibility."""
    scratch = ir.Module()
    out: dict[str, str] = {}
    for v in module.globals.values():
        if isinstance(v, ir.Function):
            decl = v if v.is_declaration else ir.Function(scratch, v.function_type, v.name)
        elif isinstance(v, ir.GlobalVariable):
            decl = ir.GlobalVariable(scratch, v.value_type, v.name, addrspace=v.addrspace)
            decl.global_constant = v.global_constant
            decl.align = v.align
        else:
            continue
        text = str(decl)
        if v.get_reference() in hidden:
            text = re.sub(r"^(declare|@\S+ = external) ", r"\1 hidden ", text, count=1)
        out[v.get_reference()] = text
    return out
