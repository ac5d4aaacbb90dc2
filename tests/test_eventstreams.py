"""wascc:eventstreams in memory and on a real redis-server (CONTRACTS section 3)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from wascc_capabilities import eventstreams
from wascc_capabilities.eventstreams import EventStreamsProvider
from wascc_capabilities.eventstreams.backends import CURSOR_KEY

from wascc import BackendUnavailable, GuestError, Host, ProviderCallError, ProviderError
from wascc.wire.codec import (
    OP_BIND_ACTOR,
    OP_REMOVE_ACTOR,
    SYSTEM_ACTOR,
    CapabilityConfiguration,
    Event,
    EventAck,
    EventList,
    StreamQuery,
    TimeRange,
    pack,
)

from conftest import build_test_actor, call_payload
from servers import ServerProcess

CAP = "wascc:eventstreams"
ACTOR = "M" + "A" * 55


class Recorder:
    """The provider's dispatcher: keeps every DeliverEvent it is handed."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Event]] = []
        self.changed = threading.Condition()

    def dispatch(self, actor: str, operation: str, payload: bytes) -> bytes:
        assert operation == "DeliverEvent"
        with self.changed:
            self.events.append((actor, Event.decode(payload)))
            self.changed.notify_all()
        return b""

    def wait_for(self, count: int) -> list[Event]:
        deadline = time.monotonic() + 20  # only reached when delivery is broken
        with self.changed:
            while len(self.events) < count and time.monotonic() < deadline:
                self.changed.wait(0.1)
            return [e for _, e in self.events]


def bind(provider: EventStreamsProvider, values: dict[str, str], actor: str = ACTOR) -> None:
    config = CapabilityConfiguration(module=actor, values=values)
    provider.handle_call(SYSTEM_ACTOR, OP_BIND_ACTOR, config.encode())


def write(provider: EventStreamsProvider, stream: str, actor: str = ACTOR, **values: str) -> str:
    event = Event(event_id="ignored", stream=stream, values=values)
    ack = EventAck.decode(provider.handle_call(actor, "WriteEvent", event.encode()))
    assert ack.event_id is not None
    return ack.event_id


def query(
    provider: EventStreamsProvider, stream: str, span: tuple[int, int] | None = None, count: int = 0
) -> list[Event]:
    rng = None if span is None else TimeRange(min_time=span[0], max_time=span[1])
    q = StreamQuery(stream_id=stream, range=rng, count=count)
    return list(EventList.decode(provider.handle_call(ACTOR, "QueryStream", q.encode())).events)


def ms(event_id: str) -> int:
    return int(event_id.split("-", maxsplit=1)[0])


@pytest.fixture(params=["memory", "redis"])
def values(request: pytest.FixtureRequest) -> dict[str, str]:
    """Binding values selecting each backend."""
    if request.param == "memory":
        return {}
    server: ServerProcess = request.getfixturevalue("redis_server")
    return {"URL": f"redis://127.0.0.1:{server.port}/0"}


@pytest.fixture
def provider(values: dict[str, str]) -> Iterator[EventStreamsProvider]:
    p = EventStreamsProvider()
    bind(p, values)
    yield p
    p.stop()


def stream_name() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


def test_write_event_answers_the_stores_id(provider: EventStreamsProvider) -> None:
    stream = stream_name()
    first = write(provider, stream, a="1")
    second = write(provider, stream, a="2")
    assert first != "ignored"
    for event_id in (first, second):
        millis, _, seq = event_id.partition("-")
        assert millis.isdigit() and seq.isdigit()
        assert abs(int(millis) - time.time() * 1000) < 60_000
    assert tuple(map(int, second.split("-"))) > tuple(map(int, first.split("-")))
    assert [e.values for e in query(provider, stream)] == [{"a": "1"}, {"a": "2"}]


def test_query_whole_stream_and_count(provider: EventStreamsProvider) -> None:
    stream = stream_name()
    ids = [write(provider, stream, n=str(i)) for i in range(5)]
    got = query(provider, stream)
    assert [e.event_id for e in got] == ids
    assert all(e.stream == stream for e in got)
    assert [e.event_id for e in query(provider, stream, count=2)] == ids[:2]
    assert [e.event_id for e in query(provider, stream, count=0)] == ids  # 0 = all
    assert query(provider, stream_name()) == []  # a stream nobody wrote


