"""Reading and rewriting the section layout of a WebAssembly module.

Only what claims need: walk the top-level sections, find custom sections by
name, drop some, append one.  Section contents are copied byte for byte;
section sizes are written back as minimal LEB128, which is what wascap does
when it strips its `jwt` section before hashing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from wascc.errors import ModuleError

__all__ = [
    "Section",
    "append_custom_section",
    "custom_sections",
    "sections",
    "strip_custom_sections",
]

MAGIC = b"\x00asm"
VERSION = b"\x01\x00\x00\x00"
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
    """Iterate the top-level sections, refusing anything that is not a wasm module."""
    if len(module) < 8 or module[:4] != MAGIC:
        raise ModuleError("not a WebAssembly module (bad magic number)")
    if module[4:8] != VERSION:
        raise ModuleError(
            "unsupported WebAssembly binary version (only core modules, version 1, are actors)"
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
    return MAGIC + VERSION + b"".join(_encode_section(s) for s in kept)


def append_custom_section(module: bytes, name: str, data: bytes) -> bytes:
    """The module with a custom section ``name`` holding ``data`` appended."""
    encoded = name.encode("utf-8")
    payload = write_uleb(len(encoded)) + encoded + data
    return module + _encode_section(Section(CUSTOM, payload))
