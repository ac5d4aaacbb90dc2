"""``wascc:eventstreams``: append-only event streams (CONTRACTS section 3).

An actor appends with ``WriteEvent`` (an :class:`~wascc.wire.codec.Event`; the
incoming ``eventId`` is ignored and the reply, an
:class:`~wascc.wire.codec.EventAck`, carries the store's id, ``<ms>-<seq>``) and
reads with ``QueryStream`` (a :class:`~wascc.wire.codec.StreamQuery`: a time
range in milliseconds since the epoch, both ends inclusive, no range = the
whole stream; ``count`` 0 = all, else the oldest ``count``).

``DeliverEvent`` (the original defined it and never implemented it): for
every stream named in ``STREAMS`` the provider runs one reader per bound
actor (``XREAD BLOCK`` on a connection of its own, or a condition variable
in memory) and dispatches each new event to the actor, in order.  The
subscription starts at the end of the stream when the actor is first bound;
after each delivery the event's id is stored as the actor's cursor on that
stream (Redis key ``wascc:eventstreams:cursor:{actor}:{stream}``), so a
provider restart (or a re-bind) neither repeats nor skips an event.  We
chose a cursor key over a consumer group with ``XACK``: one key per actor
and stream, no pending-entries list to reclaim, the same rule in memory and
in Redis; what it gives up (several provider instances sharing one
subscription's load) a consumer group could add later.  Delivery is
at-least-once only in one window: the provider dying between the dispatch
and the cursor's write redelivers that one event.  An actor error on an
event skips the event (logged); a host that cannot reach the actor, or a
backend that is down, is retried with backoff and nothing is skipped.

Binding values (keys case-insensitive):

============ ========= ==========================================================
``URL``      (none)    ``redis://host:port/db`` (or ``rediss://``, ``unix://``):
                       Redis streams; without it, the in-memory store this
                       process shares between its bindings
``STREAMS``  (none)    comma-separated streams delivered to the actor
``BLOCK_MS`` 500       how long a reader blocks in one ``XREAD`` (stop latency)
============ ========= ==========================================================

The in-memory store agrees with Redis on every rule above, including
refusing an event with no values (Redis cannot store an empty entry).
"""

from __future__ import annotations

from wascc_capabilities.eventstreams.provider import (
    CAPABILITY_ID,
    OP_DELIVER_EVENT,
    OP_QUERY_STREAM,
    OP_WRITE_EVENT,
    EventStreamsProvider,
    StreamSettings,
)

from wascc.hookspecs import hookimpl

__all__ = [
    "CAPABILITY_ID",
    "OP_DELIVER_EVENT",
    "OP_QUERY_STREAM",
    "OP_WRITE_EVENT",
    "EventStreamsProvider",
    "StreamSettings",
    "wascc_providers",
]


@hookimpl
def wascc_providers() -> list[type[EventStreamsProvider]]:
    return [EventStreamsProvider]
