"""The host's routing: providers, bindings, authorization, actor-to-actor, extras."""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Callable

import pytest
import wasmtime

from wascc import (
    ActorLoadError,
    BindingError,
    GuestError,
    Host,
    HostStopped,
    Invocation,
    KeyPair,
    KeyType,
    NotBound,
    NotFound,
    ProviderError,
    WasccError,
    hookimpl,
)
from wascc.engine.runtime import Runtime
from wascc.wire.codec import CapabilityDescriptor, GeneratorRequest, GeneratorResult, pack

from conftest import Signer, build_test_actor, call_payload
from providers import TESTING, RecordingProvider

StartActor = Callable[..., str]


@pytest.fixture
def provider(host: Host) -> RecordingProvider:
    p = RecordingProvider()
    host.add_provider(p)
    return p


def test_actor_calls_a_python_provider_and_gets_its_reply(
    host: Host, start_actor: StartActor, provider: RecordingProvider
) -> None:
    key = start_actor(caps=[TESTING])
    host.set_binding(key, TESTING)
    assert host.call_actor(key, "Call", call_payload(TESTING, "Echo", b"round trip")) == (
        b"round trip"
    )
    assert provider.calls == [(key, "Echo", b"round trip")]


def test_actor_gets_the_providers_error_with_context(
    host: Host, start_actor: StartActor, provider: RecordingProvider
) -> None:
    key = start_actor(caps=[TESTING], name="caller")
    host.set_binding(key, TESTING)
    with pytest.raises(GuestError) as info:
        host.call_actor(key, "Call", call_payload(TESTING, "Fail", b"no way"))
    text = str(info.value)
    assert "provider refused: no way" in text
    assert TESTING in text and "Fail" in text and "default" in text and "caller" in text


def test_unbound_call_is_denied_with_the_reason(
    host: Host, start_actor: StartActor, provider: RecordingProvider
) -> None:
    key = start_actor(caps=[TESTING])
    with pytest.raises(GuestError, match="not bound to it"):
        host.call_actor(key, "Call", call_payload(TESTING, "Echo", b"x"))
    assert provider.calls == []


def test_call_to_a_binding_without_provider_is_denied(
    host: Host, start_actor: StartActor, provider: RecordingProvider
) -> None:
    key = start_actor(caps=[TESTING])
    host.set_binding(key, TESTING)
    with pytest.raises(GuestError, match="no provider is registered"):
        host.call_actor(key, "Call", call_payload(TESTING, "Echo", b"x", binding="other"))


def test_unauthorized_call_is_denied_even_when_a_provider_exists(
    host: Host, start_actor: StartActor, provider: RecordingProvider
) -> None:
    key = start_actor(caps=[])
    with pytest.raises(GuestError, match="claims do not list it"):
        host.call_actor(key, "Call", call_payload(TESTING, "Echo", b"x"))
    assert provider.calls == []


def test_binding_needs_the_capability_in_the_claims(
    host: Host, start_actor: StartActor, provider: RecordingProvider
) -> None:
    key = start_actor(caps=["wascc:keyvalue"])
    with pytest.raises(BindingError, match="claims do not list wascc:testing"):
        host.set_binding(key, TESTING)
    assert provider.binds == []


def test_binding_needs_a_provider(host: Host, start_actor: StartActor) -> None:
    key = start_actor(caps=[TESTING])
    with pytest.raises(BindingError, match="no provider"):
        host.set_binding(key, TESTING)


def test_bind_sends_values_and_wascc_keys(
    host: Host, sign: Signer, provider: RecordingProvider
) -> None:
    signed, module = sign(
        caps=[TESTING, "wascc:extras"], name="valued", tags=["a", "b"], expires=4102444800
    )
    key = host.add_actor(signed)
    host.set_binding(key, TESTING, values={"PORT": "8080"})
    (config,) = provider.binds
    assert config.module == key == module.public_key
    assert config.values["PORT"] == "8080"
    assert config.values["__wascc_name"] == "valued"
    assert config.values["__wascc_capabilities"] == f"{TESTING},wascc:extras"
    assert config.values["__wascc_tags"] == "a,b"
    assert config.values["__wascc_expires"] == "4102444800"
    assert config.values["__wascc_issuer"].startswith("A")


