"""nkeys (CONTRACTS section 4): encodings, checksums, types, signatures."""

from __future__ import annotations

import base64
import binascii

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from wascc.errors import KeyFormatError
from wascc.wire.keys import KeyPair, KeyType, decode_public_key, is_public_key, verify

# The contract's table, written out here rather than read back from KeyType.
PREFIXES = {
    KeyType.ACCOUNT: (0, "A"),
    KeyType.CLUSTER: (16, "C"),
    KeyType.MODULE: (96, "M"),
    KeyType.SERVER: (104, "N"),
    KeyType.OPERATOR: (112, "O"),
    KeyType.USER: (160, "U"),
    KeyType.SERVICE: (168, "V"),
}
ALL_TYPES = list(KeyType)
BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def _b32decode(text: str) -> bytes:
    return base64.b32decode(text + "=" * (-len(text) % 8))


def _xmodem(data: bytes) -> int:
    """CRC-16/XMODEM by the standard library: poly 0x1021, init 0."""
    return binascii.crc_hqx(data, 0)


def _encode_with_crc(body: bytes) -> str:
    """An nkey-style text for ``body`` with a correct checksum, built independently."""
    raw = body + _xmodem(body).to_bytes(2, "little")
    return base64.b32encode(raw).decode().rstrip("=")


def _swap_char(text: str, index: int) -> str:
    old = text[index]
    new = BASE32[(BASE32.index(old) + 1) % len(BASE32)]
    return text[:index] + new + text[index + 1 :]


def test_reference_crc_matches_published_xmodem_check_value() -> None:
    # The catalogue check value of CRC-16/XMODEM over "123456789".
    assert _xmodem(b"123456789") == 0x31C3


@pytest.mark.parametrize("kind", ALL_TYPES, ids=lambda k: k.name)
def test_seed_round_trips_to_same_public_key(kind: KeyType) -> None:
    pair = KeyPair.generate(kind)
    again = KeyPair.from_seed(pair.seed)
    assert again.kind is kind
    assert again.public_key == pair.public_key
    assert again.seed == pair.seed


@pytest.mark.parametrize("kind", ALL_TYPES, ids=lambda k: k.name)
def test_public_key_is_56_chars_and_starts_with_type_letter(kind: KeyType) -> None:
    prefix, letter = PREFIXES[kind]
    pair = KeyPair.generate(kind)
    assert len(pair.public_key) == 56
    assert pair.public_key[0] == letter
    assert kind.letter == letter
    assert kind.value == prefix
    assert set(pair.public_key) <= set(BASE32)


@pytest.mark.parametrize("kind", ALL_TYPES, ids=lambda k: k.name)
def test_seed_is_58_chars_starting_with_s_and_type_letter(kind: KeyType) -> None:
    _, letter = PREFIXES[kind]
    seed = KeyPair.generate(kind).seed
    assert len(seed) == 58
    assert seed[:2] == "S" + letter
    assert set(seed) <= set(BASE32)


@pytest.mark.parametrize("kind", ALL_TYPES, ids=lambda k: k.name)
def test_public_key_layout_is_prefix_key_and_little_endian_xmodem_crc(kind: KeyType) -> None:
    prefix, _ = PREFIXES[kind]
    pair = KeyPair.generate(kind)
    raw = _b32decode(pair.public_key)
    assert len(raw) == 35
    assert raw[0] == prefix
    assert raw[-2:] == _xmodem(raw[:-2]).to_bytes(2, "little")
    decoded_kind, key = decode_public_key(pair.public_key)
    assert decoded_kind is kind
    assert key == raw[1:33]


@pytest.mark.parametrize("kind", ALL_TYPES, ids=lambda k: k.name)
def test_seed_layout_follows_the_prefix_formula_and_crc(kind: KeyType) -> None:
    prefix, _ = PREFIXES[kind]
    raw = _b32decode(KeyPair.generate(kind).seed)
    assert len(raw) == 36
    assert raw[0] == 0x90 | (prefix >> 5)
    assert raw[1] == (prefix & 31) << 3
    assert raw[-2:] == _xmodem(raw[:-2]).to_bytes(2, "little")


def test_signature_verifies_with_an_independent_ed25519_check() -> None:
    pair = KeyPair.generate(KeyType.ACCOUNT)
    data = b"the quick brown fox"
    raw_public = _b32decode(pair.public_key)[1:33]
    # Raises if the signature is not the key's Ed25519 signature of the data.
    Ed25519PublicKey.from_public_bytes(raw_public).verify(pair.sign(data), data)


