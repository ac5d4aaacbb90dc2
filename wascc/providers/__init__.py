"""Capability providers: the base class and the built-in ones."""

from __future__ import annotations

from wascc.providers.base import CORE_OPERATIONS, CapabilityProvider, Dispatcher

__all__ = ["CORE_OPERATIONS", "CapabilityProvider", "Dispatcher"]
