"""Actors on the host: loading, the waPC result rules, traps, deadlines, memory caps."""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime

from wascc import (
    ActorLoadError,
    ActorTrap,
    GuestError,
    Host,
    InvocationTimeout,
    KeyPair,
    KeyType,
    MemoryLimitExceeded,
    MissingClaims,
    ModuleError,
    NotFound,
    WasccError,
)
from wascc.engine.ffi import struct_layout

from conftest import Signer, build_test_actor

StartActor = Callable[..., str]


def test_c_module_mirrors_wasmtime_struct_layouts() -> None:
    import wasmtime._bindings as bindings

    for name, size in struct_layout().items():
        assert size == ctypes.sizeof(getattr(bindings, name)), name


@pytest.mark.parametrize("size", [0, 1024, 1024 * 1024])
def test_echo_returns_the_payload_byte_for_byte(
    host: Host, start_actor: StartActor, size: int
) -> None:
    key = start_actor()
    payload = bytes((i * 7 + 3) % 256 for i in range(size))
    assert host.call_actor(key, "Echo", payload) == payload


def test_start_and_wapc_init_run_once_in_that_order(host: Host, start_actor: StartActor) -> None:
    key = start_actor()
    assert host.call_actor(key, "Init") == b"SW"
    assert host.call_actor(key, "Init") == b"SW"


def test_guest_error_is_reported_with_actor_and_operation(
    host: Host, start_actor: StartActor
) -> None:
    key = start_actor(name="failing")
    with pytest.raises(GuestError) as info:
        host.call_actor(key, "Fail", b"the reason")
    text = str(info.value)
    assert "the reason" in text and "failing" in text and key in text and "Fail" in text


def test_error_with_success_code_is_still_an_error(host: Host, start_actor: StartActor) -> None:
    key = start_actor()
    with pytest.raises(GuestError, match="only an error"):
        host.call_actor(key, "ErrorOk", b"only an error")


def test_success_without_response_is_an_error(host: Host, start_actor: StartActor) -> None:
    key = start_actor()
    with pytest.raises(GuestError, match="set no response"):
        host.call_actor(key, "NoResponse")


def test_unknown_operation_is_the_actors_own_error(host: Host, start_actor: StartActor) -> None:
    key = start_actor()
    with pytest.raises(GuestError, match="unknown operation"):
        host.call_actor(key, "Nope")


def test_trap_fails_one_call_and_the_next_call_is_answered(
    host: Host, start_actor: StartActor
) -> None:
    key = start_actor(max_instances=1)
    with pytest.raises(ActorTrap, match="unreachable"):
        host.call_actor(key, "Trap")
    assert host.call_actor(key, "Echo", b"still here") == b"still here"
    assert host.call_actor(key, "Init") == b"SW"  # a fresh instance ran its init again


def test_infinite_loop_stops_at_deadline_while_another_actor_answers(
    host: Host, start_actor: StartActor
) -> None:
    looping = start_actor(name="looper", deadline=0.5)
    other = start_actor(name="other")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            host.call_actor(looping, "Loop")
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    started = time.monotonic()
    worker.start()
    answered = 0
    while worker.is_alive():
        assert host.call_actor(other, "Echo", b"ping") == b"ping"
        answered += 1
    elapsed = time.monotonic() - started
    worker.join()
    assert len(errors) == 1 and isinstance(errors[0], InvocationTimeout)
    assert isinstance(errors[0], TimeoutError)
    assert "looper" in str(errors[0]) and "Loop" in str(errors[0])
    assert answered > 10  # the other actor kept serving while the loop ran
    assert elapsed >= 0.5
    assert host.call_actor(looping, "Echo", b"back") == b"back"


def test_memory_bomb_is_stopped_at_the_cap(host: Host, start_actor: StartActor) -> None:
    cap = 4 * 1024 * 1024
    key = start_actor(memory_limit=cap, max_instances=1)
    with pytest.raises(MemoryLimitExceeded) as info:
        host.call_actor(key, "Grow")
    assert isinstance(info.value, MemoryError)
    assert str(cap) in str(info.value)
    assert host.call_actor(key, "Echo", b"ok") == b"ok"


