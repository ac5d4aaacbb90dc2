"""A waPC actor in Rust (tests/guests/rust/actor.rs): no_std, no crates, no wascc SDK.

The actor is built here with Debian's rustc and its wasm32 standard library
(package libstd-rust-dev-wasm32), so the host is proven against waPC as another
toolchain writes it, not only against its own WAT actors.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import wasmtime

from wascc import GuestError, Host
from wascc.wire import codec

from conftest import Signer
from providers import TESTING, RecordingProvider

SOURCE = Path(__file__).resolve().parent / "guests" / "rust" / "actor.rs"
TARGET = "wasm32-unknown-unknown"
WAPC_IMPORTS = {
    "__guest_request": (["i32", "i32"], []),
    "__guest_response": (["i32", "i32"], []),
    "__guest_error": (["i32", "i32"], []),
    "__host_call": (["i32"] * 8, ["i32"]),
    "__host_response_len": ([], ["i32"]),
    "__host_response": (["i32"], []),
    "__host_error_len": ([], ["i32"]),
    "__host_error": (["i32"], []),
    "__console_log": (["i32", "i32"], []),
}


def wasm32_rustc() -> str | None:
    """A rustc whose sysroot has the wasm32-unknown-unknown std (Debian's, not rustup's)."""
    candidates = ["/usr/bin/rustc", shutil.which("rustc")]
    for rustc in dict.fromkeys(c for c in candidates if c):
        try:
            done = subprocess.run(
                [rustc, "--print", "sysroot"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except OSError:
            continue
        sysroot = Path(done.stdout.strip())
        if done.returncode == 0 and (sysroot / "lib" / "rustlib" / TARGET / "lib").is_dir():
            return rustc
    return None


@pytest.fixture(scope="module")
def rust_wasm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The actor, compiled now into a temporary directory; must build warning-free."""
    rustc = wasm32_rustc()
    if rustc is None:
        pytest.fail(
            f"no rustc with the {TARGET} target (Debian: libstd-rust-dev-wasm32): "
            "run `bash .ci/system-deps` as root"
        )
    out = tmp_path_factory.mktemp("rust_guest") / "actor.wasm"
    command = [
        rustc,
        "--edition",
        "2021",
        "--target",
        TARGET,
        "--crate-type",
        "cdylib",
        "-C",
        "panic=abort",
        "-C",
        "opt-level=s",
        "-C",
        "lto",
        "-C",
        "strip=symbols",
        "-o",
        str(out),
        str(SOURCE),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"rustc failed:\n{done.stderr}"
    assert done.stderr.strip() == "", f"rustc warned:\n{done.stderr}"
    data = out.read_bytes()
    print(f"\nrust guest: {out.name} is {len(data)} bytes, built with {rustc}")
    return data


@pytest.fixture
def actor(host: Host, sign: Signer, rust_wasm: bytes) -> str:
    signed, _ = sign(rust_wasm, caps=[TESTING], name="rust-guest")
    return host.add_actor(signed)


@pytest.fixture
def provider(host: Host) -> RecordingProvider:
    p = RecordingProvider()
    host.add_provider(p)
    return p


def test_module_speaks_only_wapc(rust_wasm: bytes) -> None:
    module = wasmtime.Module(wasmtime.Engine(), rust_wasm)
    imports = {}
    for imp in module.imports:
        assert imp.module == "wapc", f"import from {imp.module!r}: {imp.name}"
        ty = imp.type
        assert isinstance(ty, wasmtime.FuncType)
        imports[imp.name] = ([str(p) for p in ty.params], [str(r) for r in ty.results])
    assert imports == WAPC_IMPORTS
    exports = {exp.name: exp.type for exp in module.exports}
    assert isinstance(exports["memory"], wasmtime.MemoryType)
    call = exports["__guest_call"]
    assert isinstance(call, wasmtime.FuncType)
    assert ([str(p) for p in call.params], [str(r) for r in call.results]) == (
        ["i32", "i32"],
        ["i32"],
    )
    assert "_start" not in exports and "wapc_init" not in exports
    assert len(rust_wasm) < 64 * 1024


@pytest.mark.parametrize("size", [0, 1024, 1024 * 1024], ids=["0B", "1KiB", "1MiB"])
def test_echo(host: Host, actor: str, size: int) -> None:
    payload = bytes((i * 7 + 3) % 256 for i in range(size))
    assert host.call_actor(actor, "Echo", payload) == payload
    # the scratch region is reused: a short call after a long one sees only its own bytes
    assert host.call_actor(actor, "Echo", b"short") == b"short"


def test_fail_is_a_guest_error_with_the_message(host: Host, actor: str) -> None:
    with pytest.raises(GuestError, match="rust-guest failed: on purpose"):
        host.call_actor(actor, "Fail", b"on purpose")
    assert host.call_actor(actor, "Echo", b"still alive") == b"still alive"


def test_unknown_operation_is_a_guest_error(host: Host, actor: str) -> None:
    with pytest.raises(GuestError, match="unknown operation Nope"):
        host.call_actor(actor, "Nope", b"")


@pytest.mark.parametrize("size", [0, 11, 200_000], ids=["empty", "short", "200KB"])
def test_host_echo_round_trips_through_the_provider(
    host: Host, actor: str, provider: RecordingProvider, size: int
) -> None:
    host.set_binding(actor, TESTING)
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    assert host.call_actor(actor, "HostEcho", payload) == payload
    assert provider.calls == [(actor, "Echo", payload)]


def test_host_echo_unbound_error_reaches_the_caller(
    host: Host, actor: str, provider: RecordingProvider
) -> None:
    with pytest.raises(GuestError) as info:
        host.call_actor(actor, "HostEcho", b"x")
    text = str(info.value)
    assert "not bound to it" in text
    assert TESTING in text and "Echo" in text and "rust-guest" in text and "default" in text
    assert provider.calls == []
    # bound afterwards, the same instance now gets through
    host.set_binding(actor, TESTING)
    assert host.call_actor(actor, "HostEcho", b"now bound") == b"now bound"


def test_log_reaches_the_actor_logger(
    host: Host, actor: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="wascc.actor"):
        assert host.call_actor(actor, "Log", b"hello from rust") == b""
    lines = [r for r in caplog.records if r.name == "wascc.actor"]
    assert len(lines) == 1
    assert "hello from rust" in lines[0].getMessage()
    assert "rust-guest" in lines[0].getMessage()


@pytest.mark.parametrize(
    ("a", "b"),
    [(2, 40), (0, 0), (100, 200), (60_000, 6_000), (4_000_000_000, 4_000_000_000)],
    ids=["fixint", "zero", "uint8", "uint16", "uint32-to-uint64"],
)
def test_sum(host: Host, actor: str, a: int, b: int) -> None:
    reply = host.call_actor(actor, "Sum", codec.pack({"a": a, "b": b}))
    assert codec.unpack(reply) == {"sum": a + b}
    assert reply == codec.pack({"sum": a + b})  # minimal encoding, like rmp/msgpack


def test_sum_accepts_what_the_original_accepted(host: Host, actor: str) -> None:
    """Unknown scalar keys are ignored, and so are bytes after the first value (CONTRACTS 2)."""
    payload = codec.pack({"note": "hi", "b": 40, "x": None, "blob": b"\x00", "a": 2})
    assert codec.unpack(host.call_actor(actor, "Sum", payload + b"\x00\xc1pad")) == {"sum": 42}


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x81",
        b"\x81\xa1a",
        b"\x81\xa1a\xcd\x01",
        b"\xde\x03\xe8" + b"\xa1a\x01",
        b"\xdf\xff\xff\xff\xff",
        b"\xc1",
        b"\x81\xdb\xff\xff\xff\xff",
        codec.pack({"a": "2", "b": "40"}),
        codec.pack({"a": 2}),
        codec.pack({"a": -1, "b": 2}),
        codec.pack({"a": 2**64 - 1, "b": 1}),
        codec.pack({"a": 1, "b": 2, "c": [1, 2]}),
        codec.pack([2, 40]),
    ],
    ids=[
        "empty",
        "map-no-entries",
        "key-no-value",
        "truncated-uint16",
        "1000-claimed-entries",
        "map32-huge",
        "never-used-byte",
        "str32-huge",
        "strings",
        "missing-b",
        "negative",
        "overflow",
        "unknown-container",
        "array",
    ],
)
def test_sum_refuses_bad_payloads_without_trapping(host: Host, actor: str, payload: bytes) -> None:
    with pytest.raises(GuestError, match="bad payload"):
        host.call_actor(actor, "Sum", payload)
    assert codec.unpack(host.call_actor(actor, "Sum", codec.pack({"a": 1, "b": 2}))) == {"sum": 3}
    assert host.actor(actor).instances == 1  # no trap, so no instance was replaced


def test_four_threads_three_hundred_calls_each_all_matched(
    host: Host, sign: Signer, rust_wasm: bytes
) -> None:
    signed, _ = sign(rust_wasm, name="rust-busy")
    key = host.add_actor(signed, max_instances=4)
    threads, calls = 4, 300
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []
    mismatches: list[tuple[bytes, bytes]] = []

    def worker(index: int) -> None:
        barrier.wait()
        try:
            for n in range(calls):
                payload = f"thread {index} call {n} ".encode() * (1 + n % 7)
                reply = host.call_actor(key, "Echo", payload)
                if reply != payload:
                    mismatches.append((payload, reply))
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    assert mismatches == []
    info = host.actor(key)
    assert info.calls == threads * calls
    assert 1 <= info.instances <= threads
