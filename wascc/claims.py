"""Signed claims: the JWT embedded in an actor's `jwt` custom section.

CONTRACTS section 4.  A token is ``b64(header).b64(claims).b64(signature)``
with the header ``{"typ":"jwt","alg":"Ed25519"}`` and an Ed25519 signature
by the issuer (an account key) over the first two segments.  The claims name
the module (subject, a module key), its hash and what it may do.

The JWT is written by hand: its algorithm name ``Ed25519`` is waSCC's own
(JOSE says ``EdDSA``), so general JWT libraries refuse it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from wascc import keys, wasm
from wascc.errors import (
    HashMismatch,
    InvalidSignature,
    KeyFormatError,
    MalformedToken,
    MissingClaims,
    ModuleError,
    TokenExpired,
    TokenNotYetValid,
    UntrustedIssuer,
)
from wascc.keys import KeyPair, KeyType

__all__ = [
    "Claims",
    "decode_token",
    "encode_token",
    "extract_claims",
    "module_hash",
    "sign_module",
    "verify_module",
]

SECTION = "jwt"
LEGACY_SECTIONS = frozenset({"jwt", "wasmcloud_jwt"})
HEADER = {"typ": "jwt", "alg": "Ed25519"}


@dataclass(frozen=True)
class Claims:
    """What a signed module says about itself.

    ``caps`` lists the capability ids (and actor public keys) the module may
    call; ``provider`` marks a portable capability provider.
    """

    issuer: str
    subject: str
    name: str
    module_hash: str = ""
    caps: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    rev: int | None = None
    ver: str | None = None
    provider: bool = False
    issued_at: int = 0
    expires: int | None = None
    not_before: int | None = None
    id: str = field(default_factory=lambda: secrets.token_hex(16).upper())

    def to_json(self) -> dict[str, Any]:
        """The claims as the JSON object of the token (wascap's field names)."""
        wascap: dict[str, Any] = {"name": self.name, "hash": self.module_hash}
        if self.tags:
            wascap["tags"] = list(self.tags)
        if self.caps:
            wascap["caps"] = list(self.caps)
        if self.rev is not None:
            wascap["rev"] = self.rev
        if self.ver is not None:
            wascap["ver"] = self.ver
        wascap["prov"] = self.provider
        body: dict[str, Any] = {
            "jti": self.id,
            "iat": self.issued_at,
            "iss": self.issuer,
            "sub": self.subject,
            "wascap": wascap,
        }
        if self.expires is not None:
            body["exp"] = self.expires
        if self.not_before is not None:
            body["nbf"] = self.not_before
        return body

    @classmethod
    def from_json(cls, body: Any) -> Claims:
        """Read the token's claims object, refusing wrong shapes."""
        if not isinstance(body, dict):
            raise MalformedToken("the token's claims are not a JSON object")
        meta = body.get("wascap")
        if not isinstance(meta, dict):
            raise MalformedToken("the token has no `wascap` claims (not an actor token)")
        try:
            return cls(
                issuer=_str(body, "iss"),
                subject=_str(body, "sub"),
                name=_str(meta, "name", ""),
                module_hash=_str(meta, "hash", ""),
                caps=tuple(_strs(meta, "caps")),
                tags=tuple(_strs(meta, "tags")),
                rev=_opt_int(meta, "rev"),
                ver=_opt_str(meta, "ver"),
                provider=bool(meta.get("prov", False)),
                issued_at=_opt_int(body, "iat") or 0,
                expires=_opt_int(body, "exp"),
                not_before=_opt_int(body, "nbf"),
                id=_str(body, "jti", ""),
            )
        except (TypeError, ValueError) as exc:
            raise MalformedToken(f"the token's claims are malformed: {exc}") from exc


def _str(obj: dict[str, Any], key: str, default: str | None = None) -> str:
    value = obj.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"`{key}` must be a string")
    return value


def _opt_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"`{key}` must be a string")
    return value


def _opt_int(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"`{key}` must be an integer")
    return value


def _strs(obj: dict[str, Any], key: str) -> list[str]:
    value = obj.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"`{key}` must be a list of strings")
    return value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedToken(f"the token's {what} is not base64url") from exc


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def encode_token(claims: Claims, issuer: KeyPair) -> str:
    """Serialize and sign ``claims`` with the issuer's account key."""
    if issuer.kind is not KeyType.ACCOUNT:
        raise KeyFormatError("claims must be signed by an account key (SA...)")
    if claims.issuer != issuer.public_key:
        raise KeyFormatError("the claims' issuer is not the key that signs them")
    signing_input = f"{_b64(_canonical(HEADER))}.{_b64(_canonical(claims.to_json()))}"
    return f"{signing_input}.{_b64(issuer.sign(signing_input.encode()))}"