def test_instance_left_at_its_cap_is_replaced(host: Host, start_actor: StartActor) -> None:
    cap = 4 * 1024 * 1024
    key = start_actor(memory_limit=cap, max_instances=1)
    # grow to exactly the cap (64 pages = 4 MiB; the module starts with 1)
    assert host.call_actor(key, "GrowOnce", bytes([63])) == b""
    assert host.actor(key).instances == 0  # discarded after answering
    assert host.call_actor(key, "Echo", b"fresh") == b"fresh"


def test_payload_larger_than_the_cap_fails_cleanly(host: Host, start_actor: StartActor) -> None:
    key = start_actor(memory_limit=1024 * 1024)
    with pytest.raises((ActorTrap, MemoryLimitExceeded)):
        host.call_actor(key, "Echo", b"x" * (2 * 1024 * 1024))
    assert host.call_actor(key, "Echo", b"small") == b"small"


def test_console_log_reaches_logging_with_actor_name_and_key(
    host: Host, start_actor: StartActor, caplog: pytest.LogCaptureFixture
) -> None:
    key = start_actor(name="chatty")
    with caplog.at_level(logging.INFO, logger="wascc.actor"):
        host.call_actor(key, "Log", "hello from wasm ✓".encode())
    records = [r for r in caplog.records if r.name == "wascc.actor"]
    assert records, "no console log record"
    record = records[-1]
    assert "hello from wasm ✓" in record.getMessage()
    assert "chatty" in record.getMessage()
    assert record.actor == key  # type: ignore[attr-defined]


def test_garbage_bytes_are_refused_as_not_wasm(host: Host) -> None:
    with pytest.raises(ModuleError, match="not a WebAssembly module"):
        host.add_actor(b"this is not wasm at all")


def test_wasm_with_invalid_code_is_refused_with_actor_named(host: Host, sign: Signer) -> None:
    wasm = bytearray(wasmtime.wat2wasm('(module (func (export "f") (result i32) i32.const 7))'))
    at = wasm.index(bytes([0x41, 0x07]))  # i32.const 7
    wasm[at] = 0xFF  # not an opcode; the sections still parse, so it can be signed
    signed, module = sign(bytes(wasm), name="corrupt")
    with pytest.raises(ModuleError, match="not a valid WebAssembly module") as info:
        host.add_actor(signed)
    assert "corrupt" in str(info.value) and module.public_key in str(info.value)


def test_module_without_guest_call_is_refused_with_actor_named(host: Host, sign: Signer) -> None:
    wasm = wasmtime.wat2wasm('(module (memory (export "memory") 1) (func (export "f")))')
    signed, module = sign(wasm, name="noentry")
    with pytest.raises(ActorLoadError, match="__guest_call") as info:
        host.add_actor(signed)
    assert "noentry" in str(info.value) and module.public_key in str(info.value)


def test_import_the_host_does_not_provide_is_named(host: Host, sign: Signer) -> None:
    wasm = wasmtime.wat2wasm(
        '(module (import "env" "abort" (func)) (memory (export "memory") 1)'
        ' (func (export "__guest_call") (param i32 i32) (result i32) i32.const 1))'
    )
    signed, _ = sign(wasm, name="needs-env")
    with pytest.raises(ActorLoadError, match=r"env::abort"):
        host.add_actor(signed)


def test_waPC_import_with_wrong_signature_is_refused(host: Host, sign: Signer) -> None:
    wasm = wasmtime.wat2wasm(
        '(module (import "wapc" "__console_log" (func (param i32)))'
        ' (memory (export "memory") 1)'
        ' (func (export "__guest_call") (param i32 i32) (result i32) i32.const 1))'
    )
    signed, _ = sign(wasm, name="wrongsig")
    with pytest.raises(ActorLoadError, match="wrong type"):
        host.add_actor(signed)


