"""An actor built with the public AssemblyScript waPC guest SDK runs on this host.

``tests/guests/assemblyscript`` is an actor written against ``@wapc/as-guest``
(pinned with its compiler in package.json / package-lock.json).  The fixture
below installs it with ``npm ci`` and compiles it with ``asc`` once per test
module, in a temporary directory, so the source tree stays clean.  Nothing
is skipped: without node and npm these tests fail and say how to get them.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import wasmtime

from wascc import GuestError, Host

from conftest import Signer
from providers import TESTING, RecordingProvider

GUEST = Path(__file__).parent / "guests" / "assemblyscript"
SOURCES = ("package.json", "package-lock.json", "asconfig.json", "assembly")
WAPC_IMPORTS = {
    "__guest_request",
    "__guest_response",
    "__guest_error",
    "__host_call",
    "__host_response_len",
    "__host_response",
    "__host_error_len",
    "__host_error",
    "__console_log",
}


@dataclass(frozen=True)
class BuiltGuest:
    wasm: bytes
    seconds: float  # npm ci + asc


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "CI": "1"},
    )
    if proc.returncode != 0:
        pytest.fail(
            f"`{' '.join(cmd)}` failed ({proc.returncode}) in {cwd}:\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> BuiltGuest:
    """The AssemblyScript actor: `npm ci` + `npm run build` in a copy of its sources."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: the AssemblyScript guest needs Node.js "
            "and npm; run `bash .ci/system-deps` as root to install them",
            pytrace=False,
        )
    work = tmp_path_factory.mktemp("as-guest")
    for name in SOURCES:
        src = GUEST / name
        if src.is_dir():
            shutil.copytree(src, work / name)
        else:
            shutil.copy2(src, work / name)
    started = time.perf_counter()
    _run(["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"], work)
    _run(["npm", "run", "build"], work)
    wasm = (work / "build" / "actor.wasm").read_bytes()
    return BuiltGuest(wasm, time.perf_counter() - started)


@pytest.fixture
def actor(host: Host, sign: Signer, guest: BuiltGuest) -> str:
    signed, _ = sign(guest.wasm, caps=[TESTING], name="as-guest")
    return host.add_actor(signed)


def test_module_imports_only_wapc(
    guest: BuiltGuest,
    capsys: pytest.CaptureFixture[str],
    record_property: Callable[[str, object], None],
) -> None:
    module = wasmtime.Module(wasmtime.Engine(), guest.wasm)
    imports = {(i.module, i.name) for i in module.imports}
    assert {m for m, _ in imports} == {"wapc"}, imports
    assert {n for _, n in imports} <= WAPC_IMPORTS
    exports = {e.name for e in module.exports}
    assert {"memory", "__guest_call", "_start"} <= exports
    record_property("wasm_size", len(guest.wasm))
    with capsys.disabled():
        print(
            f"\n[as-guest] actor.wasm: {len(guest.wasm)} bytes "
            f"(npm ci + asc: {guest.seconds:.1f}s); exports {sorted(exports)}"
        )


@pytest.mark.parametrize("size", [0, 1024, 100 * 1024], ids=["0B", "1KiB", "100KiB"])
def test_echo(host: Host, actor: str, size: int) -> None:
    payload = os.urandom(size)
    assert host.call_actor(actor, "Echo", payload) == payload


def test_fail_is_guest_error(host: Host, actor: str) -> None:
    with pytest.raises(GuestError) as info:
        host.call_actor(actor, "Fail", "bad input ✓".encode())
    assert "as-guest failed: bad input ✓" in str(info.value)
    assert "Fail" in str(info.value)
    # the instance survives an error answer
    assert host.call_actor(actor, "Echo", b"still here") == b"still here"


def test_unknown_operation_is_guest_error(host: Host, actor: str) -> None:
    # the SDK's own answer for an operation nobody registered
    with pytest.raises(GuestError, match='Could not find function "Nope"'):
        host.call_actor(actor, "Nope", b"")


@pytest.mark.parametrize("size", [0, 5, 100 * 1024], ids=["0B", "5B", "100KiB"])
def test_host_echo_round_trips_through_provider(host: Host, actor: str, size: int) -> None:
    provider = RecordingProvider()
    host.add_provider(provider)
    host.set_binding(actor, TESTING)
    payload = os.urandom(size)
    assert host.call_actor(actor, "HostEcho", payload) == payload
    assert provider.calls == [(actor, "Echo", payload)]


def test_host_echo_unbound_is_guest_error(host: Host, actor: str) -> None:
    with pytest.raises(GuestError) as info:
        host.call_actor(actor, "HostEcho", b"x")
    assert "no provider is registered there" in str(info.value)
    provider = RecordingProvider()
    host.add_provider(provider)  # registered, but this actor is not bound
    with pytest.raises(GuestError) as info:
        host.call_actor(actor, "HostEcho", b"x")
    message = str(info.value)
    assert "HostEcho" in message
    assert f"called {TESTING} Echo but is not bound to it on binding 'default'" in message
    assert provider.calls == []


def test_host_echo_without_claim_is_guest_error(
    host: Host, sign: Signer, guest: BuiltGuest
) -> None:
    signed, _ = sign(guest.wasm, caps=[], name="as-guest-nocaps")
    key = host.add_actor(signed)
    host.add_provider(RecordingProvider())
    with pytest.raises(GuestError, match=f"may not call {TESTING} \\(Echo\\)"):
        host.call_actor(key, "HostEcho", b"x")


def test_log_reaches_python_logging(
    host: Host, actor: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wascc.actor")
    line = "hello from AssemblyScript ✓"
    assert host.call_actor(actor, "Log", line.encode()) == b""
    records = [r for r in caplog.records if r.name == "wascc.actor"]
    assert len(records) == 1
    assert records[0].getMessage().endswith(line)
    assert records[0].actor == actor  # type: ignore[attr-defined]


def test_concurrent_echo(host: Host, sign: Signer, guest: BuiltGuest) -> None:
    signed, _ = sign(guest.wasm, caps=[TESTING], name="as-guest-pool")
    key = host.add_actor(signed, max_instances=4)
    threads, calls = 4, 200
    barrier = threading.Barrier(threads)
    failures: list[str] = []
    matched = [0] * threads

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(calls):
            payload = f"thread {n} call {i} ".encode() * (1 + i % 7)
            try:
                answer = host.call_actor(key, "Echo", payload)
            except Exception as exc:  # collected and asserted below
                failures.append(f"{n}/{i}: {exc!r}")
                continue
            if answer == payload:
                matched[n] += 1
            else:
                failures.append(f"{n}/{i}: got {answer[:40]!r}")

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in pool)
    assert failures == []
    assert matched == [calls] * threads
