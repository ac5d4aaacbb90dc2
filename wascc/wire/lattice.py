"""The lattice's wire: invocations between hosts and their anti-forgery JWT.

CONTRACTS section 5, exactly as waSCC 0.14 wrote it (rmp-serde, struct maps,
no renames):

* ``Invocation`` ``{origin, target, operation, msg, id, encoded_claims,
  host_id}``; ``origin``/``target`` are WasccEntity enums: ``{0: "M..."}``
  an actor (or ``{0: "system"}`` the host), ``{1: {capid, binding}}`` a
  capability; ``msg`` is a ``Vec<u8>`` without serde_bytes, so an **array of
  uints** (bin is read too).
* ``InvocationResponse`` ``{msg, error: str | nil, invocation_id}``.
* **wascc**: an invocation may carry ``deadline`` (milliseconds since the
  epoch, 0 = none); the original's decoder ignores unknown keys, so its hosts
  read these invocations unchanged.

The anti-forgery token is a JWT signed by the sending host's server key
(``N...``): header ``{"typ":"jwt","alg":"Ed25519"}``, claims ``{jti, iat,
iss: host key, sub: invocation id, wascap: {target_url, origin_url, hash}}``
where ``hash = HEXUPPER(SHA-256(origin_url || target_url || msg))``.
:func:`check_invocation` verifies it in the order that reads nothing
unvouched: shape, header, ``iss == host_id`` (a server key, on the trusted
list when there is one), the signature, then ``sub``, urls and hash.  Every
refusal is an :class:`~wascc.errors.AntiforgeryError` reading
"Antiforgery check failure: ...", the original's words.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack
from cryptography.exceptions import InvalidSignature as _BadSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from wascc.errors import AntiforgeryError, CodecError, KeyFormatError
from wascc.wire import boundedjson
from wascc.wire.codec import SYSTEM_ACTOR, unpack
from wascc.wire.keys import KeyPair, KeyType, decode_public_key

__all__ = [
    "MAX_INVOCATION_BYTES",
    "BusInvocation",
    "BusResponse",
    "Entity",
    "capability_subject",
    "check_invocation",
    "entity_url",
    "invocation_hash",
]

#: The most bytes a lattice message may hold (nats-server's default max_payload is 1 MiB;
#: an array of uints costs up to two bytes per byte of ``msg``).
MAX_INVOCATION_BYTES = 64 * 1024 * 1024
_HEADER = {"typ": "jwt", "alg": "Ed25519"}
_HEADER_B64 = (
    base64.urlsafe_b64encode(json.dumps(_HEADER, separators=(",", ":")).encode())
    .decode()
    .rstrip("=")
)
_MAX_TOKEN = 16 * 1024
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class Entity:
    """A WasccEntity: an actor (``capid`` empty) or a capability at a binding.

    The host itself is the actor ``system``.
    """

    actor: str = ""
    capid: str = ""
    binding: str = ""

    @classmethod
    def of_actor(cls, key: str) -> Entity:
        return cls(actor=key)

    @classmethod
    def of_capability(cls, capid: str, binding: str) -> Entity:
        return cls(capid=capid, binding=binding)

    @property
    def is_actor(self) -> bool:
        return not self.capid

    @property
    def is_system(self) -> bool:
        return self.actor == SYSTEM_ACTOR

    def to_wire(self) -> dict[int, Any]:
        if self.is_actor:
            return {0: self.actor}
        return {1: {"capid": self.capid, "binding": self.binding}}

    @classmethod
    def from_wire(cls, value: Any, where: str) -> Entity:
        """Read ``{0: key}`` / ``{1: {capid, binding}}`` (by index or variant name)."""
        if not isinstance(value, dict) or len(value) != 1:
            raise CodecError(f"{where} must be a one-entry map (a WasccEntity)")
        ((tag, body),) = value.items()
        if tag in (0, "Actor"):
            if not isinstance(body, str):
                raise CodecError(f"{where} names an actor with {type(body).__name__}, not text")
            return cls(actor=body)
        if tag in (1, "Capability"):
            if isinstance(body, list) and len(body) == 2:  # read by position
                body = {"capid": body[0], "binding": body[1]}
            if not isinstance(body, dict):
                raise CodecError(f"{where} names a capability with {type(body).__name__}")
            capid, binding = body.get("capid"), body.get("binding")
            if not isinstance(capid, str) or not isinstance(binding, str):
                raise CodecError(f"{where} must hold text `capid` and `binding`")
            return cls(capid=capid, binding=binding)
        raise CodecError(f"{where} is no WasccEntity variant ({tag!r})")

    def describe(self) -> str:
        return self.actor if self.is_actor else f"{self.capid} ({self.binding})"


def entity_url(entity: Entity) -> str:
    """``wasmbus://{pk}`` or ``wasmbus://{capid, : -> /, lowercased}/{binding lowercased}``."""
    if entity.is_actor:
        return f"wasmbus://{entity.actor}"
    return f"wasmbus://{entity.capid.replace(':', '/').lower()}/{entity.binding.lower()}"


