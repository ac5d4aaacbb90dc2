"""Signed claims: the JWT embedded in an actor's `jwt` custom section.

CONTRACTS section 4.  A token is ``b64(header).b64(claims).b64(signature)``
with the header ``{"typ":"jwt","alg":"Ed25519"}`` and an Ed25519 signature
by the issuer (an account key) over the first two segments.  The claims name
the module (subject, a module key), its hash and what it may do.

The JWT is written by hand: its algorithm name ``Ed25519`` is waSCC's own
(JOSE says ``EdDSA``), so general JWT libraries refuse it.

The token is untrusted input until its issuer is known to be trusted and its
signature verifies, so :func:`verify_module` works in this order, and each
step only reads what the steps before it have vouched for:

1. the module's sections are read (bounded: :mod:`wascc.wire.wasm`) and exactly
   one claims section (`jwt` or `wasmcloud_jwt`) is taken, as UTF-8, of at
   most ``MAX_TOKEN_BYTES``;
2. the token splits into three base64url segments;
3. the header and the claims are parsed by one bounded JSON loader
   (:func:`wascc.wire.boundedjson.loads`: size, depth at most ``MAX_JSON_DEPTH``,
   integers of at most 64 digits, no NaN/Infinity, no repeated keys): this is
   the only work done on an unverified body; the header must be exactly
   Ed25519/jwt;
4. of the claims only ``iss`` is read: it must be an account public key;
5. when a trusted list is given, ``iss`` must be on it (UntrustedIssuer);
6. the signature must verify against ``iss`` (InvalidSignature);
7. only now are the claims interpreted: every field's type and range (each
   refusal a MalformedToken naming the field; times are whole seconds from 0
   to ``MAX_TIME``, year 9999, so every later time conversion is safe), the
   subject is a module key;
8. the hash matches the module (HashMismatch);
9. the time window: ``nbf`` <= now < ``exp`` (TokenNotYetValid, TokenExpired).

So an untrusted or unverifiable token is refused before its hash, time
window, capabilities or any other claim is looked at.  :func:`extract_claims`
(for tools that show a module's claims) runs steps 1-4 and 7 without
trusting anything.  Every failure is a :class:`~wascc.errors.ClaimsError`
(or a :class:`~wascc.errors.ModuleError` for bytes that are not wasm).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

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
from wascc.wire import boundedjson, keys, wasm
from wascc.wire.keys import KeyPair, KeyType

__all__ = [
    "MAX_TIME",
    "MAX_TOKEN_BYTES",
    "Claims",
    "decode_token",
    "encode_token",
    "extract_claims",
    "format_time",
    "module_hash",
    "sign_body",
    "sign_module",
    "unverified_body",
    "verified_body",
    "verify_module",
]

SECTION = "jwt"
LEGACY_SECTIONS = frozenset({"jwt", "wasmcloud_jwt"})
HEADER = {"typ": "jwt", "alg": "Ed25519"}

MAX_TOKEN_BYTES = 256 * 1024
"""A claims token longer than this is refused unread (real ones are a few KiB)."""
MAX_JSON_DEPTH = 16
"""Deepest nesting of a header or claims object (wascap's own is 3)."""
MAX_TIME = 253_402_300_799
"""`iat`, `nbf` and `exp` are whole seconds from 0 to 9999-12-31T23:59:59Z."""
MAX_REV = 2**64 - 1
"""`wascap.rev` is an unsigned 64-bit integer, as in wascap."""

_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")


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
        return jwt_body(
            self.id,
            self.issued_at,
            self.issuer,
            self.subject,
            wascap,
            self.expires,
            self.not_before,
        )

    def binding_values(self) -> dict[str, str]:
        """The ``__wascc_*`` keys the host adds to every BindActor (CONTRACTS section 2)."""
        return {
            "__wascc_issuer": self.issuer,
            "__wascc_capabilities": ",".join(self.caps),
            "__wascc_name": self.name,
            "__wascc_expires": str(self.expires or 0),
            "__wascc_tags": ",".join(self.tags),
        }

    @classmethod
    def from_json(cls, body: Any) -> Claims:
        """Read the token's claims object, refusing wrong types and out-of-range values.

        Each refusal is a MalformedToken naming the field (``wascap.rev``...).
        """
        if not isinstance(body, dict):
            raise MalformedToken(f"the token's claims are {_kind(body)}, not a JSON object")
        meta = body.get("wascap")
        if not isinstance(meta, dict):
            raise MalformedToken(
                "the token has no `wascap` object (not an actor token)"
                if meta is None
                else f"the claim `wascap` must be an object, not {_kind(meta)}"
            )
        return cls(
            issuer=_str(body, "iss"),
            subject=_str(body, "sub"),
            name=_str(meta, "name", "wascap.", default=""),
            module_hash=_str(meta, "hash", "wascap.", default=""),
            caps=_strs(meta, "caps", "wascap."),
            tags=_strs(meta, "tags", "wascap."),
            rev=_int(meta, "rev", 0, MAX_REV, "wascap."),
            ver=_opt_str(meta, "ver", "wascap."),
            provider=_bool(meta, "prov", "wascap."),
            issued_at=_int(body, "iat", 0, MAX_TIME) or 0,
            expires=_int(body, "exp", 0, MAX_TIME),
            not_before=_int(body, "nbf", 0, MAX_TIME),
            id=_str(body, "jti", default=""),
        )


def _kind(value: Any) -> str:
    """A JSON value's type in words, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _str(obj: dict[str, Any], key: str, prefix: str = "", *, default: str | None = None) -> str:
    value = obj.get(key, default)
    if value is None:
        raise MalformedToken(f"the token has no claim `{prefix}{key}`")
    if not isinstance(value, str):
        raise MalformedToken(f"the claim `{prefix}{key}` must be a string, not {_kind(value)}")
    return value


def _opt_str(obj: dict[str, Any], key: str, prefix: str = "") -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise MalformedToken(f"the claim `{prefix}{key}` must be a string, not {_kind(value)}")
    return value


def _bool(obj: dict[str, Any], key: str, prefix: str = "") -> bool:
    value = obj.get(key, False)
    if not isinstance(value, bool):
        raise MalformedToken(f"the claim `{prefix}{key}` must be true or false, not {_kind(value)}")
    return value


def _int(obj: dict[str, Any], key: str, low: int, high: int, prefix: str = "") -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedToken(
            f"the claim `{prefix}{key}` must be a whole number, not {_kind(value)}"
        )
    if not low <= value <= high:
        shown = str(value) if len(str(value)) <= 24 else f"{str(value)[:20]}..."
        raise MalformedToken(f"the claim `{prefix}{key}` must be from {low} to {high}, not {shown}")
    return value


def _strs(obj: dict[str, Any], key: str, prefix: str = "") -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MalformedToken(
            f"the claim `{prefix}{key}` must be an array of strings, not {_kind(value)}"
        )
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise MalformedToken(
                f"the claim `{prefix}{key}[{i}]` must be a string, not {_kind(item)}"
            )
    return tuple(value)


def jwt_body(
    jti: str,
    iat: int,
    iss: str,
    sub: str,
    wascap: dict[str, Any],
    exp: int | None = None,
    nbf: int | None = None,
) -> dict[str, Any]:
    """A token's claims object: the registered claims and ``wascap`` (``exp``/``nbf`` if set)."""
    body: dict[str, Any] = {"jti": jti, "iat": iat, "iss": iss, "sub": sub, "wascap": wascap}
    if exp is not None:
        body["exp"] = exp
    if nbf is not None:
        body["nbf"] = nbf
    return body


def format_time(epoch: int | None) -> str:
    """Seconds since the epoch as UTC text; never raises (``never`` for None)."""
    if epoch is None:
        return "never"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
    except (OverflowError, OSError, ValueError):
        return f"{epoch} (out of range)"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str, what: str) -> bytes:
    if not _SEGMENT.fullmatch(text) or len(text) % 4 == 1:
        raise MalformedToken(f"the token's {what} is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedToken(f"the token's {what} is not base64url") from exc


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _json(segment: str, what: str) -> Any:
    return boundedjson.loads(
        _unb64(segment, what),
        what=f"the token's {what}",
        error=MalformedToken,
        max_bytes=MAX_TOKEN_BYTES,
        max_depth=MAX_JSON_DEPTH,
    )


@dataclass(frozen=True)
class _Token:
    """A token split and parsed, nothing in its claims interpreted yet."""

    body: dict[str, Any]
    issuer: str
    signing_input: bytes
    signature: str


def _parse(token: str) -> _Token:
    """Steps 2-4: segments, bounded JSON, the header, and `iss` (an account key)."""
    if not isinstance(token, str):
        raise MalformedToken(f"a token is text, not {type(token).__name__}")
    if len(token) > MAX_TOKEN_BYTES:
        raise MalformedToken(f"the token is longer than {MAX_TOKEN_BYTES} bytes ({len(token)})")
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise MalformedToken(f"a JWT has 3 segments, this one has {len(parts)}")
    header = _json(parts[0], "header")
    if (
        not isinstance(header, dict)
        or header.get("alg") != "Ed25519"
        or not isinstance(header.get("typ"), str)
        or header["typ"].lower() != "jwt"
    ):
        shown = repr(header)
        shown = shown if len(shown) <= 80 else f"{shown[:80]}..."
        raise MalformedToken(f"unknown token header {shown} (expected {HEADER})")
    body = _json(parts[1], "claims")
    if not isinstance(body, dict):
        raise MalformedToken(f"the token's claims are {_kind(body)}, not a JSON object")
    issuer = _str(body, "iss")
    try:
        keys.decode_public_key(issuer, KeyType.ACCOUNT)
    except KeyFormatError as exc:
        raise MalformedToken(f"the token's issuer is not an account key: {exc}") from exc
    return _Token(body, issuer, f"{parts[0]}.{parts[1]}".encode(), parts[2])


def _check_issuer(parsed: _Token, trusted_issuers: Iterable[str] | None) -> None:
    """Steps 5-6: the issuer is trusted (when a list is given) and signed the token."""
    if trusted_issuers is not None and parsed.issuer not in set(trusted_issuers):
        raise UntrustedIssuer(f"issuer {parsed.issuer} is not trusted by this host")
    signature = _unb64(parsed.signature, "signature")
    if not keys.verify(parsed.issuer, parsed.signing_input, signature):
        raise InvalidSignature(f"the signature does not verify against issuer {parsed.issuer}")


def encode_token(claims: Claims, issuer: KeyPair) -> str:
    """Serialize and sign ``claims`` with the issuer's account key."""
    if issuer.kind is not KeyType.ACCOUNT:
        raise KeyFormatError("claims must be signed by an account key (SA...)")
    if claims.issuer != issuer.public_key:
        raise KeyFormatError("the claims' issuer is not the key that signs them")
    signing_input = f"{_b64(_canonical(HEADER))}.{_b64(_canonical(claims.to_json()))}"
    return f"{signing_input}.{_b64(issuer.sign(signing_input.encode()))}"


def sign_body(body: dict[str, Any], issuer: KeyPair) -> str:
    """A JWT of any claims object (a provider archive's, say), signed by an account key."""
    if issuer.kind is not KeyType.ACCOUNT:
        raise KeyFormatError("claims must be signed by an account key (SA...)")
    if body.get("iss") != issuer.public_key:
        raise KeyFormatError("the claims' issuer is not the key that signs them")
    signing_input = f"{_b64(_canonical(HEADER))}.{_b64(_canonical(body))}"
    return f"{signing_input}.{_b64(issuer.sign(signing_input.encode()))}"


def verified_body(token: str, trusted_issuers: Iterable[str] | None) -> dict[str, Any]:
    """Steps 2-6 for any token: parsed (bounded), issuer trusted, signature valid.

    The claims object is returned uninterpreted: the caller checks its fields.
    """
    parsed = _parse(token)
    _check_issuer(parsed, trusted_issuers)
    return parsed.body


def unverified_body(token: str) -> dict[str, Any]:
    """Steps 2-4 only: for tools that show a token without trusting it."""
    return _parse(token).body


def decode_token(
    token: str,
    *,
    verify_signature: bool = True,
    trusted_issuers: Iterable[str] | None = None,
) -> Claims:
    """Parse a token and (by default) check its issuer before reading its claims.

    With ``verify_signature`` the issuer must be on ``trusted_issuers`` (when
    given) and must have signed the token; only then are the claims read.
    """
    parsed = _parse(token)
    if verify_signature:
        _check_issuer(parsed, trusted_issuers)
    return Claims.from_json(parsed.body)


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
    # What verification would refuse is refused here, before anything is signed.
    Claims.from_json(json.loads(_canonical(claims.to_json())))
    token = encode_token(claims, issuer)
    return wasm.append_custom_section(stripped, SECTION, token.encode())


def _token_of(module: bytes) -> str | None:
    """Step 1: the one claims section of the module as text, or None if unsigned."""
    tokens: list[bytes] = []
    for section in wasm.sections(module):
        if section.custom_name in LEGACY_SECTIONS:
            tokens.append(section.custom_data)
    if not tokens:
        return None
    if len(tokens) > 1:
        raise MalformedToken("the module carries more than one claims section")
    if len(tokens[0]) > MAX_TOKEN_BYTES:
        raise MalformedToken(
            f"the claims section is longer than {MAX_TOKEN_BYTES} bytes ({len(tokens[0])})"
        )
    try:
        return tokens[0].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedToken("the claims section is not UTF-8") from exc


def extract_claims(module: bytes) -> tuple[Claims, str] | None:
    """The claims and raw token of a module, unverified; None if unsigned."""
    token = _token_of(module)
    if token is None:
        return None
    return decode_token(token, verify_signature=False), token


def verify_module(
    module: bytes,
    *,
    trusted_issuers: Iterable[str] | None = None,
    now: float | None = None,
    label: str = "module",
) -> Claims:
    """Check a module's claims and return them; each refusal is its own error.

    The order (see the module docstring): one claims section, a readable
    token, an account issuer, trusted (when ``trusted_issuers`` is given),
    a valid signature; then the claims' fields, the hash, the time window.
    ``label`` names the module in messages (a file name, say).
    """
    try:
        token = _token_of(module)
        if token is None:
            raise MissingClaims(f"{label} is not signed (it has no `jwt` section)")
        parsed = _parse(token)
    except MissingClaims:
        raise
    except ModuleError as exc:
        raise ModuleError(f"{label}: {exc}") from exc
    except MalformedToken as exc:
        raise MalformedToken(f"{label}: {exc}") from exc
    try:
        _check_issuer(parsed, trusted_issuers)
    except UntrustedIssuer as exc:
        raise UntrustedIssuer(f"{label}: {exc}") from exc
    except InvalidSignature as exc:
        raise InvalidSignature(f"{label}: {exc}") from exc
    except MalformedToken as exc:
        raise MalformedToken(f"{label}: {exc}") from exc
    # Trusted and signed: from here on the claims are interpreted.
    try:
        claims = Claims.from_json(parsed.body)
        keys.decode_public_key(claims.subject, KeyType.MODULE)
    except KeyFormatError as exc:
        raise MalformedToken(f"{label}: the subject is not a module key: {exc}") from exc
    except MalformedToken as exc:
        raise MalformedToken(f"{label}: {exc}") from exc
    who = f"{label} ({claims.name or '?'}, {claims.subject})"
    actual = module_hash(module)
    if claims.module_hash != actual:
        raise HashMismatch(
            f"{who} was modified after signing: its hash is {actual[:16]}..., "
            f"the claims say {claims.module_hash[:16]}..."
        )
    moment = time.time() if now is None else now
    if claims.expires is not None and moment >= claims.expires:
        raise TokenExpired(f"{who}: the claims expired at {format_time(claims.expires)}")
    if claims.not_before is not None and moment < claims.not_before:
        raise TokenNotYetValid(
            f"{who}: the claims are not valid before {format_time(claims.not_before)}"
        )
    return claims
