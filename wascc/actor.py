"""An actor: a verified waPC module with its claims, running as a guest.

:func:`load_actor` reads the module, verifies its claims, compiles it and
creates its first instances (running ``_start`` and ``wapc_init``); the
call itself is :meth:`wascc.engine.guest.Guest.invoke`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wascc.engine.ffi import GuestHost
from wascc.engine.guest import ActorSettings, Guest, read_module
from wascc.engine.runtime import Runtime
from wascc.errors import MissingClaims
from wascc.wire import claims as claims_mod
from wascc.wire.capability import canonical_capability
from wascc.wire.claims import Claims
from wascc.wire.keys import KeyPair, KeyType

__all__ = ["Actor", "ActorSettings", "load_actor", "read_module"]

log = logging.getLogger(__name__)


def unsigned_claims(wasm: bytes, label: str) -> Claims:
    """An identity for an unsigned module the operator chose to run.

    The module key is derived from the module's hash (so the same file keeps
    its key) and the claims grant nothing.
    """
    digest = hashlib.sha256(wasm).digest()
    key = KeyPair(KeyType.MODULE, Ed25519PrivateKey.from_private_bytes(digest))
    return Claims(
        issuer="",
        subject=key.public_key,
        name=Path(label).stem,
        module_hash=claims_mod.module_hash(wasm),
    )


class Actor(Guest):
    """A running actor module.  Replacing an actor makes a new :class:`Actor`."""

    def __init__(
        self,
        wasm: bytes,
        claims: Claims,
        label: str,
        runtime: Runtime,
        settings: ActorSettings,
        guest_host: GuestHost,
        signed: bool,
    ) -> None:
        self.claims = claims
        self.public_key = claims.subject
        self.name = claims.name or Path(label).stem
        self.label = label
        self.signed = signed
        self.module_hash = claims.module_hash
        self.caps = frozenset(canonical_capability(c) for c in claims.caps)
        #: The codec form (wascc.wire.codec.FORMS) this module reads each request
        #: struct in, by operation, as the host learned it; a replacement
        #: module starts over.
        self.request_forms: dict[str, str] = {}
        super().__init__(
            wasm, f"actor {self.name} ({self.public_key})", runtime, settings, guest_host
        )


def load_actor(
    source: str | os.PathLike[str] | bytes,
    *,
    runtime: Runtime,
    port: Callable[[Claims], GuestHost],
    settings: ActorSettings,
    trusted_issuers: frozenset[str] | None,
    allow_unsigned: bool,
) -> Actor:
    """Read, verify and start an actor; every refusal names the module and why.

    ``port(claims)`` makes the object the actor's instances call back into
    (``__host_call``, ``__console_log``) once its identity is known.
    """
    wasm, label = read_module(source)
    try:
        claims = claims_mod.verify_module(wasm, trusted_issuers=trusted_issuers, label=label)
        signed = True
    except MissingClaims:
        if not allow_unsigned:
            raise
        claims = unsigned_claims(wasm, label)
        signed = False
        log.warning(
            "running UNSIGNED actor %s as %s: it holds no capabilities", label, claims.subject
        )
    return Actor(wasm, claims, label, runtime, settings, port(claims), signed)
