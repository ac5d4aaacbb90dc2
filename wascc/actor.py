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

from wascc.engine.component import ComponentGuest
from wascc.engine.guest import ActorSettings, Guest, read_module
from wascc.engine.runtime import Runtime
from wascc.engine.wapc import GuestHost
from wascc.errors import MissingClaims
from wascc.wire import claims as claims_mod
from wascc.wire import wasm as wasm_format
from wascc.wire.capability import canonical_capability
from wascc.wire.claims import Claims
from wascc.wire.codec import FORM_MAP, REQUEST_STRUCTS
from wascc.wire.keys import KeyPair, KeyType

__all__ = ["Actor", "ActorSettings", "ComponentActor", "Running", "load_actor", "read_module"]

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


class _Identity:
    """Who a running module is, what actors and components have in common.

    Mixed in before the guest class: it takes the claims, names the module,
    and hands the guest its part of the arguments.
    """

    kind = "actor"
    #: Request structs this kind reads as maps from the start (the rest is learned).
    reads_maps: tuple[str, ...] = ()

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
        self.request_forms: dict[str, str] = dict.fromkeys(self.reads_maps, FORM_MAP)
        who = f"{self.kind} {self.name} ({self.public_key})"
        super().__init__(wasm, who, runtime, settings, guest_host)  # type: ignore[call-arg]


class Actor(_Identity, Guest):
    """A running actor module.  Replacing an actor makes a new :class:`Actor`."""


class ComponentActor(_Identity, ComponentGuest):
    """A running component (WASI 0.2), treated by the host like an actor.

    It reads request structs as maps (its adapters write them), so the host
    never probes it for an older codec era.
    """

    kind = "component"
    reads_maps = tuple(REQUEST_STRUCTS)


#: What the host runs: an actor or a component (the same interface).
Running = Actor | ComponentActor


def load_actor(
    source: str | os.PathLike[str] | bytes,
    *,
    runtime: Runtime,
    port: Callable[[Claims], GuestHost],
    settings: ActorSettings,
    trusted_issuers: frozenset[str] | None,
    allow_unsigned: bool,
) -> Running:
    """Read, verify and start an actor or a component; every refusal names it and why.

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
    kind = ComponentActor if wasm_format.is_component(wasm) else Actor
    return kind(wasm, claims, label, runtime, settings, port(claims), signed)
