"""A native provider in Rust with no crates (native/providers/rust_echo): provider.h is enough.

The provider is built with cargo (offline) into a temporary directory and
loaded like any native provider; the tests drive it through real WAT actors.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from wascc import GuestError, Host, hookimpl
from wascc.errors import ProviderCallError
from wascc.providers.native import NativeProvider, load_native_provider
from wascc.wire.codec import (
    CapabilityConfiguration,
    CapabilityDescriptor,
    Direction,
    HealthRequest,
    HealthResponse,
    OperationDescriptor,
)

from conftest import ACTORS, Signer, call_payload

RUST_ECHO = "wascc:rust_echo"
CRATE = Path(__file__).resolve().parent.parent / "native" / "providers" / "rust_echo"
PONG_ACTOR_WAT = (ACTORS / "pongactor.wat").read_text()


@pytest.fixture(scope="module")
def rust_echo_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cdylib, built with cargo --offline into a temporary target dir."""
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.fail("cargo is not on PATH: run `bash .ci/system-deps` as root (make test does)")
    target = tmp_path_factory.mktemp("rust_echo_target")
    command = [
        cargo,
        "build",
        "--release",
        "--offline",
        "--manifest-path",
        str(CRATE / "Cargo.toml"),
        "--target-dir",
        str(target),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"cargo build failed:\n{done.stderr}"
    ext = "dylib" if sys.platform == "darwin" else "so"
    lib = target / "release" / f"libwascc_rust_echo.{ext}"
    assert lib.is_file(), f"cargo built no {lib.name}"
    return lib


@pytest.fixture
def provider(host: Host, rust_echo_lib: Path) -> NativeProvider:
    p = load_native_provider(rust_echo_lib)
    host.add_provider(p)
    return p


@pytest.fixture
def pong_actor(host: Host, sign: Signer, provider: NativeProvider) -> str:
    """An actor that answers Pong, bound to the Rust provider."""
    signed, _ = sign(wasmtime.wat2wasm(PONG_ACTOR_WAT), caps=[RUST_ECHO], name="ponger")
    key = host.add_actor(signed)
    host.set_binding(key, RUST_ECHO)
    return key


@pytest.fixture
def plain_actor(host: Host, start_actor: Callable[..., str], provider: NativeProvider) -> str:
    """The shared test actor (which does not know Pong), bound to the Rust provider."""
    key = start_actor(caps=[RUST_ECHO], name="no-pong")
    host.set_binding(key, RUST_ECHO)
    return key


def config(actor: str) -> bytes:
    return CapabilityConfiguration(actor, {"__wascc_name": "x"}).encode()


def test_descriptor_is_seen_by_the_host(host: Host, provider: NativeProvider) -> None:
    (info,) = [p for p in host.providers() if p.capability_id == RUST_ECHO]
    d = info.descriptor
    assert isinstance(d, CapabilityDescriptor)
    assert (d.id, d.name, d.version, d.revision) == (
        RUST_ECHO,
        "wascc Rust echo provider",
        "0.1.0",
        1,
    )
    assert "provider.h" in d.long_description
    ops = {op.name: op for op in d.supported_operations}
    assert list(ops) == ["Echo", "Reverse", "Ping", "Pong", "Panic"]
    assert all(isinstance(op, OperationDescriptor) and op.doctext for op in ops.values())
    assert ops["Echo"].direction is Direction.TO_PROVIDER
    assert ops["Pong"].direction is Direction.TO_ACTOR
    assert provider.descriptor() == d


@pytest.mark.parametrize(
    "payload",
    [b"hello from wasm", b"", b"\x00\xff\x00binary\xc1", bytes(range(256)) * 300],
    ids=["text", "empty", "binary", "large"],
)
def test_echo_and_reverse_through_an_actor(host: Host, plain_actor: str, payload: bytes) -> None:
    echo = host.call_actor(plain_actor, "Call", call_payload(RUST_ECHO, "Echo", payload))
    assert echo == payload
    rev = host.call_actor(plain_actor, "Call", call_payload(RUST_ECHO, "Reverse", payload))
    assert rev == payload[::-1]


def test_unknown_operation_is_an_error_naming_it(host: Host, plain_actor: str) -> None:
    with pytest.raises(GuestError, match='does not support operation "Nope"'):
        host.call_actor(plain_actor, "Call", call_payload(RUST_ECHO, "Nope", b"x"))


def test_ping_dispatches_pong_from_a_provider_thread(
    host: Host, pong_actor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    class AllowAll:
        @hookimpl
        def wascc_authorize(
            self, invocation: object, origin_claims: object, target_claims: object
        ) -> None:
            pass

    # The spies watch the Python path: a plugin sends every call through it
    # (without one, this round trip runs in C: tests/test_dataplane.py).
    host.add_plugin(AllowAll())
    seen: dict[str, threading.Thread] = {}
    from_actor, from_provider = host._from_actor, host._from_provider

    def spy_actor(*args: Any) -> bytes:
        seen["actor -> provider"] = threading.current_thread()
        return from_actor(*args)

    def spy_provider(*args: Any) -> bytes:
        seen["provider -> actor"] = threading.current_thread()
        return from_provider(*args)

    monkeypatch.setattr(host, "_from_actor", spy_actor)
    monkeypatch.setattr(host, "_from_provider", spy_provider)
    reply = host.call_actor(pong_actor, "Call", call_payload(RUST_ECHO, "Ping", b"hi there"))
    assert reply == b"PONG hi there"
    # Pong came from a thread the provider spawned, not from the host thread that called Ping
    caller, dispatcher = seen["actor -> provider"], seen["provider -> actor"]
    assert dispatcher.ident != caller.ident
    assert isinstance(dispatcher, threading._DummyThread)  # started outside Python
    assert host.call_actor(pong_actor, "Call", call_payload(RUST_ECHO, "Ping")) == b"PONG "


def test_ping_brings_back_the_actors_error(host: Host, plain_actor: str) -> None:
    with pytest.raises(GuestError) as info:
        host.call_actor(plain_actor, "Call", call_payload(RUST_ECHO, "Ping", b"x"))
    text = str(info.value)
    assert "Ping: Pong to " + plain_actor + " failed" in text
    assert "unknown operation" in text


def test_concurrent_pings_from_many_host_threads(host: Host, pong_actor: str) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(5):
                body = f"{n}-{i}".encode()
                reply = host.call_actor(pong_actor, "Call", call_payload(RUST_ECHO, "Ping", body))
                assert reply == b"PONG " + body
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)


def test_bind_and_remove_are_idempotent_and_tracked(
    host: Host, pong_actor: str, provider: NativeProvider
) -> None:
    # bound by the host already; binding again succeeds with an empty reply
    assert provider.handle_call("system", "BindActor", config(pong_actor)) == b""
    assert provider.handle_call("system", "BindActor", config(pong_actor)) == b""
    assert provider.handle_call(pong_actor, "Ping", b"still") == b"PONG still"
    assert host.remove_binding(pong_actor, RUST_ECHO) is True
    # the host sent RemoveActor; removing again, twice, still succeeds
    assert provider.handle_call("system", "RemoveActor", config(pong_actor)) == b""
    assert provider.handle_call("system", "RemoveActor", config(pong_actor)) == b""
    # the provider decoded `module`: it no longer dispatches to the actor
    with pytest.raises(ProviderCallError, match="is not bound to wascc:rust_echo"):
        provider.handle_call(pong_actor, "Ping", b"x")


def test_bind_accepts_what_the_contract_accepts(provider: NativeProvider) -> None:
    key = "M" + "A" * 55
    extra = bytes.fromhex("c0")  # a trailing byte after the map is ignored
    # module as bin, keys in any order, unknown keys, a values map of anything
    body = (
        b"\x83"
        + b"\xa6values\x82\xa1a\x93\x01\xcb"
        + b"\x00" * 8
        + b"\xc0\xa1b\xc7\x02\x05ab"
        + b"\xa5extra\xdf\x00\x00\x00\x00"
        + b"\xa6module\xc4\x38"
        + key.encode()
    )
    assert provider.handle_call("system", "BindActor", body + extra) == b""
    assert provider.handle_call("system", "RemoveActor", config(key)) == b""


@pytest.mark.parametrize(
    "garbage",
    [
        b"\xc1",
        b"",
        b"\x01",
        b"\x80",
        b"\x81\xa6modu",
        b"\x81\xa6module\x05",
        b"\x81\xa6module\xa0",
        b"\x81\xa6module\xa2\xff\xfe",
        b"\xdf\xff\xff\xff\xff",
        b"\x81\xa6values" + b"\x91" * 1000,
        b"\x81\xa6module\xdb\xff\xff\xff\xffabc",
    ],
    ids=[
        "never-used-byte",
        "empty",
        "not-a-map",
        "no-module",
        "truncated-key",
        "module-not-a-string",
        "empty-module",
        "module-not-utf8",
        "huge-map-count",
        "nested-too-deep",
        "huge-string-length",
    ],
)
def test_garbage_configuration_is_refused_with_an_error(
    provider: NativeProvider, garbage: bytes
) -> None:
    with pytest.raises(ProviderCallError, match=r"^BindActor: "):
        provider.handle_call("system", "BindActor", garbage)
    with pytest.raises(ProviderCallError, match=r"^RemoveActor: "):
        provider.handle_call("system", "RemoveActor", garbage)
    assert provider.handle_call("system", "Echo", b"alive") == b"alive"


def test_random_and_truncated_configurations_never_panic(provider: NativeProvider) -> None:
    rng = random.Random(20240601)
    valid = config("M" + "B" * 55)
    samples = [valid[:n] for n in range(len(valid))]
    samples += [rng.randbytes(rng.randrange(1, 64)) for _ in range(2000)]
    samples += [
        bytes([rng.choice([0x81, 0x91, 0xA6, 0xC7, 0xDC, 0xDE])]) + rng.randbytes(8)
        for _ in range(500)
    ]
    for garbage in samples:
        try:
            provider.handle_call("system", "BindActor", garbage)
        except ProviderCallError as exc:
            assert str(exc).startswith("BindActor: "), (garbage, exc)
            assert "panicked" not in str(exc)
    assert provider.handle_call("system", "BindActor", valid) == b""


@pytest.mark.parametrize(
    "operation", ["BindActor", "RemoveActor", "HealthRequest", "GetCapabilityDescriptor"]
)
def test_core_operations_are_refused_from_an_actor(
    host: Host, plain_actor: str, provider: NativeProvider, operation: str
) -> None:
    with pytest.raises(ProviderCallError, match=f"^{operation} is reserved for the host"):
        provider.handle_call(plain_actor, operation, config(plain_actor))
    with pytest.raises(GuestError, match=f"{operation} is reserved for the host"):
        host.call_actor(
            plain_actor, "Call", call_payload(RUST_ECHO, operation, config(plain_actor))
        )


def test_health(host: Host, provider: NativeProvider) -> None:
    reply = provider.handle_call("system", "HealthRequest", HealthRequest().encode())
    assert HealthResponse.decode(reply) == HealthResponse(healthy=True, message="")
    report = host.check_health()[(RUST_ECHO, "default")]
    assert report.healthy
    assert RUST_ECHO in [p.capability_id for p in host.providers()]


def test_a_panic_never_crosses_into_the_host(
    host: Host, plain_actor: str, provider: NativeProvider
) -> None:
    with pytest.raises(ProviderCallError, match="wascc:rust_echo panicked: Panic was asked"):
        provider.handle_call(plain_actor, "Panic", b"abc")
    with pytest.raises(GuestError, match="panicked"):
        host.call_actor(plain_actor, "Call", call_payload(RUST_ECHO, "Panic"))
    # still serving, with its locks usable
    assert host.call_actor(plain_actor, "Call", call_payload(RUST_ECHO, "Echo", b"ok")) == b"ok"
    assert provider.handle_call("system", "BindActor", config(plain_actor)) == b""


def test_two_registrations_do_not_share_state(
    host: Host, rust_echo_lib: Path, pong_actor: str, provider: NativeProvider
) -> None:
    second = load_native_provider(rust_echo_lib)
    host.add_provider(second, binding="second")
    assert provider.handle_call(pong_actor, "Ping", b"1") == b"PONG 1"
    with pytest.raises(ProviderCallError, match="not bound"):
        second.handle_call(pong_actor, "Ping", b"2")
    host.remove_provider(RUST_ECHO, "second")
    assert provider.handle_call(pong_actor, "Ping", b"3") == b"PONG 3"


def test_remove_provider_stops_then_destroys(
    host: Host,
    pong_actor: str,
    provider: NativeProvider,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stops: list[str] = []
    real_stop = provider.stop

    def recording_stop() -> None:
        stops.append("stop")
        real_stop()

    monkeypatch.setattr(provider, "stop", recording_stop)
    host.remove_provider(RUST_ECHO)
    assert stops == ["stop"]
    assert provider._lib._stopped  # stop and destroy both ran (NativeLibrary.stop)
    assert RUST_ECHO not in [p.capability_id for p in host.providers()]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    with pytest.raises(GuestError, match=r"no provider|not bound"):
        host.call_actor(pong_actor, "Call", call_payload(RUST_ECHO, "Echo", b"x"))
    provider.stop()  # a second stop is a no-op; the struct is never touched again
    assert stops == ["stop", "stop"]


def test_a_destroyed_registration_can_be_replaced(
    host: Host, rust_echo_lib: Path, provider: NativeProvider, sign: Signer
) -> None:
    host.remove_provider(RUST_ECHO)
    fresh = load_native_provider(rust_echo_lib)
    host.add_provider(fresh)
    signed, _ = sign(wasmtime.wat2wasm(PONG_ACTOR_WAT), caps=[RUST_ECHO])
    key = host.add_actor(signed)
    host.set_binding(key, RUST_ECHO)
    assert host.call_actor(key, "Call", call_payload(RUST_ECHO, "Ping", b"new")) == b"PONG new"
