"""Components (WASI 0.2) beside waPC actors, on the same providers and bindings.

The components are written in the component text format (tests/components)
and compiled by wasmtime's own parser; they are signed like actors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, generate_latest
from wascc_capabilities.messaging import MessagingProvider

from wascc import (
    ActorLoadError,
    ActorTrap,
    GuestError,
    HashMismatch,
    Host,
    InvocationTimeout,
    KeyPair,
    KeyType,
    MissingClaims,
    NotBound,
    Unauthorized,
)
from wascc._providers import library
from wascc.cli.main import main
from wascc.observe.metrics import HostCollector
from wascc.observe.recorder import Recorder
from wascc.providers.native import load_native_provider
from wascc.wire.codec import BrokerMessage, HttpRequest, HttpResponse

from conftest import BuiltExamples, Signer, build_test_actor, call_payload

COMPONENTS = Path(__file__).resolve().parent / "components"
KV = "wascc:keyvalue"


def component(name: str, version: str = "VERSION1") -> bytes:
    """A test component compiled from its WAT (``version``: what Version answers)."""
    assert len(version) == 8
    text = (COMPONENTS / f"{name}.wat").read_text().replace('"VERSION1"', f'"{version}"')
    return bytes(wasmtime.wat2wasm(text))


@pytest.fixture
def host(trusting_host: Callable[..., Host]) -> Host:
    return trusting_host(deadline=2.0, max_instances=4)


def test_a_component_is_signed_and_verified_like_an_actor(
    host: Host, sign: Signer, tmp_path: Path
) -> None:
    signed, module = sign(component("testcomponent"), name="comp")
    key = host.add_actor(signed)
    assert key == module.public_key
    info = host.actor(key)
    assert info.kind == "component" and info.name == "comp" and info.signed
    assert host.call_actor(key, "Echo", b"hi") == b"hi"
    assert host.call_actor(key, "Version") == b"VERSION1"
    # the hash covers the component without its claims: a changed byte is refused
    at = signed.index(b"VERSION1")
    tampered = signed[:at] + b"VERSION9" + signed[at + 8 :]
    with pytest.raises(HashMismatch):
        host.add_actor(tampered)
    # an unsigned component is refused unless the host runs unsigned modules
    with pytest.raises(MissingClaims, match="is not signed"):
        host.add_actor(component("testcomponent"))
    # the CLI inspects it with WIT names
    path = tmp_path / "comp.wasm"
    path.write_bytes(signed)
    result = CliRunner().invoke(main, ["inspect", "--json", str(path)])
    assert result.exit_code == 0, result.output
    info_json = json.loads(result.output)
    assert info_json["format"] == "component" and info_json["claims_status"] == "valid"
    assert [i["name"] for i in info_json["imports"]] == [
        "wascc:actor/host",
        "wasi:logging/logging",
    ]
    assert info_json["exports"] == [
        {"name": "wascc:actor/guest", "kind": "instance", "called": True}
    ]
    assert info_json["component"] == {"valid": True, "error": None}


def test_an_import_the_host_does_not_serve_is_refused_at_load(host: Host, sign: Signer) -> None:
    wat = """(component
      (import "wasi:filesystem/types@0.2.0" (instance))
      (core module $m (func (export "f")))
    )"""
    signed, _ = sign(bytes(wasmtime.wat2wasm(wat)), name="fs")
    with pytest.raises(ActorLoadError, match=r"imports wasi:filesystem/types@0\.2\.0, which"):
        host.add_actor(signed)


def test_a_component_counts_next_to_the_kvcounter_actor(
    host: Host, sign: Signer, examples: BuiltExamples
) -> None:
    """The kvcounter actor (waPC, HTTP requests) and a component (wasi:keyvalue) on one binding."""
    host.add_provider(load_native_provider(library("keyvalue")))
    actor = host.add_actor(examples.signed("kvcounter"))
    signed, _ = sign(component("kvcounter"), caps=[KV], name="kvc")
    comp = host.add_actor(signed)
    host.set_binding(actor, KV)
    host.set_binding(comp, KV)

    def actor_count() -> int:
        reply = host.call_actor(actor, "HandleRequest", HttpRequest(path="/hits").encode())
        return int(json.loads(HttpResponse.decode(reply).body)["counter"])

    def component_count() -> int:
        return int(host.call_actor(comp, "Count", b":hits"))

    assert [actor_count(), component_count(), actor_count(), component_count()] == [1, 2, 3, 4]
    assert host.call_actor(comp, "Get", b":hits") == b"4"
    with pytest.raises(GuestError, match="missing"):
        host.call_actor(comp, "Get", b":nothing")


def test_unclaimed_and_unbound_imports_trap_with_the_actors_errors(
    host: Host, sign: Signer
) -> None:
    host.add_provider(load_native_provider(library("keyvalue")))
    unclaimed, _ = sign(component("kvcounter"), caps=[], name="unclaimed")
    key = host.add_actor(unclaimed)
    with pytest.raises(Unauthorized, match="its claims do not list it"):
        host.call_actor(key, "Count", b":x")
    claimed, _ = sign(component("kvcounter"), caps=[KV], name="unbound")
    key2 = host.add_actor(claimed)
    with pytest.raises(NotBound, match="is not bound to it on binding 'default'"):
        host.call_actor(key2, "Count", b":x")
    host.set_binding(key2, KV)
    assert host.call_actor(key2, "Count", b":x") == b"1"  # the trapped instance was replaced


def test_logging_reaches_the_bound_provider(host: Host, sign: Signer, tmp_path: Path) -> None:
    host.add_provider(load_native_provider(library("logging")))
    signed, _ = sign(component("testcomponent"), caps=["wascc:logging"], name="talker")
    key = host.add_actor(signed)
    log = tmp_path / "talker.log"
    host.set_binding(key, "wascc:logging", values={"FILE": str(log), "LEVEL": "TRACE"})
    assert host.call_actor(key, "Log", b"hello there") == b""
    host.remove_binding(key, "wascc:logging")  # closes (flushes) the file
    assert "test: hello there" in log.read_text()


def test_actors_and_components_call_each_other_under_their_claims(host: Host, sign: Signer) -> None:
    comp_module = KeyPair.generate(KeyType.MODULE)
    actor_module = KeyPair.generate(KeyType.MODULE)
    comp_signed, _ = sign(
        component("testcomponent"), caps=[actor_module.public_key], name="c", module=comp_module
    )
    actor_signed, _ = sign(
        build_test_actor(), caps=[comp_module.public_key], name="a", module=actor_module
    )
    comp = host.add_actor(comp_signed)
    actor = host.add_actor(actor_signed)
    # actor -> component: the waPC operation is the component's wascc:actor/guest call
    assert host.call_actor(actor, "Call", call_payload(comp, "Echo", b"to c")) == b"to c"
    # component -> actor: wascc:actor/host.call is the actor's __guest_call
    assert host.call_actor(comp, "Call", call_payload(actor, "Echo", b"to a")) == b"to a"
    # a component's error reaches the actor as a host error, and back as a guest error
    with pytest.raises(GuestError, match="answered Fail with an error: nope"):
        host.call_actor(actor, "Call", call_payload(comp, "Fail", b"nope"))
    # the claims floor: neither may call a module its claims do not list
    stranger_signed, _ = sign(component("testcomponent"), name="stranger")
    stranger = host.add_actor(stranger_signed)
    with pytest.raises(GuestError, match="its claims do not list that actor's key"):
        host.call_actor(stranger, "Call", call_payload(actor, "Echo", b"x"))


def test_a_trapping_or_looping_component_is_stopped_while_others_go_on(
    host: Host, sign: Signer
) -> None:
    signed, _ = sign(component("testcomponent"), name="wild")
    key = host.add_actor(signed, deadline=0.5, max_instances=4)
    stop = threading.Event()
    failures: list[BaseException] = []
    answered = 0

    def steady() -> None:
        nonlocal answered
        while not stop.is_set():
            try:
                assert host.call_actor(key, "Echo", b"steady") == b"steady"
                answered += 1
            except BaseException as exc:
                failures.append(exc)

    worker = threading.Thread(target=steady)
    worker.start()
    try:
        started = time.monotonic()
        with pytest.raises(InvocationTimeout, match="did not finish Loop within its deadline"):
            host.call_actor(key, "Loop")
        assert time.monotonic() - started < 5
        with pytest.raises(ActorTrap, match="trapped during Trap"):
            host.call_actor(key, "Trap")
    finally:
        stop.set()
        worker.join(10)
    assert failures == [] and answered > 0
    assert host.call_actor(key, "Echo", b"after") == b"after"
    info = host.actor(key)
    assert info.errors == 2 and info.operations["Echo"].calls == answered + 1


def test_hot_swap_of_a_component_under_load_loses_no_call(host: Host, sign: Signer) -> None:
    module = KeyPair.generate(KeyType.MODULE)
    first, _ = sign(component("testcomponent"), name="swap", module=module)
    key = host.add_actor(first)
    stop = threading.Event()
    seen: list[bytes] = []
    failures: list[BaseException] = []

    def load() -> None:
        while not stop.is_set():
            try:
                seen.append(host.call_actor(key, "Version"))
            except BaseException as exc:
                failures.append(exc)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        for version in ("VERSION2", "VERSION3", "VERSION4"):
            time.sleep(0.05)
            newer, _ = sign(component("testcomponent", version), name="swap", module=module)
            host.replace_actor(key, newer)
        time.sleep(0.05)
    finally:
        stop.set()
        for w in workers:
            w.join(10)
    assert failures == []
    assert seen and set(seen) <= {b"VERSION1", b"VERSION2", b"VERSION3", b"VERSION4"}
    assert seen[-1] == b"VERSION4" and host.call_actor(key, "Version") == b"VERSION4"
    assert host.actor(key).kind == "component"


class _Up:
    """``wascc up`` in a child process, and ``wascc ctl`` against it."""

    def __init__(self, tmp_path: Path, account: KeyPair, *args: str) -> None:
        self.wascc = str(Path(sys.executable).parent / "wascc")
        self.control = tmp_path / "ctl.sock"
        self.log_path = tmp_path / "up.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                self.wascc,
                "up",
                "--control",
                str(self.control),
                "--health-interval",
                "0",
                "--poll-interval",
                "0.05",
                "--trusted-issuer",
                account.public_key,
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
        self.wait(self.control.exists, "the control socket")

    def ctl(self, *args: str) -> str:
        done = subprocess.run(
            [self.wascc, "ctl", "--control", str(self.control), *args],
            capture_output=True,
            text=True,
            check=False,  # the assert shows stderr
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def wait(self, predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 30
        while not predicate():
            assert self.process.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self._log.close()


def test_wascc_up_runs_a_component_dropped_in_its_actors_dir(
    tmp_path: Path, account: KeyPair, sign: Signer
) -> None:
    """``--actors-dir`` and ``ctl``: a component is dropped in, listed, called and swapped."""
    actors = tmp_path / "actors"
    actors.mkdir()
    module = KeyPair.generate(KeyType.MODULE)
    first, _ = sign(component("testcomponent"), name="dropped", module=module)
    second, _ = sign(component("testcomponent", "VERSION2"), name="dropped", module=module)
    up = _Up(tmp_path, account, "--actors-dir", str(actors))
    try:
        (actors / "c.wasm.part").write_bytes(first)
        (actors / "c.wasm.part").rename(actors / "c.wasm")
        up.wait(lambda: module.public_key in up.ctl("inventory", "--json"), "the component")
        inventory = json.loads(up.ctl("inventory", "--json"))
        assert [(a["name"], a["kind"]) for a in inventory["actors"]] == [("dropped", "component")]
        assert "dropped (component)" in up.ctl("inventory")
        assert up.ctl("call", "dropped", "Version", "--raw") == "VERSION1"
        (actors / "c.wasm.part").write_bytes(second)
        (actors / "c.wasm.part").rename(actors / "c.wasm")
        up.wait(lambda: up.ctl("call", "dropped", "Version", "--raw") == "VERSION2", "the swap")
    finally:
        up.stop()


def test_a_manifest_runs_a_component_with_its_binding(
    tmp_path: Path, account: KeyPair, sign: Signer
) -> None:
    signed, module = sign(component("kvcounter"), caps=[KV], name="kvc")
    path = tmp_path / "kvc_s.wasm"
    path.write_bytes(signed)
    manifest = tmp_path / "host.yaml"
    manifest.write_text(
        f"actors:\n  - {path}\n"
        f"capabilities:\n  - path: {KV}\n"
        f"bindings:\n  - actor: {module.public_key}\n    capability: {KV}\n"
    )
    up = _Up(tmp_path, account, "--manifest", str(manifest))
    try:
        up.wait(lambda: "kvc" in up.ctl("inventory", "--json"), "the component")
        assert up.ctl("call", "kvc", "Count", "--raw", "-d", ":visits") == "1"
        assert up.ctl("call", "kvc", "Count", "--raw", "-d", ":visits") == "2"
    finally:
        up.stop()


def test_wascc_compile_builds_a_component_from_its_text(tmp_path: Path) -> None:
    source = tmp_path / "kv.wat"
    source.write_text((COMPONENTS / "kvcounter.wat").read_text())
    result = CliRunner().invoke(main, ["compile", str(source)])
    assert result.exit_code == 0, result.output
    assert "(component," in result.output
    assert (tmp_path / "kv.wasm").read_bytes() == component("kvcounter")
    bad = tmp_path / "bad.wat"
    bad.write_text("(component (bogus))")
    result = CliRunner().invoke(main, ["compile", str(bad)])
    assert result.exit_code == 1
    assert "is not valid WebAssembly text: expected valid component field (line 1:13)" in (
        result.output
    )


def test_a_messaging_component_answers_requests_through_the_broker(
    host: Host, sign: Signer
) -> None:
    """wasmcloud:messaging/handler receives DeliverMessage; consumer.publish answers it."""
    provider = MessagingProvider()  # the in-process broker
    host.add_provider(provider)
    signed, _ = sign(component("responder"), caps=["wascc:messaging"], name="responder")
    key = host.add_actor(signed)
    host.set_binding(key, "wascc:messaging", values={"SUBSCRIPTION": "svc.greet"})
    assert provider.broker.request("svc.greet", b"hello", 5.0) == b"re: hello"
    # a message without reply-to is the component's error (the provider logs it)
    with pytest.raises(GuestError, match="the message has no reply-to"):
        host.call_actor(
            key, "DeliverMessage", BrokerMessage(subject="svc.greet", body=b"x").encode()
        )
    # the reply reached the requester from inside the first call: it may still be counting
    deadline = time.monotonic() + 10
    while host.actor(key).operations["DeliverMessage"].calls < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_component_instance_stays_under_its_memory_cap(host: Host, sign: Signer) -> None:
    signed, _ = sign(component("testcomponent"), name="grower")
    key = host.add_actor(signed, memory_limit=1 << 20)  # 16 pages
    assert host.call_actor(key, "Grow") == b"16"  # growth past the cap is refused
    assert host.call_actor(key, "Echo", b"still here") == b"still here"


def test_a_component_is_in_the_metrics_like_an_actor(host: Host, sign: Signer) -> None:
    signed, _ = sign(component("testcomponent"), name="measured")
    key = host.add_actor(signed)
    with Recorder(host) as recorder:
        for _ in range(3):
            host.call_actor(key, "Echo", b"x")
        with pytest.raises(ActorTrap):
            host.call_actor(key, "Trap")
        registry = CollectorRegistry()
        registry.register(HostCollector(host, recorder))
        text = generate_latest(registry).decode()
    calls = [
        line for line in text.splitlines() if line.startswith("wascc_actor_invocations_total{")
    ]
    assert any(
        key in line and 'operation="Echo"' in line and line.endswith(" 3.0") for line in calls
    )
    assert any(
        line.startswith("wascc_actor_errors_total{") and key in line and "ActorTrap" in line
        for line in text.splitlines()
    )