def test_binding_twice_is_idempotent(
    host: Host, start_actor: StartActor, provider: RecordingProvider
) -> None:
    key = start_actor(caps=[TESTING])
    host.set_binding(key, TESTING, values={"A": "1"})
    host.set_binding(key, TESTING, values={"A": "1"})
    assert len(provider.binds) == 1
    assert len(host.bindings()) == 1


def test_rebinding_with_new_values_reconfigures_without_remove_actor(
    host: Host, start_actor: StartActor, provider: RecordingProvider
) -> None:
    """A re-bind is a reconfiguration (provider.h section 2): no RemoveActor first."""
    key = start_actor(caps=[TESTING])
    host.set_binding(key, TESTING, values={"A": "1"})
    host.set_binding(key, TESTING, values={"A": "2"})
    host.set_binding(key, TESTING, values={"A": "2"})  # the same values: absorbed
    assert [c.values["A"] for c in provider.binds] == ["1", "2"]
    assert provider.removes == []
    (binding,) = [b for b in host.bindings() if b.capability_id == TESTING]
    assert binding.values == {"A": "2"}


def test_remove_binding_sends_remove_actor_once(
    host: Host, start_actor: StartActor, provider: RecordingProvider
) -> None:
    key = start_actor(caps=[TESTING])
    host.set_binding(key, TESTING)
    assert host.remove_binding(key, TESTING) is True
    assert host.remove_binding(key, TESTING) is False
    assert [c.module for c in provider.removes] == [key]
    with pytest.raises(GuestError, match="not bound"):
        host.call_actor(key, "Call", call_payload(TESTING, "Echo", b"x"))


def test_removing_an_actor_unbinds_it_everywhere(
    host: Host, start_actor: StartActor, provider: RecordingProvider
) -> None:
    second = RecordingProvider()
    host.add_provider(second, binding="backup")
    key = start_actor(caps=[TESTING])
    host.set_binding(key, TESTING)
    host.set_binding(key, TESTING, binding="backup")
    host.remove_actor(key)
    assert [c.module for c in provider.removes] == [key]
    assert [c.module for c in second.removes] == [key]
    assert [b for b in host.bindings() if b.actor == key] == []


def test_named_bindings_route_to_their_own_provider(
    host: Host, start_actor: StartActor, provider: RecordingProvider
) -> None:
    other = RecordingProvider()
    host.add_provider(other, binding="backup")
    key = start_actor(caps=[TESTING])
    host.set_binding(key, TESTING, binding="backup")
    host.set_binding(key, TESTING)
    host.call_actor(key, "Call", call_payload(TESTING, "Echo", b"to-backup", binding="backup"))
    host.call_actor(key, "Call", call_payload(TESTING, "Echo", b"to-default", binding=" "))
    assert [c[2] for c in other.calls] == [b"to-backup"]
    assert [c[2] for c in provider.calls] == [b"to-default"]


def test_wasmcloud_spelling_is_an_alias_of_the_wascc_capability(
    host: Host, start_actor: StartActor, provider: RecordingProvider
) -> None:
    key = start_actor(caps=["wasmcloud:testing"])
    host.set_binding(key, "wasmcloud:testing")
    assert host.call_actor(key, "Call", call_payload("wasmcloud:testing", "Echo", b"a")) == b"a"
    assert host.call_actor(key, "Call", call_payload(TESTING, "Echo", b"b")) == b"b"


def test_actor_to_actor_call_allowed_by_claims(host: Host, sign: Signer) -> None:
    callee_signed, callee = sign(name="callee")
    host.add_actor(callee_signed)
    caller_signed, _ = sign(name="caller", caps=[callee.public_key])
    caller = host.add_actor(caller_signed)
    payload = call_payload(callee.public_key, "Echo", b"hello callee")
    assert host.call_actor(caller, "Call", payload) == b"hello callee"


def test_actor_to_actor_call_denied_without_the_key_in_claims(host: Host, sign: Signer) -> None:
    callee_signed, callee = sign(name="callee")
    host.add_actor(callee_signed)
    caller_signed, _ = sign(name="caller", caps=[TESTING])
    caller = host.add_actor(caller_signed)
    with pytest.raises(GuestError, match="may not call actor") as info:
        host.call_actor(caller, "Call", call_payload(callee.public_key, "Echo", b"x"))
    assert callee.public_key in str(info.value)


