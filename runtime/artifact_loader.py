"""Load a bnnc shared library into this process and call it like the JIT.

The library describes itself: `<name>_bnnc_signature` holds its signature as
JSON. A library for another architecture is refused before dlopen."""

from __future__ import annotations

import ctypes
import platform
import struct
from dataclasses import dataclass
from pathlib import Path

from bnnc.runtime.compiled_model import CompiledModel
from bnnc.runtime.errors import ModelLoadError
from bnnc.runtime.signature import SIGNATURE_SUFFIX, Signature, signature_symbol

ELF_MACHINES = {62: "x86_64", 183: "aarch64", 3: "i386", 40: "arm", 243: "riscv"}


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
    name = ELF_MACHINES.get(machine, f"machine {machine}")
    if name == "riscv":  # one machine number for both widths: the ELF class tells
        name += "64" if head[4] == 2 else "32"
    return name


@dataclass(frozen=True)
class ElfSymbol:
    name: str
    defined: bool
    binding: int  # 0 local, 1 global, 2 weak
    section: int
    value: int
    size: int


def _is_elf32(data: bytes) -> bool:
    """ELFCLASS32 (armv7 artifacts) or ELFCLASS64; anything else is refused."""
    if data[:4] != b"\x7fELF" or data[4] not in (1, 2):
        raise ModelLoadError("not an ELF file")
    return data[4] == 1


def _sections(data: bytes) -> tuple[str, list[tuple[int, int, int, int, int, int]]]:
    """(byte-order prefix, [(type, addr, offset, size, link, entsize)]) of a 32- or 64-bit ELF."""
    elf32 = _is_elf32(data)
    e = "<" if data[5] == 1 else ">"
    shoff, = struct.unpack_from(e + ("I" if elf32 else "Q"), data, 0x20 if elf32 else 0x28)
    shentsize, shnum = struct.unpack_from(e + "HH", data, 0x2E if elf32 else 0x3A)
    layout = e + ("IIIIIIIIII" if elf32 else "IIQQQQIIQQ")
    out = []
    for i in range(shnum):
        _name, typ, _flags, addr, off, size, link, _info, _align, entsize = struct.unpack_from(
            layout, data, shoff + i * shentsize
        )
        out.append((typ, addr, off, size, link, entsize))
    return e, out


_SHT_ARM_ATTRIBUTES = 0x70000003
_NTBS_TAGS = {4, 5, 65, 67}  # Tag_CPU_raw_name, Tag_CPU_name, Tag_also_compatible_with, Tag_conformance


