"""Claims: the token of a `jwt` section through extraction and verification.

An input is either a whole module (it starts with ``\\0asm``: the section
reader sees huge LEB128 sizes, truncated sections, two claims sections) or
the bytes of a `jwt` section put into a small module.  Each case runs
``extract_claims``, ``verify_module`` with a trusted issuer list and without
one, and ``decode_token``; what they return must round-trip through
``Claims.to_json``/``from_json`` and print its times.  Seeds are real tokens
signed with keys made at import; ``generate`` writes hostile JSON bodies
(deep nesting, huge integers, NaN/Infinity, duplicate keys, wrong types,
times out of range) signed by the trusted issuer, by a stranger or not at
all, and broken envelopes (bad base64, wrong segment counts, huge sizes).
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
from typing import Any

import wasmtime

from wascc.errors import ClaimsError
from wascc.wire import claims, wasm
from wascc.wire.claims import MAX_TIME, MAX_TOKEN_BYTES, Claims
from wascc.wire.keys import KeyPair, KeyType
from wascc.wire.wasm import write_uleb

from fuzz.engine import Target

NOW = 1_700_000_000
_TRUSTED = KeyPair.generate(KeyType.ACCOUNT)
_STRANGER = KeyPair.generate(KeyType.ACCOUNT)
_MODULE_KEY = KeyPair.generate(KeyType.MODULE)
_MODULE = bytes(
    wasmtime.wat2wasm(
        '(module (memory (export "memory") 1)'
        ' (func (export "__guest_call") (param i32 i32) (result i32) i32.const 1))'
    )
)
_HASH = claims.module_hash(_MODULE)
_HEADER = b'{"typ":"jwt","alg":"Ed25519"}'


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _token_of(module: bytes) -> bytes:
    (token,) = wasm.custom_sections(module, "jwt")
    return token


def _signed(**kw: Any) -> bytes:
    issuer = kw.pop("issuer", _TRUSTED)
    return claims.sign_module(
        _MODULE, issuer=issuer, subject=_MODULE_KEY, name=kw.pop("name", "fuzz"), now=NOW, **kw
    )


_SIGNED_MODULES = [
    _signed(),
    _signed(caps=["wascc:http_server", "wascc:keyvalue"], tags=["a", "b"], rev=3, ver="1.0"),
    _signed(provider=True, expires=NOW + 3600, not_before=NOW - 60),
    _signed(expires=NOW - 1),
    _signed(not_before=NOW + 3600),
    _signed(issuer=_STRANGER, caps=["wascc:extras"]),
    _signed(rev=2**64 - 1, expires=MAX_TIME, name=""),
]
SEEDS = [_token_of(m) for m in _SIGNED_MODULES] + _SIGNED_MODULES[:3]


def _check_claims(found: Claims) -> None:
    """What the claims module returns must print and round-trip (else: a finding)."""
    again = Claims.from_json(json.loads(json.dumps(found.to_json())))
    assert again == found, (again, found)
    for epoch in (found.issued_at, found.expires, found.not_before):
        claims.format_time(epoch)


def run(data: bytes) -> None:
    if data.startswith(b"\0asm"):
        module = data
    else:
        module = wasm.append_custom_section(_MODULE, "jwt", data)
    found = claims.extract_claims(module)  # a refusal here ends the case
    if found is not None:
        _check_claims(found[0])
    for trusted in ([_TRUSTED.public_key], None):
        with contextlib.suppress(ClaimsError):
            _check_claims(claims.verify_module(module, trusted_issuers=trusted, now=NOW))
        if found is not None:
            with contextlib.suppress(ClaimsError):
                _check_claims(claims.decode_token(found[1], trusted_issuers=trusted))


# ---- hostile inputs ---------------------------------------------------------------

_NUMBERS = [
    "0",
    "-1",
    "1.5",
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "-Infinity",
    str(10**20),
    str(2**63),
    str(-(2**63)),
    str(2**64),
    str(MAX_TIME),
    str(MAX_TIME + 1),
    "9" * 64,
    "9" * 65,
    "9" * 5000,
    "-" + "9" * 5000,
    "0." + "1" * 5000,
    "1" + "0" * 400 + ".0",
]
_VALUES = [
    *_NUMBERS,
    "true",
    "false",
    "null",
    '""',
    '"x"',
    "[]",
    "{}",
    '["a", 1]',
    "[null]",
    '{"a": "b"}',
    '"\\ud800"',
    '"\\u0000"',
]
_FIELDS = ["iss", "sub", "jti", "iat", "exp", "nbf", "wascap"]
_WASCAP_FIELDS = ["name", "hash", "tags", "caps", "rev", "ver", "prov", "call_alias"]


def _deep(rng: random.Random) -> str:
    depth = int(10 ** rng.uniform(1, 5.2))
    opener, closer = rng.choice((("[", "]"), ('{"a":', "}"), ('[{"b":', "}]")))
    inner = rng.choice(("1", "[]", '"x"'))
    closed = rng.random() < 0.5
    return opener * depth + inner + (closer * depth if closed else "")


def _body(rng: random.Random) -> str:
    """A claims object, valid but for one or more hostile edits."""
    wascap: dict[str, str] = {
        "name": '"fuzz"',
        "hash": json.dumps(_HASH),
        "caps": '["wascc:keyvalue"]',
        "prov": "false",
    }
    issuer = rng.choice((_TRUSTED, _TRUSTED, _STRANGER))
    top: dict[str, str] = {
        "jti": '"j"',
        "iat": str(NOW),
        "iss": json.dumps(issuer.public_key),
        "sub": json.dumps(_MODULE_KEY.public_key),
    }
    for _ in range(rng.randint(0, 3)):
        choice = rng.randrange(7)
        if choice == 6:  # a benign edit: the claims stay valid
            top[rng.choice(("exp", "nbf", "iat"))] = str(NOW + rng.randint(-(10**9), 10**9))
            wascap["caps"] = json.dumps([rng.randbytes(8).hex() for _ in range(rng.randint(0, 40))])
            wascap["name"] = json.dumps("".join(chr(rng.randint(32, 0x2FFF)) for _ in range(12)))
        elif choice == 0:
            wascap[rng.choice(_WASCAP_FIELDS)] = rng.choice(_VALUES)
        elif choice == 1:
            top[rng.choice(_FIELDS)] = rng.choice(_VALUES)
        elif choice == 2:
            where = rng.choice((top, wascap))
            where[rng.choice(_FIELDS + _WASCAP_FIELDS)] = _deep(rng)
        elif choice == 3:
            top[rng.choice(("exp", "nbf", "iat"))] = rng.choice(_NUMBERS)
        elif choice == 4:
            wascap["rev"] = rng.choice(_NUMBERS)
        else:
            top.pop(rng.choice(_FIELDS), None)
    members = [f'"{k}": {v}' for k, v in top.items()]
    if "wascap" not in top:
        members.append('"wascap": {' + ", ".join(f'"{k}": {v}' for k, v in wascap.items()) + "}")
    if rng.random() < 0.15:  # a duplicate key
        members.append(rng.choice(members))
    rng.shuffle(members)
    return "{" + ", ".join(members) + "}"


def _envelope(rng: random.Random, header: bytes, body: bytes) -> bytes:
    """The token around header and body: signed, or broken in its segments."""
    first, second = _b64(header), _b64(body)
    signer = rng.choice((_TRUSTED, _TRUSTED, _STRANGER, None))
    signature = signer.sign(f"{first}.{second}".encode()) if signer else rng.randbytes(64)
    parts = [first, second, _b64(signature)]
    choice = rng.randrange(10)
    if choice == 0:  # a wrong number of segments
        parts = parts[: rng.randint(0, 2)] + ["e30"] * rng.choice((0, 1, 3))
    elif choice == 1:  # characters outside base64url
        i = rng.randrange(3)
        pos = rng.randint(0, len(parts[i]))
        bad = rng.choice(("=", "==", "+", "/", " ", "\n", "!", "\u00e9", "\x00"))
        parts[i] = parts[i][:pos] + bad + parts[i][pos:]
    elif choice == 2:  # a segment of impossible length
        i = rng.randrange(3)
        parts[i] = parts[i] + "A" * (4 * rng.randint(0, 3) + 1)
    return ".".join(parts).encode()


def _module_around(rng: random.Random, token: bytes) -> bytes:
    """A whole module: two claims sections, hostile sizes, or truncated."""
    module = wasm.append_custom_section(_MODULE, "jwt", token)
    choice = rng.randrange(4)
    if choice == 0:
        return wasm.append_custom_section(module, rng.choice(("jwt", "wasmcloud_jwt")), token)
    if choice == 1:
        size = rng.choice((0xFFFFFFFF, 0x7FFFFFFF, len(token) + 1, 2**35))
        return _MODULE + b"\x00" + write_uleb(size) + b"\x03jwt" + token
    if choice == 2:
        return module[: rng.randrange(8, len(module))]
    name = b"jwt\xff"  # a custom section name that is not UTF-8
    payload = write_uleb(len(name)) + name + b"x"
    return module + b"\x00" + write_uleb(len(payload)) + payload


def generate(rng: random.Random) -> bytes:
    choice = rng.randrange(10)
    header = _HEADER
    if choice == 0:
        header = rng.choice(
            (
                _deep(rng).encode(),
                b'{"typ":"jwt","alg":"Ed25519","alg":"none"}',
                b'{"typ":1,"alg":"Ed25519"}',
                b'{"typ":"JWT","alg":"Ed25519"}',
                b"[]",
                b"NaN",
            )
        )
    if choice == 1:
        body = _deep(rng).encode()
    elif choice == 2:
        body = rng.choice(_VALUES).encode()
    elif choice == 3:
        body = b"\xff\xfe" + _body(rng).encode()
    else:
        body = _body(rng).encode()
    token = _envelope(rng, header, body)
    if choice == 4 and rng.random() < 0.3:  # past the size limit
        token = token + b"A" * (MAX_TOKEN_BYTES + 1 - len(token) + rng.randint(0, 16))
    if choice == 5:
        return _module_around(rng, token)
    return token


TARGET = Target(
    name="claims",
    run=run,
    seeds=SEEDS,
    generate=generate,
    deadline=10.0,
    max_size=MAX_TOKEN_BYTES + (1 << 12),
)