def test_actor_calling_itself_uses_a_second_instance(host: Host, sign: Signer) -> None:
    from wascc import KeyPair, KeyType

    module = KeyPair.generate(KeyType.MODULE)
    signed, _ = sign(module=module, caps=[module.public_key], name="self-caller")
    key = host.add_actor(signed)
    assert host.call_actor(key, "Call", call_payload(key, "Echo", b"me")) == b"me"
    assert host.actor(key).instances == 2


def test_host_call_state_is_cleared_between_host_calls(
    host: Host, start_actor: StartActor, provider: RecordingProvider
) -> None:
    key = start_actor(caps=[TESTING])
    host.set_binding(key, TESTING)
    # CallTwice makes the same call twice and concatenates both results
    assert host.call_actor(key, "CallTwice", call_payload(TESTING, "Echo", b"ab")) == b"abab"
    out = host.call_actor(key, "CallTwice", call_payload(TESTING, "Fail", b"z"))
    assert out.count(b"provider refused: z") == 2


def test_provider_dispatches_into_a_bound_actor(
    host: Host, start_actor: StartActor, provider: RecordingProvider
) -> None:
    key = start_actor(caps=[TESTING])
    host.set_binding(key, TESTING)
    assert provider.dispatcher is not None
    assert provider.dispatcher.dispatch(key, "Echo", b"from provider") == b"from provider"
    # and re-entrantly: actor -> provider -> same actor
    payload = call_payload(TESTING, "Dispatch", f"{key}:Echo:nested".encode())
    assert host.call_actor(key, "Call", payload) == b"nested"


def test_provider_may_not_dispatch_to_an_unbound_actor(
    host: Host, start_actor: StartActor, provider: RecordingProvider
) -> None:
    key = start_actor(caps=[TESTING])
    assert provider.dispatcher is not None
    with pytest.raises(NotBound, match="not bound"):
        provider.dispatcher.dispatch(key, "Echo", b"x")


def test_removed_providers_dispatcher_stops_working(
    host: Host, start_actor: StartActor, provider: RecordingProvider
) -> None:
    key = start_actor(caps=[TESTING])
    host.set_binding(key, TESTING)
    dispatcher = provider.dispatcher
    assert dispatcher is not None
    host.remove_provider(TESTING)
    assert provider.stopped.is_set()
    assert [c.module for c in provider.removes] == [key]
    with pytest.raises(ProviderError, match="removed"):
        dispatcher.dispatch(key, "Echo", b"x")


def test_core_operations_from_an_actor_are_refused(
    host: Host, start_actor: StartActor, provider: RecordingProvider
) -> None:
    key = start_actor(caps=[TESTING])
    host.set_binding(key, TESTING)
    config = pack({"module": key, "values": {}})
    with pytest.raises(GuestError, match="reserved for the host"):
        host.call_actor(key, "Call", call_payload(TESTING, "RemoveActor", config))
    assert provider.removes == []


def test_msgpack_garbage_from_an_actor_is_answered_with_an_error(
    host: Host, start_actor: StartActor
) -> None:
    key = start_actor(caps=["wascc:extras"])  # auto-bound to extras
    with pytest.raises(GuestError, match="not valid msgpack"):
        host.call_actor(key, "Call", call_payload("wascc:extras", "RequestGuid", b"\xc1\xc1"))
    with pytest.raises(GuestError, match="must be a map"):
        host.call_actor(key, "Call", call_payload("wascc:extras", "RequestGuid", pack("str")))
    # the host and the actor go on
    reply = host.call_actor(
        key,
        "Call",
        call_payload("wascc:extras", "RequestGuid", GeneratorRequest(guid=True).encode()),
    )
    assert uuid.UUID(GeneratorResult.decode(reply).guid or "").version == 4


class _GarbageDescriptor(RecordingProvider):
    def descriptor(self) -> CapabilityDescriptor:  # pragma: no cover - not reached
        raise AssertionError

    def handle_call(self, actor: str, operation: str, msg: bytes) -> bytes:
        return b"\x93\x01"  # a truncated msgpack array


