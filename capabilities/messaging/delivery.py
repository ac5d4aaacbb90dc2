"""Per-subscription delivery: a bounded queue and one thread, in order, into one actor.

Transports (the in-process broker, the NATS event loop, paho's network
thread) only :meth:`Subscription.offer` a message: that never blocks, so a
slow actor can stall nothing but its own subscription.  One worker thread
per subscription dispatches ``DeliverMessage`` in arrival order.

**Full policy: drop the newest.**  When a subscription already holds
``MAX_PENDING`` messages or ``MAX_PENDING_BYTES`` bytes, the incoming message
is dropped and counted (``dropped``; the provider's health message and
``MessagingProvider.stats()`` show it), and a warning is logged at most once
a second per subscription.  Blocking the transport instead would stall every
other subscription on the same connection, and would deadlock an actor that
publishes to a subject it subscribes to; dropping the oldest would reorder
what the actor sees after a gap.  Whatever is queued is delivered in order.

An actor's error on ``DeliverMessage`` is logged with the subject and the
actor and counted (``failed``); the subscription goes on.  While the actor is
momentarily not running (it is being replaced), the message waits for the new
module instead of being dropped.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgpack

from wascc.errors import HostStopped, NotBound, NotFound, WasccError

__all__ = ["DeliveryStats", "Subscription"]

log = logging.getLogger(__name__)

OP_DELIVER_MESSAGE = "DeliverMessage"
_WARN_EVERY = 1.0  # seconds between "queue full" warnings of one subscription
_WAIT_FOR_ACTOR = 30.0  # seconds a message waits for an actor being replaced
_pack = msgpack.Packer(use_bin_type=True).pack


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    """Counters of one subscription (since it was made)."""

    actor: str
    subject: str
    queue_group: str
    delivered: int
    failed: int
    dropped: int
    pending: int


Dispatch = Callable[[str, str, bytes], bytes]


class Subscription:
    """One actor's subscription to one subject: a bounded queue drained by one thread."""

    def __init__(
        self,
        actor: str,
        subject: str,
        queue_group: str,
        dispatch: Dispatch,
        *,
        max_pending: int,
        max_pending_bytes: int,
        label: str = "",
    ) -> None:
        self.actor = actor
        self.subject = subject
        self.queue_group = queue_group
        self.label = label or subject
        self._dispatch = dispatch
        self._max_pending = max_pending
        self._max_bytes = max_pending_bytes
        self._queue: collections.deque[tuple[str, str, bytes]] = collections.deque()
        self._bytes = 0
        self._cond = threading.Condition(threading.Lock())
        self._open = True
        self._idle = True
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self._last_warning = 0.0
        self._thread = threading.Thread(
            target=self._run, name=f"wascc-messaging {self.label} -> {actor[:8]}", daemon=True
        )
        self._thread.start()

    def offer(self, subject: str, reply_to: str, body: bytes) -> bool:
        """Queue one message without blocking; False when it was dropped (queue full or closed)."""
        size = len(body)
        with self._cond:
            if not self._open:
                return False
            if len(self._queue) >= self._max_pending or (
                self._queue and self._bytes + size > self._max_bytes
            ):
                self.dropped += 1
                now = time.monotonic()
                warn = now - self._last_warning >= _WARN_EVERY
                if warn:
                    self._last_warning = now
                dropped = self.dropped
            else:
                self._queue.append((subject, reply_to, body))
                self._bytes += size
                if self._idle:
                    self._cond.notify()
                return True
        if warn:
            log.warning(
                "subscription %s of actor %s is full (%d messages or %d bytes pending): "
                "dropping new messages (%d dropped so far)",
                self.label,
                self.actor,
                self._max_pending,
                self._max_bytes,
                dropped,
            )
        return False

    def stats(self) -> DeliveryStats:
        with self._cond:
            pending = len(self._queue)
        return DeliveryStats(
            self.actor,
            self.subject,
            self.queue_group,
            self.delivered,
            self.failed,
            self.dropped,
            pending,
        )

    def close(self, timeout: float = 5.0) -> None:
        """Stop: what is still queued is dropped (and counted); waits for a delivery in flight."""
        with self._cond:
            if not self._open:
                return
            self._open = False
            self.dropped += len(self._queue)
            self._queue.clear()
            self._bytes = 0
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        queue = self._queue
        cond = self._cond
        while True:
            with cond:
                while not queue and self._open:
                    self._idle = True
                    cond.wait()
                self._idle = False
                if not self._open:
                    return
                subject, reply_to, body = queue.popleft()
                self._bytes -= len(body)
            self._deliver(subject, reply_to, body)

    def _deliver(self, subject: str, reply_to: str, body: bytes) -> None:
        payload = _pack({"subject": subject, "replyTo": reply_to, "body": body})
        waited_since = 0.0
        while True:
            try:
                self._dispatch(self.actor, OP_DELIVER_MESSAGE, payload)
                self.delivered += 1
                return
            except NotFound as exc:
                # not running at this instant (being replaced): wait for the new module
                now = time.monotonic()
                waited_since = waited_since or now
                if not self._open or now - waited_since > _WAIT_FOR_ACTOR:
                    self.dropped += 1
                    log.error("dropped a message on %s for actor %s: %s", subject, self.actor, exc)
                    return
                time.sleep(0.01)
            except (HostStopped, NotBound) as exc:
                # the host is stopping, or the actor was unbound while this was queued
                self.dropped += 1
                log.debug("dropped a message on %s for actor %s: %s", subject, self.actor, exc)
                return
            except WasccError as exc:
                self.failed += 1
                log.error(
                    "actor %s failed DeliverMessage on %s (subscription %s): %s",
                    self.actor,
                    subject,
                    self.label,
                    exc,
                )
                return
            except Exception:  # a provider thread must survive anything
                self.failed += 1
                log.exception(
                    "DeliverMessage on %s to actor %s failed unexpectedly", subject, self.actor
                )
                return
