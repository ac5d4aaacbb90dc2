"""The first-party C providers share one ABI skeleton (``native/providers/common/wpu.h``).

Each provider declares a descriptor and callbacks; the skeleton answers the
core operations, refuses them from actors, parses the CapabilityConfiguration
of BindActor and RemoveActor and turns away operations the descriptor does
not offer to actors.  These tests hold each provider to the same answers,
through the real shared objects.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from wascc._providers import library
from wascc.errors import ProviderCallError
from wascc.providers.native import NativeProvider, load_native_provider
from wascc.wire.codec import (
    CapabilityConfiguration,
    CapabilityDescriptor,
    Direction,
    HealthRequest,
    HealthResponse,
)

ACTOR = "M" + "B" * 55
CORE = ("GetCapabilityDescriptor", "BindActor", "RemoveActor", "HealthRequest")
# short name -> (capability id, the operations actors may call, in descriptor order)
PROVIDERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "keyvalue": (
        "wascc:keyvalue",
        (
            "Get",
            "Set",
            "Del",
            "Add",
            "Push",
            "ListItemDelete",
            "Range",
            "Clear",
            "SetAdd",
            "SetRemove",
            "SetUnion",
            "SetIntersection",
            "SetQuery",
            "KeyExists",
        ),
    ),
    "logging": ("wascc:logging", ("WriteLog",)),
    "telnet": ("wascc:telnet", ("SendText",)),
}


@pytest.fixture(params=sorted(PROVIDERS))
def loaded(request: pytest.FixtureRequest) -> Iterator[tuple[str, NativeProvider]]:
    """One freshly created provider of each first-party library."""
    name: str = request.param
    provider = load_native_provider(library(name))
    try:
        yield name, provider
    finally:
        provider.stop()


def test_core_operations_from_an_actor_are_refused_alike(
    loaded: tuple[str, NativeProvider],
) -> None:
    name, provider = loaded
    capability = PROVIDERS[name][0]
    config = CapabilityConfiguration(ACTOR, {}).encode()
    for op in CORE:
        expected = f"^{capability}: {op} is reserved for the host; actor {ACTOR} may not send it$"
        with pytest.raises(ProviderCallError, match=expected):
            provider.handle_call(ACTOR, op, config)


def test_an_unknown_operation_names_the_ones_offered(loaded: tuple[str, NativeProvider]) -> None:
    name, provider = loaded
    capability, offered = PROVIDERS[name]
    expected = (
        f"^{capability}: unknown operation 'Shout': {capability} does not support the "
        f"operation Shout \\(it offers {', '.join(offered)}\\)$"
    )
    with pytest.raises(ProviderCallError, match=expected):
        provider.handle_call(ACTOR, "Shout", b"\x80")


def test_an_operation_for_actors_is_not_one_actors_may_call() -> None:
    provider = load_native_provider(library("telnet"))
    try:
        for op in ("SessionStarted", "ReceiveText"):
            with pytest.raises(
                ProviderCallError, match=f"unknown operation '{op}'.*offers SendText"
            ):
                provider.handle_call(ACTOR, op, b"\x80")
    finally:
        provider.stop()


def test_a_payload_that_is_not_a_configuration_is_refused_alike(
    loaded: tuple[str, NativeProvider],
) -> None:
    name, provider = loaded
    capability = PROVIDERS[name][0]
    for op in ("BindActor", "RemoveActor"):
        for payload in (b"\xc1", b"\x80", b""):
            expected = f"^{capability} {op}: payload is not a CapabilityConfiguration \\("
            with pytest.raises(ProviderCallError, match=expected):
                provider.handle_call("system", op, payload)


def test_descriptor_health_and_removing_an_unbound_actor(
    loaded: tuple[str, NativeProvider],
) -> None:
    name, provider = loaded
    capability, offered = PROVIDERS[name]
    descriptor = CapabilityDescriptor.decode(
        provider.handle_call("system", "GetCapabilityDescriptor", b"")
    )
    assert descriptor.id == capability
    to_provider = [
        op.name for op in descriptor.supported_operations if op.direction != Direction.TO_ACTOR
    ]
    assert tuple(to_provider) == offered
    health = HealthResponse.decode(
        provider.handle_call("system", "HealthRequest", HealthRequest().encode())
    )
    assert health.healthy, health.message
    config = CapabilityConfiguration(ACTOR, {}).encode()
    assert provider.handle_call("system", "RemoveActor", config) == b""