def test_seed_holds_the_ed25519_private_key_of_the_public_key() -> None:
    pair = KeyPair.generate(KeyType.MODULE)
    raw_seed = _b32decode(pair.seed)[2:34]
    derived = (
        Ed25519PrivateKey.from_private_bytes(raw_seed)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    assert derived == _b32decode(pair.public_key)[1:33]


def test_independently_built_public_key_decodes() -> None:
    body = bytes([96]) + bytes(range(32))
    text = _encode_with_crc(body)
    assert text[0] == "M"
    assert decode_public_key(text) == (KeyType.MODULE, bytes(range(32)))


def test_seed_and_its_key_pair_sign_identically() -> None:
    pair = KeyPair.generate(KeyType.USER)
    data = b"payload"
    assert KeyPair.from_seed(pair.seed).sign(data) == pair.sign(data)


def test_generated_keys_differ() -> None:
    first = KeyPair.generate(KeyType.ACCOUNT)
    second = KeyPair.generate(KeyType.ACCOUNT)
    assert first.public_key != second.public_key
    assert first.seed != second.seed


@pytest.mark.parametrize("index", range(56))
def test_any_changed_character_of_a_public_key_fails_the_checksum(index: int) -> None:
    key = KeyPair.generate(KeyType.MODULE).public_key
    with pytest.raises(KeyFormatError, match="checksum"):
        decode_public_key(_swap_char(key, index))


@pytest.mark.parametrize("index", [0, 1, 2, 10, 30, 55, 56])
def test_a_changed_character_of_a_seed_is_refused(index: int) -> None:
    seed = KeyPair.generate(KeyType.ACCOUNT).seed
    with pytest.raises(KeyFormatError):
        KeyPair.from_seed(_swap_char(seed, index))


def test_is_public_key_is_false_for_a_corrupted_key() -> None:
    key = KeyPair.generate(KeyType.SERVER).public_key
    assert is_public_key(key)
    assert is_public_key(key, KeyType.SERVER)
    assert not is_public_key(key, KeyType.MODULE)
    assert not is_public_key(_swap_char(key, 20))


@pytest.mark.parametrize(
    "text",
    ["", "A", "AAAA", "not base32 at all!", "a" * 56, "=" * 8],
    ids=["empty", "one-char", "short", "punctuation", "lowercase", "padding-only"],
)
def test_malformed_public_key_text_is_refused(text: str) -> None:
    with pytest.raises(KeyFormatError):
        decode_public_key(text)
    assert not is_public_key(text)


def test_non_string_public_key_is_refused() -> None:
    with pytest.raises(KeyFormatError):
        decode_public_key(b"A" * 56)  # type: ignore[arg-type]


def test_truncated_or_extended_public_key_is_refused() -> None:
    key = KeyPair.generate(KeyType.ACCOUNT).public_key
    for text in (key[:-1], key[:-8], key + "A", key + "AAAAAAAA"):
        with pytest.raises(KeyFormatError):
            decode_public_key(text)


@pytest.mark.parametrize("body_len", [1, 32, 34, 40])
def test_public_key_with_valid_checksum_but_wrong_length_is_refused(body_len: int) -> None:
    text = _encode_with_crc(bytes([96]) + bytes(body_len - 1))
    with pytest.raises(KeyFormatError, match="length"):
        decode_public_key(text)


@pytest.mark.parametrize("prefix", [8, 24, 144, 255])
def test_public_key_with_unknown_prefix_is_refused(prefix: int) -> None:
    text = _encode_with_crc(bytes([prefix]) + bytes(32))
    with pytest.raises(KeyFormatError, match="prefix"):
        decode_public_key(text)


def test_seed_is_not_a_public_key() -> None:
    seed = KeyPair.generate(KeyType.ACCOUNT).seed
    with pytest.raises(KeyFormatError):
        decode_public_key(seed)
    assert not is_public_key(seed)


def test_public_key_is_not_a_seed() -> None:
    key = KeyPair.generate(KeyType.ACCOUNT).public_key
    with pytest.raises(KeyFormatError):
        KeyPair.from_seed(key)


def test_seed_without_seed_marker_is_refused() -> None:
    # Right length and checksum, but the first byte is not 0x90 | ...
    text = _encode_with_crc(bytes([0x00, 0x00]) + bytes(32))
    with pytest.raises(KeyFormatError):
        KeyPair.from_seed(text)


def test_seed_with_unknown_type_is_refused() -> None:
    prefix = 8  # no key type uses it
    text = _encode_with_crc(bytes([0x90 | prefix >> 5, (prefix & 31) << 3]) + bytes(32))
    assert text[0] == "S"
    with pytest.raises(KeyFormatError, match="type"):
        KeyPair.from_seed(text)


def test_seed_of_wrong_length_is_refused() -> None:
    text = _encode_with_crc(bytes([0x90, 0]) + bytes(31))
    with pytest.raises(KeyFormatError):
        KeyPair.from_seed(text)


def test_seed_with_surrounding_whitespace_is_accepted() -> None:
    pair = KeyPair.generate(KeyType.ACCOUNT)
    assert KeyPair.from_seed(f"  {pair.seed}\n").public_key == pair.public_key


def test_independently_built_seed_decodes_to_its_type() -> None:
    prefix = 112
    text = _encode_with_crc(bytes([0x90 | prefix >> 5, (prefix & 31) << 3]) + bytes(range(32)))
    assert text[:2] == "SO"
    assert KeyPair.from_seed(text).kind is KeyType.OPERATOR


@pytest.mark.parametrize("kind", ALL_TYPES, ids=lambda k: k.name)
def test_decode_public_key_with_matching_expected_type_succeeds(kind: KeyType) -> None:
    key = KeyPair.generate(kind).public_key
    assert decode_public_key(key, kind)[0] is kind


@pytest.mark.parametrize("kind", ALL_TYPES, ids=lambda k: k.name)
def test_decode_public_key_with_wrong_expected_type_is_refused(kind: KeyType) -> None:
    key = KeyPair.generate(kind).public_key
    for other in ALL_TYPES:
        if other is kind:
            continue
        with pytest.raises(KeyFormatError, match=other.name.lower()):
            decode_public_key(key, other)


def test_verify_accepts_a_good_signature() -> None:
    pair = KeyPair.generate(KeyType.ACCOUNT)
    data = b"hello actor"
    assert verify(pair.public_key, data, pair.sign(data))


@pytest.mark.parametrize("bit", [0, 7, 100, 511])
def test_verify_rejects_a_signature_with_one_flipped_bit(bit: int) -> None:
    pair = KeyPair.generate(KeyType.ACCOUNT)
    data = b"hello actor"
    signature = bytearray(pair.sign(data))
    signature[bit // 8] ^= 1 << (bit % 8)
    assert not verify(pair.public_key, data, bytes(signature))


def test_verify_rejects_changed_data() -> None:
    pair = KeyPair.generate(KeyType.ACCOUNT)
    signature = pair.sign(b"hello actor")
    assert not verify(pair.public_key, b"hello actos", signature)


def test_verify_rejects_another_keys_signature() -> None:
    pair = KeyPair.generate(KeyType.ACCOUNT)
    other = KeyPair.generate(KeyType.ACCOUNT)
    data = b"hello actor"
    assert not verify(pair.public_key, data, other.sign(data))


@pytest.mark.parametrize("signature", [b"", b"\x00" * 63, b"\x00" * 65])
def test_verify_rejects_a_signature_of_the_wrong_length(signature: bytes) -> None:
    pair = KeyPair.generate(KeyType.ACCOUNT)
    assert not verify(pair.public_key, b"data", signature)


def test_verify_refuses_a_malformed_public_key() -> None:
    pair = KeyPair.generate(KeyType.ACCOUNT)
    with pytest.raises(KeyFormatError):
        verify(_swap_char(pair.public_key, 5), b"data", pair.sign(b"data"))


@pytest.mark.parametrize("kind", ALL_TYPES, ids=lambda k: k.name)
def test_key_type_parses_by_name_in_any_case(kind: KeyType) -> None:
    assert KeyType.parse(kind.name) is kind
    assert KeyType.parse(kind.name.lower()) is kind
    assert KeyType.parse(f" {kind.name.capitalize()} ") is kind


@pytest.mark.parametrize("kind", ALL_TYPES, ids=lambda k: k.name)
def test_key_type_parses_by_letter(kind: KeyType) -> None:
    _, letter = PREFIXES[kind]
    assert KeyType.parse(letter) is kind
    assert KeyType.parse(letter.lower()) is kind


@pytest.mark.parametrize("name", ["bogus", "", "S", "B", "modules", "accountx"])
def test_key_type_parse_refuses_unknown_names(name: str) -> None:
    with pytest.raises(KeyFormatError, match="module"):
        KeyType.parse(name)


def test_key_pair_repr_shows_type_and_public_key_but_not_seed() -> None:
    pair = KeyPair.generate(KeyType.MODULE)
    text = repr(pair)
    assert "module" in text
    assert pair.public_key in text
    assert pair.seed not in text


def test_key_format_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        decode_public_key("nope")


@pytest.mark.parametrize("length", [57, 59, 65, 1 << 20])
def test_overlong_key_text_is_refused_unread(length: int) -> None:
    """A key far longer than any nkey is refused before it is decoded or checksummed."""
    text = "A" * length
    if length <= 64:
        with pytest.raises(KeyFormatError):
            decode_public_key(text)
        return
    with pytest.raises(KeyFormatError, match=r"wrong length \(\d+ characters"):
        decode_public_key(text)
    with pytest.raises(KeyFormatError, match=r"wrong length \(\d+ characters"):
        KeyPair.from_seed("S" + text)


@pytest.mark.parametrize("seed", [None, 5, b"SAAAA", ["S"]])
def test_seed_that_is_not_a_string_is_a_key_format_error(seed: object) -> None:
    with pytest.raises(KeyFormatError, match="must be a string"):
        KeyPair.from_seed(seed)  # type: ignore[arg-type]
