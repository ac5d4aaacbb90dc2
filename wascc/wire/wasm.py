"""Reading and rewriting the section layout of a WebAssembly module.

What claims need: walk the top-level sections, find custom sections by
name, drop some, append one.  Section contents are copied byte for byte;
section sizes are written back as minimal LEB128, which is what wascap does
when it strips its `jwt` section before hashing.

And what the loader needs: the types of the module's imports and exports
(:func:`interface`), read here because wasmtime's C API cannot describe
every value type without aborting the process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from wascc.errors import ModuleError

__all__ = [
    "Export",
    "ExternType",
    "FuncSig",
    "Import",
    "Interface",
    "Limits",
    "Section",
    "append_custom_section",
    "custom_sections",
    "interface",
    "sections",
    "strip_custom_sections",
]

MAGIC = b"\x00asm"
VERSION = b"\x01\x00\x00\x00"
#: The preamble of a component (the component model's version 0x0d, layer 1).
COMPONENT_VERSION = b"\x0d\x00\x01\x00"


def is_component(data: bytes) -> bool:
    """Is ``data`` a component (WASI 0.2, the component model), not a core module?"""
    return data[:4] == MAGIC and data[4:8] == COMPONENT_VERSION


CUSTOM = 0


@dataclass(frozen=True)
class Section:
    """One top-level section: its id and the bytes of its payload."""

    id: int
    payload: bytes

    @property
    def custom_name(self) -> str | None:
        """The name of a custom section, or None for any other section."""
        if self.id != CUSTOM:
            return None
        size, pos = read_uleb(self.payload, 0, "custom section name length")
        name = self.payload[pos : pos + size]
        if len(name) != size:
            raise ModuleError("custom section name runs past the end of its section")
        try:
            return name.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModuleError("custom section name is not UTF-8") from exc

    @property
    def custom_data(self) -> bytes:
        """The data of a custom section (after its name)."""
        size, pos = read_uleb(self.payload, 0, "custom section name length")
        return self.payload[pos + size :]


def read_uleb(data: bytes, pos: int, what: str) -> tuple[int, int]:
    """Decode an unsigned LEB128 (at most 5 bytes, as for u32) at ``pos``."""
    result = shift = 0
    for i in range(5):
        if pos + i >= len(data):
            raise ModuleError(f"truncated module: {what} runs past the end")
        byte = data[pos + i]
        if i == 4 and byte & 0x70:
            raise ModuleError(f"malformed module: {what} does not fit in 32 bits")
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos + i + 1
        shift += 7
    raise ModuleError(f"malformed module: {what} is longer than 5 bytes")


def write_uleb(value: int) -> bytes:
    """Encode ``value`` as minimal unsigned LEB128."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def sections(module: bytes) -> Iterator[Section]:
    """Iterate the top-level sections of a module or a component, refusing anything else.

    A component's top-level sections are framed like a module's (an id and a
    size), and its custom sections (id 0) are the same: claims are embedded
    and stripped the same way in both.
    """
    if len(module) < 8 or module[:4] != MAGIC:
        raise ModuleError("not a WebAssembly module (bad magic number)")
    if module[4:8] not in (VERSION, COMPONENT_VERSION):
        raise ModuleError(
            "unsupported WebAssembly binary version (actors are core modules, version 1, "
            "or components, version 0x0d layer 1)"
        )
    pos = 8
    while pos < len(module):
        sid = module[pos]
        size, start = read_uleb(module, pos + 1, f"size of section {sid}")
        end = start + size
        if end > len(module):
            raise ModuleError(f"truncated module: section {sid} runs past the end")
        yield Section(sid, module[start:end])
        pos = end


def custom_sections(module: bytes, name: str) -> list[bytes]:
    """The data of every custom section called ``name``, in order."""
    return [s.custom_data for s in sections(module) if s.custom_name == name]


def _encode_section(section: Section) -> bytes:
    return bytes([section.id]) + write_uleb(len(section.payload)) + section.payload


def strip_custom_sections(module: bytes, names: frozenset[str]) -> bytes:
    """The module with every custom section whose name is in ``names`` removed."""
    kept = [s for s in sections(module) if s.custom_name not in names]
    return module[:8] + b"".join(_encode_section(s) for s in kept)


def append_custom_section(module: bytes, name: str, data: bytes) -> bytes:
    """The module with a custom section ``name`` holding ``data`` appended."""
    encoded = name.encode("utf-8")
    payload = write_uleb(len(encoded)) + encoded + data
    return module + _encode_section(Section(CUSTOM, payload))


