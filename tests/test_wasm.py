"""Section layout of wasm modules: walking, finding, stripping, appending."""

from __future__ import annotations

import pytest
import wasmtime

from wascc.errors import ModuleError
from wascc.wire import wasm
from wascc.wire.wasm import (
    Section,
    append_custom_section,
    custom_sections,
    read_uleb,
    sections,
    strip_custom_sections,
    write_uleb,
)

HEADER = b"\x00asm\x01\x00\x00\x00"

WAT = """
(module
  (memory (export "memory") 1)
  (global $g (mut i32) (i32.const 7))
  (func $answer (export "answer") (result i32) i32.const 42)
  (func (export "twice") (param i32) (result i32)
    local.get 0
    i32.const 2
    i32.mul)
  (data (i32.const 16) "hello"))
"""


def _module(wat: str = WAT) -> bytes:
    return bytes(wasmtime.wat2wasm(wat))


def _uleb(value: int) -> bytes:
    """Minimal unsigned LEB128, written here independently of the module under test."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _custom(name: str, data: bytes) -> bytes:
    """A whole custom section (id, size, payload), built by hand."""
    encoded = name.encode()
    payload = _uleb(len(encoded)) + encoded + data
    return b"\x00" + _uleb(len(payload)) + payload


def _compiles(data: bytes) -> bool:
    wasmtime.Module(wasmtime.Engine(), data)
    return True


def test_sections_lists_standard_sections_in_order() -> None:
    parts = list(sections(_module()))
    # type, function, memory, global, export, code, data, then wat2wasm's "name" section
    assert [s.id for s in parts] == [1, 3, 5, 6, 7, 10, 11, 0]
    assert parts[-1].custom_name == "name"


def test_sections_of_a_header_only_module_is_empty() -> None:
    assert list(sections(HEADER)) == []


def test_section_payloads_reassemble_to_the_original_bytes() -> None:
    module = _module()
    rebuilt = HEADER + b"".join(
        bytes([s.id]) + _uleb(len(s.payload)) + s.payload for s in sections(module)
    )
    assert rebuilt == module


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00as",
        b"\x00asn\x01\x00\x00\x00",
        b"\x7fELF\x01\x00\x00\x00",
        b"(module)",
    ],
    ids=["empty", "short", "wrong-magic", "elf", "wat-text"],
)
def test_sections_refuses_bad_magic(data: bytes) -> None:
    with pytest.raises(ModuleError, match="magic"):
        list(sections(data))


@pytest.mark.parametrize(
    "version",
    [b"\x02\x00\x00\x00", b"\x00\x00\x00\x00", b"\x0d\x00\x02\x00"],
    ids=["v2", "v0", "component-layer-2"],
)
def test_sections_refuses_bad_version(version: bytes) -> None:
    with pytest.raises(ModuleError, match="version"):
        list(sections(b"\x00asm" + version))


def test_a_component_keeps_its_preamble_when_sections_are_stripped() -> None:
    component = b"\x00asm\x0d\x00\x01\x00"
    signed = append_custom_section(component, "jwt", b"token")
    assert [s.custom_name for s in sections(signed)] == ["jwt"]
    assert strip_custom_sections(signed, frozenset({"jwt"})) == component


@pytest.mark.parametrize(
    "tail",
    [b"\x01\x05\x00", b"\x01\x01", b"\x00\x80\x01" + b"\x00" * 10],
    ids=["short-payload", "empty-payload", "two-byte-size"],
)
def test_sections_refuses_a_section_running_past_the_end(tail: bytes) -> None:
    with pytest.raises(ModuleError, match="truncated"):
        list(sections(HEADER + tail))


def test_sections_refuses_a_truncated_module_from_wat2wasm() -> None:
    module = _module()
    with pytest.raises(ModuleError, match="truncated"):
        list(sections(module[:-1]))


@pytest.mark.parametrize("tail", [b"\x01", b"\x01\x80", b"\x01\xff\xff"])
def test_sections_refuses_a_size_cut_off_mid_leb(tail: bytes) -> None:
    with pytest.raises(ModuleError, match="truncated"):
        list(sections(HEADER + tail))


def test_sections_refuses_an_over_long_leb_size() -> None:
    with pytest.raises(ModuleError, match="longer than 5 bytes"):
        list(sections(HEADER + b"\x01\x80\x80\x80\x80\x80\x00"))


def test_module_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        list(sections(b"nope"))


def test_custom_sections_finds_sections_by_name_in_order() -> None:
    module = _module() + _custom("a", b"one") + _custom("b", b"two") + _custom("a", b"three")
    assert custom_sections(module, "a") == [b"one", b"three"]
    assert custom_sections(module, "b") == [b"two"]


def test_custom_sections_matches_names_exactly() -> None:
    module = _module() + _custom("jwt", b"x") + _custom("jwt2", b"y") + _custom("JWT", b"z")
    assert custom_sections(module, "jwt") == [b"x"]
    assert custom_sections(module, "jw") == []


def test_custom_sections_of_a_module_without_any_is_empty() -> None:
    assert custom_sections(_module(), "jwt") == []


def test_custom_sections_finds_a_section_placed_before_the_standard_sections() -> None:
    module = _module()
    early = HEADER + _custom("early", b"data") + module[8:]
    assert custom_sections(early, "early") == [b"data"]
    assert _compiles(early)


def test_custom_section_with_empty_data_is_found() -> None:
    assert custom_sections(_module() + _custom("empty", b""), "empty") == [b""]


def test_custom_name_is_none_for_a_standard_section() -> None:
    standard = [s for s in sections(_module()) if s.id != 0]
    assert standard
    assert all(s.custom_name is None for s in standard)


def test_custom_name_and_data_split_the_payload() -> None:
    section = Section(0, b"\x03abcrest")
    assert section.custom_name == "abc"
    assert section.custom_data == b"rest"


def test_custom_name_running_past_its_section_is_refused() -> None:
    with pytest.raises(ModuleError):
        _ = Section(0, b"\x09abc").custom_name


def test_custom_name_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(ModuleError, match="UTF-8"):
        _ = Section(0, b"\x02\xff\xfe").custom_name


def test_custom_section_without_a_name_length_is_refused() -> None:
    with pytest.raises(ModuleError):
        _ = Section(0, b"").custom_name


def test_strip_removes_only_the_named_sections_and_keeps_other_bytes() -> None:
    module = _module()
    keep_b = _custom("b", b"keep me")
    decorated = module + _custom("a", b"x") + keep_b + _custom("c", b"y") + _custom("a", b"z")
    stripped = strip_custom_sections(decorated, frozenset({"a", "c"}))
    assert stripped == module + keep_b


def test_strip_removes_a_section_between_standard_sections() -> None:
    module = _module()
    parts = list(sections(module))
    encoded = [bytes([s.id]) + _uleb(len(s.payload)) + s.payload for s in parts]
    middle = HEADER + b"".join(encoded[:3]) + _custom("jwt", b"t") + b"".join(encoded[3:])
    assert _compiles(middle)
    assert strip_custom_sections(middle, frozenset({"jwt"})) == module


def test_strip_with_no_matching_names_returns_a_canonical_module_unchanged() -> None:
    module = _module() + _custom("name", b"\x00\x01")
    assert strip_custom_sections(module, frozenset({"jwt"})) == module
    assert strip_custom_sections(module, frozenset()) == module


def test_strip_never_removes_standard_sections() -> None:
    module = _module()
    # A name no custom section can have still leaves every standard section.
    stripped = strip_custom_sections(module, frozenset({""}))
    assert [s.id for s in sections(stripped)] == [s.id for s in sections(module)]


def test_strip_rewrites_non_minimal_section_sizes_and_keeps_payloads() -> None:
    module = _module()
    padded = HEADER
    for s in sections(module):
        # Size as a 5-byte LEB: valid wasm, but not minimal.
        n = len(s.payload)
        size = bytes(
            [(n & 0x7F) | 0x80, (n >> 7 & 0x7F) | 0x80, (n >> 14 & 0x7F) | 0x80, 0x80, 0x00]
        )
        padded += bytes([s.id]) + size + s.payload
    assert padded != module
    assert _compiles(padded)
    assert strip_custom_sections(padded, frozenset({"jwt"})) == module


def test_strip_refuses_a_malformed_module() -> None:
    with pytest.raises(ModuleError):
        strip_custom_sections(HEADER + b"\x01\x05\x00", frozenset({"jwt"}))


def test_append_custom_section_parses_and_holds_the_data() -> None:
    module = _module()
    data = b"signed claims go here"
    out = append_custom_section(module, "jwt", data)
    assert out.startswith(module)
    assert out[len(module) :] == _custom("jwt", data)
    parts = list(sections(out))
    assert parts[-1].id == 0
    assert parts[-1].custom_name == "jwt"
    assert parts[-1].custom_data == data
    assert custom_sections(out, "jwt") == [data]


def test_appended_module_is_accepted_by_wasmtime() -> None:
    out = append_custom_section(_module(), "jwt", b"x" * 300)
    assert _compiles(out)
    store = wasmtime.Store()
    instance = wasmtime.Instance(store, wasmtime.Module(store.engine, out), [])
    answer = instance.exports(store)["answer"]
    assert isinstance(answer, wasmtime.Func)
    assert answer(store) == 42


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16383, 16384, 100_000])
def test_append_custom_section_handles_multi_byte_sizes(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    out = append_custom_section(_module(), "blob", data)
    assert custom_sections(out, "blob") == [data]
    assert _compiles(out)


def test_append_custom_section_with_a_non_ascii_name_round_trips() -> None:
    out = append_custom_section(_module(), "jwt-\u00e9\u6f22", b"data")
    assert custom_sections(out, "jwt-\u00e9\u6f22") == [b"data"]
    assert _compiles(out)


def test_append_then_strip_returns_the_original() -> None:
    module = _module()
    out = append_custom_section(append_custom_section(module, "jwt", b"1"), "other", b"2")
    assert strip_custom_sections(out, frozenset({"jwt", "other"})) == module


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (624485, b"\xe5\x8e\x26"),
        (2**32 - 1, b"\xff\xff\xff\xff\x0f"),
    ],
)
def test_write_uleb_produces_the_minimal_encoding(value: int, encoded: bytes) -> None:
    assert write_uleb(value) == encoded
    assert read_uleb(encoded, 0, "value") == (value, len(encoded))


@pytest.mark.parametrize(
    "value", [0, 1, 63, 64, 127, 128, 255, 256, 16383, 16384, 2**21, 2**28, 2**31, 2**32 - 1]
)
def test_uleb_round_trips(value: int) -> None:
    encoded = write_uleb(value)
    assert read_uleb(encoded, 0, "value") == (value, len(encoded))
    assert encoded == _uleb(value)


def test_read_uleb_starts_at_the_given_position_and_returns_the_next() -> None:
    data = b"\xaa\xbb" + write_uleb(1000) + b"\xcc"
    value, pos = read_uleb(data, 2, "value")
    assert value == 1000
    assert data[pos:] == b"\xcc"


def test_read_uleb_accepts_a_non_minimal_encoding() -> None:
    assert read_uleb(b"\x85\x80\x80\x80\x00", 0, "value") == (5, 5)


def test_read_uleb_refuses_more_than_five_bytes_and_names_the_value() -> None:
    with pytest.raises(ModuleError, match="the thing"):
        read_uleb(b"\x80\x80\x80\x80\x80\x01", 0, "the thing")


def test_read_uleb_refuses_a_truncated_value() -> None:
    with pytest.raises(ModuleError, match="truncated"):
        read_uleb(b"\x80\x80", 0, "value")
    with pytest.raises(ModuleError, match="truncated"):
        read_uleb(b"\x01", 1, "value")


def test_public_names_are_exported() -> None:
    assert set(wasm.__all__) == {
        "Export",
        "ExternType",
        "FuncSig",
        "Import",
        "Interface",
        "Limits",
        "interface",
        "Section",
        "append_custom_section",
        "custom_sections",
        "sections",
        "strip_custom_sections",
    }


def test_interface_reads_import_and_export_types_from_the_binary() -> None:
    module = bytes(
        wasmtime.wat2wasm(
            """(module
                 (import "wapc" "__host_call"
                   (func (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
                 (import "env" "g" (global (mut v128)))
                 (import "env" "t" (table 3 10 externref))
                 (memory (export "memory") 2 5)
                 (global (export "answer") i32 (i32.add (i32.const 40) (i32.const 2)))
                 (func $f (export "f") (param i64 f32) (result f64 v128)
                   f64.const 0 v128.const i32x4 0 0 0 0)
                 (export "alias" (func $f)))"""
        )
    )
    iface = wasm.interface(module)
    assert [(i.module, i.name, i.type.kind) for i in iface.imports] == [
        ("wapc", "__host_call", "func"),
        ("env", "g", "global"),
        ("env", "t", "table"),
    ]
    host_call = iface.imports[0].type.func
    assert host_call is not None and host_call.params == ("i32",) * 8
    assert iface.imports[1].type.value == "v128" and iface.imports[1].type.mutable
    assert iface.imports[2].type.limits == wasm.Limits(3, 10)
    assert iface.exports["memory"].type.limits == wasm.Limits(2, 5)
    assert iface.exports["answer"].type.value == "i32"
    f = iface.exports["alias"].type.func
    assert f is not None and str(f) == "(i64, f32) -> (f64, v128)"
    assert iface.exports["f"] == wasm.Export("f", iface.exports["alias"].type)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x01\x05\x01\x60\x01\x63\x00",  # a typed reference parameter
        b"\x01\x03\x01\x5f\x00",  # a struct type
        b"\x01\x04\x01\x60\x05\x00",  # more parameters than bytes
        b"\x07\x05\x01\x01a\x00\x09",  # an export of a function that does not exist
        b"\x02\x08\x01\x01a\x01b\x07\x00",  # an import of an unknown kind
    ],
)
def test_interface_refuses_what_it_cannot_read(payload: bytes) -> None:
    section_id, body = payload[0], payload[2:]
    module = HEADER + bytes([section_id]) + _uleb(len(body)) + body
    with pytest.raises(ModuleError):
        wasm.interface(module)