def test_provider_answering_garbage_descriptor_is_refused(host: Host) -> None:
    with pytest.raises(ProviderError, match="did not describe itself"):
        host.add_provider(_GarbageDescriptor())
    assert [p.capability_id for p in host.providers()] == ["wascc:extras"]


def test_two_providers_on_one_binding_are_refused(host: Host, provider: RecordingProvider) -> None:
    with pytest.raises(ProviderError, match="already registered"):
        host.add_provider(RecordingProvider())


def test_extras_are_auto_bound_and_answer(host: Host, start_actor: StartActor) -> None:
    key = start_actor(caps=["wascc:extras"])
    assert any(b.capability_id == "wascc:extras" for b in host.bindings())

    def ask(op: str, **req: object) -> GeneratorResult:
        payload = GeneratorRequest(**req).encode()  # type: ignore[arg-type]
        return GeneratorResult.decode(
            host.call_actor(key, "Call", call_payload("wascc:extras", op, payload))
        )

    guid = ask("RequestGuid", guid=True).guid
    assert guid is not None and re.fullmatch(r"[0-9a-f-]{36}", guid)
    assert uuid.UUID(guid).version == 4
    assert [ask("RequestSequence", sequence=True).sequence_number for _ in range(3)] == [0, 1, 2]
    values = {ask("RequestRandom", random=True, min=10, max=13).random_number for _ in range(60)}
    assert values <= {10, 11, 12} and len(values) >= 2
    with pytest.raises(GuestError, match="min < max"):
        ask("RequestRandom", random=True, min=5, max=5)


def test_extras_sequence_is_per_actor(host: Host, start_actor: StartActor) -> None:
    first = start_actor(caps=["wascc:extras"])
    second = start_actor(caps=["wascc:extras"])
    req = GeneratorRequest(sequence=True).encode()
    for key in (first, first, second):
        host.call_actor(key, "Call", call_payload("wascc:extras", "RequestSequence", req))
    reply = host.call_actor(second, "Call", call_payload("wascc:extras", "RequestSequence", req))
    assert GeneratorResult.decode(reply).sequence_number == 1


def test_actor_without_extras_claim_is_not_auto_bound(host: Host, start_actor: StartActor) -> None:
    start_actor(caps=[])
    assert host.bindings() == []


def test_inventory_lists_actors_providers_and_bindings(
    host: Host, sign: Signer, provider: RecordingProvider
) -> None:
    signed, module = sign(caps=[TESTING], name="inventoried", ver="1.2.3", rev=7)
    key = host.add_actor(signed)
    host.set_binding(key, TESTING, values={"K": "V"})
    host.call_actor(key, "Echo", b"1")
    host.call_actor(key, "Echo", b"2")
    (actor,) = host.actors()
    assert actor.public_key == module.public_key and actor.name == "inventoried"
    assert actor.claims.ver == "1.2.3" and actor.claims.rev == 7 and actor.signed
    assert actor.calls == 2 and actor.instances >= 1
    providers = {p.capability_id: p for p in host.providers()}
    assert providers[TESTING].descriptor.name == "recording test provider"
    assert providers[TESTING].descriptor.revision == 3
    assert providers[TESTING].actors == (key,)
    (binding,) = host.bindings()
    assert (binding.actor, binding.capability_id, binding.binding, binding.values) == (
        key,
        TESTING,
        "default",
        {"K": "V"},
    )


def test_add_provider_by_capability_id_from_entry_points(account: object) -> None:
    with Host(health_interval=0, load_entry_points=True) as h:
        assert "wascc:extras" in h.provider_factories()
        with pytest.raises(ProviderError, match="already registered"):
            h.add_provider("wascc:extras")
        h.add_provider("wascc:extras", binding="second")
        assert {(p.capability_id, p.binding) for p in h.providers()} == {
            ("wascc:extras", "default"),
            ("wascc:extras", "second"),
        }
        with pytest.raises(NotFound, match="no installed plugin provides"):
            h.add_provider("wascc:nonexistent")


def test_replacing_with_a_different_module_key_is_refused(host: Host, sign: Signer) -> None:
    first, _ = sign(name="one")
    key = host.add_actor(first)
    other, _ = sign(name="two")
    with pytest.raises(WasccError, match="public key differs"):
        host.replace_actor(key, other)
    assert host.call_actor(key, "Echo", b"still one") == b"still one"


