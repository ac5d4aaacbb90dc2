"""The lattice end to end: real ``wascc up`` hosts joined over one real nats-server (JetStream on).

Each test takes a namespace of its own, so tests share the session's server
without seeing each other's hosts, subjects or bucket.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import nats
import pytest

from wascc.lattice.client import LatticeClient
from wascc.standalone.control import b64, request, unb64
from wascc.wire.keys import KeyPair, KeyType, write_seed
from wascc.wire.lattice import BusInvocation, BusResponse, Entity

from conftest import BuiltExamples, Signer
from servers import ServerProcess, free_port, start_nats

WASCC = str(Path(sys.executable).parent / "wascc")
ECHO_OP = "Echo"


@pytest.fixture(scope="session")
def jetstream_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A nats-server with JetStream on (store in a temporary directory), for the session."""
    server = start_nats(tmp_path_factory.mktemp("nats-js"), jetstream=True)
    yield server
    server.stop()


@dataclass
class Member:
    """One ``wascc up`` host in the lattice."""

    name: str
    process: subprocess.Popen[bytes]
    control: Path
    log: Path
    args: list[str]

    def call(self, actor: str, operation: str, payload: bytes = b"") -> bytes:
        answer = request(
            self.control, "call", actor=actor, operation=operation, payload_b64=b64(payload)
        )
        if not answer["ok"]:
            raise RuntimeError(answer["error"])
        return unb64(answer["reply_b64"])

    def ask(self, command: str, **args: Any) -> dict[str, Any]:
        answer = request(self.control, command, **args)
        assert answer["ok"], answer
        return answer

    def output(self) -> str:
        return self.log.read_text()


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Lattice:
    """Hosts of one namespace on the session's server; every one stopped at the end."""

    def __init__(self, server: ServerProcess, tmp: Path, issuers: list[str]) -> None:
        self.url = f"nats://127.0.0.1:{server.port}"
        self.namespace = "t" + secrets.token_hex(4)
        self.tmp = tmp
        self.issuers = issuers
        self.members: list[Member] = []

    def start(self, name: str, *args: str, manifest: str | None = None) -> Member:
        control = self.tmp / f"{name}.sock"
        log = self.tmp / f"{name}-{len(self.members)}.log"
        cmd = [
            WASCC, "up", "--control", str(control), "--health-interval", "0",
            "--lattice", self.url, "--namespace", self.namespace,
            "--state-dir", str(self.tmp / f"state-{name}"), "--heartbeat", "0.3",
            "--grace", "1", *args,
        ]  # fmt: skip
        for issuer in self.issuers:
            cmd += ["--trusted-issuer", issuer]
        if manifest is not None:
            path = self.tmp / f"{name}.yaml"
            path.write_text(manifest)
            cmd += ["--manifest", str(path)]
        if control.exists():
            control.unlink()
        with log.open("wb") as out:
            process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        member = Member(name, process, control, log, list(args))
        self.members.append(member)
        wait_for(lambda: control.exists() or process.poll() is not None, f"host {name}")
        assert process.poll() is None, member.output()
        return member

    def stop(self, member: Member) -> None:
        member.process.send_signal(signal.SIGTERM)
        member.process.wait(30)

    def client(self) -> LatticeClient:
        return LatticeClient(self.url, self.namespace, inventory_window=0.5)

    def cli(self, *args: str, timeout: float = 30) -> str:
        done = subprocess.run(
            [WASCC, "lattice", "--lattice", self.url, "--namespace", self.namespace, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def close(self) -> None:
        for m in self.members:
            if m.process.poll() is None:
                m.process.send_signal(signal.SIGTERM)
        for m in self.members:
            try:
                m.process.wait(30)
            except subprocess.TimeoutExpired:
                m.process.kill()


@pytest.fixture
def lattice(
    jetstream_nats: ServerProcess, tmp_path: Path, examples: BuiltExamples, account: KeyPair
) -> Iterator[Lattice]:
    running = Lattice(jetstream_nats, tmp_path, [account.public_key, examples.account])
    yield running
    running.close()


def http_get(port: int, path: str = "/hits", timeout: float = 15) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


EXAMPLES = Path(__file__).parent.parent / "examples"
KVCOUNTER = EXAMPLES / "kvcounter" / "build" / "kvcounter_s.wasm"


def kvcounter_key() -> str:
    seed = (EXAMPLES / "kvcounter" / "build" / "module.nk").read_text().strip()
    return KeyPair.from_seed(seed).public_key


class EventSpy:
    """``wascc lattice events --json`` running in the background, its lines parsed."""

    def __init__(self, lattice: Lattice) -> None:
        self.out = lattice.tmp / f"events-{secrets.token_hex(2)}.jsonl"
        with self.out.open("wb") as sink:
            self.process = subprocess.Popen(
                [WASCC, "lattice", "--lattice", lattice.url, "--namespace", lattice.namespace,
                 "--json", "events", "--no-heartbeats"],
                stdout=sink, stderr=subprocess.STDOUT,
            )  # fmt: skip
        time.sleep(1.0)  # subscribed before anything happens

    def names(self) -> list[str]:
        found = []
        for line in self.out.read_text().splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                (name,) = json.loads(event["data"])
                found.append(name)
        return found

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def test_three_hosts_count_through_the_lattice_with_a_binding_made_on_a(
    lattice: Lattice,
) -> None:
    spy = EventSpy(lattice)
    port = free_port()
    a = lattice.start("a", manifest="capabilities:\n  - path: wascc:http_server\n")
    b = lattice.start("b", manifest=f"actors:\n  - {KVCOUNTER}\n")
    c = lattice.start("c", manifest="capabilities:\n  - path: wascc:keyvalue\n")
    key = kvcounter_key()
    wait_for(lambda: key in lattice.cli("actors"), "kvcounter in the lattice's inventory")
    a.ask("bind", actor=key, capability="wascc:http_server", values={"PORT": str(port)})
    a.ask("bind", actor=key, capability="wascc:keyvalue")
    counts = [json.loads(http_get(port)[1])["counter"] for _ in range(3)]
    assert counts == [1, 2, 3]

    hosts = lattice.cli("hosts")
    assert len(hosts.strip().splitlines()) == 3 and "hostcore.os=linux" in hosts
    providers = lattice.cli("providers")
    assert "wascc:http_server (default)" in providers and "wascc:keyvalue (default)" in providers
    bindings = lattice.cli("bindings")
    assert f"{key} -> wascc:keyvalue (default)" in bindings
    with lattice.client() as client:
        found = {h["Host"]["id"] for h in client.inventory("hosts")}
        assert len(found) == 3
        actors = [x["Actors"] for x in client.inventory("actors")]
        assert [c["sub"] for h in actors for c in h["actors"]] == [key]
    # unbinding on any host removes the binding lattice-wide
    removed = b.ask("unbind", actor=key, capability="wascc:keyvalue")
    assert removed["removed"] is True
    assert "wascc:keyvalue" not in lattice.cli("bindings", "--recorded")
    assert "wascc:keyvalue" not in lattice.cli("bindings")
    status, body = http_get(port)
    assert status == 500, (status, body)
    wait_for(
        lambda: "nothing in the lattice serves" in a.output() + b.output(),
        "the refusal logged by the hosts on the path",
    )
    lattice.stop(b)
    wait_for(lambda: "HostStopped" in spy.names(), "HostStopped")
    spy.stop()
    names = spy.names()
    for expected in (
        "HostStarted", "ProviderLoaded", "ActorStarted", "ActorBindingCreated",
        "ActorBindingRemoved", "ActorStopped", "HostStopped",
    ):  # fmt: skip
        assert expected in names, (expected, names)
    assert c.process.poll() is None and a.process.poll() is None


def test_bindings_outlive_every_host_that_made_them(lattice: Lattice) -> None:
    port = free_port()
    http = "capabilities:\n  - path: wascc:http_server\n"
    kv = "capabilities:\n  - path: wascc:keyvalue\n"
    key = kvcounter_key()
    # b's manifest binds its actor to keyvalue, which runs on no host yet: recorded for later
    actor = (
        f"actors:\n  - {KVCOUNTER}\nbindings:\n  - actor: {key}\n    capability: wascc:keyvalue\n"
    )
    a = lattice.start("a", manifest=http)
    b = lattice.start("b", manifest=actor)
    c = lattice.start("c", manifest=kv)
    wait_for(lambda: key in lattice.cli("actors"), "kvcounter in the inventory")
    a.ask("bind", actor=key, capability="wascc:http_server", values={"PORT": str(port)})
    assert http_get(port)[0] == 200
    for m in (a, b, c):
        lattice.stop(m)
    recorded = lattice.cli("bindings", "--recorded")
    assert f"{key} -> wascc:http_server (default) PORT={port}" in recorded
    assert f"{key} -> wascc:keyvalue (default)" in recorded
    # every host back, in another order: the providers find their bindings in the bucket
    lattice.start("c", manifest=kv)
    lattice.start("a", manifest=http)
    lattice.start("b", manifest=actor)
    wait_for(lambda: _ok(port), "the restarted lattice to serve the bound actor")
    status, body = http_get(port)
    assert status == 200 and "counter" in body


def _ok(port: int) -> bool:
    try:
        return http_get(port, timeout=3)[0] == 200
    except OSError:
        return False


def test_kill_9_mid_call_fails_those_calls_and_survivors_take_the_rest(
    lattice: Lattice, sign: Signer
) -> None:
    signed, module = sign(caps=[], name="svc")
    path = lattice.tmp / "svc_s.wasm"
    path.write_bytes(signed)
    key = module.public_key
    caller = lattice.start("caller", "--deadline", "3")
    b = lattice.start("b", "--deadline", "60", manifest=f"actors:\n  - {path}\n")
    wait_for(lambda: _echoes(caller, key), "the actor reachable from the caller")
    with lattice.client() as client:
        events: list[tuple[str, Any]] = []
        stop = threading.Event()
        spy = threading.Thread(
            target=client.follow, args=(lambda n, body, _: events.append((n, body)), stop, 60)
        )
        spy.start()
        try:
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                in_flight = [pool.submit(_timed, caller.call, key, "Loop") for _ in range(3)]
                time.sleep(0.8)  # the Loop calls are running on b
                b2 = lattice.start("b2", "--deadline", "60", manifest=f"actors:\n  - {path}\n")
                assert b2.process.poll() is None
                time.sleep(0.5)  # b2 serves the actor's subject too
                os.kill(b.process.pid, signal.SIGKILL)
                b.process.wait(10)
                for future in in_flight:
                    elapsed, outcome = future.result(timeout=30)
                    assert isinstance(outcome, RuntimeError), outcome
                    assert "no answer within 3s" in str(outcome), outcome
                    assert elapsed < 10, elapsed  # the caller's deadline, never a hang
            for i in range(20):
                elapsed, outcome = _timed(caller.call, key, ECHO_OP, f"after {i}".encode())
                assert outcome == f"after {i}".encode(), outcome
            wait_for(lambda: any(n == "HostLost" for n, _ in events), "HostLost for b", timeout=15)
            lost = [body for n, body in events if n == "HostLost"]
            assert lost[0]["host"] in b.output()
        finally:
            stop.set()
            spy.join(10)


def _echoes(member: Member, key: str) -> bool:
    try:
        return member.call(key, ECHO_OP, b"ping") == b"ping"
    except RuntimeError:
        return False


def _timed(fn: Callable[..., bytes], *args: Any) -> tuple[float, bytes | Exception]:
    start = time.monotonic()
    try:
        result: bytes | Exception = fn(*args)
    except Exception as exc:
        result = exc
    return time.monotonic() - start, result


def test_forged_invocations_are_refused_with_the_antiforgery_error(
    lattice: Lattice, sign: Signer
) -> None:
    signed, module = sign(caps=[], name="svc")
    path = lattice.tmp / "svc_s.wasm"
    path.write_bytes(signed)
    own = KeyPair.generate(KeyType.SERVER)
    write_seed(lattice.tmp / "state-h" / "host.nk", own)
    trusted = KeyPair.generate(KeyType.SERVER)
    stranger = KeyPair.generate(KeyType.SERVER)
    h = lattice.start(
        "h", "--trusted-host", own.public_key, "--trusted-host", trusted.public_key,
        manifest=f"actors:\n  - {path}\n",
    )  # fmt: skip
    assert own.public_key in h.output()  # the host kept the key in its state directory
    key = module.public_key
    subject = f"{lattice.namespace}.wasmbus.actor.{key}"
    origin, target = Entity.of_actor("system"), Entity.of_actor(key)

    def send(inv: BusInvocation) -> BusResponse:
        async def go() -> bytes:
            nc = await nats.connect(lattice.url)
            try:
                msg = await nc.request(subject, inv.encode(), timeout=10)
                return bytes(msg.data)
            finally:
                await nc.close()

        return BusResponse.decode(asyncio.run(go()))

    wait_for(lambda: key in lattice.cli("actors"), "the actor in the lattice")
    good = BusInvocation.signed(trusted, origin, target, ECHO_OP, b"hello")
    answer = send(good)
    assert answer.error is None and answer.msg == b"hello" and answer.invocation_id == good.id

    other = BusInvocation.signed(stranger, origin, target, ECHO_OP, b"hello")
    head, body, _ = good.encoded_claims.split(".")
    bad_signature = replace(
        good, encoded_claims=f"{head}.{body}.{other.encoded_claims.split('.')[2]}"
    )
    refused = send(bad_signature).error or ""
    assert refused.startswith("Antiforgery check failure: the signature does not verify"), refused

    wrong_hash = replace(good, msg=b"HELLO")
    refused = send(wrong_hash).error or ""
    assert refused == "Antiforgery check failure: the invocation hash does not match its contents"

    refused = send(other).error or ""
    assert refused == (
        f"Antiforgery check failure: host {stranger.public_key} is not on the trusted host list"
    )

    wrong_target = replace(good, operation="Fail")
    refused = send(wrong_target).error or ""
    assert refused.startswith("Antiforgery check failure: target"), refused


def test_a_nats_outage_keeps_local_calls_working_and_the_host_re_announces(
    tmp_path: Path, examples: BuiltExamples, account: KeyPair, sign: Signer
) -> None:
    own = tmp_path / "own-nats"
    own.mkdir()
    server = start_nats(own, jetstream=True)
    lattice = Lattice(server, tmp_path, [account.public_key])
    try:
        signed, module = sign(caps=[], name="svc")
        path = tmp_path / "svc_s.wasm"
        path.write_bytes(signed)
        h = lattice.start("h", manifest=f"actors:\n  - {path}\n")
        key = module.public_key
        assert h.call(key, ECHO_OP, b"before") == b"before"
        server.kill()
        wait_for(lambda: "disconnected from NATS" in h.output(), "the host to notice")
        for i in range(5):
            assert h.call(key, ECHO_OP, f"local {i}".encode()) == f"local {i}".encode()
        server.start()
        wait_for(lambda: "re-announced" in h.output(), "the host to reconnect and re-announce")
        wait_for(lambda: key in lattice.cli("actors"), "the host answering inventory again")
        assert h.call(key, ECHO_OP, b"after") == b"after"
    finally:
        lattice.close()
        server.stop()


def _host_id(member: Member) -> str:
    import re

    found = re.search(r"as host (N[A-Z2-7]{55})", member.output())
    assert found is not None, member.output()
    return found.group(1)


def test_auction_picks_only_hosts_whose_labels_match_then_launch_and_terminate(
    lattice: Lattice, sign: Signer
) -> None:
    signed, module = sign(caps=[], name="svc")
    path = lattice.tmp / "svc_s.wasm"
    path.write_bytes(signed)
    spy = EventSpy(lattice)
    east1 = lattice.start("east1", manifest="labels:\n  zone: east\n")
    west = lattice.start("west", manifest="labels:\n  zone: west\n")
    east2 = lattice.start("east2", manifest="labels:\n  zone: east\n")
    east = {_host_id(east1), _host_id(east2)}
    bids = lattice.cli("auction", str(path), "-c", "zone=east").split()
    assert set(bids) == east
    assert lattice.cli("auction", str(path), "-c", "zone=west").split() == [_host_id(west)]
    assert len(lattice.cli("auction", str(path), "-c", "hostcore.os=linux").split()) == 3
    out = lattice.cli("auction", str(path), "-c", "zone=east", "--launch")
    winner = out.split("started on ")[1].strip()
    assert winner in east
    actors = lattice.cli("actors")
    assert f"{module.public_key}  svc  on {winner}" in actors
    # the host running it no longer bids
    assert lattice.cli("auction", str(path), "-c", "zone=east").split() == list(east - {winner})
    lattice.cli("terminate", winner, module.public_key)
    assert module.public_key not in lattice.cli("actors")
    # providers: launch by capability id on a named host, provider auction, terminate
    w = _host_id(west)
    lattice.cli("launch", w, "wascc:keyvalue", "--provider", "-b", "cache")
    assert f"wascc:keyvalue (cache)  on {w}" in lattice.cli("providers")
    bids = lattice.cli("auction", "wascc:keyvalue", "--provider", "-b", "cache").split()
    assert set(bids) == east
    lattice.cli("terminate", w, "wascc:keyvalue", "--provider", "-b", "cache")
    assert "wascc:keyvalue" not in lattice.cli("providers")
    refused = subprocess.run(
        [WASCC, "lattice", "--lattice", lattice.url, "--namespace", lattice.namespace,
         "launch", w, str(lattice.tmp / "missing.wasm")],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert refused.returncode == 1 and "no actor module at" in refused.stderr
    assert "no host qualifies" not in refused.stderr
    wait_for(lambda: "ProviderRemoved" in spy.names(), "ProviderRemoved")
    spy.stop()
    names = spy.names()
    for expected in ("ActorStarted", "ActorStopped", "ProviderLoaded", "ProviderRemoved"):
        assert expected in names, (expected, names)


def test_a_frozen_host_is_reported_lost_and_drops_out_of_inventory(lattice: Lattice) -> None:
    one = lattice.start("one", manifest="labels:\n  n: one\n")
    two = lattice.start("two", manifest="labels:\n  n: two\n")
    frozen = _host_id(two)
    with lattice.client() as client:
        events: list[tuple[str, Any]] = []
        stop = threading.Event()
        spy = threading.Thread(
            target=client.follow, args=(lambda n, body, _: events.append((n, body)), stop, 60)
        )
        spy.start()
        try:
            wait_for(lambda: frozen in lattice.cli("hosts"), "both hosts in inventory")
            os.kill(two.process.pid, signal.SIGSTOP)  # alive for NATS, silent for the lattice
            started = time.monotonic()
            wait_for(
                lambda: any(n == "HostLost" and b["host"] == frozen for n, b in events),
                "HostLost for the frozen host",
                timeout=10,
            )
            assert time.monotonic() - started < 5  # heartbeat 0.3 s, lost after 3 periods
            assert frozen not in lattice.cli("hosts")
            assert _host_id(one) in lattice.cli("hosts")
        finally:
            os.kill(two.process.pid, signal.SIGCONT)
            stop.set()
            spy.join(10)