def _uleb(blob: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 number at `pos`, and the position after it."""
    value = shift = 0
    while True:
        byte = blob[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def arm_cpu_profile(path: str) -> str | None:
    """Tag_CPU_arch_profile of a 32-bit Arm ELF file's build attributes: "A",
    "R", "M" (a microcontroller: bare metal, not runnable under qemu-user) or
    None when absent."""
    data = Path(path).read_bytes()
    if not _is_elf32(data):
        return None
    e, sections = _sections(data)
    for typ, _addr, off, size, _link, _entsize in sections:
        if typ != _SHT_ARM_ATTRIBUTES or size < 1 or data[off : off + 1] != b"A":
            continue
        blob = data[off + 1 : off + size]
        vendor_end = blob.find(b"\0", 4)
        if blob[4:vendor_end] != b"aeabi":
            continue
        pos = vendor_end + 1 + 5  # the file-scope sub-subsection: tag 1 and its u32 size
        end = 4 + struct.unpack_from(e + "I", blob, 0)[0]
        while pos < min(end, len(blob)):
            tag, pos = _uleb(blob, pos)
            if tag in _NTBS_TAGS or (tag > 32 and tag % 2):
                pos = blob.index(b"\0", pos) + 1
            else:
                value, pos = _uleb(blob, pos)
                if tag == 7:  # Tag_CPU_arch_profile
                    return chr(value) if value else None
    return None


def elf_symbols(path: str) -> list[ElfSymbol]:
    """The symbols of an ELF object or shared library (.symtab, else .dynsym)."""
    data = Path(path).read_bytes()
    e, sections = _sections(data)
    elf32 = _is_elf32(data)
    tables = [s for s in sections if s[0] == 2] or [s for s in sections if s[0] == 11]  # SYMTAB, DYNSYM
    symbols = []
    for _typ, _addr, off, size, link, entsize in tables:
        str_off = sections[link][2]
        step = entsize or (16 if elf32 else 24)
        for k in range(1, size // step):
            if elf32:  # Elf32_Sym: name, value, size, info, other, shndx
                st_name, value, sz, st_info, _other, shndx = struct.unpack_from(e + "IIIBBH", data, off + k * step)
            else:
                st_name, st_info, _other, shndx, value, sz = struct.unpack_from(e + "IBBHQQ", data, off + k * step)
            end = data.index(b"\0", str_off + st_name)
            name = data[str_off + st_name : end].decode(errors="replace")
            if name:
                symbols.append(ElfSymbol(name, shndx != 0, st_info >> 4, shndx, value, sz))
    return symbols


def undefined_symbols(path: str) -> list[str]:
    """What the artifact needs from elsewhere (for a bnnc artifact: libc), like `nm -u`,
    leaving out the weak hooks every linked shared library carries."""
    return sorted({s.name for s in elf_symbols(path) if not s.defined and s.binding != 2})


def signature_names(path: str) -> list[str]:
    """Entry points of the bnnc models in an artifact (from `<name>_bnnc_signature`)."""
    return sorted(
        s.name[: -len(SIGNATURE_SUFFIX)] for s in elf_symbols(path) if s.defined and s.name.endswith(SIGNATURE_SUFFIX)
    )


def read_signature(path: str, name: str | None = None) -> Signature:
    """The signature embedded in an artifact, read from the file without loading
    it (works for any architecture). `name` defaults to the only model in it."""
    name = name or entry_name(path)
    data = Path(path).read_bytes()
    _e, sections = _sections(data)
    for sym in elf_symbols(path):
        if sym.defined and sym.name == signature_symbol(name) and sym.section < len(sections):
            _typ, addr, off, _size, _link, _ent = sections[sym.section]
            # .o: value is the offset in its section (addr 0); .so: a virtual address.
            start = off + (sym.value - addr)
            raw = data[start : start + sym.size].split(b"\0", 1)[0]
            return Signature.from_json(raw.decode())
    raise ModelLoadError(f"{path} has no bnnc model named '{name}' (models in it: {', '.join(signature_names(path)) or 'none'})")


def entry_name(path: str, name: str | None = None) -> str:
    """`name` if given, else the one model entry point in the artifact."""
    names = signature_names(path)
    if name is not None:
        if names and name not in names:
            raise ModelLoadError(f"{path} has no bnnc model named '{name}'; it has: {', '.join(names)}")
        return name
    if len(names) == 1:
        return names[0]
    if not names:
        raise ModelLoadError(f"{path} has no `<name>_bnnc_signature` symbol: it was not written by `bnnc compile`")
    raise ModelLoadError(f"{path} holds several models ({', '.join(names)}); pass --name")


def host_arch() -> str:
    return platform.machine().replace("arm64", "aarch64").replace("AMD64", "x86_64")


def load_artifact(path: str, name: str | None = None) -> CompiledModel:
    arch = elf_machine(path)
    host = host_arch()
    if arch != host:
        raise ModelLoadError(
            f"{path} is built for {arch} and this machine is {host}: it cannot be loaded into this process. "
            f"Run it on a {arch} machine, or under emulation through the C example "
            f"(`bnnc run` does this when qemu-{arch} and {arch}-linux-gnu-gcc are installed; see docs/deploying.md)"
        )
    name = entry_name(path, name)
    if path.endswith(".o"):
        raise ModelLoadError(f"{path} is an object file; link it into a program or use --emit=so to get a loadable library")
    try:
        lib = ctypes.CDLL(str(Path(path).resolve()))
    except OSError as e:
        raise ModelLoadError(f"cannot load {path}: {e}") from None
    try:
        # The symbol is a char array: its address is the string.
        raw = ctypes.cast(getattr(lib, signature_symbol(name)), ctypes.c_char_p).value
    except AttributeError:
        raise ModelLoadError(
            f"{path} has no entry point '{name}' built by bnnc; pass --name with the name it was compiled with"
        ) from None
    signature = Signature.from_json(raw.decode())
    address = ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
    return CompiledModel(address, signature, lib)