def test_replace_keeps_bindings_the_new_claims_allow(
    host: Host, sign: Signer, provider: RecordingProvider
) -> None:
    from wascc import KeyPair, KeyType

    module = KeyPair.generate(KeyType.MODULE)
    v1, _ = sign(build_test_actor("VERSION1"), module=module, caps=[TESTING])
    key = host.add_actor(v1)
    host.set_binding(key, TESTING)
    v2, _ = sign(build_test_actor("VERSION2"), module=module, caps=[TESTING])
    host.replace_actor(key, v2)
    assert host.call_actor(key, "Version") == b"VERSION2"
    assert host.call_actor(key, "Call", call_payload(TESTING, "Echo", b"kept")) == b"kept"
    v3, _ = sign(build_test_actor("VERSION3"), module=module, caps=[])
    host.replace_actor(key, v3)
    assert [c.module for c in provider.removes] == [key]
    with pytest.raises(GuestError, match="claims do not list"):
        host.call_actor(key, "Call", call_payload(TESTING, "Echo", b"x"))


def test_stopped_host_refuses_new_work(account: object, sign: Signer) -> None:
    h = Host(health_interval=0, load_entry_points=False)
    signed, _ = sign()
    key = h.add_actor(signed)
    h.stop()
    with pytest.raises(HostStopped):
        h.add_actor(signed)
    with pytest.raises(HostStopped):
        h.call_actor(key, "Echo")
    h.stop()  # idempotent


def test_self_call_with_a_pool_of_one_times_out_waiting_for_an_instance(
    host: Host, sign: Signer
) -> None:
    from wascc import KeyPair, KeyType

    module = KeyPair.generate(KeyType.MODULE)
    signed, _ = sign(module=module, caps=[module.public_key], name="lonely")
    key = host.add_actor(signed, max_instances=1, deadline=0.3)
    with pytest.raises(GuestError, match="all 1 instances stayed busy"):
        host.call_actor(key, "Call", call_payload(key, "Echo", b"me"))
    assert host.call_actor(key, "Echo", b"after") == b"after"


# ---- retired modules are freed as soon as their last call ends ---------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_300_replaces_keep_file_descriptors_and_rss_flat(host: Host, sign: Signer) -> None:
    module = KeyPair.generate(KeyType.MODULE)
    versions = [sign(name=f"v{i}", module=module)[0] for i in range(320)]
    key = host.add_actor(versions[0])
    for signed in versions[1:20]:  # warm up allocator and caches
        host.replace_actor(key, signed)
    fds, rss = _open_fds(), _rss_mib()
    for signed in versions[20:]:
        host.replace_actor(key, signed)
    assert host.call_actor(key, "Echo", b"last") == b"last"
    assert _open_fds() <= fds + 2, f"{_open_fds() - fds} file descriptors leaked"
    assert _rss_mib() - rss < 4, f"RSS grew from {rss:.1f} to {_rss_mib():.1f} MiB"


def test_1000_add_remove_cycles_keep_file_descriptors_and_rss_flat(
    host: Host, sign: Signer
) -> None:
    signed, _ = sign(name="cycled")
    for _ in range(20):
        host.remove_actor(host.add_actor(signed))
    fds, rss = _open_fds(), _rss_mib()
    for _ in range(1000):
        key = host.add_actor(signed)
        host.remove_actor(key)
    assert host.actors() == []
    assert _open_fds() <= fds + 2, f"{_open_fds() - fds} file descriptors leaked"
    assert _rss_mib() - rss < 4, f"RSS grew from {rss:.1f} to {_rss_mib():.1f} MiB"


