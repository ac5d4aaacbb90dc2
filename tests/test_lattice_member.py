"""Two Hosts in one process joined by real NATS: the RemoteRouter paths, call by call."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_lattice import jetstream_nats  # noqa: F401 - the session's JetStream server

from wascc import Host
from wascc.actor import ActorSettings
from wascc.errors import AntiforgeryError, GuestError, HostStopped, LatticeError, NotFound
from wascc.lattice import Lattice, LatticeConfig
from wascc.wire.keys import KeyPair

from conftest import Signer, call_payload
from servers import ServerProcess


class Pair:
    def __init__(self, server: ServerProcess, tmp: Path, account: KeyPair) -> None:
        self.url = f"nats://127.0.0.1:{server.port}"
        self.namespace = "m" + secrets.token_hex(4)
        self.tmp = tmp
        self.account = account
        self.started: list[tuple[Host, Lattice]] = []

    def host(self, *, deadline: float = 5.0, call_timeout: float = 5.0, **kw: object) -> Host:
        host = Host(
            trusted_issuers=[self.account.public_key],
            health_interval=0,
            actor_settings=ActorSettings(deadline=deadline),
        )
        config = LatticeConfig(
            self.url, self.namespace, ephemeral_key=True, call_timeout=call_timeout,
            heartbeat=0.5, **kw,  # type: ignore[arg-type]
        )  # fmt: skip
        member = Lattice(host, config)
        member.start()
        self.started.append((host, member))
        return host

    def close(self) -> None:
        for host, member in self.started:
            member.leave()
            host.stop()
            member.close()


@pytest.fixture
def pair(
    jetstream_nats: ServerProcess,  # noqa: F811
    tmp_path: Path,
    account: KeyPair,
) -> Iterator[Pair]:
    running = Pair(jetstream_nats, tmp_path, account)
    yield running
    running.close()


def _eventually(fn: object, timeout: float = 5.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()  # type: ignore[operator, no-any-return]
        except (NotFound, GuestError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_an_actor_calls_an_actor_on_another_host(pair: Pair, sign: Signer) -> None:
    callee_wasm, callee = sign(name="callee")
    caller_wasm, caller = sign(name="caller", caps=[callee.public_key])
    one, two = pair.host(), pair.host()
    one.add_actor(caller_wasm)
    two.add_actor(callee_wasm)
    payload = call_payload(callee.public_key, "Echo", b"across")
    assert _eventually(lambda: one.call_actor(caller.public_key, "Call", payload)) == b"across"
    # the host API reaches a remote actor too, as `system`
    assert one.call_actor(callee.public_key, "Echo", b"direct") == b"direct"


def test_a_remote_actor_error_arrives_as_an_invocation_failure(pair: Pair, sign: Signer) -> None:
    wasm, actor = sign(name="svc")
    one, two = pair.host(), pair.host()
    two.add_actor(wasm)
    _eventually(lambda: one.call_actor(actor.public_key, "Echo", b"up"))
    with pytest.raises(Exception, match=r"^Invocation failure: .*boom") as caught:
        one.call_actor(actor.public_key, "Fail", b"boom")
    assert type(caught.value).__name__ == "RemoteInvocationError"


def test_nothing_serves_an_unknown_actor(pair: Pair, sign: Signer) -> None:
    one = pair.host()
    _, nobody = sign(name="nobody")
    with pytest.raises(Exception, match="nothing in the lattice serves") as caught:
        one.call_actor(nobody.public_key, "Echo", b"")
    assert type(caught.value).__name__ == "NotBound"


def test_a_host_with_a_trusted_list_refuses_other_hosts(pair: Pair, sign: Signer) -> None:
    wasm, actor = sign(name="svc")
    outsider = pair.host()
    strict = pair.host(trusted_hosts=(pair.started[0][1].id,))
    strict.add_actor(wasm)
    third = pair.host()  # not on the strict host's list
    assert outsider.call_actor(actor.public_key, "Echo", b"ok") == b"ok"
    refused = r"Antiforgery check failure: host .* is not on the trusted host list"
    with pytest.raises(AntiforgeryError, match=refused):
        third.call_actor(actor.public_key, "Echo", b"no")


def test_the_callers_deadline_bounds_a_remote_call(pair: Pair, sign: Signer) -> None:
    callee_wasm, callee = sign(name="callee")
    caller_wasm, caller = sign(name="caller", caps=[callee.public_key])
    one = pair.host(call_timeout=0.5, deadline=5.0)
    two = pair.host(deadline=30.0)
    one.add_actor(caller_wasm)
    two.add_actor(callee_wasm)
    _eventually(lambda: one.call_actor(callee.public_key, "Echo", b""))
    start = time.monotonic()
    with pytest.raises(GuestError, match=r"no answer within 0\.5s"):
        one.call_actor(caller.public_key, "Call", call_payload(callee.public_key, "Loop"))
    assert time.monotonic() - start < 2.5
    # the deadline crossed the wire: the callee's run was cut there, not at its own 30 s
    deadline = time.monotonic() + 3
    while two.busy() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert two.busy() == 0


def test_a_stopped_host_refuses_lattice_work(pair: Pair, sign: Signer) -> None:
    wasm, actor = sign(name="svc")
    one = pair.host()
    one.add_actor(wasm)
    one.drain(0)
    with pytest.raises(HostStopped):
        one.serve_actor_call("system", actor.public_key, "Echo", b"")


def test_joining_needs_jetstream(nats_server: ServerProcess) -> None:
    host = Host(health_interval=0)
    try:
        config = LatticeConfig(f"nats://127.0.0.1:{nats_server.port}", ephemeral_key=True)
        with pytest.raises(LatticeError, match="is JetStream enabled"):
            Lattice(host, config).start()
        assert host.remote is None
    finally:
        host.stop()


def test_joining_an_unreachable_lattice_is_a_clear_error() -> None:
    from servers import free_port

    host = Host(health_interval=0)
    try:
        config = LatticeConfig(
            f"nats://127.0.0.1:{free_port()}", ephemeral_key=True, connect_timeout=1
        )
        started = time.monotonic()
        with pytest.raises(LatticeError, match=r"cannot join the lattice at nats://127\.0\.0\.1:"):
            Lattice(host, config).start()
        assert time.monotonic() - started < 10
    finally:
        host.stop()
