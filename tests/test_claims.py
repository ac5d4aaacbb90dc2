"""Signed claims (CONTRACTS section 4): the JWT in an actor's `jwt` section."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from typing import Any

import pytest
import wasmtime
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from wascc.errors import (
    ClaimsError,
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
from wascc.wire import claims, wasm
from wascc.wire.claims import (
    Claims,
    decode_token,
    encode_token,
    extract_claims,
    module_hash,
    sign_module,
    verify_module,
)
from wascc.wire.keys import KeyPair, KeyType

LABEL = "actors/echo-test.wasm"
HEADER = b"\x00asm\x01\x00\x00\x00"
NOW = 1_600_000_000

WAT = """
(module
  (memory (export "memory") 1)
  (func (export "answer") (result i32) i32.const 42)
  (func (export "other") (result i32) i32.const 33))
"""


# ---- helpers ---------------------------------------------------------------


def _module(wat: str = WAT) -> bytes:
    return bytes(wasmtime.wat2wasm(wat))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sha(module: bytes) -> str:
    return hashlib.sha256(module).hexdigest().upper()


def _encode_sections(parts: list[wasm.Section]) -> bytes:
    return HEADER + b"".join(
        bytes([s.id]) + wasm.write_uleb(len(s.payload)) + s.payload for s in parts
    )


def _token_of(module: bytes) -> str:
    (data,) = wasm.custom_sections(module, "jwt")
    return data.decode()


def _replace_token(module: bytes, token: str | bytes, name: str = "jwt") -> bytes:
    raw = token.encode() if isinstance(token, str) else token
    bare = wasm.strip_custom_sections(module, frozenset({"jwt", "wasmcloud_jwt"}))
    return wasm.append_custom_section(bare, name, raw)


def _hand_token(header: dict[str, Any], body: dict[str, Any], signer: KeyPair) -> str:
    """A token built without claims.py: b64url(JSON) segments, Ed25519 over the first two."""
    first = _b64(json.dumps(header).encode())
    second = _b64(json.dumps(body).encode())
    signature = signer.sign(f"{first}.{second}".encode())
    return f"{first}.{second}.{_b64(signature)}"


def _body(issuer: KeyPair, subject: str, module: bytes, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "jti": "ABC123",
        "iat": NOW,
        "iss": issuer.public_key,
        "sub": subject,
        "wascap": {"name": "hand", "hash": _sha(module), "prov": False},
    }
    body.update(extra)
    return body


def _flip_code_immediate(module: bytes, old: int, new: int) -> bytes:
    """Change one `i32.const old` immediate in the code section (id 10) to `new`."""
    parts = list(wasm.sections(module))
    index = next(i for i, s in enumerate(parts) if s.id == 10)
    code = parts[index].payload
    needle = bytes([0x41, old])
    assert code.count(needle) == 1
    changed = code.replace(needle, bytes([0x41, new]))
    assert len(changed) == len(code)
    assert sum(a != b for a, b in zip(code, changed, strict=True)) == 1
    parts[index] = wasm.Section(10, changed)
    out = _encode_sections(parts)
    assert len(out) == len(module)
    return out


@pytest.fixture(scope="module")
def issuer() -> KeyPair:
    return KeyPair.generate(KeyType.ACCOUNT)


@pytest.fixture(scope="module")
def subject() -> KeyPair:
    return KeyPair.generate(KeyType.MODULE)


@pytest.fixture(scope="module")
def unsigned() -> bytes:
    module = _module()
    # Precondition for independent hashing: wat2wasm writes minimal section sizes.
    assert _encode_sections(list(wasm.sections(module))) == module
    return module


@pytest.fixture
def signed(unsigned: bytes, issuer: KeyPair, subject: KeyPair) -> bytes:
    return sign_module(
        unsigned,
        issuer=issuer,
        subject=subject,
        name="Echo",
        caps=["wascc:http_server", "wascc:keyvalue"],
        tags=["test", "echo"],
        rev=3,
        ver="0.1.0",
        now=NOW,
    )


# ---- signing and round trips -----------------------------------------------


def test_signed_module_verifies_and_returns_what_was_signed(
    signed: bytes, issuer: KeyPair, subject: KeyPair, unsigned: bytes
) -> None:
    got = verify_module(signed, now=NOW + 1, label=LABEL)
    assert got.issuer == issuer.public_key
    assert got.subject == subject.public_key
    assert got.name == "Echo"
    assert got.caps == ("wascc:http_server", "wascc:keyvalue")
    assert got.tags == ("test", "echo")
    assert got.rev == 3
    assert got.ver == "0.1.0"
    assert got.provider is False
    assert got.issued_at == NOW
    assert got.expires is None
    assert got.not_before is None
    assert got.module_hash == _sha(unsigned)


def test_signed_module_still_compiles_and_runs(signed: bytes) -> None:
    store = wasmtime.Store()
    instance = wasmtime.Instance(store, wasmtime.Module(store.engine, signed), [])
    answer = instance.exports(store)["answer"]
    assert isinstance(answer, wasmtime.Func)
    assert answer(store) == 42


def test_keys_round_trip_through_signing(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    issuer_again = KeyPair.from_seed(issuer.seed)
    subject_again = KeyPair.from_seed(subject.seed)
    signed = sign_module(
        unsigned, issuer=issuer_again, subject=subject_again.public_key, name="x", now=NOW
    )
    got = verify_module(signed, now=NOW, trusted_issuers=[issuer.public_key])
    assert got.issuer == issuer.public_key
    assert got.subject == subject.public_key


def test_provider_flag_round_trips(unsigned: bytes, issuer: KeyPair, subject: KeyPair) -> None:
    signed = sign_module(unsigned, issuer=issuer, subject=subject, name="p", provider=True)
    assert verify_module(signed).provider is True
    assert json.loads(_unb64(_token_of(signed).split(".")[1]))["wascap"]["prov"] is True


def test_token_encode_decode_round_trips(issuer: KeyPair, subject: KeyPair) -> None:
    original = Claims(
        issuer=issuer.public_key,
        subject=subject.public_key,
        name="n",
        module_hash="AB" * 32,
        caps=("wascc:messaging",),
        tags=("t",),
        rev=7,
        ver="1.2.3",
        provider=True,
        issued_at=NOW,
        expires=NOW + 100,
        not_before=NOW - 100,
    )
    assert decode_token(encode_token(original, issuer)) == original


def test_encode_token_refuses_claims_naming_another_issuer(
    issuer: KeyPair, subject: KeyPair
) -> None:
    other = KeyPair.generate(KeyType.ACCOUNT)
    mine = Claims(issuer=other.public_key, subject=subject.public_key, name="n")
    with pytest.raises(KeyFormatError):
        encode_token(mine, issuer)


def test_each_signing_gets_a_fresh_token_id(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    first = sign_module(unsigned, issuer=issuer, subject=subject, name="x", now=NOW)
    second = sign_module(unsigned, issuer=issuer, subject=subject, name="x", now=NOW)
    assert verify_module(first).id != verify_module(second).id
    assert verify_module(first).id


def test_signing_twice_leaves_exactly_one_jwt_section(
    signed: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    again = sign_module(signed, issuer=issuer, subject=subject, name="Second", now=NOW)
    assert len(wasm.custom_sections(again, "jwt")) == 1
    assert verify_module(again).name == "Second"


def test_resigning_keeps_the_hash_of_the_unsigned_module(
    signed: bytes, unsigned: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    other_issuer = KeyPair.generate(KeyType.ACCOUNT)
    again = sign_module(signed, issuer=other_issuer, subject=subject, name="x", now=NOW)
    assert verify_module(again).module_hash == _sha(unsigned)
    assert wasm.strip_custom_sections(again, frozenset({"jwt"})) == unsigned


def test_signing_a_legacy_signed_module_replaces_the_legacy_section(
    signed: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    legacy = _replace_token(signed, _token_of(signed), name="wasmcloud_jwt")
    again = sign_module(legacy, issuer=issuer, subject=subject, name="x", now=NOW)
    assert wasm.custom_sections(again, "wasmcloud_jwt") == []
    assert len(wasm.custom_sections(again, "jwt")) == 1
    verify_module(again)


def test_module_carrying_the_legacy_section_name_is_read(signed: bytes, unsigned: bytes) -> None:
    legacy = _replace_token(signed, _token_of(signed), name="wasmcloud_jwt")
    assert wasm.custom_sections(legacy, "jwt") == []
    got = verify_module(legacy, now=NOW, label=LABEL)
    assert got.name == "Echo"
    assert module_hash(legacy) == _sha(unsigned)
    found = extract_claims(legacy)
    assert found is not None
    assert found[1] == _token_of(signed)


def test_module_with_both_claims_sections_is_malformed(signed: bytes) -> None:
    both = wasm.append_custom_section(signed, "wasmcloud_jwt", _token_of(signed).encode())
    with pytest.raises(MalformedToken, match=LABEL):
        verify_module(both, label=LABEL)


def test_extract_claims_of_unsigned_module_is_none(unsigned: bytes) -> None:
    assert extract_claims(unsigned) is None


def test_extract_claims_returns_claims_and_the_raw_token(signed: bytes) -> None:
    found = extract_claims(signed)
    assert found is not None
    got, token = found
    assert token == _token_of(signed)
    assert got.name == "Echo"


# ---- the hash --------------------------------------------------------------


def test_hash_is_sha256_upper_hex_of_the_module_without_its_jwt(
    signed: bytes, unsigned: bytes
) -> None:
    expected = hashlib.sha256(unsigned).hexdigest().upper()
    got = verify_module(signed).module_hash
    assert got == expected
    assert len(got) == 64
    assert got == got.upper()
    assert module_hash(signed) == expected
    assert module_hash(unsigned) == expected


def test_hash_covers_other_custom_sections(issuer: KeyPair, subject: KeyPair) -> None:
    base = wasm.append_custom_section(_module(), "producers", b"\x00")
    signed = sign_module(base, issuer=issuer, subject=subject, name="x")
    assert verify_module(signed).module_hash == _sha(base)
    assert verify_module(signed).module_hash != _sha(_module())


def test_hash_ignores_where_the_jwt_section_sits(signed: bytes, unsigned: bytes) -> None:
    token = _token_of(signed).encode()
    name = b"jwt"
    payload = wasm.write_uleb(len(name)) + name + token
    early = HEADER + b"\x00" + wasm.write_uleb(len(payload)) + payload + unsigned[8:]
    assert module_hash(early) == _sha(unsigned)
    assert verify_module(early).name == "Echo"


@pytest.mark.parametrize(("old", "new"), [(42, 43), (33, 34)])
def test_a_byte_changed_in_the_code_section_fails_with_hash_mismatch(
    signed: bytes, old: int, new: int
) -> None:
    tampered = _flip_code_immediate(signed, old, new)
    wasmtime.Module(wasmtime.Engine(), tampered)  # still a valid module
    with pytest.raises(HashMismatch, match=LABEL):
        verify_module(tampered, now=NOW, label=LABEL)


def test_a_custom_section_added_after_signing_fails_with_hash_mismatch(signed: bytes) -> None:
    extended = wasm.append_custom_section(signed, "extra", b"sneaky")
    with pytest.raises(HashMismatch):
        verify_module(extended)


def test_a_token_for_another_module_fails_with_hash_mismatch(
    signed: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    other = _module('(module (func (export "f") (result i32) i32.const 1))')
    moved = _replace_token(other, _token_of(signed))
    with pytest.raises(HashMismatch, match=LABEL):
        verify_module(moved, label=LABEL)


# ---- the token's shape -----------------------------------------------------


def test_token_header_decodes_to_the_waSCC_header(signed: bytes) -> None:
    header = json.loads(_unb64(_token_of(signed).split(".")[0]))
    assert header == {"typ": "jwt", "alg": "Ed25519"}


def test_token_segments_are_unpadded_base64url(signed: bytes) -> None:
    segments = _token_of(signed).split(".")
    assert len(segments) == 3
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    for segment in segments:
        assert segment
        assert set(segment) <= alphabet


def test_token_signature_is_the_issuers_ed25519_over_the_first_two_segments(
    signed: bytes, issuer: KeyPair
) -> None:
    first, second, signature = _token_of(signed).split(".")
    raw_key = base64.b32decode(issuer.public_key)[1:33]
    Ed25519PublicKey.from_public_bytes(raw_key).verify(
        _unb64(signature), f"{first}.{second}".encode()
    )


def test_claims_json_uses_wascap_field_names(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    signed = sign_module(
        unsigned,
        issuer=issuer,
        subject=subject,
        name="Named",
        caps=["wascc:logging"],
        tags=["a"],
        rev=2,
        ver="2.0",
        expires=NOW + 60,
        not_before=NOW - 60,
        now=NOW,
    )
    body = json.loads(_unb64(_token_of(signed).split(".")[1]))
    assert set(body) == {"jti", "iat", "iss", "sub", "exp", "nbf", "wascap"}
    assert set(body["wascap"]) == {"name", "hash", "tags", "caps", "rev", "ver", "prov"}
    assert body["iat"] == NOW
    assert body["exp"] == NOW + 60
    assert body["nbf"] == NOW - 60
    assert body["iss"] == issuer.public_key
    assert body["sub"] == subject.public_key
    assert isinstance(body["jti"], str)
    assert body["jti"]
    assert body["wascap"] == {
        "name": "Named",
        "hash": _sha(unsigned),
        "tags": ["a"],
        "caps": ["wascc:logging"],
        "rev": 2,
        "ver": "2.0",
        "prov": False,
    }


def test_claims_json_omits_unset_optional_fields(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    signed = sign_module(unsigned, issuer=issuer, subject=subject, name="Bare", now=NOW)
    body = json.loads(_unb64(_token_of(signed).split(".")[1]))
    assert "exp" not in body
    assert "nbf" not in body
    assert {"name", "hash", "prov"} <= set(body["wascap"])


def test_issued_at_defaults_to_the_current_time(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    before = int(time.time())
    signed = sign_module(unsigned, issuer=issuer, subject=subject, name="x")
    after = int(time.time())
    assert before <= verify_module(signed).issued_at <= after


def test_hand_built_token_is_accepted(unsigned: bytes, issuer: KeyPair, subject: KeyPair) -> None:
    body = _body(issuer, subject.public_key, unsigned)
    body["wascap"]["caps"] = ["wascc:extras"]
    token = _hand_token({"typ": "jwt", "alg": "Ed25519"}, body, issuer)
    got = verify_module(_replace_token(unsigned, token), label=LABEL)
    assert got.caps == ("wascc:extras",)
    assert got.id == "ABC123"
    assert got.name == "hand"


# ---- refusals ----------------------------------------------------------------


def test_unsigned_module_is_missing_claims(unsigned: bytes) -> None:
    with pytest.raises(MissingClaims, match=LABEL):
        verify_module(unsigned, label=LABEL)


def test_bytes_that_are_not_wasm_fail_with_module_error_naming_the_label() -> None:
    with pytest.raises(ModuleError, match=LABEL):
        verify_module(b"definitely not wasm", label=LABEL)


def test_claim_edited_after_signing_fails_with_invalid_signature(signed: bytes) -> None:
    first, second, signature = _token_of(signed).split(".")
    body = json.loads(_unb64(second))
    body["wascap"]["caps"].append("wascc:blobstore")
    forged = f"{first}.{_b64(json.dumps(body).encode())}.{signature}"
    tampered = _replace_token(signed, forged)
    with pytest.raises(InvalidSignature, match=LABEL):
        verify_module(tampered, now=NOW, label=LABEL)


def test_edited_expiry_fails_with_invalid_signature(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    signed = sign_module(
        unsigned, issuer=issuer, subject=subject, name="x", expires=NOW + 1, now=NOW
    )
    first, second, signature = _token_of(signed).split(".")
    body = json.loads(_unb64(second))
    body["exp"] = NOW + 10**9
    forged = _replace_token(signed, f"{first}.{_b64(json.dumps(body).encode())}.{signature}")
    with pytest.raises(InvalidSignature, match=LABEL):
        verify_module(forged, now=NOW, label=LABEL)


def test_token_signed_by_someone_other_than_its_issuer_fails(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    forger = KeyPair.generate(KeyType.ACCOUNT)
    token = _hand_token(
        {"typ": "jwt", "alg": "Ed25519"}, _body(issuer, subject.public_key, unsigned), forger
    )
    with pytest.raises(InvalidSignature, match=LABEL):
        verify_module(_replace_token(unsigned, token), label=LABEL)


def test_token_with_a_flipped_signature_bit_fails(signed: bytes) -> None:
    first, second, signature = _token_of(signed).split(".")
    raw = bytearray(_unb64(signature))
    raw[10] ^= 0x01
    tampered = _replace_token(signed, f"{first}.{second}.{_b64(bytes(raw))}")
    with pytest.raises(InvalidSignature, match=LABEL):
        verify_module(tampered, label=LABEL)


def test_token_with_an_empty_signature_fails(signed: bytes) -> None:
    first, second, _ = _token_of(signed).split(".")
    with pytest.raises(InvalidSignature):
        verify_module(_replace_token(signed, f"{first}.{second}."))


def test_expired_claims_fail_with_token_expired(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    signed = sign_module(
        unsigned,
        issuer=issuer,
        subject=subject,
        name="x",
        expires=int(time.time()) - 3600,
    )
    with pytest.raises(TokenExpired, match=LABEL):
        verify_module(signed, label=LABEL)


def test_expiry_is_exclusive_at_the_exp_second(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    exp = NOW + 1000
    signed = sign_module(unsigned, issuer=issuer, subject=subject, name="x", expires=exp, now=NOW)
    verify_module(signed, now=exp - 1)
    with pytest.raises(TokenExpired, match=LABEL):
        verify_module(signed, now=exp, label=LABEL)


def test_not_yet_valid_claims_fail_with_token_not_yet_valid(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    signed = sign_module(
        unsigned,
        issuer=issuer,
        subject=subject,
        name="x",
        not_before=int(time.time()) + 3600,
    )
    with pytest.raises(TokenNotYetValid, match=LABEL):
        verify_module(signed, label=LABEL)


def test_not_before_is_inclusive_at_the_nbf_second(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    nbf = NOW + 1000
    signed = sign_module(
        unsigned, issuer=issuer, subject=subject, name="x", not_before=nbf, now=NOW
    )
    with pytest.raises(TokenNotYetValid, match=LABEL):
        verify_module(signed, now=nbf - 1, label=LABEL)
    verify_module(signed, now=nbf)


def test_claims_inside_their_window_verify(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    now = int(time.time())
    signed = sign_module(
        unsigned,
        issuer=issuer,
        subject=subject,
        name="x",
        expires=now + 3600,
        not_before=now - 3600,
    )
    assert verify_module(signed).expires == now + 3600


def test_untrusted_issuer_is_refused(signed: bytes) -> None:
    stranger = KeyPair.generate(KeyType.ACCOUNT)
    with pytest.raises(UntrustedIssuer, match=LABEL):
        verify_module(signed, trusted_issuers=[stranger.public_key], label=LABEL)


def test_empty_trusted_list_trusts_no_one(signed: bytes) -> None:
    with pytest.raises(UntrustedIssuer):
        verify_module(signed, trusted_issuers=[])


def test_trusted_issuer_is_accepted(signed: bytes, issuer: KeyPair) -> None:
    stranger = KeyPair.generate(KeyType.ACCOUNT)
    trusted = (k for k in [stranger.public_key, issuer.public_key])
    assert verify_module(signed, trusted_issuers=trusted).issuer == issuer.public_key


def test_no_trusted_list_accepts_any_valid_issuer(signed: bytes) -> None:
    verify_module(signed, trusted_issuers=None)


@pytest.mark.parametrize(
    "token",
    [
        b"garbage",
        b"",
        b"a.b",
        b"a.b.c.d",
        b"!!!.@@@.###",
        b"e30.e30.e30",
        b"\xff\xfe\xfd",
        b"bm90IGpzb24.bm90IGpzb24.c2ln",
        b"W10.W10.c2ln",
    ],
    ids=[
        "word",
        "empty",
        "two-segments",
        "four-segments",
        "not-base64",
        "empty-objects",
        "not-utf8",
        "not-json",
        "json-arrays",
    ],
)
def test_garbage_in_the_jwt_section_is_malformed(unsigned: bytes, token: bytes) -> None:
    with pytest.raises(MalformedToken, match=LABEL):
        verify_module(_replace_token(unsigned, token), label=LABEL)


@pytest.mark.parametrize(
    "header",
    [
        {"typ": "jwt", "alg": "HS256"},
        {"typ": "jwt", "alg": "EdDSA"},
        {"typ": "jwt", "alg": "none"},
        {"typ": "jwt"},
        {"typ": "jws", "alg": "Ed25519"},
        {"alg": "Ed25519"},
    ],
    ids=["hs256", "eddsa", "none", "no-alg", "wrong-typ", "no-typ"],
)
def test_wrong_header_is_malformed(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair, header: dict[str, Any]
) -> None:
    token = _hand_token(header, _body(issuer, subject.public_key, unsigned), issuer)
    with pytest.raises(MalformedToken, match=LABEL):
        verify_module(_replace_token(unsigned, token), label=LABEL)


@pytest.mark.parametrize(
    "edit",
    [
        lambda b: b.pop("wascap"),
        lambda b: b.pop("iss"),
        lambda b: b.pop("sub"),
        lambda b: b.update(iss=5),
        lambda b: b.update(exp="tomorrow"),
        lambda b: b.update(exp=True),
        lambda b: b.update(nbf=1.5),
        lambda b: b.update(wascap="actor"),
        lambda b: b["wascap"].update(caps="wascc:keyvalue"),
        lambda b: b["wascap"].update(tags=[1, 2]),
        lambda b: b["wascap"].update(rev="3"),
        lambda b: b["wascap"].update(ver=3),
    ],
    ids=[
        "no-wascap",
        "no-iss",
        "no-sub",
        "iss-int",
        "exp-str",
        "exp-bool",
        "nbf-float",
        "wascap-str",
        "caps-str",
        "tags-ints",
        "rev-str",
        "ver-int",
    ],
)
def test_claims_of_the_wrong_shape_are_malformed(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair, edit: Any
) -> None:
    body = _body(issuer, subject.public_key, unsigned)
    edit(body)
    token = _hand_token({"typ": "jwt", "alg": "Ed25519"}, body, issuer)
    with pytest.raises(MalformedToken, match=LABEL):
        verify_module(_replace_token(unsigned, token), label=LABEL)


def test_issuer_that_is_not_an_account_key_is_malformed(unsigned: bytes, subject: KeyPair) -> None:
    user = KeyPair.generate(KeyType.USER)
    token = _hand_token(
        {"typ": "jwt", "alg": "Ed25519"}, _body(user, subject.public_key, unsigned), user
    )
    with pytest.raises(MalformedToken, match=LABEL):
        verify_module(_replace_token(unsigned, token), label=LABEL)


@pytest.mark.parametrize("kind", [KeyType.MODULE, KeyType.USER, KeyType.OPERATOR, KeyType.SERVER])
def test_signing_with_a_non_account_key_is_refused(
    unsigned: bytes, subject: KeyPair, kind: KeyType
) -> None:
    with pytest.raises(KeyFormatError):
        sign_module(unsigned, issuer=KeyPair.generate(kind), subject=subject, name="x")


@pytest.mark.parametrize("kind", [KeyType.ACCOUNT, KeyType.USER, KeyType.SERVICE])
def test_signing_for_a_subject_that_is_not_a_module_key_is_refused(
    unsigned: bytes, issuer: KeyPair, kind: KeyType
) -> None:
    with pytest.raises(KeyFormatError):
        sign_module(unsigned, issuer=issuer, subject=KeyPair.generate(kind), name="x")


def test_signing_for_a_malformed_subject_string_is_refused(
    unsigned: bytes, issuer: KeyPair
) -> None:
    with pytest.raises(KeyFormatError):
        sign_module(unsigned, issuer=issuer, subject="Mnotakey", name="x")


def test_signing_bytes_that_are_not_wasm_is_refused(issuer: KeyPair, subject: KeyPair) -> None:
    with pytest.raises(ModuleError):
        sign_module(b"not wasm", issuer=issuer, subject=subject, name="x")


def test_verified_token_whose_subject_is_not_a_module_key_is_refused(
    unsigned: bytes, issuer: KeyPair
) -> None:
    account_subject = KeyPair.generate(KeyType.ACCOUNT).public_key
    token = _hand_token(
        {"typ": "jwt", "alg": "Ed25519"}, _body(issuer, account_subject, unsigned), issuer
    )
    with pytest.raises(MalformedToken, match=LABEL):
        verify_module(_replace_token(unsigned, token), label=LABEL)


def test_every_refusal_is_a_claims_error() -> None:
    for error in (
        MissingClaims,
        MalformedToken,
        InvalidSignature,
        HashMismatch,
        TokenExpired,
        TokenNotYetValid,
        UntrustedIssuer,
    ):
        assert issubclass(error, ClaimsError)


def test_refusal_messages_name_the_module_label(
    signed: bytes, unsigned: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    label = "my-special-label.wasm"
    cases: list[tuple[bytes, dict[str, Any]]] = [
        (unsigned, {}),
        (_replace_token(unsigned, b"garbage"), {}),
        (_flip_code_immediate(signed, 42, 43), {}),
        (signed, {"trusted_issuers": []}),
        (
            sign_module(unsigned, issuer=issuer, subject=subject, name="x", expires=NOW, now=NOW),
            {"now": NOW + 1},
        ),
        (
            sign_module(
                unsigned, issuer=issuer, subject=subject, name="x", not_before=NOW, now=NOW
            ),
            {"now": NOW - 1},
        ),
        (b"junk", {}),
    ]
    for module, kwargs in cases:
        with pytest.raises((ClaimsError, ModuleError)) as info:
            verify_module(module, label=label, **kwargs)
        assert label in str(info.value)


def test_public_names_are_exported() -> None:
    assert set(claims.__all__) == {
        "MAX_TIME",
        "MAX_TOKEN_BYTES",
        "Claims",
        "format_time",
        "decode_token",
        "encode_token",
        "extract_claims",
        "module_hash",
        "sign_body",
        "sign_module",
        "unverified_body",
        "verified_body",
        "verify_module",
    }


# ---- hostile tokens: every failure is a ClaimsError ---------------------------------

DEEP = 100_000


def _raw_token(header: bytes, body: bytes, signer: KeyPair | None = None) -> str:
    """A token from raw JSON bytes; signed by ``signer``, or with a junk signature."""
    first, second = _b64(header), _b64(body)
    signature = signer.sign(f"{first}.{second}".encode()) if signer else b"\x00" * 64
    return f"{first}.{second}.{_b64(signature)}"


GOOD_HEADER = b'{"typ":"jwt","alg":"Ed25519"}'
HEADER_JSON = {"typ": "jwt", "alg": "Ed25519"}


@pytest.mark.parametrize(
    "token",
    [
        _raw_token(GOOD_HEADER, b"[" * DEEP),
        _raw_token(GOOD_HEADER, b'{"a":' * (DEEP // 4)),
        _raw_token(b"[" * DEEP, b"{}"),
        _raw_token(GOOD_HEADER, b"[" * DEEP + b"]" * DEEP),
        _raw_token(GOOD_HEADER, b'{"iat": ' + b"9" * 5000 + b"}"),
        _raw_token(GOOD_HEADER, b'{"wascap": {"rev": -' + b"9" * 5000 + b"}}"),
        _raw_token(GOOD_HEADER, b'{"exp": NaN}'),
        _raw_token(GOOD_HEADER, b'{"exp": Infinity}'),
        _raw_token(GOOD_HEADER, b'{"exp": -Infinity}'),
        _raw_token(GOOD_HEADER, b'{"exp": 1e400}'),
        _raw_token(GOOD_HEADER, b'{"iss": "A", "iss": "B"}'),
        _raw_token(GOOD_HEADER, b'{"iss": "\xff\xfe"}'),
        _raw_token(GOOD_HEADER, b'"just a string"'),
        _raw_token(GOOD_HEADER, b"null"),
        _raw_token(b'{"typ":"jwt","alg":"Ed25519","alg":"Ed25519"}', b"{}"),
        _raw_token(b'{"typ":1,"alg":"Ed25519"}', b"{}"),
        "A" * (claims.MAX_TOKEN_BYTES + 1),
        "e30.e30.e30.e30",
        "e30.e30",
        "e3=.e30.e30",
        "e30.e 30.e30",
    ],
    ids=[
        "body-array-100k-deep",
        "body-object-100k-deep",
        "header-100k-deep",
        "body-too-long",
        "int-5000-digits",
        "negative-int-5000-digits",
        "nan",
        "infinity",
        "minus-infinity",
        "float-overflow",
        "duplicate-key",
        "not-utf8-json",
        "body-string",
        "body-null",
        "header-duplicate-key",
        "header-typ-int",
        "huge",
        "four-segments",
        "two-segments",
        "padding",
        "space",
    ],
)
def test_hostile_token_needing_no_key_is_malformed(unsigned: bytes, token: str) -> None:
    module = _replace_token(unsigned, token)
    with pytest.raises(MalformedToken, match=LABEL):
        verify_module(module, label=LABEL)
    with pytest.raises(MalformedToken):
        verify_module(module, label=LABEL, trusted_issuers=[])
    with pytest.raises(MalformedToken):
        extract_claims(module)


@pytest.mark.parametrize("field", ["nbf", "exp", "iat"])
@pytest.mark.parametrize("value", [10**20, 2**63, -(2**63), 2**64, -1, claims.MAX_TIME + 1])
def test_out_of_range_time_is_malformed_naming_the_field(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair, field: str, value: int
) -> None:
    body = _body(issuer, subject.public_key, unsigned, **{field: value})
    module = _replace_token(unsigned, _hand_token(HEADER_JSON, body, issuer))
    with pytest.raises(MalformedToken, match=f"`{field}`") as info:
        verify_module(module, label=LABEL)
    assert LABEL in str(info.value)
    with pytest.raises(MalformedToken, match=f"`{field}`"):
        extract_claims(module)


def test_times_at_the_ends_of_the_range_are_accepted(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    body = _body(issuer, subject.public_key, unsigned, iat=0, nbf=0, exp=claims.MAX_TIME)
    module = _replace_token(unsigned, _hand_token(HEADER_JSON, body, issuer))
    found = verify_module(module, label=LABEL, now=NOW)
    assert (found.issued_at, found.not_before, found.expires) == (0, 0, claims.MAX_TIME)
    assert claims.format_time(claims.MAX_TIME) == "9999-12-31 23:59:59 UTC"


@pytest.mark.parametrize("epoch", [None, 0, 10**20, 2**63, -(2**63), 10**400])
def test_format_time_never_raises(epoch: int | None) -> None:
    assert isinstance(claims.format_time(epoch), str)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda b: b.update(jti=7), "`jti`"),
        (lambda b: b.update(sub=["M"]), "`sub`"),
        (lambda b: b.update(wascap=[1]), "`wascap`"),
        (lambda b: b.update(wascap=None), "`wascap`"),
        (lambda b: b["wascap"].update(name=5), "`wascap.name`"),
        (lambda b: b["wascap"].update(hash={}), "`wascap.hash`"),
        (lambda b: b["wascap"].update(caps={"a": 1}), "`wascap.caps`"),
        (lambda b: b["wascap"].update(caps=0), "`wascap.caps`"),
        (lambda b: b["wascap"].update(caps=["wascc:keyvalue", None]), "`wascap.caps[1]`"),
        (lambda b: b["wascap"].update(tags=["a", ["b"]]), "`wascap.tags[1]`"),
        (lambda b: b["wascap"].update(rev=-1), "`wascap.rev`"),
        (lambda b: b["wascap"].update(rev=2**64), "`wascap.rev`"),
        (lambda b: b["wascap"].update(rev=1.0), "`wascap.rev`"),
        (lambda b: b["wascap"].update(ver=[]), "`wascap.ver`"),
        (lambda b: b["wascap"].update(prov="yes"), "`wascap.prov`"),
        (lambda b: b["wascap"].update(prov=1), "`wascap.prov`"),
        (lambda b: b.update(exp=1.5), "`exp`"),
        (lambda b: b.update(iat="now"), "`iat`"),
    ],
    ids=[
        "jti-int",
        "sub-list",
        "wascap-list",
        "wascap-null",
        "name-int",
        "hash-object",
        "caps-object",
        "caps-zero",
        "caps-null-item",
        "tags-list-item",
        "rev-negative",
        "rev-too-big",
        "rev-float",
        "ver-list",
        "prov-string",
        "prov-int",
        "exp-float",
        "iat-string",
    ],
)
def test_wrong_field_type_is_malformed_naming_the_field(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair, edit: Any, field: str
) -> None:
    body = _body(issuer, subject.public_key, unsigned)
    edit(body)
    module = _replace_token(unsigned, _hand_token(HEADER_JSON, body, issuer))
    with pytest.raises(MalformedToken) as info:
        verify_module(module, label=LABEL)
    assert field in str(info.value) and LABEL in str(info.value)


def test_rev_at_the_top_of_u64_is_accepted(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    signed = sign_module(unsigned, issuer=issuer, subject=subject, name="x", rev=2**64 - 1)
    assert verify_module(signed).rev == 2**64 - 1


def test_signing_refuses_claims_verification_would_refuse(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    with pytest.raises(MalformedToken, match="`exp`"):
        sign_module(unsigned, issuer=issuer, subject=subject, name="x", expires=10**20)
    with pytest.raises(MalformedToken, match=re.escape("`wascap.rev`")):
        sign_module(unsigned, issuer=issuer, subject=subject, name="x", rev=-1)


# ---- the order: the issuer is trusted and signed before the claims are read -------


def _poisoned_body(issuer: KeyPair, subject: KeyPair, module: bytes) -> dict[str, Any]:
    """Claims wrong in every way that is checked after the issuer."""
    body = _body(issuer, subject.public_key, module, exp=1, nbf=10**20)
    body["wascap"].update(hash="0" * 64, caps="not a list", rev=-5)
    body["sub"] = 42
    return body


def test_untrusted_issuer_is_refused_before_the_claims_are_read(
    unsigned: bytes, subject: KeyPair
) -> None:
    stranger = KeyPair.generate(KeyType.ACCOUNT)
    token = _hand_token(HEADER_JSON, _poisoned_body(stranger, subject, unsigned), stranger)
    module = _replace_token(unsigned, token)
    trusted = [KeyPair.generate(KeyType.ACCOUNT).public_key]
    with pytest.raises(UntrustedIssuer, match=LABEL):
        verify_module(module, label=LABEL, trusted_issuers=trusted)


def test_untrusted_issuer_is_refused_before_its_signature_is_checked(
    unsigned: bytes, subject: KeyPair
) -> None:
    stranger = KeyPair.generate(KeyType.ACCOUNT)
    token = _raw_token(
        GOOD_HEADER, json.dumps(_body(stranger, subject.public_key, unsigned)).encode()
    )  # junk signature
    with pytest.raises(UntrustedIssuer):
        verify_module(_replace_token(unsigned, token), trusted_issuers=[])


def test_bad_signature_is_refused_before_the_claims_are_read(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    forger = KeyPair.generate(KeyType.ACCOUNT)
    body = _poisoned_body(issuer, subject, unsigned)  # claims the trusted issuer
    token = _hand_token(HEADER_JSON, body, forger)
    module = _replace_token(unsigned, token)
    with pytest.raises(InvalidSignature, match=LABEL):
        verify_module(module, label=LABEL, trusted_issuers=[issuer.public_key])
    with pytest.raises(InvalidSignature, match=LABEL):
        verify_module(module, label=LABEL)


def test_issuer_is_checked_before_hash_and_time_window(
    unsigned: bytes, issuer: KeyPair, subject: KeyPair
) -> None:
    expired_elsewhere = sign_module(
        _module(WAT.replace("42", "41")),
        issuer=issuer,
        subject=subject,
        name="x",
        expires=NOW,
        now=NOW,
    )
    module = _replace_token(unsigned, _token_of(expired_elsewhere))
    with pytest.raises(UntrustedIssuer):
        verify_module(module, trusted_issuers=[], now=NOW + 10)
    with pytest.raises(HashMismatch):
        verify_module(module, trusted_issuers=[issuer.public_key], now=NOW + 10)


def test_decode_token_checks_the_trusted_list(signed: bytes, issuer: KeyPair) -> None:
    token = _token_of(signed)
    assert decode_token(token, trusted_issuers=[issuer.public_key]).issuer == issuer.public_key
    with pytest.raises(UntrustedIssuer):
        decode_token(token, trusted_issuers=[])
    assert decode_token(token, verify_signature=False, trusted_issuers=[]).name == "Echo"


# ---- the section reader: hostile layouts are ModuleErrors --------------------------


@pytest.mark.parametrize(
    "tail",
    [
        bytes([0]) + wasm.write_uleb(0xFFFFFFFF) + b"\x03jwt",
        bytes([0, 5]) + wasm.write_uleb(0xFFFFFFFF),
        bytes([0, 4, 3]) + b"jw",
        bytes([0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
        bytes([0, 0x80, 0x80, 0x80, 0x80, 0x7F]),
        bytes([0, 4, 3]) + b"j\xffw",
        bytes([0]),
    ],
    ids=[
        "section-size-4GiB",
        "name-length-4GiB",
        "truncated",
        "leb-longer-than-5",
        "leb-over-32-bits",
        "name-not-utf8",
        "no-size",
    ],
)
def test_hostile_section_layout_is_a_module_error(unsigned: bytes, tail: bytes) -> None:
    with pytest.raises(ModuleError, match=LABEL):
        verify_module(unsigned + tail, label=LABEL)
    with pytest.raises(ModuleError):
        extract_claims(unsigned + tail)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * DEEP, "nested deeper than 16 levels"),
        (b'{"a":' * 17 + b"1" + b"}" * 17, "nested deeper than 16 levels"),
        (b'{"iat": ' + b"9" * 5000 + b"}", "more than 64 digits"),
        (b'{"exp": NaN}', "NaN is not a JSON number"),
        (b'{"exp": 1e999}', "too large for a float"),
        (b'{"iss": 1, "iss": 2}', "the key 'iss' appears twice"),
        (b"{", "line 1, column 2: not valid JSON: "),
    ],
    ids=["deep", "deep-17", "digits", "nan", "float", "duplicate", "truncated"],
)
def test_hostile_json_is_refused_with_its_reason(unsigned: bytes, body: bytes, reason: str) -> None:
    module = _replace_token(unsigned, _raw_token(GOOD_HEADER, body))
    with pytest.raises(MalformedToken, match=re.escape(reason)) as info:
        verify_module(module, label=LABEL)
    assert str(info.value).startswith(f"{LABEL}: the token's claims: ")


def test_claims_sixteen_deep_are_read(unsigned: bytes, issuer: KeyPair, subject: KeyPair) -> None:
    body = _body(issuer, subject.public_key, unsigned)
    body["extra"] = json.loads("[" * 15 + "]" * 15)
    module = _replace_token(unsigned, _hand_token(HEADER_JSON, body, issuer))
    assert verify_module(module).name == "hand"


def test_claims_section_that_is_too_long_is_refused_unread(unsigned: bytes) -> None:
    module = _replace_token(unsigned, b"." * (claims.MAX_TOKEN_BYTES + 1))
    with pytest.raises(MalformedToken, match="longer than"):
        verify_module(module, label=LABEL)


def test_two_jwt_sections_are_malformed(signed: bytes) -> None:
    twice = wasm.append_custom_section(signed, "jwt", _token_of(signed).encode())
    with pytest.raises(MalformedToken, match="more than one"):
        verify_module(twice, label=LABEL)


@pytest.mark.parametrize("token", [b"e30.e30.e30", None, 5])
def test_decode_token_of_something_that_is_not_text_is_malformed(token: Any) -> None:
    with pytest.raises(MalformedToken, match="a token is text"):
        decode_token(token)
