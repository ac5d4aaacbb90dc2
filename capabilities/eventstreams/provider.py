"""The ``wascc:eventstreams`` provider: WriteEvent, QueryStream, DeliverEvent."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from wascc_capabilities._values import binding_values, read_int
from wascc_capabilities.eventstreams.backends import (
    MemoryBackend,
    MemoryStore,
    RedisBackend,
    StreamBackend,
)

from wascc.errors import (
    ActorTrap,
    BackendUnavailable,
    GuestError,
    ProviderCallError,
    ProviderError,
    WasccError,
)
from wascc.logs import provider_logger
from wascc.providers.base import CapabilityProvider
from wascc.wire.codec import (
    CapabilityConfiguration,
    CapabilityDescriptor,
    Direction,
    Event,
    EventAck,
    EventList,
    OperationDescriptor,
    StreamQuery,
)

__all__ = [
    "CAPABILITY_ID",
    "OP_DELIVER_EVENT",
    "OP_QUERY_STREAM",
    "OP_WRITE_EVENT",
    "EventStreamsProvider",
    "StreamSettings",
]

CAPABILITY_ID = "wascc:eventstreams"
OP_WRITE_EVENT = "WriteEvent"
OP_QUERY_STREAM = "QueryStream"
OP_DELIVER_EVENT = "DeliverEvent"

log = provider_logger(__name__, CAPABILITY_ID)

_BATCH = 100
_MAX_BACKOFF = 5.0


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """One binding's configuration, read from its BindActor values."""

    url: str = ""
    streams: tuple[str, ...] = ()
    block_ms: int = 500

    @classmethod
    def from_values(cls, values: dict[str, str], who: str) -> StreamSettings:
        v = binding_values(values)
        url = v.get("URL", "")
        if url and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ProviderError(
                f"{CAPABILITY_ID}: URL={url!r} for {who} is not redis://, rediss:// or unix://"
            )
        streams = tuple(
            dict.fromkeys(s.strip() for s in v.get("STREAMS", "").split(",") if s.strip())
        )
        block_ms = read_int(v, "BLOCK_MS", 500, 10, f"{CAPABILITY_ID} for {who}")
        return cls(url=url, streams=streams, block_ms=block_ms)

    def backend(self, store: MemoryStore | None = None) -> StreamBackend:
        """Redis at ``url``, else memory (``store``, or the process-wide one)."""
        if self.url:
            return RedisBackend(self.url, block_ms=self.block_ms)
        return MemoryBackend(store)


class _Subscriber:
    """Delivers the binding's streams to its actor, in order, from one thread.

    The cursor of each stream is saved after each delivery, so a restarted
    provider resumes after the last event the actor got.  An actor that
    answers an event with an error (or traps) has had it: the cursor moves on
    (otherwise one bad event would block its stream for ever).  Any other
    failure (the host cannot reach the actor, the backend is down) is retried
    with backoff without moving the cursor.
    """

    def __init__(
        self, provider: EventStreamsProvider, actor: str, settings: StreamSettings
    ) -> None:
        self._provider = provider
        self._actor = actor
        self._settings = settings
        self._backend = settings.backend(provider.memory_store)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"eventstreams-{actor[:8]}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._backend.wake()
        self._thread.join(self._settings.block_ms / 1000 + 10)
        self._backend.close()

    def _cursors(self) -> dict[str, str]:
        cursors: dict[str, str] = {}
        for stream in self._settings.streams:
            cursor = self._backend.load_cursor(self._actor, stream)
            if cursor is None:  # first subscription: from now on
                cursor = self._backend.last_id(stream)
                self._backend.save_cursor(self._actor, stream, cursor)
            cursors[stream] = cursor
        return cursors

    def _run(self) -> None:
        cursors: dict[str, str] | None = None
        backoff = 0.05
        while not self._stop.is_set():
            try:
                if cursors is None:
                    cursors = self._cursors()
                events = self._backend.read_after(cursors, self._settings.block_ms, _BATCH)
                for event in events:
                    if self._stop.is_set() or not self._deliver(event):
                        break
                    self._backend.save_cursor(self._actor, event.stream, event.event_id)
                    cursors[event.stream] = event.event_id
                else:
                    backoff = 0.05
                    continue
            except BackendUnavailable as exc:
                log.warning("DeliverEvent to %s waits for its backend: %s", self._actor, exc)
            except WasccError as exc:
                log.error("DeliverEvent to %s: %s", self._actor, exc)
            except Exception:  # a bug must not end the subscription silently
                log.exception("DeliverEvent to %s failed unexpectedly", self._actor)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    def _deliver(self, event: Event) -> bool:
        """Dispatch one event; False if it must be tried again later."""
        dispatcher = self._provider.dispatcher
        if dispatcher is None:
            return False
        try:
            dispatcher.dispatch(self._actor, OP_DELIVER_EVENT, event.encode())
        except (GuestError, ActorTrap) as exc:
            log.warning(
                "actor %s failed on event %s of %r (skipped): %s",
                self._actor,
                event.event_id,
                event.stream,
                exc,
            )
        except WasccError as exc:
            log.warning("cannot deliver event %s to %s yet: %s", event.event_id, self._actor, exc)
            return False
        return True