def test_module_without_memory_export_is_refused(host: Host, sign: Signer) -> None:
    wasm = wasmtime.wat2wasm(
        "(module (memory 1)"
        ' (func (export "__guest_call") (param i32 i32) (result i32) i32.const 1))'
    )
    signed, _ = sign(wasm, name="nomem")
    with pytest.raises(ActorLoadError, match="memory"):
        host.add_actor(signed)


def test_trap_in_start_refuses_the_actor(host: Host, sign: Signer) -> None:
    wasm = wasmtime.wat2wasm(
        '(module (memory (export "memory") 1) (func (export "_start") unreachable)'
        ' (func (export "__guest_call") (param i32 i32) (result i32) i32.const 1))'
    )
    signed, _ = sign(wasm, name="badstart")
    with pytest.raises(ActorLoadError, match="_start failed"):
        host.add_actor(signed)
    assert host.actors() == []


def test_wasi_imports_are_refused_for_actors(host: Host, sign: Signer) -> None:
    wasm = wasmtime.wat2wasm(
        '(module (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))'
        ' (memory (export "memory") 1)'
        ' (func (export "__guest_call") (param i32 i32) (result i32) i32.const 1))'
    )
    signed, _ = sign(wasm, name="wasi")
    with pytest.raises(ActorLoadError, match="WASI"):
        host.add_actor(signed)


def test_unsigned_actor_is_refused_by_default(host: Host) -> None:
    with pytest.raises(MissingClaims, match="not signed"):
        host.add_actor(build_test_actor())


def test_unsigned_actor_runs_when_allowed_but_holds_no_capabilities(account: KeyPair) -> None:
    with Host(allow_unsigned=True, health_interval=0, load_entry_points=False) as h:
        key = h.add_actor(build_test_actor())
        assert key.startswith("M") and len(key) == 56
        assert h.call_actor(key, "Echo", b"x") == b"x"
        info = h.actor(key)
        assert not info.signed and info.claims.caps == ()
        # the same bytes keep the same identity
        with Host(allow_unsigned=True, health_interval=0, load_entry_points=False) as h2:
            assert h2.add_actor(build_test_actor()) == key


def test_actor_loaded_from_a_file(host: Host, sign: Signer, tmp_path: Path) -> None:
    signed, module = sign(name="fromfile")
    path = tmp_path / "actor.wasm"
    path.write_bytes(signed)
    assert host.add_actor(path) == module.public_key
    assert host.actor(module.public_key).name == "fromfile"
    with pytest.raises(ActorLoadError, match="cannot read"):
        host.add_actor(tmp_path / "missing.wasm")


def test_same_actor_twice_is_refused(host: Host, sign: Signer) -> None:
    signed, _ = sign()
    host.add_actor(signed)
    with pytest.raises(WasccError, match="already running"):
        host.add_actor(signed)


def test_calling_an_unknown_actor_names_it(host: Host) -> None:
    key = KeyPair.generate(KeyType.MODULE).public_key
    with pytest.raises(NotFound, match=key):
        host.call_actor(key, "Echo", b"")


def test_remove_actor_stops_it(host: Host, start_actor: StartActor) -> None:
    key = start_actor()
    host.remove_actor(key)
    with pytest.raises(NotFound):
        host.call_actor(key, "Echo")
    with pytest.raises(NotFound):
        host.remove_actor(key)


def test_actor_answers_health_request(host: Host, start_actor: StartActor) -> None:
    key = start_actor()
    report = host.actor_health(key)
    assert report.healthy and report.message == ""


def test_trap_after_a_guest_error_keeps_the_guests_message(
    host: Host, start_actor: StartActor
) -> None:
    key = start_actor()
    with pytest.raises(ActorTrap, match=r"the actor had reported: assertion failed at main\.ts:7"):
        host.call_actor(key, "ErrorTrap", b"assertion failed at main.ts:7")
    assert host.call_actor(key, "Echo", b"fine") == b"fine"
