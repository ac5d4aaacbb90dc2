"""Bindings: which actor is bound to which provider, and where calls go.

The table keeps three maps: providers keyed by ``(capability_id, binding)``,
bindings keyed by ``(actor, capability_id, binding)``, and the routes that
exist where both do.  A call from an actor to a provider is one lookup in
``routes``.  Writers hold the host's lock; readers take none (a dict lookup
is atomic in CPython, and each write replaces whole entries).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from wascc.wire.capability import DEFAULT_BINDING

__all__ = ["Binding", "RouteTable"]

P = TypeVar("P")


@dataclass(frozen=True)
class Binding:
    """An actor bound to the provider at (capability_id, binding), with its values."""

    actor: str
    capability_id: str
    binding: str = DEFAULT_BINDING
    values: dict[str, str] = field(default_factory=dict)


class RouteTable(Generic[P]):
    """Providers, bindings and the routes between them."""

    def __init__(self) -> None:
        self.providers: dict[tuple[str, str], P] = {}
        self.bindings: dict[tuple[str, str, str], Binding] = {}
        self.routes: dict[tuple[str, str, str], P] = {}

    def add_provider(self, capability_id: str, binding: str, provider: P) -> None:
        self.providers[(capability_id, binding)] = provider
        for actor, cap, name in self.bindings:
            if (cap, name) == (capability_id, binding):
                self.routes[(actor, cap, name)] = provider

    def remove_provider(self, capability_id: str, binding: str) -> list[Binding]:
        """Forget the provider and every binding to it; return those bindings."""
        self.providers.pop((capability_id, binding), None)
        dropped = self.bindings_to(capability_id, binding)
        for b in dropped:
            key = (b.actor, b.capability_id, b.binding)
            self.routes.pop(key, None)
            self.bindings.pop(key, None)
        return dropped

    def bind(self, b: Binding) -> None:
        key = (b.actor, b.capability_id, b.binding)
        self.bindings[key] = b
        provider = self.providers.get((b.capability_id, b.binding))
        if provider is not None:
            self.routes[key] = provider

    def unbind(self, actor: str, capability_id: str, binding: str) -> Binding | None:
        key = (actor, capability_id, binding)
        self.routes.pop(key, None)
        return self.bindings.pop(key, None)

    def bindings_of(self, actor: str) -> list[Binding]:
        return [b for b in list(self.bindings.values()) if b.actor == actor]

    def bindings_to(self, capability_id: str, binding: str) -> list[Binding]:
        return [
            b
            for b in list(self.bindings.values())
            if b.capability_id == capability_id and b.binding == binding
        ]