def decode_token(token: str, *, verify_signature: bool = True) -> Claims:
    """Parse a token and (by default) check its signature by its issuer."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise MalformedToken(f"a JWT has 3 segments, this one has {len(parts)}")
    try:
        header = json.loads(_unb64(parts[0], "header"))
        body = json.loads(_unb64(parts[1], "claims"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedToken(f"the token is not JSON: {exc}") from exc
    if (
        not isinstance(header, dict)
        or header.get("alg") != "Ed25519"
        or str(header.get("typ", "")).lower() != "jwt"
    ):
        raise MalformedToken(f"unknown token header {header!r} (expected {HEADER})")
    claims = Claims.from_json(body)
    if verify_signature:
        try:
            keys.decode_public_key(claims.issuer, KeyType.ACCOUNT)
        except KeyFormatError as exc:
            raise MalformedToken(f"the token's issuer is not an account key: {exc}") from exc
        signature = _unb64(parts[2], "signature")
        signing_input = f"{parts[0]}.{parts[1]}".encode()
        if not keys.verify(claims.issuer, signing_input, signature):
            raise InvalidSignature(f"the signature does not verify against issuer {claims.issuer}")
    return claims


def module_hash(module: bytes) -> str:
    """SHA-256 (upper-case hex) of the module without its claims sections."""
    stripped = wasm.strip_custom_sections(module, LEGACY_SECTIONS)
    return hashlib.sha256(stripped).hexdigest().upper()


def sign_module(
    module: bytes | bytearray,
    *,
    issuer: KeyPair,
    subject: KeyPair | str,
    name: str,
    caps: Iterable[str] = (),
    tags: Iterable[str] = (),
    rev: int | None = None,
    ver: str | None = None,
    provider: bool = False,
    expires: int | None = None,
    not_before: int | None = None,
    now: int | None = None,
) -> bytes:
    """Embed signed claims in ``module``, replacing any earlier `jwt` section.

    ``expires`` and ``not_before`` are seconds since the epoch.
    """
    subject_key = subject.public_key if isinstance(subject, KeyPair) else subject
    keys.decode_public_key(subject_key, KeyType.MODULE)
    stripped = wasm.strip_custom_sections(bytes(module), LEGACY_SECTIONS)
    claims = Claims(
        issuer=issuer.public_key,
        subject=subject_key,
        name=name,
        module_hash=hashlib.sha256(stripped).hexdigest().upper(),
        caps=tuple(caps),
        tags=tuple(tags),
        rev=rev,
        ver=ver,
        provider=provider,
        issued_at=int(time.time()) if now is None else now,
        expires=expires,
        not_before=not_before,
    )
    token = encode_token(claims, issuer)
    return wasm.append_custom_section(stripped, SECTION, token.encode())


def extract_claims(module: bytes) -> tuple[Claims, str] | None:
    """The claims and raw token of a module, unverified; None if unsigned."""
    tokens: list[bytes] = []
    for section in wasm.sections(module):
        if section.custom_name in LEGACY_SECTIONS:
            tokens.append(section.custom_data)
    if not tokens:
        return None
    if len(tokens) > 1:
        raise MalformedToken("the module carries more than one claims section")
    try:
        token = tokens[0].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedToken("the claims section is not UTF-8") from exc
    return decode_token(token, verify_signature=False), token


def verify_module(
    module: bytes,
    *,
    trusted_issuers: Iterable[str] | None = None,
    now: float | None = None,
    label: str = "module",
) -> Claims:
    """Check a module's claims and return them; each refusal is its own error.

    Checks, in order: a claims section exists, the token parses, its
    signature verifies against `iss`, the hash matches the module, the time
    window (`nbf` <= now < `exp`), and `iss` is trusted (when a list is given).
    ``label`` names the module in messages (a file name, say).
    """
    try:
        found = extract_claims(module)
    except ModuleError as exc:
        raise ModuleError(f"{label}: {exc}") from exc
    except MalformedToken as exc:
        raise MalformedToken(f"{label}: {exc}") from exc
    if found is None:
        raise MissingClaims(f"{label} is not signed (it has no `jwt` section)")
    claims, token = found
    who = f"{label} ({claims.name or '?'}, {claims.subject})"
    try:
        decode_token(token)
    except InvalidSignature as exc:
        raise InvalidSignature(f"{who}: {exc}") from exc
    except MalformedToken as exc:
        raise MalformedToken(f"{who}: {exc}") from exc
    actual = module_hash(module)
    if claims.module_hash != actual:
        raise HashMismatch(
            f"{who} was modified after signing: its hash is {actual[:16]}..., "
            f"the claims say {claims.module_hash[:16]}..."
        )
    moment = time.time() if now is None else now
    if claims.expires is not None and moment >= claims.expires:
        raise TokenExpired(f"{who}: the claims expired at {_when(claims.expires)}")
    if claims.not_before is not None and moment < claims.not_before:
        raise TokenNotYetValid(f"{who}: the claims are not valid before {_when(claims.not_before)}")
    if trusted_issuers is not None:
        trusted = set(trusted_issuers)
        if claims.issuer not in trusted:
            raise UntrustedIssuer(f"{who}: issuer {claims.issuer} is not trusted by this host")
    try:
        keys.decode_public_key(claims.subject, KeyType.MODULE)
    except KeyFormatError as exc:
        raise MalformedToken(f"{who}: the subject is not a module key: {exc}") from exc
    return claims


def _when(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