def capability_subject(capid: str) -> str:
    """A capability id as a subject token: lowercase, ``:`` -> ``.``, space -> ``_``."""
    return capid.lower().replace(":", ".").replace(" ", "_")


def invocation_hash(origin_url: str, target_url: str, msg: bytes) -> str:
    """HEXUPPER(SHA-256(origin_url || target_url || msg))."""
    digest = hashlib.sha256()
    digest.update(origin_url.encode())
    digest.update(target_url.encode())
    digest.update(msg)
    return digest.hexdigest().upper()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str, what: str) -> bytes:
    if not _SEGMENT.fullmatch(text) or len(text) % 4 == 1:
        raise AntiforgeryError(f"Antiforgery check failure: the token's {what} is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise AntiforgeryError(
            f"Antiforgery check failure: the token's {what} is not base64url"
        ) from exc


def _bytes(value: Any, where: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, list):
        try:
            return bytes(value)
        except (ValueError, TypeError) as exc:
            raise CodecError(f"{where} must be bytes (an array of 0-255)") from exc
    if isinstance(value, str):
        return value.encode()
    raise CodecError(f"{where} must be bytes, not {type(value).__name__}")


def _text(obj: dict[Any, Any], key: str, where: str, *, nil_ok: bool = False) -> str:
    value = obj.get(key)
    if value is None and nil_ok:
        return ""
    if not isinstance(value, str):
        raise CodecError(f"{where}.{key} must be text, not {type(value).__name__}")
    return value


def _decode_map(data: bytes, what: str, fields: tuple[str, ...]) -> dict[Any, Any]:
    if len(data) > MAX_INVOCATION_BYTES:
        raise CodecError(f"{what} is larger than {MAX_INVOCATION_BYTES} bytes")
    obj = unpack(data, what)
    if isinstance(obj, list):  # rmp-serde reads a struct by position too
        obj = dict(zip(fields, obj, strict=False))
    if not isinstance(obj, dict):
        raise CodecError(f"{what} must be a map, not {type(obj).__name__}")
    return obj


@dataclass(frozen=True, slots=True)
class BusInvocation:
    """One invocation on the bus, signed by the host that sent it."""

    origin: Entity
    target: Entity
    operation: str
    msg: bytes
    id: str
    encoded_claims: str
    host_id: str
    #: wascc: when the caller stops waiting (ms since the epoch; 0 = not said).
    deadline: int = 0

    FIELDS = ("origin", "target", "operation", "msg", "id", "encoded_claims", "host_id")

    @classmethod
    def signed(
        cls,
        host: KeyPair,
        origin: Entity,
        target: Entity,
        operation: str,
        msg: bytes,
        *,
        deadline: int = 0,
        invocation_id: str | None = None,
        host_id: str | None = None,
    ) -> BusInvocation:
        """A new invocation with a fresh id and its anti-forgery token.

        ``host_id``: ``host.public_key``, when the caller keeps it (it costs a
        base32 encoding per call otherwise).
        """
        if host.kind is not KeyType.SERVER:
            raise KeyFormatError("invocations are signed with a server key (SN...)")
        issuer = host_id or host.public_key
        ident = invocation_id or str(uuid.uuid4())
        origin_url = entity_url(origin)
        target_url = f"{entity_url(target)}/{operation}"
        claims = {
            "jti": uuid.uuid4().hex,
            "iat": int(time.time()),
            "iss": issuer,
            "sub": ident,
            "wascap": {
                "target_url": target_url,
                "origin_url": origin_url,
                "hash": invocation_hash(origin_url, target_url, msg),
            },
        }
        head = _HEADER_B64
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = _b64(host.sign(f"{head}.{body}".encode()))
        return cls(
            origin, target, operation, msg, ident, f"{head}.{body}.{signature}",
            issuer, deadline,
        )  # fmt: skip

    def encode(self) -> bytes:
        body: dict[str, Any] = {
            "origin": self.origin.to_wire(),
            "target": self.target.to_wire(),
            "operation": self.operation,
            "msg": list(self.msg),
            "id": self.id,
            "encoded_claims": self.encoded_claims,
            "host_id": self.host_id,
        }
        if self.deadline:
            body["deadline"] = self.deadline
        return msgpack.packb(body, use_bin_type=True)  # type: ignore[no-any-return]

    @classmethod
    def decode(cls, data: bytes) -> BusInvocation:
        """Read an Invocation (map or positional array; unknown keys ignored)."""
        obj = _decode_map(data, "the invocation", cls.FIELDS)
        for key in ("origin", "target", "msg"):
            if key not in obj:
                raise CodecError(f"the invocation has no `{key}`")
        deadline = obj.get("deadline", 0)
        if deadline is None:
            deadline = 0
        if isinstance(deadline, bool) or not isinstance(deadline, int) or deadline < 0:
            raise CodecError("the invocation's `deadline` must be a whole number of ms >= 0")
        return cls(
            origin=Entity.from_wire(obj["origin"], "the invocation's origin"),
            target=Entity.from_wire(obj["target"], "the invocation's target"),
            operation=_text(obj, "operation", "the invocation"),
            msg=_bytes(obj["msg"], "the invocation's msg"),
            id=_text(obj, "id", "the invocation"),
            encoded_claims=_text(obj, "encoded_claims", "the invocation"),
            host_id=_text(obj, "host_id", "the invocation"),
            deadline=min(deadline, 2**63),
        )


