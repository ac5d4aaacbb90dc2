"""nkeys: Ed25519 key pairs with typed, checksummed text encodings.

A public key is ``base32(prefix || 32-byte key || crc16)`` (56 characters);
a seed is ``base32(b0 || b1 || 32-byte seed || crc16)`` (58 characters) with
``b0 = 0x90 | prefix >> 5`` and ``b1 = (prefix & 31) << 3``.  The checksum is
CRC-16/XMODEM, little-endian.  See CONTRACTS section 4.

Written here on top of ``cryptography`` (already a dependency) rather than
taken from ``nkeys`` on PyPI, which pulls in PyNaCl/libsodium for the same
three Ed25519 calls.
"""

from __future__ import annotations

import base64
import enum
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from wascc.errors import KeyFormatError

__all__ = [
    "KeyPair",
    "KeyType",
    "decode_public_key",
    "is_actor_key",
    "is_public_key",
    "stored_key",
    "verify",
    "write_seed",
]

_SEED_MARKER = 18 << 3  # 0x90: the 'S' that starts every seed
_MAX_TEXT = 64  # public keys are 56 characters, seeds 58: anything longer is refused unread


class KeyType(enum.Enum):
    """The kinds of nkeys and their prefix bytes."""

    ACCOUNT = 0  # A
    CLUSTER = 16  # C
    MODULE = 96  # M
    SERVER = 104  # N
    OPERATOR = 112  # O
    USER = 160  # U
    SERVICE = 168  # V

    @property
    def letter(self) -> str:
        """The first character of a public key of this type."""
        return base64.b32encode(bytes([self.value]))[0:1].decode()

    @classmethod
    def parse(cls, name: str) -> KeyType:
        """Accept a type by name (``module``) or letter (``M``)."""
        text = name.strip()
        for kt in cls:
            if text.upper() in (kt.name, kt.letter):
                return kt
        choices = ", ".join(kt.name.lower() for kt in cls)
        raise KeyFormatError(f"unknown key type {name!r}; choose one of {choices}")


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def _encode(raw: bytes) -> str:
    body = raw + _crc16(raw).to_bytes(2, "little")
    return base64.b32encode(body).decode().rstrip("=")


def _decode(text: str, what: str) -> bytes:
    if not isinstance(text, str) or not text:
        raise KeyFormatError(f"{what} must be a non-empty string")
    if len(text) > _MAX_TEXT:
        raise KeyFormatError(
            f"{what} {text[:12]}... has the wrong length ({len(text)} characters; "
            "nkeys have 56 or 58)"
        )
    padded = text + "=" * (-len(text) % 8)
    try:
        raw = base64.b32decode(padded)
    except (ValueError, TypeError) as exc:
        raise KeyFormatError(f"{what} {text[:12]}... is not base32") from exc
    if len(raw) < 3:
        raise KeyFormatError(f"{what} is too short")
    body, crc = raw[:-2], int.from_bytes(raw[-2:], "little")
    if _crc16(body) != crc:
        raise KeyFormatError(f"{what} {text[:12]}... has a bad checksum")
    return body


def decode_public_key(key: str, expected: KeyType | None = None) -> tuple[KeyType, bytes]:
    """Return the type and the 32 raw bytes of a public key, checking its checksum."""
    body = _decode(key, "public key")
    if len(body) != 33:
        raise KeyFormatError(f"public key {key[:12]}... has the wrong length")
    try:
        kind = KeyType(body[0])
    except ValueError as exc:
        raise KeyFormatError(f"public key {key[:12]}... has an unknown prefix") from exc
    if expected is not None and kind is not expected:
        raise KeyFormatError(
            f"expected {_article(expected.name.lower())} public key ({expected.letter}...), "
            f"got {_article(kind.name.lower())} key ({key[:12]}...)"
        )
    return kind, body[1:]


def _article(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def is_public_key(key: str, kind: KeyType | None = None) -> bool:
    """True when ``key`` is a well-formed public key (of ``kind``, if given)."""
    try:
        decode_public_key(key, kind)
    except KeyFormatError:
        return False
    return True


def verify(public_key: str, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``public_key``'s Ed25519 signature of ``data``."""
    _, raw = decode_public_key(public_key)
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, data)
    except _CryptoInvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class KeyPair:
    """An Ed25519 key pair of one :class:`KeyType`, with its nkey encodings."""

    kind: KeyType
    _private: Ed25519PrivateKey

    @classmethod
    def generate(cls, kind: KeyType) -> KeyPair:
        """A new random key pair."""
        return cls(kind, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: str) -> KeyPair:
        """Decode a 58-character seed (``SA...``, ``SM...``, ...)."""
        if not isinstance(seed, str):
            raise KeyFormatError(f"a seed must be a string, not {type(seed).__name__}")
        body = _decode(seed.strip(), "seed")
        if len(body) != 34 or body[0] & 0xF8 != _SEED_MARKER:
            raise KeyFormatError("not an nkey seed (seeds start with 'S' and hold 32 bytes)")
        prefix = ((body[0] & 7) << 5) | (body[1] >> 3)
        try:
            kind = KeyType(prefix)
        except ValueError as exc:
            raise KeyFormatError("seed has an unknown key type") from exc
        return cls(kind, Ed25519PrivateKey.from_private_bytes(body[2:]))

    @property
    def public_key(self) -> str:
        """The 56-character public key."""
        raw = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return _encode(bytes([self.kind.value]) + raw)

    @property
    def seed(self) -> str:
        """The 58-character seed: the secret half.  Keep it out of repositories."""
        raw = self._private.private_bytes_raw()
        b0 = _SEED_MARKER | (self.kind.value >> 5)
        b1 = (self.kind.value & 31) << 3
        return _encode(bytes([b0, b1]) + raw)

    def sign(self, data: bytes) -> bytes:
        """The Ed25519 signature of ``data``."""
        return self._private.sign(data)

    def __repr__(self) -> str:
        return f"KeyPair({self.kind.name.lower()}, {self.public_key})"


def write_seed(path: str | os.PathLike[str], key: KeyPair) -> None:
    """Write ``key``'s seed to a new file readable by its owner only (0600).

    Never overwrites: an existing file is a ``FileExistsError``.
    """
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.seed + "\n")


def stored_key(path: str | os.PathLike[str], kind: KeyType) -> KeyPair:
    """The key whose seed is in ``path``; generated and written there (0600) if missing.

    A seed file is never overwritten; one holding another type of key is refused.
    """
    file = Path(path)
    if not file.exists():
        key = KeyPair.generate(kind)
        try:
            write_seed(file, key)
        except FileExistsError:  # made by another process meanwhile: use theirs
            return stored_key(file, kind)
        return key
    try:
        key = KeyPair.from_seed(file.read_text().strip())
    except (OSError, UnicodeDecodeError, KeyFormatError) as exc:
        raise KeyFormatError(f"{file} does not hold an nkey seed ({exc})") from exc
    if key.kind is not kind:
        raise KeyFormatError(
            f"{file} holds {_article(key.kind.name.lower())} seed, "
            f"not {_article(kind.name.lower())} seed"
        )
    return key


def is_actor_key(namespace: str) -> bool:
    """True when a ``__host_call`` namespace names an actor (a module public key)."""
    return len(namespace) == 56 and namespace[0] == "M"
