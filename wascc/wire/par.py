"""Provider archives (PAR): signed native providers, one binary per target.

The format of the waSCC / wasmCloud tools: a tar (gzip optional) holding a
root ``claims.jwt`` and one binary per target named ``<arch>-<os>.bin``
(``x86_64-linux``, ``aarch64-linux``, ``x86_64-macos``...).  The JWT is
signed by an account key (the issuer) with the provider's own service key
(``V...``) as subject; its ``wascap`` object holds capability-provider
claims: ``name``, ``capid``, ``vendor``, ``ver``, ``rev`` and
``target_hashes``, the SHA-256 (upper-case hex) of every binary.

An archive is untrusted input until its signature verifies, and its tar
layer is parsed first, so :func:`read_archive` is bounded on every axis:
at most ``MAX_ARCHIVE_BYTES`` decompressed in all (a gzip bomb stops there),
``MAX_MEMBERS`` members, ``MAX_BINARY_BYTES`` per binary; only regular files
at the archive's root with the two kinds of names (no paths, no ``..``, no
links, devices or directories other than the root); no name twice.  Each
refusal is a :class:`~wascc.errors.ProviderArchiveError` naming the member.

:func:`verify_archive` then works in the order of
:func:`wascc.wire.claims.verify_module`: the token (bounded JSON, an account
issuer, trusted, a valid signature), only then the claims' fields (the
subject a service key), the binary for the target asked for, its hash
against the claims, and the time window.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import platform
import re
import secrets
import sys
import tarfile
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wascc.errors import (
    HashMismatch,
    InvalidSignature,
    KeyFormatError,
    MalformedToken,
    ProviderArchiveError,
    TokenExpired,
    TokenNotYetValid,
    UntrustedIssuer,
)
from wascc.wire import keys
from wascc.wire.claims import (
    MAX_REV,
    MAX_TIME,
    MAX_TOKEN_BYTES,
    format_time,
    jwt_body,
    sign_body,
    unverified_body,
    verified_body,
)
from wascc.wire.keys import KeyPair, KeyType

__all__ = [
    "CLAIMS_MEMBER",
    "MAX_ARCHIVE_BYTES",
    "MAX_BINARY_BYTES",
    "MAX_MEMBERS",
    "ProviderArchive",
    "ProviderClaims",
    "binary_hash",
    "create_archive",
    "host_target",
    "insert_target",
    "read_archive",
    "verify_archive",
    "write_archive",
]

CLAIMS_MEMBER = "claims.jwt"
BINARY_SUFFIX = ".bin"
MAX_ARCHIVE_BYTES = 1 << 30
"""The most an archive may hold once decompressed, tar headers included (1 GiB)."""
MAX_BINARY_BYTES = 256 << 20
"""The largest binary one target may have (256 MiB)."""
MAX_MEMBERS = 64
"""The most members an archive may have (claims and binaries)."""

_TARGET = re.compile(r"[a-z0-9_]{1,32}-[a-z0-9_]{1,32}")
_HEX64 = re.compile(r"[0-9A-F]{64}")
_ARCH = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv8l": "aarch64"}
_OS = {"linux": "linux", "darwin": "macos", "win32": "windows", "freebsd": "freebsd"}


def host_target() -> str:
    """This machine's target name (``x86_64-linux``, ``aarch64-macos``...)."""
    arch = platform.machine().lower()
    system = next((v for k, v in _OS.items() if sys.platform.startswith(k)), sys.platform)
    return f"{_ARCH.get(arch, arch)}-{system}"


def binary_hash(binary: bytes) -> str:
    """SHA-256 of a binary, upper-case hex (as the claims hold it)."""
    return hashlib.sha256(binary).hexdigest().upper()


def _check_target(target: str) -> str:
    if not _TARGET.fullmatch(target):
        raise ProviderArchiveError(
            f"{target[:80]!r} is not a target name (<arch>-<os>: x86_64-linux, aarch64-macos...)"
        )
    return target


