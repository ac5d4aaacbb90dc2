"""The provider side of the contract: one base class for every kind of provider.

A capability provider serves one capability id (``wascc:keyvalue``, ...)
under a binding name.  The host talks to it only through
:meth:`CapabilityProvider.handle_call`, with the origin ``"system"`` for the
core operations (``GetCapabilityDescriptor``, ``BindActor``,
``RemoveActor``, ``HealthRequest``) and an actor's public key for the
capability's own operations.  Providers reach actors through the
:class:`Dispatcher` the host hands to :meth:`configure_dispatch`.

Subclasses implement :meth:`descriptor` and :meth:`handle`; the base class
answers the core operations (binding is idempotent, health is "healthy"
unless :meth:`health` says otherwise).

Re-binding is reconfiguration (the rule of ``native/include/wascc/provider.h``,
section 2): a ``BindActor`` for an actor that is already bound, with different
values, reaches :meth:`bind_actor` again.  The provider sets up the new
configuration first (a new listener, a new file) and releases the old one
only when the new one works; when it cannot, it raises and the old
configuration stays in force, so a bad re-bind never costs a working binding.
The host relies on this: it never sends ``RemoveActor`` before a re-bind.

Native and portable providers override :meth:`handle_call` itself and
forward everything.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import ClassVar, Protocol

from wascc.errors import ProviderCallError
from wascc.wire.codec import (
    OP_BIND_ACTOR,
    OP_GET_DESCRIPTOR,
    OP_HEALTH_REQUEST,
    OP_REMOVE_ACTOR,
    SYSTEM_ACTOR,
    CapabilityConfiguration,
    CapabilityDescriptor,
    HealthResponse,
)
from wascc.wire.par import ProviderClaims

__all__ = ["CORE_OPERATIONS", "CapabilityProvider", "Dispatcher", "ForwardingProvider"]

CORE_OPERATIONS = frozenset({OP_BIND_ACTOR, OP_REMOVE_ACTOR, OP_HEALTH_REQUEST, OP_GET_DESCRIPTOR})


class Dispatcher(Protocol):
    """Calls from a provider into an actor bound to it.  Thread-safe."""

    def dispatch(self, actor: str, operation: str, payload: bytes) -> bytes:
        """Invoke ``operation`` on ``actor``; the reply, or an ``InvocationError``."""


class CapabilityProvider(ABC):
    """Base class of every capability provider."""

    #: The capability id this class provides; used by plugin discovery.
    capability_id: ClassVar[str] = ""
    #: The payload of the host's ``GetCapabilityDescriptor`` to this kind of
    #: provider (CONTRACTS section 2): empty for native and Python providers.
    descriptor_request: ClassVar[bytes] = b""
    #: True for providers that restart themselves when they fail (isolated ones):
    #: the host's health check reports them unhealthy while they do, but does
    #: not remove them.
    restarts_itself: ClassVar[bool] = False
    #: True for native code (a shared object, in-process or isolated): what
    #: ``require_signed_providers`` refuses unless it came from a signed archive.
    native: ClassVar[bool] = False
    #: The verified claims of the provider archive it was loaded from, if any.
    archive: ProviderClaims | None = None
    #: A first-party library installed inside the wascc package: trusted as the
    #: host itself, so ``require_signed_providers`` lets it through unsigned.
    bundled: bool = False

    def __init__(self) -> None:
        self.dispatcher: Dispatcher | None = None
        self._bound: dict[str, CapabilityConfiguration] = {}
        self._bound_lock = threading.Lock()

    @abstractmethod
    def descriptor(self) -> CapabilityDescriptor:
        """What this provider is and which operations it supports."""

    def configure_dispatch(self, dispatcher: Dispatcher) -> None:
        """Keep the dispatcher for calls into actors (called once, before any binding)."""
        self.dispatcher = dispatcher

    def handle_call(self, actor: str, operation: str, msg: bytes) -> bytes:
        """Serve one call; core operations are accepted from the host only."""
        if operation in CORE_OPERATIONS:
            if actor != SYSTEM_ACTOR:
                raise ProviderCallError(
                    f"{operation} is reserved for the host; actor {actor} may not send it"
                )
            return self._core(operation, msg)
        return self.handle(actor, operation, msg)

    def _core(self, operation: str, msg: bytes) -> bytes:
        if operation == OP_GET_DESCRIPTOR:
            return self.descriptor().encode()
        if operation == OP_HEALTH_REQUEST:
            return self.health().encode()
        config = CapabilityConfiguration.decode(msg)
        with self._bound_lock:
            old = self._bound.get(config.module)
            if operation == OP_BIND_ACTOR:
                self._bound[config.module] = config
            else:
                self._bound.pop(config.module, None)
        if operation == OP_BIND_ACTOR and (old is None or old.values != config.values):
            try:
                self.bind_actor(config)
            except BaseException:
                # A failed bind is not a binding (the next BindActor must try again);
                # a failed re-bind leaves the previous configuration in force.
                with self._bound_lock:
                    if old is None:
                        self._bound.pop(config.module, None)
                    else:
                        self._bound[config.module] = old
                raise
        elif operation == OP_REMOVE_ACTOR and old is not None:
            self.remove_actor(config)
        return b""

    @abstractmethod
    def handle(self, actor: str, operation: str, msg: bytes) -> bytes:
        """Serve one of this capability's own operations for ``actor``."""

    def bind_actor(self, config: CapabilityConfiguration) -> None:  # noqa: B027
        """An actor was bound, or re-bound with different values (a reconfiguration).

        A BindActor repeating the current values is absorbed.  On a
        reconfiguration apply the new values and release the old ones only once
        the new ones work; if they do not, raise and keep the old ones in force.
        """

    def remove_actor(self, config: CapabilityConfiguration) -> None:  # noqa: B027
        """An actor was unbound (only if it was bound)."""

    def health(self) -> HealthResponse:
        """Answer the host's health check."""
        return HealthResponse(healthy=True, message="")

    def bound_actors(self) -> dict[str, CapabilityConfiguration]:
        """Actors bound to this provider and their configuration."""
        with self._bound_lock:
            return dict(self._bound)

    @property
    def state(self) -> str:
        """What the inventory shows: ``running`` (isolated providers also restarting,
        given up, stopped)."""
        return "running"

    def stop(self) -> None:  # noqa: B027
        """Release everything; called once when the provider is removed."""


class ForwardingProvider(CapabilityProvider):
    """A provider that lives elsewhere (a native library, a WASI module).

    Subclasses override :meth:`handle_call` to forward every call, core
    operations included; the descriptor is asked for once, over that path.
    """

    def __init__(self) -> None:
        super().__init__()
        self._descriptor: CapabilityDescriptor | None = None

    def descriptor(self) -> CapabilityDescriptor:
        if self._descriptor is None:
            self._descriptor = CapabilityDescriptor.decode(
                self.handle_call(SYSTEM_ACTOR, OP_GET_DESCRIPTOR, self.descriptor_request)
            )
        return self._descriptor

    @abstractmethod
    def handle_call(self, actor: str, operation: str, msg: bytes) -> bytes:
        """Forward one call, whatever its origin and operation."""

    def handle(self, actor: str, operation: str, msg: bytes) -> bytes:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} answers through handle_call")
