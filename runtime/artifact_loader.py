"""Load a bnnc shared library into this process and call it like the JIT.

The library describes itself: `<name>_bnnc_signature` holds its signature as
JSON. A library for another architecture is refused before dlopen."""

from __future__ import annotations

import ctypes
import platform
from pathlib import Path

from bnnc.errors import ModelLoadError
from bnnc.runtime.compiled_model import CompiledModel
from bnnc.runtime.signature import Signature

ELF_MACHINES = {62: "x86_64", 183: "aarch64", 3: "i386", 40: "arm"}


def elf_machine(path: str) -> str:
    """The architecture an ELF file is built for, or a ModelLoadError."""
    try:
        head = Path(path).read_bytes()[:20]
    except OSError as e:
        raise ModelLoadError(f"cannot read {path}: {e.strerror}") from None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        raise ModelLoadError(f"{path} is not an ELF file (expected a .so or .o written by `bnnc compile`)")
    order = "little" if head[5] == 1 else "big"
    machine = int.from_bytes(head[18:20], order)
    return ELF_MACHINES.get(machine, f"machine {machine}")


def load_artifact(path: str, name: str) -> CompiledModel:
    arch = elf_machine(path)
    host = platform.machine().replace("arm64", "aarch64")
    if arch != host:
        raise ModelLoadError(
            f"{path} is built for {arch} and this machine is {host}: it cannot be loaded here. "
            f"Run it on a {arch} machine, or under emulation through the C example "
            f"(see examples/c: qemu-{arch} -L /usr/{arch}-linux-gnu ./run_model ...)"
        )
    if path.endswith(".o"):
        raise ModelLoadError(f"{path} is an object file; link it into a program or use --emit=so to get a loadable library")
    try:
        lib = ctypes.CDLL(str(Path(path).resolve()))
    except OSError as e:
        raise ModelLoadError(f"cannot load {path}: {e}") from None
    try:
        # The symbol is a char array: its address is the string.
        raw = ctypes.cast(getattr(lib, f"{name}_bnnc_signature"), ctypes.c_char_p).value
    except AttributeError:
        raise ModelLoadError(
            f"{path} has no entry point '{name}' built by bnnc; pass --name with the name it was compiled with"
        ) from None
    signature = Signature.from_json(raw.decode())
    address = ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
    return CompiledModel(address, signature, lib)
