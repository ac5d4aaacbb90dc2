"""nkeys: public keys and seeds as they arrive in claims, manifests and files."""

from __future__ import annotations

import random

from wascc.wire.keys import KeyPair, KeyType, decode_public_key, verify

from fuzz.engine import Target

_SEEDS = [KeyPair.generate(kind) for kind in (KeyType.ACCOUNT, KeyType.MODULE, KeyType.SERVER)]


def run(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    decode_public_key(text)
    if text.startswith("S"):
        KeyPair.from_seed(text)
    verify(text, b"payload", data[:64])


def generate(rng: random.Random) -> bytes:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    length = rng.choice((0, 1, 55, 56, 57, 58, 59, 200))
    return "".join(rng.choice(alphabet) for _ in range(length)).encode()


TARGET = Target(
    name="keys",
    run=run,
    seeds=[k.public_key.encode() for k in _SEEDS] + [k.seed.encode() for k in _SEEDS],
    generate=generate,
    deadline=5.0,
)
