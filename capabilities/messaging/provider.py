"""The ``wascc:messaging`` provider: one per binding name, a backend per bound actor."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgpack

from wascc.errors import CodecError, ProviderCallError, ProviderError
from wascc.logs import provider_logger
from wascc.providers.base import CapabilityProvider
from wascc.wire.codec import (
    BrokerMessage,
    CapabilityConfiguration,
    CapabilityDescriptor,
    Direction,
    HealthResponse,
    OperationDescriptor,
    RequestMessage,
)

from .backend import Backend, BackendStatus, LocalBackend
from .broker import Broker
from .config import CAPABILITY_ID, Settings
from .delivery import DeliveryStats, Subscription
from .subjects import check_literal

if TYPE_CHECKING:
    from .nats import LoopThread

__all__ = [
    "CAPABILITY_ID",
    "OP_DELIVER_MESSAGE",
    "OP_PUBLISH",
    "OP_REQUEST",
    "MessagingProvider",
    "MessagingStats",
    "decode_broker_message",
    "read_broker_message",
]

log = provider_logger(__name__, CAPABILITY_ID)

OP_PUBLISH = "Publish"
OP_REQUEST = "Request"
OP_DELIVER_MESSAGE = "DeliverMessage"


def _unpack(msg: bytes) -> object:
    return msgpack.unpackb(msg, raw=False)


@dataclass(frozen=True, slots=True)
class MessagingStats:
    """Counters of one provider (closed subscriptions included in the totals)."""

    subscriptions: tuple[DeliveryStats, ...]
    connections: dict[str, BackendStatus]  # by actor
    delivered: int
    failed: int
    dropped: int  # subscription queue full (see delivery.py), or closed with messages queued
    publish_refused: int  # publishes refused while disconnected (buffer full)
    transport_dropped: int  # dropped by the client library (NATS slow consumer)
    disconnects: int
    reconnects: int


@dataclass
class _Bound:
    """One bound actor: its settings, its backend and its subscriptions."""

    settings: Settings
    backend: Backend
    subscriptions: list[tuple[Subscription, object]] = field(default_factory=list)


class MessagingProvider(CapabilityProvider):
    """``wascc:messaging`` over the in-process broker, NATS or MQTT (chosen by ``URL``)."""

    capability_id = CAPABILITY_ID

    def __init__(self) -> None:
        super().__init__()
        #: The embedded broker every binding without a URL shares; plain Python may use it.
        self.broker = Broker()
        self._local = LocalBackend(self.broker)
        self._actors: dict[str, _Bound] = {}
        self._lock = threading.Lock()
        self._closed_totals = [0, 0, 0]  # delivered, failed, dropped by removed subscriptions
        self._nats_loop: LoopThread | None = None

    def descriptor(self) -> CapabilityDescriptor:
        return CapabilityDescriptor(
            id=CAPABILITY_ID,
            name="wascc messaging",
            version="0.1.0",
            revision=1,
            long_description="publish, request and subscribe: in-process broker, NATS or MQTT",
            supported_operations=(
                OperationDescriptor(OP_PUBLISH, Direction.TO_PROVIDER, "publish a BrokerMessage"),
                OperationDescriptor(
                    OP_REQUEST, Direction.TO_PROVIDER, "request/reply; the reply's body"
                ),
                OperationDescriptor(
                    OP_DELIVER_MESSAGE, Direction.TO_ACTOR, "a message on a subscribed subject"
                ),
            ),
        )

    # ---- binding -----------------------------------------------------------------------

    def bind_actor(self, config: CapabilityConfiguration) -> None:
        actor = config.module
        settings = Settings.from_values(config.values, f"actor {actor}")
        backend = self._backend(settings, actor)
        bound = _Bound(settings, backend)
        # bound before the first subscription: its first message may make the actor publish
        with self._lock:
            old = self._actors.pop(actor, None)
            self._actors[actor] = bound
        if old is not None:
            self._release(old)
        try:
            for subject in settings.subscriptions:
                sub = Subscription(
                    actor,
                    subject,
                    settings.queue_group,
                    self._dispatch,
                    max_pending=settings.max_pending,
                    max_pending_bytes=settings.max_pending_bytes,
                    label=f"{subject}"
                    + (f" ({settings.queue_group})" if settings.queue_group else ""),
                )
                try:
                    handle = backend.subscribe(subject, settings.queue_group, sub.offer)
                except BaseException:
                    sub.close()
                    raise
                bound.subscriptions.append((sub, handle))
        except BaseException:
            with self._lock:
                if self._actors.get(actor) is bound:
                    del self._actors[actor]
            self._release(bound)
            raise
        log.info(
            "bound %s on %s: %s",
            actor,
            backend.name,
            ", ".join(settings.subscriptions) or "no subscriptions",
        )

    def _backend(self, settings: Settings, actor: str) -> Backend:
        kind = settings.backend
        if kind == "local":
            return self._local
        label = actor[:12]
        if kind == "nats":
            from .nats import LoopThread, NatsBackend  # noqa: PLC0415 (loaded when used)

            with self._lock:
                if self._nats_loop is None:
                    self._nats_loop = LoopThread(f"wascc-nats {CAPABILITY_ID}")
                loop = self._nats_loop
            return NatsBackend(settings, label, loop)
        from .mqtt import MqttBackend  # noqa: PLC0415

        return MqttBackend(settings, label)

    def remove_actor(self, config: CapabilityConfiguration) -> None:
        with self._lock:
            bound = self._actors.pop(config.module, None)
        if bound is not None:
            self._release(bound)

    def _release(self, bound: _Bound) -> None:
        for sub, handle in bound.subscriptions:
            try:
                bound.backend.unsubscribe(handle)
            finally:
                sub.close()
                done = sub.stats()
                with self._lock:
                    self._closed_totals[0] += done.delivered
                    self._closed_totals[1] += done.failed
                    self._closed_totals[2] += done.dropped
        bound.subscriptions.clear()
        if bound.backend is not self._local:
            bound.backend.close()

    def stop(self) -> None:
        with self._lock:
            bound = list(self._actors.values())
            self._actors.clear()
        for b in bound:
            self._release(b)
        with self._lock:
            loop, self._nats_loop = self._nats_loop, None
        if loop is not None:
            loop.stop()

    def _dispatch(self, actor: str, operation: str, payload: bytes) -> bytes:
        dispatcher = self.dispatcher
        if dispatcher is None:
            raise ProviderError(f"{CAPABILITY_ID} has no dispatcher yet")
        return dispatcher.dispatch(actor, operation, payload)

    # ---- calls from actors ----------------------------------------------------------------

    def handle(self, actor: str, operation: str, msg: bytes) -> bytes:
        bound = self._actors.get(actor)
        if operation == OP_PUBLISH:
            subject, reply_to, body = read_broker_message(msg)
            check_literal(subject)
            if reply_to:
                check_literal(reply_to)
            self._backend_of(bound, actor, operation).publish(subject, reply_to, body)
            return b""
        if operation == OP_REQUEST:
            request = RequestMessage.decode(msg)
            check_literal(request.subject)
            backend = self._backend_of(bound, actor, operation)
            assert bound is not None
            timeout_ms = (
                request.timeout if request.timeout > 0 else bound.settings.request_timeout_ms
            )
            return backend.request(request.subject, request.body, timeout_ms / 1000)
        raise ProviderCallError(f"{CAPABILITY_ID} has no operation {operation!r}")

    @staticmethod
    def _backend_of(bound: _Bound | None, actor: str, operation: str) -> Backend:
        if bound is None:
            raise ProviderCallError(f"{operation}: actor {actor} is not bound to {CAPABILITY_ID}")
        return bound.backend

    # ---- what it lost, and health ----------------------------------------------------------

    def stats(self) -> MessagingStats:
        """What was delivered, failed and lost: per subscription and per connection."""
        with self._lock:
            bound = dict(self._actors)
            delivered, failed, dropped = self._closed_totals
        subs = tuple(sub.stats() for b in bound.values() for sub, _ in b.subscriptions)
        conns = {actor: b.backend.status() for actor, b in bound.items()}
        return MessagingStats(
            subscriptions=subs,
            connections=conns,
            delivered=delivered + sum(s.delivered for s in subs),
            failed=failed + sum(s.failed for s in subs),
            dropped=dropped + sum(s.dropped for s in subs),
            publish_refused=sum(c.publish_refused for c in conns.values()),
            transport_dropped=sum(c.transport_dropped for c in conns.values()),
            disconnects=sum(c.disconnects for c in conns.values()),
            reconnects=sum(c.reconnects for c in conns.values()),
        )

    def dropped(self) -> int:
        """Messages dropped so far because a subscription's queue was full (or closed)."""
        return self.stats().dropped

    def health(self) -> HealthResponse:
        """Healthy while every connection is up; the message carries the loss counters."""
        stats = self.stats()
        down = sorted({c.detail for c in stats.connections.values() if not c.connected})
        message = (
            f"{len(stats.subscriptions)} subscriptions, {stats.delivered} delivered, "
            f"{stats.dropped} dropped, {stats.failed} failed, "
            f"{stats.publish_refused} publishes refused"
        )
        if down:
            message += "; " + "; ".join(down)
        return HealthResponse(healthy=not down, message=message)