def test_query_range_is_inclusive_milliseconds(provider: EventStreamsProvider) -> None:
    stream = stream_name()
    ids = []
    for i in range(3):
        ids.append(write(provider, stream, n=str(i)))
        time.sleep(0.005)  # three distinct milliseconds
    t = [ms(i) for i in ids]
    assert [e.event_id for e in query(provider, stream, (t[1], t[2]))] == ids[1:]
    assert [e.event_id for e in query(provider, stream, (t[0], t[0]))] == ids[:1]
    assert [e.event_id for e in query(provider, stream, (t[0], t[2]), count=2)] == ids[:2]
    assert query(provider, stream, (t[2] + 1, t[2] + 10_000)) == []


def test_an_event_without_values_is_refused_by_both_backends(
    provider: EventStreamsProvider,
) -> None:
    with pytest.raises(ProviderCallError, match="at least one value"):
        write(provider, stream_name())


def test_deliver_event_across_a_provider_restart_neither_repeats_nor_skips(
    values: dict[str, str],
) -> None:
    stream = stream_name()
    writer = EventStreamsProvider()
    bind(writer, values, actor="M" + "W" * 55)
    before = write(writer, stream, actor="M" + "W" * 55, n="before")  # not delivered

    first, seen = EventStreamsProvider(), Recorder()
    first.configure_dispatch(seen)
    bind(first, {**values, "STREAMS": stream, "BLOCK_MS": "50"})
    time.sleep(0.2)  # the subscription starts at the end of the stream
    ids = [write(writer, stream, actor="M" + "W" * 55, n=str(i)) for i in range(5)]
    assert [e.event_id for e in seen.wait_for(5)] == ids
    first.stop()

    # Written while no provider runs: the restarted one delivers exactly these.
    ids += [write(writer, stream, actor="M" + "W" * 55, n=str(i)) for i in range(5, 10)]
    second, seen_again = EventStreamsProvider(), Recorder()
    second.configure_dispatch(seen_again)
    bind(second, {**values, "STREAMS": stream, "BLOCK_MS": "50"})
    ids += [write(writer, stream, actor="M" + "W" * 55, n=str(i)) for i in range(10, 12)]
    got = seen_again.wait_for(7)
    second.stop()
    writer.stop()
    assert [e.event_id for e in got] == ids[5:]
    assert [e.values["n"] for e in seen.wait_for(5) + got] == [str(i) for i in range(12)]
    assert before not in [e.event_id for _, e in seen.events]
    assert all(actor == ACTOR for actor, _ in seen.events + seen_again.events)


def test_remove_actor_stops_delivery_and_keeps_the_cursor(values: dict[str, str]) -> None:
    stream = stream_name()
    p, seen = EventStreamsProvider(), Recorder()
    p.configure_dispatch(seen)
    bind(p, {**values, "STREAMS": stream, "BLOCK_MS": "50"})
    time.sleep(0.1)
    first = write(p, stream, n="1")
    seen.wait_for(1)
    config = CapabilityConfiguration(module=ACTOR, values={})
    p.handle_call(SYSTEM_ACTOR, OP_REMOVE_ACTOR, config.encode())
    bind(p, values)  # bound again without STREAMS: writes work, nothing is delivered
    write(p, stream, n="2")
    time.sleep(0.2)
    p.stop()
    assert [e.event_id for _, e in seen.events] == [first]


def test_cursor_is_a_redis_key_per_actor_and_stream(redis_server: ServerProcess) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    stream = stream_name()
    p, seen = EventStreamsProvider(), Recorder()
    p.configure_dispatch(seen)
    bind(p, {"URL": url, "STREAMS": stream, "BLOCK_MS": "50"})
    time.sleep(0.1)
    last = write(p, stream, n="1")
    seen.wait_for(1)
    p.stop()
    client = redis.Redis.from_url(url, decode_responses=True)
    assert client.get(CURSOR_KEY.format(actor=ACTOR, stream=stream)) == last
    client.close()


def test_bad_binding_values_are_refused() -> None:
    p = EventStreamsProvider()
    with pytest.raises(ProviderError, match="URL"):
        bind(p, {"URL": "http://example.com"})
    with pytest.raises(ProviderError, match="BLOCK_MS"):
        bind(p, {"BLOCK_MS": "soon"})
    p.stop()