@dataclass(frozen=True)
class ProviderClaims:
    """What a provider archive's signed claims say."""

    issuer: str
    subject: str
    name: str
    capability_id: str
    vendor: str = ""
    version: str | None = None
    revision: int | None = None
    target_hashes: Mapping[str, str] = field(default_factory=dict)
    issued_at: int = 0
    expires: int | None = None
    not_before: int | None = None
    id: str = field(default_factory=lambda: secrets.token_hex(16).upper())

    def to_json(self) -> dict[str, Any]:
        """The claims object of the token (wascap's field names)."""
        wascap: dict[str, Any] = {
            "name": self.name,
            "capid": self.capability_id,
            "vendor": self.vendor,
            "target_hashes": dict(sorted(self.target_hashes.items())),
        }
        if self.version is not None:
            wascap["ver"] = self.version
        if self.revision is not None:
            wascap["rev"] = self.revision
        return jwt_body(
            self.id,
            self.issued_at,
            self.issuer,
            self.subject,
            wascap,
            self.expires,
            self.not_before,
        )

    @classmethod
    def from_json(cls, body: Any) -> ProviderClaims:
        """Read a provider token's claims; a wrong type is a MalformedToken naming the field."""
        if not isinstance(body, dict):
            raise MalformedToken("the token's claims are not a JSON object")
        meta = body.get("wascap")
        if not isinstance(meta, dict):
            raise MalformedToken("the token has no `wascap` object")
        hashes = meta.get("target_hashes", {})
        if not isinstance(hashes, dict) or len(hashes) > MAX_MEMBERS:
            raise MalformedToken(
                f"the claim `wascap.target_hashes` must be an object of at most {MAX_MEMBERS} "
                "targets"
            )
        for target, digest in hashes.items():
            if not _TARGET.fullmatch(target) or not (
                isinstance(digest, str) and _HEX64.fullmatch(digest)
            ):
                raise MalformedToken(
                    f"`wascap.target_hashes` holds {str(target)[:40]!r}: not a target name "
                    "with an upper-case SHA-256"
                )
        capid = _text(meta, "capid", "wascap.", required=True)
        if not capid:
            raise MalformedToken("the claim `wascap.capid` is empty")
        return cls(
            issuer=_text(body, "iss", required=True),
            subject=_text(body, "sub", required=True),
            name=_text(meta, "name", "wascap."),
            capability_id=capid,
            vendor=_text(meta, "vendor", "wascap."),
            version=_text(meta, "ver", "wascap.") if meta.get("ver") is not None else None,
            revision=_whole(meta, "rev", MAX_REV, "wascap."),
            target_hashes=dict(hashes),
            issued_at=_whole(body, "iat", MAX_TIME) or 0,
            expires=_whole(body, "exp", MAX_TIME),
            not_before=_whole(body, "nbf", MAX_TIME),
            id=_text(body, "jti"),
        )


def _text(obj: dict[str, Any], key: str, prefix: str = "", *, required: bool = False) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise MalformedToken(f"the claim `{prefix}{key}` must be a string")
    return value


def _whole(obj: dict[str, Any], key: str, high: int, prefix: str = "") -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise MalformedToken(f"the claim `{prefix}{key}` must be a whole number from 0 to {high}")
    return value


@dataclass(frozen=True)
class ProviderArchive:
    """An archive's parts, nothing verified: the token and the binary of each target."""

    token: str
    binaries: Mapping[str, bytes]

    def claims(self) -> ProviderClaims:
        """The claims, unverified (for tools that show an archive)."""
        return ProviderClaims.from_json(unverified_body(self.token))


class _Bounded(io.RawIOBase):
    """A stream that refuses to yield more than ``limit`` bytes in all (a bomb stops here)."""

    def __init__(self, inner: io.BufferedIOBase | gzip.GzipFile, limit: int, label: str) -> None:
        self.inner = inner
        self.left = limit
        self.limit = limit
        self.label = label

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        if self.left <= 0:
            if self.inner.read(1):
                raise ProviderArchiveError(
                    f"{self.label} holds more than {self.limit} bytes once decompressed"
                )
            return 0
        data = self.inner.read(min(len(view), self.left))
        view[: len(data)] = data
        self.left -= len(data)
        return len(data)