# ---- the module's interface: imports and exports with their types ---------------
#
# wasmtime's C API aborts the whole process when asked for the kind of a v128
# or of a GC reference type (``wasm_valtype_kind``), so the host never asks
# it: the types of imports and exports are read from the binary here.

VALTYPES = {
    0x7F: "i32",
    0x7E: "i64",
    0x7D: "f32",
    0x7C: "f64",
    0x7B: "v128",
    0x70: "funcref",
    0x6F: "externref",
}
EXTERN_KINDS = ("func", "table", "memory", "global", "tag")


@dataclass(frozen=True)
class FuncSig:
    """A function type: parameter and result value types, by name."""

    params: tuple[str, ...]
    results: tuple[str, ...]

    def __str__(self) -> str:
        return f"({', '.join(self.params)}) -> ({', '.join(self.results)})"


@dataclass(frozen=True)
class Limits:
    """Limits of a memory (in pages) or a table (in elements)."""

    min: int
    max: int | None
    is_64: bool = False
    shared: bool = False


@dataclass(frozen=True)
class ExternType:
    """What an import or export is: ``kind`` in EXTERN_KINDS and its type.

    ``func`` for functions (and tags), ``limits`` for memories and tables,
    ``value`` for globals (the value type) and tables (the element type),
    ``mutable`` for globals.
    """

    kind: str
    func: FuncSig | None = None
    limits: Limits | None = None
    value: str | None = None
    mutable: bool = False


@dataclass(frozen=True)
class Import:
    module: str
    name: str
    type: ExternType


@dataclass(frozen=True)
class Export:
    name: str
    type: ExternType