def read_broker_message(msg: bytes) -> tuple[str, str, bytes]:
    """(subject, reply_to, body) of a BrokerMessage: a fast path for the common shape.

    A map with a str ``subject``, a str ``replyTo`` and bin ``body`` (what every
    current SDK writes) is read with one msgpack call; anything else goes
    through :func:`decode_broker_message` and the codec's rules.
    """
    try:
        obj = _unpack(msg)
    except Exception:  # trailing bytes, garbage: the codec decides
        obj = None
    if type(obj) is dict:
        subject = obj.get("subject")
        reply_to = obj.get("replyTo", "")
        body = obj.get("body", b"")
        if type(subject) is str and type(reply_to) is str and type(body) is bytes:
            if not reply_to and "reply_to" in obj:
                return _slow_read(msg)
            return subject, reply_to, body
    return _slow_read(msg)


def _slow_read(msg: bytes) -> tuple[str, str, bytes]:
    message = decode_broker_message(msg)
    return message.subject, message.reply_to, message.body


def decode_broker_message(msg: bytes) -> BrokerMessage:
    """A BrokerMessage, reading ``reply_to`` as well as ``replyTo`` (CONTRACTS section 3)."""
    message = BrokerMessage.decode(msg)
    if not message.reply_to and b"reply_to" in msg:
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        unpacker.feed(msg)
        try:
            raw = next(unpacker)  # trailing bytes are ignored, as the original did
        except (ValueError, StopIteration) as exc:
            raise CodecError(f"BrokerMessage: {exc}") from exc
        reply = raw.get("reply_to") if isinstance(raw, dict) else None
        if isinstance(reply, bytes):
            reply = reply.decode("utf-8", "replace")
        if isinstance(reply, str) and reply:
            return BrokerMessage(message.subject, reply, message.body)
    return message
