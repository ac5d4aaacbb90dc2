"""Portable capability providers: signed WASI modules served over waPC.

A module whose claims say ``prov: true`` can serve as a provider.  The host
calls it like an actor, one waPC call per provider call: the operation is
the provider operation, and the payload is a msgpack envelope
:class:`~wascc.wire.codec.PortableCall` ``{actor: str, msg: bin}`` naming the
caller (``"system"`` for the core operations) and carrying its payload.
The module dispatches to actors bound to it with ``__host_call`` whose
namespace is the actor's public key.

It runs with the WASI access the operator grants in a :class:`WasiGrant`
and nothing more: no directories, no environment, no inherited stdio unless
granted.
"""

from __future__ import annotations

import logging
import os
from typing import ClassVar

from wascc.engine.guest import ActorSettings, Guest, WasiGrant, read_module
from wascc.engine.runtime import Runtime
from wascc.errors import InvocationError, ProviderCallError, ProviderError
from wascc.providers.base import Dispatcher, ForwardingProvider
from wascc.wire import claims as claims_mod
from wascc.wire.codec import HealthRequest, PortableCall
from wascc.wire.keys import is_actor_key

__all__ = ["PortableProvider", "WasiGrant", "load_portable_provider"]

log = logging.getLogger(__name__)


class _ProviderPort:
    """What a portable provider's instances call back into."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.dispatcher: Dispatcher | None = None

    def host_call(self, binding: str, namespace: str, operation: str, payload: bytes) -> bytes:
        if not is_actor_key(namespace):
            raise ProviderCallError(
                f"{self.label} called {namespace} {operation}: a provider may call only "
                "actors bound to it (namespace = the actor's public key)"
            )
        if self.dispatcher is None:
            raise ProviderCallError(f"{self.label} has no dispatcher yet")
        return self.dispatcher.dispatch(namespace, operation, payload)

    def console_log(self, line: str) -> None:
        log.info("%s: %s", self.label, line, extra={"provider": self.label})


class PortableProvider(ForwardingProvider):
    """A provider living in a WASI module; every call goes over waPC."""

    #: Original portable providers refuse an empty descriptor request: they
    #: decode ``HealthRequest {placeholder: false}`` (CONTRACTS section 2).
    descriptor_request: ClassVar[bytes] = HealthRequest(placeholder=False).encode()

    def __init__(self, module: Guest, port: _ProviderPort, label: str) -> None:
        super().__init__()
        self.module = module
        self.label = label
        self._port = port

    def configure_dispatch(self, dispatcher: Dispatcher) -> None:
        super().configure_dispatch(dispatcher)
        self._port.dispatcher = dispatcher

    def handle_call(self, actor: str, operation: str, msg: bytes) -> bytes:
        envelope = PortableCall(actor=actor, msg=msg).encode()
        try:
            return self.module.invoke(operation, envelope)
        except InvocationError as exc:
            raise ProviderCallError(str(exc)) from exc

    def stop(self) -> None:
        self.module.retire()

    def __repr__(self) -> str:
        return f"PortableProvider({self.label})"


def load_portable_provider(
    source: str | os.PathLike[str] | bytes,
    *,
    runtime: Runtime | None = None,
    grant: WasiGrant | None = None,
    trusted_issuers: frozenset[str] | None = None,
    settings: ActorSettings | None = None,
) -> PortableProvider:
    """Verify, compile and start a portable provider; ready for ``Host.add_provider``."""
    wasm, label = read_module(source)
    claims = claims_mod.verify_module(wasm, trusted_issuers=trusted_issuers, label=label)
    if not claims.provider:
        raise ProviderError(
            f"{label} ({claims.name}) is not a capability provider: its claims do not say "
            "prov: true"
        )
    grant = grant or WasiGrant()
    who = f"portable provider {claims.name} ({claims.subject})"
    port = _ProviderPort(who)
    module = Guest(
        wasm, who, runtime or Runtime.default(), settings or ActorSettings(), port, wasi=grant
    )
    provider = PortableProvider(module, port, label)
    try:
        provider.descriptor()
    except Exception as exc:
        provider.stop()
        raise ProviderError(f"{label} did not describe itself: {exc}") from exc
    return provider