class _Blocking(RecordingProvider):
    """``Block`` waits until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.go = threading.Event()

    def handle(self, actor: str, operation: str, msg: bytes) -> bytes:
        if operation == "Block":
            self.entered.set()
            self.go.wait()
            return b"unblocked"
        return super().handle(actor, operation, msg)


def test_replaced_module_is_freed_when_its_last_call_ends(host: Host, sign: Signer) -> None:
    provider = _Blocking()
    host.add_provider(provider)
    module = KeyPair.generate(KeyType.MODULE)
    v1, _ = sign(build_test_actor("VERSION1"), module=module, caps=[TESTING])
    v2, _ = sign(build_test_actor("VERSION2"), module=module, caps=[TESTING])
    key = host.add_actor(v1, min_instances=1, max_instances=1)
    host.set_binding(key, TESTING)
    replies: list[bytes] = []
    caller = threading.Thread(
        target=lambda: replies.append(host.call_actor(key, "Call", call_payload(TESTING, "Block")))
    )
    caller.start()
    provider.entered.wait()
    one_module = _open_fds()
    host.replace_actor(key, v2)
    assert host.call_actor(key, "Version") == b"VERSION2"
    assert host.busy() == 1  # the old module still runs its call
    provider.go.set()
    caller.join()
    assert replies == [b"unblocked"]  # the call in flight finished on the old module
    assert host.busy() == 0
    assert _open_fds() <= one_module, "the old module was not freed when its call ended"


class _ReplaceDuringAuthorize:
    """Replaces the actor between the host's lookup of it and the call."""

    def __init__(self, host: Host, key: str, newer: bytes) -> None:
        self.host, self.key, self.newer = host, key, newer
        self.done = False

    @hookimpl
    def wascc_authorize(self, invocation: Invocation) -> None:
        if not self.done and invocation.operation == "Version":
            self.done = True
            self.host.replace_actor(self.key, self.newer)


def test_call_that_races_a_replace_runs_on_the_new_module(host: Host, sign: Signer) -> None:
    module = KeyPair.generate(KeyType.MODULE)
    v1, _ = sign(build_test_actor("VERSION1"), module=module)
    v2, _ = sign(build_test_actor("VERSION2"), module=module)
    key = host.add_actor(v1, min_instances=0)
    host.add_plugin(_ReplaceDuringAuthorize(host, key, v2))
    assert host.call_actor(key, "Version") == b"VERSION2"
    assert host.call_actor(key, "Version") == b"VERSION2"


def test_call_that_races_a_remove_is_not_found(host: Host, sign: Signer) -> None:
    signed, _ = sign(name="gone")
    key = host.add_actor(signed, min_instances=0)

    class _Remover:
        @hookimpl
        def wascc_authorize(self, invocation: Invocation) -> None:
            host.remove_actor(key)

    host.add_plugin(_Remover())
    with pytest.raises(NotFound, match="replaced or removed"):
        host.call_actor(key, "Echo", b"x")


# ---- one compiled module per code, shared by every signed copy -------------------------


def test_signed_copies_of_one_module_share_their_compiled_code(
    sign: Signer, account: KeyPair
) -> None:
    runtime = Runtime()  # its own: the process-wide one holds other tests' modules
    host = Host(
        trusted_issuers=[account.public_key],
        health_interval=0,
        load_entry_points=False,
        runtime=runtime,
    )
    try:
        _share_and_free(host, sign)
    finally:
        host.stop()
        runtime.close()


def _share_and_free(host: Host, sign: Signer) -> None:
    wasm = build_test_actor()
    first = host.add_actor(sign(wasm, name="one")[0])
    second = host.add_actor(sign(wasm, name="two")[0])
    other = host.add_actor(sign(build_test_actor("VERSION2"), name="three")[0])
    assert len(host.runtime._compiled) == 2  # the two copies compiled once, the other code apart
    shared = next(c for c in host.runtime._compiled.values() if c.users == 2)
    host.remove_actor(first)
    assert shared.users == 1
    assert host.call_actor(second, "Echo", b"still") == b"still"  # the copy keeps the code
    host.remove_actor(second)
    assert shared.key not in host.runtime._compiled  # the last share freed it
    assert host.call_actor(other, "Version") == b"VERSION2"
    again = host.add_actor(sign(wasm, name="four")[0])  # compiled anew after the free
    assert host.call_actor(again, "Echo", b"back") == b"back"


def test_a_shared_module_is_checked_for_each_load_of_other_code(host: Host, sign: Signer) -> None:
    good = build_test_actor()
    host.add_actor(sign(good, name="good")[0])
    broken = wasmtime.wat2wasm('(module (memory (export "memory") 1))')
    with pytest.raises(ActorLoadError, match="__guest_call"):
        host.add_actor(sign(broken, name="broken")[0])
