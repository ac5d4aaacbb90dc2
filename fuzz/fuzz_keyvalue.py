"""keyvalue, differentially: every request goes to the in-memory and the Redis backend.

One native keyvalue provider, two actors: one bound without ``URL`` (the
in-process store), one with ``URL`` to a private redis-server started for the
run.  The first input byte picks the operation, the rest is its msgpack
payload; both backends must give the same answer (set members compared
sorted) or the same error, else the disagreement is a finding.  Positive
``expires`` values are zeroed first: when a key expires is a matter of timing,
which a comparison call by call cannot hold (the conformance suite tests it).
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgpack

from wascc._providers import library
from wascc.errors import ProviderCallError
from wascc.providers.native import NativeProvider, load_native_provider
from wascc.wire.codec import OP_BIND_ACTOR, OP_REMOVE_ACTOR, SYSTEM_ACTOR, CapabilityConfiguration
from wascc.wire.keys import KeyPair, KeyType

from fuzz.engine import Target

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import ServerProcess, start_redis

OPERATIONS = [
    "Get",
    "Set",
    "Del",
    "Add",
    "Push",
    "ListItemDelete",
    "Range",
    "Clear",
    "SetAdd",
    "SetRemove",
    "SetUnion",
    "SetIntersection",
    "SetQuery",
    "KeyExists",
]
UNORDERED = {"SetUnion", "SetIntersection", "SetQuery"}
KEYS = ["a", "b", "n", "l", "s", ""]
VALUES = ["", "x", "y", "0", "1", "-1", "42", "007", "2147483647", "9223372036854775807", "ü✓"]

MEMORY = KeyPair.generate(KeyType.MODULE).public_key
REDIS = KeyPair.generate(KeyType.MODULE).public_key


class _State:
    server: ServerProcess | None = None
    home: tempfile.TemporaryDirectory[str] | None = None
    provider: NativeProvider | None = None


def setup() -> None:
    _State.home = tempfile.TemporaryDirectory()
    _State.server = start_redis(Path(_State.home.name))
    provider = load_native_provider(library("keyvalue"))
    url = f"redis://127.0.0.1:{_State.server.port}"
    for actor, values in ((MEMORY, {}), (REDIS, {"URL": url})):
        provider.handle_call(
            SYSTEM_ACTOR, OP_BIND_ACTOR, CapabilityConfiguration(actor, values).encode()
        )
    _State.provider = provider


def teardown() -> None:
    if _State.provider is not None:
        for actor in (MEMORY, REDIS):
            config = CapabilityConfiguration(actor, {}).encode()
            _State.provider.handle_call(SYSTEM_ACTOR, OP_REMOVE_ACTOR, config)
        _State.provider.stop()
        _State.provider = None
    if _State.server is not None:
        _State.server.stop()
        _State.server = None
    if _State.home is not None:
        _State.home.cleanup()
        _State.home = None


def _without_expiry(payload: bytes) -> bytes:
    """The payload with a positive `expires` set to 0 (timing is not comparable)."""
    unpacker = msgpack.Unpacker(raw=True, strict_map_key=False)
    unpacker.feed(payload)
    try:
        request = next(unpacker)
    except Exception:  # not msgpack: both backends refuse it the same way
        return payload
    if not isinstance(request, dict):
        return payload
    expires = request.get(b"expires")
    if isinstance(expires, int) and not isinstance(expires, bool) and expires > 0:
        request[b"expires"] = 0
        return bytes(msgpack.packb(request, use_bin_type=False))
    return payload


def _outcome(actor: str, op: str, payload: bytes) -> tuple[str, Any]:
    assert _State.provider is not None
    try:
        reply = _State.provider.handle_call(actor, op, payload)
    except ProviderCallError as exc:
        return "error", str(exc).replace(actor, "<actor>")
    if op in UNORDERED and reply:
        decoded = msgpack.unpackb(reply, raw=True)
        if isinstance(decoded, dict) and isinstance(decoded.get(b"values"), list):
            decoded[b"values"].sort()
        return "ok", decoded
    return "ok", reply


def run(data: bytes) -> None:
    if not data:
        return
    op = OPERATIONS[data[0] % len(OPERATIONS)]
    payload = _without_expiry(data[1:])
    memory = _outcome(MEMORY, op, payload)
    redis = _outcome(REDIS, op, payload)
    if memory != redis:
        raise AssertionError(f"{op} {payload[:80]!r}: memory {memory!r} != redis {redis!r}")
    if memory[0] == "error":
        assert _State.provider is not None
        _State.provider.handle_call(MEMORY, op, payload)  # raises the WasccError: refused


def _request(rng: random.Random, op: str) -> dict[str, Any]:
    key = rng.choice(KEYS)
    value = (
        rng.choice(VALUES)
        if rng.random() < 0.8
        else "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(8)))
    )
    if op in ("SetUnion", "SetIntersection"):
        return {"keys": [rng.choice(KEYS) for _ in range(rng.randrange(4))]}
    if op == "Add":
        return {"key": key, "value": rng.choice([0, 1, -1, 2**31 - 1, -(2**31), 1000])}
    if op == "Set":
        return {"key": key, "value": value, "expires": 0}
    if op == "Range":
        ends = [0, 1, 2, -1, -2, -100, 100, 2**40, -(2**40)]
        return {"key": key, "start": rng.choice(ends), "stop": rng.choice(ends)}
    if op in ("Push", "ListItemDelete", "SetAdd", "SetRemove"):
        return {"key": key, "value": value}
    return {"key": key}


def generate(rng: random.Random) -> bytes:
    index = rng.randrange(len(OPERATIONS))
    request = _request(rng, OPERATIONS[index])
    return bytes([index]) + bytes(msgpack.packb(request))


_seed_rng = random.Random(7)
SEEDS = [
    bytes([i]) + bytes(msgpack.packb(_request(_seed_rng, op)))
    for i, op in enumerate(OPERATIONS)
    for _ in range(3)
]

TARGET = Target(
    name="keyvalue",
    run=run,
    seeds=SEEDS,
    generate=generate,
    deadline=10.0,
    setup=setup,
    teardown=teardown,
)