@dataclass
class _Binding:
    settings: StreamSettings
    backend: StreamBackend
    subscriber: _Subscriber | None

    def close(self) -> None:
        if self.subscriber is not None:
            self.subscriber.stop()
        self.backend.close()


class EventStreamsProvider(CapabilityProvider):
    """``wascc:eventstreams`` in memory (no ``URL``) or on Redis streams (``URL``)."""

    capability_id = CAPABILITY_ID

    def __init__(self, *, memory_store: MemoryStore | None = None) -> None:
        super().__init__()
        #: where memory bindings keep their streams (None: the process-wide store)
        self.memory_store = memory_store
        self._bindings: dict[str, _Binding] = {}
        self._lock = threading.Lock()

    def descriptor(self) -> CapabilityDescriptor:
        return CapabilityDescriptor(
            id=CAPABILITY_ID,
            name="wascc event streams",
            version="0.1.0",
            revision=1,
            long_description="append-only event streams in memory or on Redis streams",
            supported_operations=(
                OperationDescriptor(OP_WRITE_EVENT, Direction.TO_PROVIDER, "append an event"),
                OperationDescriptor(OP_QUERY_STREAM, Direction.TO_PROVIDER, "read a time range"),
                OperationDescriptor(
                    OP_DELIVER_EVENT, Direction.TO_ACTOR, "an event of a stream named in STREAMS"
                ),
            ),
        )

    def bind_actor(self, config: CapabilityConfiguration) -> None:
        actor = config.module
        settings = StreamSettings.from_values(config.values, f"actor {actor}")
        backend = settings.backend(self.memory_store)
        with self._lock:
            old = self._bindings.get(actor)
        # One reader per actor: the old one stops before the new one starts, so no
        # event is delivered twice; the new one resumes from the stored cursors.
        # Calls keep using the old backend until the new binding is in place.
        if old is not None and old.subscriber is not None:
            old.subscriber.stop()
        subscriber = _Subscriber(self, actor, settings) if settings.streams else None
        with self._lock:
            self._bindings[actor] = _Binding(settings, backend, subscriber)
        if old is not None:
            old.backend.close()
        if subscriber is not None:
            subscriber.start()
        log.info(
            "bound %s (%s%s)",
            actor,
            "Redis" if settings.url else "memory",
            f", delivering {', '.join(settings.streams)}" if settings.streams else "",
        )

    def remove_actor(self, config: CapabilityConfiguration) -> None:
        with self._lock:
            binding = self._bindings.pop(config.module, None)
        if binding is not None:
            binding.close()  # the cursors stay: a re-bound actor resumes where it left off

    def stop(self) -> None:
        with self._lock:
            bindings = list(self._bindings.values())
            self._bindings.clear()
        for binding in bindings:
            binding.close()

    def _backend(self, actor: str) -> StreamBackend:
        with self._lock:
            binding = self._bindings.get(actor)
        if binding is None:
            raise ProviderCallError(f"{CAPABILITY_ID}: actor {actor} is not bound")
        return binding.backend

    def handle(self, actor: str, operation: str, msg: bytes) -> bytes:
        if operation == OP_WRITE_EVENT:
            event = Event.decode(msg)
            event_id = self._backend(actor).write(event.stream, event.values)
            return EventAck(event_id=event_id).encode()
        if operation == OP_QUERY_STREAM:
            query = StreamQuery.decode(msg)
            if not query.stream_id:
                raise ProviderCallError(
                    "QueryStream needs a stream (StreamQuery.streamId is empty)"
                )
            lo, hi = (
                (None, None)
                if query.range is None
                else (query.range.min_time, query.range.max_time)
            )
            if query.count < 0 or (lo is not None and lo < 0) or (hi is not None and hi < 0):
                # u64 on the wire; Redis and memory would read a negative one differently
                raise ProviderCallError(
                    f"QueryStream {query.stream_id!r}: count and times must not be negative"
                )
            count = 0 if query.count >= 2**63 else query.count  # more than Redis counts = all
            events = self._backend(actor).query(query.stream_id, lo, hi, count)
            return EventList(events=tuple(events)).encode()
        raise ProviderCallError(f"{CAPABILITY_ID} has no operation {operation!r}")