@dataclass(frozen=True)
class Interface:
    """Every import in order, and every export by name."""

    imports: tuple[Import, ...]
    exports: dict[str, Export]


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise ModuleError(f"truncated module: the {self.what} runs past its section")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uleb(self, bits: int = 32) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift >= bits + 7:
                raise ModuleError(f"malformed module: an integer in the {self.what} is too long")
        if result >> bits:
            raise ModuleError(f"malformed module: an integer in the {self.what} is too large")
        return result

    def sleb(self, bits: int) -> None:
        """Skip a signed LEB128 of at most ``bits`` bits."""
        for _ in range((bits + 6) // 7):
            if not self.byte() & 0x80:
                return
        raise ModuleError(f"malformed module: an integer in the {self.what} is too long")

    def skip(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise ModuleError(f"truncated module: the {self.what} runs past its section")
        self.pos += n

    def name(self) -> str:
        size = self.uleb()
        raw = self.data[self.pos : self.pos + size]
        self.skip(size)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModuleError(f"malformed module: a name in the {self.what} is not UTF-8") from exc

    def valtype(self) -> str:
        b = self.byte()
        try:
            return VALTYPES[b]
        except KeyError:
            raise ModuleError(
                f"unsupported value type 0x{b:02x} in the {self.what} (GC and typed "
                "references are not available to actors)"
            ) from None

    def vec(self) -> range:
        return range(self.uleb())

    def functype(self) -> FuncSig:
        form = self.byte()
        if form != 0x60:
            raise ModuleError(
                f"unsupported type form 0x{form:02x} in the {self.what} (only function types)"
            )
        params = tuple(self.valtype() for _ in self.vec())
        results = tuple(self.valtype() for _ in self.vec())
        return FuncSig(params, results)

    def limits(self) -> Limits:
        flags = self.byte()
        if flags & ~0x0F:
            raise ModuleError(f"malformed module: limits flags 0x{flags:02x} in the {self.what}")
        bits = 64 if flags & 0x04 else 32
        low = self.uleb(bits)
        high = self.uleb(bits) if flags & 0x01 else None
        if flags & 0x08:  # custom page size (log2)
            self.uleb()
        return Limits(low, high, bool(flags & 0x04), bool(flags & 0x02))

    def tabletype(self) -> ExternType:
        element = self.valtype()
        return ExternType("table", limits=self.limits(), value=element)

    def globaltype(self) -> ExternType:
        value = self.valtype()
        mutable = self.byte()
        if mutable > 1:
            raise ModuleError(f"malformed module: global mutability {mutable} in the {self.what}")
        return ExternType("global", value=value, mutable=bool(mutable))

    def const_expr(self) -> None:
        """Skip a constant expression (a global's initializer) up to its ``end``."""
        while True:
            op = self.byte()
            if op == 0x0B:
                return
            if op == 0x41:
                self.sleb(32)
            elif op == 0x42:
                self.sleb(64)
            elif op == 0x43:
                self.skip(4)
            elif op == 0x44:
                self.skip(8)
            elif op in (0x23, 0xD2):  # global.get, ref.func
                self.uleb()
            elif op == 0xD0:  # ref.null
                self.valtype()
            elif op == 0xFD:  # v128.const
                if self.uleb() != 12:
                    raise ModuleError(f"unsupported constant instruction in the {self.what}")
                self.skip(16)
            elif op in (0x6A, 0x6B, 0x6C, 0x7C, 0x7D, 0x7E):  # extended constants
                continue
            else:
                raise ModuleError(
                    f"unsupported instruction 0x{op:02x} in a constant expression of the "
                    f"{self.what}"
                )


def interface(module: bytes) -> Interface:
    """The imports and exports of ``module`` with their types, read from the binary.

    Meant for modules wasmtime has validated (with GC and typed references
    off); anything this reader does not know is a :class:`ModuleError`.
    """
    by_id: dict[int, bytes] = {}
    for section in sections(module):
        if section.id != CUSTOM:
            by_id.setdefault(section.id, section.payload)
    types: list[FuncSig] = []
    if 1 in by_id:
        r = _Reader(by_id[1], "type section")
        types = [r.functype() for _ in r.vec()]

    def functype_at(index: int, what: str) -> FuncSig:
        if index >= len(types):
            raise ModuleError(f"malformed module: {what} names type {index}, which is missing")
        return types[index]

    funcs: list[FuncSig] = []
    tables: list[ExternType] = []
    memories: list[ExternType] = []
    globals_: list[ExternType] = []
    tags: list[ExternType] = []
    imports: list[Import] = []
    if 2 in by_id:
        r = _Reader(by_id[2], "import section")
        for _ in r.vec():
            mod, name = r.name(), r.name()
            kind = r.byte()
            if kind == 0:
                ty = ExternType("func", func=functype_at(r.uleb(), f"import {mod}::{name}"))
                funcs.append(ty.func)  # type: ignore[arg-type]
            elif kind == 1:
                ty = r.tabletype()
                tables.append(ty)
            elif kind == 2:
                ty = ExternType("memory", limits=r.limits())
                memories.append(ty)
            elif kind == 3:
                ty = r.globaltype()
                globals_.append(ty)
            elif kind == 4:
                r.byte()
                ty = ExternType("tag", func=functype_at(r.uleb(), f"import {mod}::{name}"))
                tags.append(ty)
            else:
                raise ModuleError(f"malformed module: import {mod}::{name} has kind {kind}")
            imports.append(Import(mod, name, ty))
    if 3 in by_id:
        r = _Reader(by_id[3], "function section")
        funcs += [functype_at(r.uleb(), "a function") for _ in r.vec()]
    if 4 in by_id:
        r = _Reader(by_id[4], "table section")
        for _ in r.vec():
            if r.data[r.pos : r.pos + 2] == b"\x40\x00":  # a table with an initializer
                r.skip(2)
                tables.append(r.tabletype())
                r.const_expr()
            else:
                tables.append(r.tabletype())
    if 5 in by_id:
        r = _Reader(by_id[5], "memory section")
        memories += [ExternType("memory", limits=r.limits()) for _ in r.vec()]
    if 13 in by_id:
        r = _Reader(by_id[13], "tag section")
        for _ in r.vec():
            r.byte()
            tags.append(ExternType("tag", func=functype_at(r.uleb(), "a tag")))
    if 6 in by_id:
        r = _Reader(by_id[6], "global section")
        for _ in r.vec():
            globals_.append(r.globaltype())
            r.const_expr()
    exports: dict[str, Export] = {}
    if 7 in by_id:
        r = _Reader(by_id[7], "export section")
        spaces: tuple[list[Any], ...] = (funcs, tables, memories, globals_, tags)
        for _ in r.vec():
            name = r.name()
            kind = r.byte()
            index = r.uleb()
            if kind >= len(spaces) or index >= len(spaces[kind]):
                raise ModuleError(f"malformed module: export {name} names a missing item")
            item = spaces[kind][index]
            ty = ExternType("func", func=item) if kind == 0 else item
            exports[name] = Export(name, ty)
    return Interface(tuple(imports), exports)
