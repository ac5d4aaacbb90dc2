"""What the host refuses at the door, and what never crosses into wasmtime."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from wascc import (
    GuestError,
    HashMismatch,
    Host,
    InvalidSignature,
    KeyPair,
    KeyType,
    MissingClaims,
    ModuleError,
    Runtime,
    TokenExpired,
    TokenNotYetValid,
    UntrustedIssuer,
)
from wascc.wire import wasm

from conftest import Signer, build_test_actor, call_payload
from providers import TESTING, RecordingProvider


def _tampered(signed: bytes) -> bytes:
    """Flip the immediate of the first i32.const in the code section (still valid wasm)."""
    data = bytearray(signed)
    code = next(s for s in wasm.sections(signed) if s.id == 10)
    start = bytes(signed).index(code.payload)
    at = data.index(0x41, start)  # i32.const
    data[at + 1] ^= 0x01
    return bytes(data)


def _edited_claims(signed: bytes) -> bytes:
    """Rewrite the token's claims segment (name changed), keeping the old signature."""
    import base64
    import json

    token = wasm.custom_sections(signed, "jwt")[0].decode()
    header, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["wascap"]["caps"] = ["wascc:keyvalue", "wascc:messaging"]
    new_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    stripped = wasm.strip_custom_sections(signed, frozenset({"jwt"}))
    return wasm.append_custom_section(stripped, "jwt", f"{header}.{new_body}.{sig}".encode())


def test_each_bad_module_is_refused_with_its_own_error(host: Host, sign: Signer) -> None:
    now = int(time.time())
    stranger = KeyPair.generate(KeyType.ACCOUNT)
    good, _ = sign(name="good")
    cases: list[tuple[bytes, type[Exception], str]] = [
        (build_test_actor(), MissingClaims, "not signed"),
        (_tampered(good), HashMismatch, "modified after signing"),
        (_edited_claims(good), InvalidSignature, "signature"),
        (sign(name="old", expires=now - 10)[0], TokenExpired, "expired"),
        (sign(name="early", not_before=now + 3600)[0], TokenNotYetValid, "not valid before"),
        (sign(name="foreign", issuer=stranger)[0], UntrustedIssuer, stranger.public_key),
    ]
    for module, error, text in cases:
        with pytest.raises(error, match=text):
            host.add_actor(module)
    assert host.actors() == []
    assert host.add_actor(good)  # and the host still takes good ones


class _Exiting(RecordingProvider):
    def handle(self, actor: str, operation: str, msg: bytes) -> bytes:
        if operation == "Exit":
            raise SystemExit("provider tried to exit the process")
        if operation == "Interrupt":
            raise KeyboardInterrupt
        return super().handle(actor, operation, msg)


@pytest.mark.parametrize("operation", ["Exit", "Interrupt"])
def test_base_exceptions_in_host_calls_become_errors_for_the_guest(
    host: Host, sign: Signer, operation: str
) -> None:
    host.add_provider(_Exiting())
    signed, _ = sign(caps=[TESTING])
    key = host.add_actor(signed)
    host.set_binding(key, TESTING)
    with pytest.raises(GuestError):
        host.call_actor(key, "Call", call_payload(TESTING, operation))
    assert host.call_actor(key, "Call", call_payload(TESTING, "Echo", b"alive")) == b"alive"


def test_compile_cache_writes_to_its_directory_and_is_reused(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    wasm_bytes = bytes(build_test_actor())
    first = Runtime(cache_dir=cache)
    try:
        first.load(wasm_bytes, "cached")
        files = [p for p in cache.rglob("*") if p.is_file() and p.suffix != ".toml"]
        assert files, "wasmtime wrote nothing to the cache directory"
    finally:
        first.close()
    second = Runtime(cache_dir=cache)
    try:
        module = second.load(wasm_bytes, "cached")
        assert "__guest_call" in module.exports
    finally:
        second.close()
    assert (cache / "wasmtime-cache.toml").read_text().startswith("[cache]")


def test_runtime_refuses_the_text_format_and_names_the_module() -> None:
    with pytest.raises(ModuleError, match="named-module is not a valid WebAssembly module"):
        Runtime.default().load(b"(module)", "named-module")
