"""How a WIT adapter calls a waSCC contract on a component's behalf.

Through the same door an actor's ``__host_call`` uses (the port): a refusal
of the claims floor or the bindings (``Unauthorized``, ``NotBound``) raises,
which traps the component's call with that error; any other failure (the
provider's own) comes back as its text, for the interface's error value.
"""

from __future__ import annotations

from wascc.engine.wapc import GuestHost
from wascc.errors import NotBound, Unauthorized, WasccError

__all__ = ["REFUSALS", "contract_call"]

#: Refusals that trap the component's call rather than answer it.
REFUSALS = (Unauthorized, NotBound)


def contract_call(
    port: GuestHost, binding: str, capability: str, operation: str, payload: bytes
) -> tuple[bytes | None, str | None]:
    """(the reply, None), or (None, the provider's failure); a refusal raises."""
    try:
        return port.host_call(binding, capability, operation, payload), None
    except REFUSALS:
        raise
    except WasccError as exc:
        return None, str(exc)
