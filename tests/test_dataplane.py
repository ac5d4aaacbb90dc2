"""The data plane (DESIGN "Two planes"): calls between native providers and
actors, and between actors, routed in C; the same answers, the same refusals
and the same counts as the Python path.

Every routing test runs twice (the ``path`` fixture): on the C path, and with
an authorizer plugin that allows everything, which sends every call through
Python.  Then a route is changed under 8 threads of load.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from wascc import ActorSettings, Host, KeyPair, KeyType, hookimpl
from wascc.errors import GuestError, ProviderCallError
from wascc.observe.recorder import Recorder
from wascc.providers.native import load_native_provider

from conftest import NativeBuilder, Signer, build_test_actor, call_payload

KV = "wascc:keyvalue"
NATIVE_TEST = "wascc:nativetest"
ROOT = Path(__file__).resolve().parent.parent


class AllowEverything:
    """An authorizer that allows every call: its presence routes every call through Python."""

    def __init__(self) -> None:
        self.seen = 0

    @hookimpl
    def wascc_authorize(
        self, invocation: object, origin_claims: object, target_claims: object
    ) -> None:
        self.seen += 1


@pytest.fixture(params=["c", "python"])
def path(request: pytest.FixtureRequest, account: KeyPair) -> Iterator[tuple[Host, str]]:
    """A host, and which path its calls take ("c" or "python")."""
    host = Host(
        trusted_issuers=[account.public_key],
        health_interval=0,
        load_entry_points=False,
        actor_settings=ActorSettings(deadline=5.0, max_instances=8),
    )
    plugin = AllowEverything()
    if request.param == "python":
        host.add_plugin(plugin)
    try:
        yield host, request.param
    finally:
        host.stop()
    if request.param == "python":
        assert plugin.seen > 0, "the plugin saw no call: the Python path was not taken"


def _kv(host: Host) -> None:
    host.add_provider(load_native_provider(ROOT / "native" / "build" / "libwascc_keyvalue.so"))


def _start(host: Host, sign: Signer, caps: list[str], name: str = "t") -> str:
    signed, _ = sign(build_test_actor(), caps=caps, name=name)
    return host.add_actor(signed)


def test_actor_calls_a_native_provider(path: tuple[Host, str], sign: Signer) -> None:
    host, _ = path
    _kv(host)
    actor = _start(host, sign, [KV])
    host.set_binding(actor, KV)
    put = msgpack.packb({"key": "k", "value": "v", "expires": 0})
    host.call_actor(actor, "Call", call_payload(KV, "Set", put))
    got = host.call_actor(actor, "Call", call_payload(KV, "Get", msgpack.packb({"key": "k"})))
    assert msgpack.unpackb(got) == {"value": "v", "exists": True}
    # the empty binding name is "default", as in Python
    got = host.call_actor(
        actor, "Call", call_payload(KV, "Get", msgpack.packb({"key": "k"}), binding="")
    )
    assert msgpack.unpackb(got)["value"] == "v"


def test_refusals_are_worded_the_same(path: tuple[Host, str], sign: Signer) -> None:
    host, _ = path
    _kv(host)
    unclaimed = _start(host, sign, [], name="unclaimed")
    unbound = _start(host, sign, [KV], name="unbound")
    get = call_payload(KV, "Get", msgpack.packb({"key": "k"}))
    with pytest.raises(GuestError, match="its claims do not list it"):
        host.call_actor(unclaimed, "Call", get)
    with pytest.raises(GuestError, match="is not bound to it on binding 'default'"):
        host.call_actor(unbound, "Call", get)
    with pytest.raises(GuestError, match="no provider is registered there"):
        host.call_actor(unbound, "Call", call_payload(KV, "Get", b"", binding="other"))


def test_a_provider_refusal_is_a_provider_call_error(
    path: tuple[Host, str], sign: Signer, build_native: NativeBuilder
) -> None:
    host, _ = path
    host.add_provider(load_native_provider(build_native("testprovider")))
    actor = _start(host, sign, [NATIVE_TEST])
    host.set_binding(actor, NATIVE_TEST)
    with Recorder(host) as recorder:
        with pytest.raises(GuestError) as info:
            host.call_actor(actor, "Call", call_payload(NATIVE_TEST, "Fail", b"x"))
        assert f"{NATIVE_TEST} (default) failed Fail for actor t ({actor})" in str(info.value)
        assert host.call_actor(actor, "Call", call_payload(NATIVE_TEST, "Echo", b"hi")) == b"hi"
        series = {op: s.read() for c, _, op, s in recorder.provider_series() if c == NATIVE_TEST}
        assert series["Fail"][0] == 1 and series["Fail"][4] == {"ProviderCallError": 1}
        assert series["Echo"][0] == 1 and series["Echo"][4] == {}
        # the provider's refusal, then the actor's own error (it answers the host error)
        assert [e.kind for e in recorder.errors] == ["ProviderCallError", "GuestError"]


def test_actor_calls_an_actor_only_when_its_claims_list_it(
    path: tuple[Host, str], sign: Signer
) -> None:
    host, _ = path
    callee_wasm, callee_key = sign(build_test_actor(), name="callee")
    callee = host.add_actor(callee_wasm)
    caller = _start(host, sign, [callee_key.public_key], name="caller")
    stranger = _start(host, sign, [], name="stranger")
    assert host.call_actor(caller, "Call", call_payload(callee, "Echo", b"ping")) == b"ping"
    with pytest.raises(GuestError, match="its claims do not list that actor's key"):
        host.call_actor(stranger, "Call", call_payload(callee, "Echo", b"ping"))
    # the callee's own failure reaches the caller in the same words, and is counted once
    with Recorder(host) as recorder:
        with pytest.raises(GuestError, match=r"callee .* trapped during Trap"):
            host.call_actor(caller, "Call", call_payload(callee, "Trap", b""))
        kinds = {(a, op): k for a, op, k in recorder.actor_errors()}
        assert kinds[(callee, "Trap")] == {"ActorTrap": 1}
    ops = {info.public_key: info.operations for info in host.actors()}
    assert ops[callee]["Echo"].calls == 1 and ops[callee]["Trap"].calls == 1


def test_a_native_provider_dispatches_to_its_bound_actor(
    path: tuple[Host, str], sign: Signer, build_native: NativeBuilder
) -> None:
    host, _ = path
    provider = load_native_provider(build_native("testprovider"))
    host.add_provider(provider)
    actor = _start(host, sign, [NATIVE_TEST])
    stranger = _start(host, sign, [NATIVE_TEST], name="stranger")
    host.set_binding(actor, NATIVE_TEST)
    assert provider.handle_call("system", "Flood", b"4 250") == b"ok=1000 bad=0 err=0"
    # not bound: refused (the provider counts the refusals as errors)
    assert provider.handle_call("system", "Flood", f"2 5 {stranger}".encode()) == (
        b"ok=0 bad=0 err=10"
    )
    ops = {info.public_key: info.operations for info in host.actors()}
    assert ops[actor]["Echo"].calls == 1000
    assert "Echo" not in ops[stranger]


def test_a_route_changed_under_load_never_mismatches(
    path: tuple[Host, str], sign: Signer, build_native: NativeBuilder
) -> None:
    """8 threads dispatch from the provider and call through an actor while the
    route is bound and unbound, the actor replaced and the provider removed and
    added back: every call answers correctly or is refused, none crosses."""
    host, _ = path
    provider = load_native_provider(build_native("testprovider"))
    host.add_provider(provider)
    module = KeyPair.generate(KeyType.MODULE)
    wasm, _ = sign(build_test_actor(), caps=[NATIVE_TEST], name="target", module=module)
    actor = host.add_actor(wasm)
    host.set_binding(actor, NATIVE_TEST)
    stop = threading.Event()
    outcomes: list[bytes] = []
    mismatched: list[str] = []
    unexpected: list[BaseException] = []

    def flood() -> None:
        while not stop.is_set():
            try:
                outcomes.append(provider.handle_call("system", "Flood", f"4 50 {actor}".encode()))
            except ProviderCallError as exc:
                # the provider was removed, or its successor is not added yet
                if not any(w in str(exc) for w in ("stopped", "removed", "no actor is bound")):
                    unexpected.append(exc)

    def through_actor(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            payload = f"caller {n} call {i}".encode()
            try:
                got = host.call_actor(actor, "Call", call_payload(NATIVE_TEST, "Echo", payload))
            except GuestError as exc:  # refused: not bound, no provider, stopped
                text = str(exc)
                if not any(
                    w in text
                    for w in ("not bound", "no provider is registered", "stopped", "removed")
                ):
                    unexpected.append(exc)
                continue
            except Exception as exc:
                unexpected.append(exc)
                continue
            if got != payload:
                mismatched.append(f"{payload!r} -> {got!r}")

    threads = [threading.Thread(target=flood) for _ in range(2)]
    threads += [threading.Thread(target=through_actor, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    try:
        for round_no in range(20):
            host.remove_binding(actor, NATIVE_TEST)
            host.set_binding(actor, NATIVE_TEST)
            again, _ = sign(build_test_actor(), caps=[NATIVE_TEST], name="target", module=module)
            host.replace_actor(actor, again)
            if round_no % 2:
                host.remove_provider(NATIVE_TEST)
                provider = load_native_provider(build_native("testprovider"))
                host.add_provider(provider)
                host.set_binding(actor, NATIVE_TEST)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert mismatched == [] and unexpected == []
    assert outcomes and all(b" bad=0 " in o for o in outcomes)
    answered = sum(int(o.split(b"ok=")[1].split()[0]) for o in outcomes)
    assert answered > 0
