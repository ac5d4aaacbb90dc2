"""wascc:eventstreams: an actor's WriteEvent / QueryStream payloads on the memory backend."""

from __future__ import annotations

import random

from wascc_capabilities.eventstreams import EventStreamsProvider
from wascc_capabilities.eventstreams.backends import MemoryStore

from wascc.wire.codec import CapabilityConfiguration, Event, StreamQuery, TimeRange, pack

from fuzz.engine import Target

ACTOR = "M" + "E" * 55
OPS = ["WriteEvent", "QueryStream"]
_state: dict[str, object] = {"cases": 0}


def setup() -> None:
    store = MemoryStore()
    provider = EventStreamsProvider(memory_store=store)
    provider.handle_call(
        "system", "BindActor", CapabilityConfiguration(module=ACTOR, values={}).encode()
    )
    _state.update(provider=provider, store=store, cases=0)


def teardown() -> None:
    provider = _state.pop("provider")
    assert isinstance(provider, EventStreamsProvider)
    provider.stop()


def run(data: bytes) -> None:
    provider, store = _state["provider"], _state["store"]
    assert isinstance(provider, EventStreamsProvider) and isinstance(store, MemoryStore)
    cases = _state["cases"]
    assert isinstance(cases, int)
    _state["cases"] = cases + 1
    if cases % 1000 == 999:  # streams only grow (as in Redis): start again now and then
        with store.changed:
            store.streams.clear()
    if data:
        provider.handle(ACTOR, OPS[data[0] % len(OPS)], data[1:])


def generate(rng: random.Random) -> bytes:
    stream = rng.choice(["s", "", "t", "x" * 100])
    if rng.random() < 0.5:
        values = {
            rng.choice(["a", "b", ""]): rng.choice(["1", "", "é"]) for _ in range(rng.randrange(3))
        }
        return (
            b"\x00"
            + Event(event_id=rng.choice(["", "1-1", "x"]), stream=stream, values=values).encode()
        )
    edges = [0, 1, -1, 2**63 - 1, -(2**63), 2**64 - 1]
    rng_range = rng.choice(
        [None, TimeRange(min_time=rng.choice(edges), max_time=rng.choice(edges))]
    )
    if rng.random() < 0.2:
        return b"\x01" + pack({"streamId": stream, "range": rng.choice(edges), "count": -1})
    return (
        b"\x01"
        + StreamQuery(
            stream_id=stream, range=rng_range, count=rng.choice([*edges[:4], 2**64 - 1])
        ).encode()
    )


TARGET = Target(
    name="eventstreams",
    run=run,
    seeds=[
        b"\x00" + Event(stream="s", values={"a": "1"}).encode(),
        b"\x00" + Event(stream="s", values={"a": "1", "b": "2"}).encode(),
        b"\x01" + StreamQuery(stream_id="s").encode(),
        b"\x01" + StreamQuery(stream_id="s", range=TimeRange(0, 2**62), count=1).encode(),
    ],
    generate=generate,
    deadline=10.0,
    setup=setup,
    teardown=teardown,
)