@dataclass(frozen=True, slots=True)
class BusResponse:
    """The answer to the invocation ``invocation_id``: ``msg`` or ``error``."""

    invocation_id: str
    msg: bytes = b""
    error: str | None = None

    FIELDS = ("msg", "error", "invocation_id")

    def encode(self) -> bytes:
        body = {"msg": list(self.msg), "error": self.error, "invocation_id": self.invocation_id}
        return msgpack.packb(body, use_bin_type=True)  # type: ignore[no-any-return]

    @classmethod
    def decode(cls, data: bytes) -> BusResponse:
        obj = _decode_map(data, "the invocation response", cls.FIELDS)
        error = obj.get("error")
        if error is not None and not isinstance(error, str):
            raise CodecError("the invocation response's error must be text or nil")
        return cls(
            invocation_id=_text(obj, "invocation_id", "the invocation response", nil_ok=True),
            msg=_bytes(obj.get("msg", b""), "the invocation response's msg"),
            error=error,
        )


def _fail(reason: str) -> AntiforgeryError:
    return AntiforgeryError(f"Antiforgery check failure: {reason}")


@functools.lru_cache(maxsize=1024)
def _host_key(issuer: str) -> Ed25519PublicKey:
    """A host's verifying key (cached: a lattice has few hosts, each signs every call)."""
    _, raw = decode_public_key(issuer, KeyType.SERVER)
    return Ed25519PublicKey.from_public_bytes(raw)


def check_invocation(inv: BusInvocation, trusted_hosts: Iterable[str] | None = None) -> None:
    """Refuse a forged or altered invocation (``AntiforgeryError``); None when it holds.

    ``trusted_hosts``: server keys whose invocations are accepted (None: any
    valid key, as the original).  Order: the header (compared as text), the
    sending host (a server key, trusted), its signature over the first two
    segments, and only then the claims: nothing unsigned is parsed.
    """
    token = inv.encoded_claims
    if len(token) > _MAX_TOKEN:
        raise _fail(f"the token is longer than {_MAX_TOKEN} bytes")
    parts = token.split(".")
    if len(parts) != 3:
        raise _fail("the token is not three segments")
    if parts[0] != _HEADER_B64:
        header = boundedjson.loads(
            _unb64(parts[0], "header"), what="the token's header", error=_fail,
            max_bytes=_MAX_TOKEN, max_depth=4,
        )  # fmt: skip
        if header != _HEADER:
            raise _fail("unknown token header")
    issuer = inv.host_id
    try:
        key = _host_key(issuer)
    except KeyFormatError as exc:
        raise _fail(f"the invocation's host is not a host's server key ({exc})") from exc
    if trusted_hosts is not None and issuer not in trusted_hosts:
        raise _fail(f"host {issuer} is not on the trusted host list")
    try:
        key.verify(_unb64(parts[2], "signature"), f"{parts[0]}.{parts[1]}".encode())
    except _BadSignature:
        raise _fail(f"the signature does not verify against host {issuer}") from None
    claims = boundedjson.loads(
        _unb64(parts[1], "claims"), what="the token's claims", error=_fail,
        max_bytes=_MAX_TOKEN, max_depth=4,
    )  # fmt: skip
    if not isinstance(claims, dict):
        raise _fail("the token's claims are not an object")
    if claims.get("iss") != issuer:
        raise _fail("the token's issuer is not the invocation's host")
    if claims.get("sub") != inv.id:
        raise _fail("the token's subject is not the invocation's id")
    meta = claims.get("wascap")
    if not isinstance(meta, dict):
        raise _fail("the token has no `wascap` object")
    origin_url = entity_url(inv.origin)
    target_url = f"{entity_url(inv.target)}/{inv.operation}"
    if meta.get("origin_url") != origin_url:
        raise _fail(f"origin {origin_url} is not the signed one")
    if meta.get("target_url") != target_url:
        raise _fail(f"target {target_url} is not the signed one")
    if meta.get("hash") != invocation_hash(origin_url, target_url, inv.msg):
        raise _fail("the invocation hash does not match its contents")