def _member_name(info: tarfile.TarInfo, label: str) -> str | None:
    """The member's name if it is one an archive may hold; None for the root directory."""
    name = info.name
    while name.startswith("./"):
        name = name[2:]
    if name in ("", ".") and info.isdir():
        return None
    shown = repr(info.name[:80])
    if "/" in name.rstrip("/") or name.startswith("/") or ".." in name.split("/"):
        raise ProviderArchiveError(
            f"{label}: member {shown} is not at the archive's root (paths are refused)"
        )
    if info.issym() or info.islnk():
        raise ProviderArchiveError(f"{label}: member {shown} is a link (links are refused)")
    if not info.isfile():
        raise ProviderArchiveError(
            f"{label}: member {shown} is not a regular file (only claims.jwt and "
            "<arch>-<os>.bin may be in an archive)"
        )
    if name != CLAIMS_MEMBER and not (
        name.endswith(BINARY_SUFFIX) and _TARGET.fullmatch(name[: -len(BINARY_SUFFIX)])
    ):
        raise ProviderArchiveError(
            f"{label}: unexpected member {shown} (an archive holds claims.jwt and "
            "<arch>-<os>.bin files)"
        )
    return name


def read_archive(data: bytes, label: str = "provider archive") -> ProviderArchive:
    """Parse an archive's tar (and gzip) layer, bounded; nothing is verified yet."""
    raw: io.BufferedIOBase | gzip.GzipFile = io.BytesIO(data)
    if data[:2] == b"\x1f\x8b":
        raw = gzip.GzipFile(fileobj=raw, mode="rb")
    stream = io.BufferedReader(_Bounded(raw, MAX_ARCHIVE_BYTES, label), 1 << 16)
    token: str | None = None
    binaries: dict[str, bytes] = {}
    members = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for info in tar:
                members += 1
                if members > MAX_MEMBERS:
                    raise ProviderArchiveError(f"{label} has more than {MAX_MEMBERS} members")
                name = _member_name(info, label)
                if name is None:
                    continue
                limit = MAX_TOKEN_BYTES if name == CLAIMS_MEMBER else MAX_BINARY_BYTES
                if info.size > limit:
                    raise ProviderArchiveError(
                        f"{label}: member {name} is {info.size} bytes, over its limit of {limit}"
                    )
                if (name == CLAIMS_MEMBER and token is not None) or name[:-4] in binaries:
                    raise ProviderArchiveError(f"{label}: member {name} appears twice")
                member = tar.extractfile(info)
                body = member.read() if member is not None else b""
                if len(body) != info.size:
                    raise ProviderArchiveError(f"{label}: member {name} is cut short")
                if name == CLAIMS_MEMBER:
                    try:
                        token = body.decode("utf-8").strip()
                    except UnicodeDecodeError as exc:
                        raise ProviderArchiveError(f"{label}: claims.jwt is not UTF-8") from exc
                else:
                    binaries[name[: -len(BINARY_SUFFIX)]] = body
    except ProviderArchiveError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError, UnicodeError) as exc:
        raise ProviderArchiveError(f"{label} is not a readable tar archive: {exc}") from exc
    if token is None:
        raise ProviderArchiveError(f"{label} has no claims.jwt: it is not a signed archive")
    return ProviderArchive(token, binaries)


