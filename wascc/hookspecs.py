"""Hook specifications: how plugins extend a wascc host (through pluggy).

Implement any of these in a module or object marked with
``wascc.hookimpl`` and register it with ``Host(plugins=[...])``,
``host.add_plugin(obj)``, or an entry point in the ``wascc.providers``
group.  Hooks are called with keyword arguments; an implementation may take
any subset of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from wascc.wire.claims import Claims
    from wascc.wire.invocation import Invocation, InvocationResponse

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("wascc")
hookimpl = pluggy.HookimplMarker("wascc")


@hookspec
def wascc_providers() -> list[Any]:  # type: ignore[empty-body]
    """Provider factories this plugin offers.

    Each is a zero-argument callable (usually a
    :class:`~wascc.providers.CapabilityProvider` subclass) with a
    ``capability_id`` attribute; ``host.add_provider("wascc:extras")`` finds
    it by that id.
    """


@hookspec
def wascc_authorize(
    invocation: Invocation, origin_claims: Claims | None, target_claims: Claims | None
) -> bool | str | None:
    """Called for every invocation after the claims check passed.

    Return ``False`` or a reason (a string) to deny; ``True`` or ``None``
    to let it through.  Any one denial wins, an authorizer can only deny
    more than the claims do, never grant more, and one that raises denies.
    """


@hookspec
def wascc_authorize_binding(
    actor_claims: Claims, capability_id: str, binding: str
) -> bool | str | None:
    """Called when a binding is set, after the claims check passed; deny as above."""


@hookspec
def wascc_before_invoke(
    invocation: Invocation,
) -> Invocation | InvocationResponse | None:
    """Middleware before every actor and provider invocation.

    Return ``None`` to go on, a new :class:`Invocation` (same origin and
    target) to rewrite it for the next middleware and the target, or an
    :class:`InvocationResponse` to halt: the target is not called and that
    response is the answer.  Middleware runs in pluggy's call order
    (last registered first; ``tryfirst``/``trylast`` respected).  A hook
    that raises fails the invocation with ``MiddlewareError``.
    """


@hookspec
def wascc_after_invoke(
    invocation: Invocation, response: InvocationResponse
) -> InvocationResponse | None:
    """Middleware after every invocation: return a new response to rewrite it."""
