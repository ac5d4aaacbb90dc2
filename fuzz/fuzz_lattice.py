"""Lattice invocations and responses from NATS: decode, then the anti-forgery check."""

from __future__ import annotations

import random

from wascc.wire.keys import KeyPair, KeyType
from wascc.wire.lattice import BusInvocation, BusResponse, Entity, check_invocation

from fuzz.engine import Target

_HOST = KeyPair.generate(KeyType.SERVER)
_GOOD = BusInvocation.signed(
    _HOST,
    Entity.of_actor("M" + "A" * 55),
    Entity.of_capability("wascc:keyvalue", "default"),
    "Add",
    b"\x82\xa3key\xa1k\xa5value\x01",
    deadline=1,
)


def run(data: bytes) -> None:
    BusResponse.decode(data)
    inv = BusInvocation.decode(data)
    check_invocation(inv, None)
    check_invocation(inv, [_HOST.public_key])


def generate(rng: random.Random) -> bytes:
    good = bytearray(_GOOD.encode())
    for _ in range(rng.randint(1, 8)):
        good[rng.randrange(len(good))] = rng.randrange(256)
    if rng.random() < 0.2:
        del good[rng.randrange(len(good)) :]
    return bytes(good)


TARGET = Target(
    name="lattice",
    run=run,
    seeds=[
        _GOOD.encode(),
        BusResponse("x", b"hi", None).encode(),
        BusResponse("y", b"", "e").encode(),
    ],
    generate=generate,
    deadline=5.0,
)