def write_archive(token: str, binaries: Mapping[str, bytes], *, compress: bool = False) -> bytes:
    """A tar (gzip with ``compress``) of the token and the binaries, byte-for-byte reproducible."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        members = [(CLAIMS_MEMBER, token.encode(), 0o644)]
        members += [(f"{_check_target(t)}.bin", b, 0o755) for t, b in sorted(binaries.items())]
        for name, body, mode in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(body), mode, 0
            tar.addfile(info, io.BytesIO(body))
    data = out.getvalue()
    return gzip.compress(data, mtime=0) if compress else data


def create_archive(
    binaries: Mapping[str, bytes],
    *,
    issuer: KeyPair,
    subject: KeyPair | str,
    name: str,
    capability_id: str,
    vendor: str = "",
    version: str | None = None,
    revision: int | None = None,
    expires: int | None = None,
    not_before: int | None = None,
    compress: bool = False,
    now: int | None = None,
) -> bytes:
    """Sign the claims of ``binaries`` (target -> bytes) and write the archive."""
    subject_key = subject.public_key if isinstance(subject, KeyPair) else subject
    keys.decode_public_key(subject_key, KeyType.SERVICE)
    if not capability_id.strip():
        raise ProviderArchiveError("a provider archive needs a capability id (wascc:keyvalue...)")
    if not binaries:
        raise ProviderArchiveError("a provider archive needs at least one target's binary")
    for target, binary in binaries.items():
        _check_target(target)
        if len(binary) > MAX_BINARY_BYTES:
            raise ProviderArchiveError(f"the {target} binary is over {MAX_BINARY_BYTES} bytes")
    claims = ProviderClaims(
        issuer=issuer.public_key,
        subject=subject_key,
        name=name,
        capability_id=capability_id.strip(),
        vendor=vendor,
        version=version,
        revision=revision,
        target_hashes={t: binary_hash(b) for t, b in binaries.items()},
        issued_at=int(time.time()) if now is None else now,
        expires=expires,
        not_before=not_before,
    )
    ProviderClaims.from_json(claims.to_json())  # what verification refuses is refused now
    return write_archive(sign_body(claims.to_json(), issuer), binaries, compress=compress)


def insert_target(
    data: bytes, target: str, binary: bytes, *, issuer: KeyPair, compress: bool | None = None
) -> bytes:
    """Add (or replace) one target's binary and sign the claims again with ``issuer``.

    The archive must already be signed by ``issuer`` (its signature is checked):
    a key cannot take over another account's archive by inserting into it.
    """
    archive = read_archive(data)
    body = verified_body(archive.token, [issuer.public_key])
    claims = ProviderClaims.from_json(body)
    hashes = {**claims.target_hashes, _check_target(target): binary_hash(binary)}
    binaries = {**archive.binaries, target: binary}
    updated = ProviderClaims(
        issuer=claims.issuer,
        subject=claims.subject,
        name=claims.name,
        capability_id=claims.capability_id,
        vendor=claims.vendor,
        version=claims.version,
        revision=claims.revision,
        target_hashes=hashes,
        issued_at=int(time.time()),
        expires=claims.expires,
        not_before=claims.not_before,
    )
    gz = data[:2] == b"\x1f\x8b" if compress is None else compress
    return write_archive(sign_body(updated.to_json(), issuer), binaries, compress=gz)


def verify_archive(
    data: bytes,
    *,
    target: str | None = None,
    trusted_issuers: Iterable[str] | None = None,
    now: float | None = None,
    label: str = "provider archive",
) -> tuple[ProviderClaims, bytes]:
    """The claims and the binary for ``target`` (default: this host's), all checks passed.

    Refusals: :class:`ProviderArchiveError` (the tar, no binary for the
    target), ``MalformedToken``, ``UntrustedIssuer``, ``InvalidSignature``,
    ``HashMismatch``, ``TokenExpired``, ``TokenNotYetValid``; each names the
    archive.
    """
    want = target or host_target()
    archive = read_archive(data, label)
    try:
        body = verified_body(archive.token, trusted_issuers)
        claims = ProviderClaims.from_json(body)
        keys.decode_public_key(claims.subject, KeyType.SERVICE)
    except KeyFormatError as exc:
        raise MalformedToken(f"{label}: the subject is not a service key (V...): {exc}") from exc
    except MalformedToken as exc:
        raise MalformedToken(f"{label}: {exc}") from exc
    except (UntrustedIssuer, InvalidSignature) as exc:
        raise type(exc)(f"{label}: {exc}") from exc
    who = f"{label} ({claims.name or claims.capability_id}, {claims.subject})"
    binary = archive.binaries.get(want)
    if binary is None:
        held = ", ".join(sorted(archive.binaries)) or "none"
        raise ProviderArchiveError(f"{who} has no binary for {want} (it holds: {held})")
    signed = claims.target_hashes.get(want)
    if signed is None:
        raise HashMismatch(f"{who}: its claims list no hash for {want}; the binary was added later")
    actual = binary_hash(binary)
    if actual != signed:
        raise HashMismatch(
            f"{who}: the {want} binary was modified after signing: its hash is "
            f"{actual[:16]}..., the claims say {signed[:16]}..."
        )
    moment = time.time() if now is None else now
    if claims.expires is not None and moment >= claims.expires:
        raise TokenExpired(f"{who}: the claims expired at {format_time(claims.expires)}")
    if claims.not_before is not None and moment < claims.not_before:
        raise TokenNotYetValid(
            f"{who}: the claims are not valid before {format_time(claims.not_before)}"
        )
    return claims, binary