def test_a_rebind_keeps_serving_calls_and_moves_delivery_to_the_new_streams(
    values: dict[str, str],
) -> None:
    one, two = stream_name(), stream_name()
    p, seen = EventStreamsProvider(), Recorder()
    p.configure_dispatch(seen)
    bind(p, {**values, "STREAMS": one, "BLOCK_MS": "50"})
    time.sleep(0.1)
    write(p, one, n="1")
    seen.wait_for(1)
    bind(p, {**values, "STREAMS": two, "BLOCK_MS": "50"})  # a reconfiguration
    time.sleep(0.1)
    write(p, one, n="not delivered")
    write(p, two, n="2")
    got = seen.wait_for(2)
    time.sleep(0.1)
    p.stop()
    assert [(e.stream, e.values["n"]) for e in got] == [(one, "1"), (two, "2")]
    assert len(seen.events) == 2


# ---- Redis stopped mid-run --------------------------------------------------------


@pytest.fixture
def actor_call(host: Host, sign: Callable[..., tuple[bytes, object]]) -> Callable[..., bytes]:
    """actor_call(op, payload) -> the reply of the test actor's host call to eventstreams."""
    signed, _ = sign(build_test_actor(), caps=[CAP])
    actor = host.add_actor(signed)
    holder: dict[str, str] = {"actor": actor}

    def call(operation: str, payload: bytes) -> bytes:
        return host.call_actor(holder["actor"], "Call", call_payload(CAP, operation, payload))

    call.actor = actor  # type: ignore[attr-defined]
    return call


def test_redis_stopped_mid_run_gives_the_actor_errors_then_recovers(
    host: Host, redis_server: ServerProcess, actor_call: Callable[..., bytes]
) -> None:
    stream = stream_name()
    host.add_provider(EventStreamsProvider())
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    host.set_binding(actor_call.actor, CAP, values={"URL": url})  # type: ignore[attr-defined]
    event = Event(stream=stream, values={"k": "v"}).encode()
    assert EventAck.decode(actor_call("WriteEvent", event)).event_id
    redis_server.stop()
    try:
        with pytest.raises(GuestError, match="cannot reach Redis"):
            actor_call("WriteEvent", event)
        with pytest.raises(GuestError, match="cannot reach Redis"):
            actor_call("QueryStream", StreamQuery(stream_id=stream).encode())
    finally:
        redis_server.start()
    assert EventAck.decode(actor_call("WriteEvent", event)).event_id
    got = EventList.decode(actor_call("QueryStream", StreamQuery(stream_id=stream).encode()))
    assert [e.values for e in got.events] == [{"k": "v"}]  # a fresh server: only the new one


def test_a_reader_survives_a_redis_restart(redis_server: ServerProcess) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    stream = stream_name()
    p, seen = EventStreamsProvider(), Recorder()
    p.configure_dispatch(seen)
    bind(p, {"URL": url, "STREAMS": stream, "BLOCK_MS": "50"})
    time.sleep(0.1)
    write(p, stream, n="1")
    seen.wait_for(1)
    redis_server.stop()
    try:
        with pytest.raises(BackendUnavailable) as caught:
            write(p, stream, n="lost")
        assert isinstance(caught.value, ConnectionError)
        time.sleep(0.3)  # the reader fails and backs off
    finally:
        redis_server.start()
    time.sleep(0.1)
    write(p, stream, n="2")
    got = seen.wait_for(2)
    p.stop()
    assert [e.values["n"] for e in got] == ["1", "2"]


def test_registers_through_the_wascc_providers_hook() -> None:
    assert eventstreams.wascc_providers() == [EventStreamsProvider]
    with Host(plugins=[eventstreams], health_interval=0, load_entry_points=False) as h:
        assert h.provider_factories()[CAP] is EventStreamsProvider


def test_negative_counts_and_times_are_refused_by_both_backends(
    provider: EventStreamsProvider,
) -> None:
    stream = stream_name()
    write(provider, stream, a="1")
    for bad in (
        {"streamId": stream, "count": -1},
        {"streamId": stream, "range": {"minTime": -5, "maxTime": 10}},
        {"streamId": stream, "range": {"minTime": 0, "maxTime": -1}},
    ):
        with pytest.raises(ProviderCallError, match="must not be negative"):
            provider.handle_call(ACTOR, "QueryStream", pack(bad))


def test_a_count_past_what_redis_can_count_means_all(provider: EventStreamsProvider) -> None:
    stream = stream_name()
    ids = [write(provider, stream, a=str(i)) for i in range(3)]
    assert [e.event_id for e in query(provider, stream, count=2**64 - 1)] == ids
