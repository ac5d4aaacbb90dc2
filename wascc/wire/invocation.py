"""Invocations as plain data: who calls whom, with what, matched by id.

Middleware and authorizer hooks see an :class:`Invocation` and, after the
call, an :class:`InvocationResponse` carrying the same id.  ``origin`` and
``target`` are actor public keys, capability ids, or ``"system"`` (the host
itself); ``binding`` names the binding on whichever side is a capability.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field

from wascc.wire.codec import SYSTEM_ACTOR
from wascc.wire.keys import is_actor_key

__all__ = ["SYSTEM", "Invocation", "InvocationResponse"]

SYSTEM = SYSTEM_ACTOR
_PREFIX = secrets.token_hex(4)
_counter = itertools.count(1)


def _next_id() -> str:
    return f"{_PREFIX}-{next(_counter)}"


@dataclass(frozen=True, slots=True)
class Invocation:
    """One call: origin -> target.operation(msg)."""

    origin: str
    target: str
    operation: str
    msg: bytes
    binding: str = ""
    id: str = field(default_factory=_next_id)

    @property
    def target_is_actor(self) -> bool:
        return is_actor_key(self.target)

    @property
    def origin_is_actor(self) -> bool:
        return is_actor_key(self.origin)


@dataclass(frozen=True, slots=True)
class InvocationResponse:
    """The answer to the invocation with id ``invocation_id``: a reply or an error."""

    invocation_id: str
    msg: bytes = b""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
