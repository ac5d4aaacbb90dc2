"""Where event streams live: in this process, or in Redis streams.

Both backends speak Redis stream ids (``<milliseconds>-<sequence>``, rising
within a stream) and keep, per (actor, stream), the id of the last event
delivered to that actor: the cursor that lets a restarted provider resume
exactly after it.
"""

from __future__ import annotations

import bisect
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from wascc.errors import BackendUnavailable, ProviderCallError, ProviderError
from wascc.wire.codec import Event

__all__ = [
    "CURSOR_KEY",
    "MemoryBackend",
    "MemoryStore",
    "RedisBackend",
    "StreamBackend",
    "format_id",
    "parse_id",
]

#: The Redis key holding an actor's cursor on a stream: ``{actor}`` and ``{stream}``.
CURSOR_KEY = "wascc:eventstreams:cursor:{actor}:{stream}"
_MAX_SEQ = 2**64 - 1


def parse_id(text: str) -> tuple[int, int]:
    """``"1588000000000-3"`` -> (1588000000000, 3); a bare time means sequence 0."""
    ms, _, seq = text.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        raise ProviderCallError(f"{text!r} is not a stream id (<ms>-<seq>)") from None


def format_id(key: tuple[int, int]) -> str:
    return f"{key[0]}-{key[1]}"


def _check_event(stream: str, values: Mapping[str, str]) -> None:
    if not stream:
        raise ProviderCallError("WriteEvent needs a stream name (Event.stream is empty)")
    if not values:
        # Redis refuses an XADD without fields; the memory backend agrees with it.
        raise ProviderCallError(
            f"WriteEvent to {stream!r}: an event needs at least one value "
            "(a Redis stream entry cannot be empty)"
        )


class StreamBackend(ABC):
    """One binding's view of its streams and cursors."""

    @abstractmethod
    def write(self, stream: str, values: Mapping[str, str]) -> str:
        """Append an event; its store-assigned id."""

    @abstractmethod
    def query(self, stream: str, min_ms: int | None, max_ms: int | None, count: int) -> list[Event]:
        """Events with ``min_ms <= time <= max_ms`` (None = unbounded), oldest first.

        ``count`` 0 = all, else the oldest ``count``."""

    @abstractmethod
    def read_after(self, cursors: Mapping[str, str], block_ms: int, count: int) -> list[Event]:
        """Events after each stream's cursor, in order; waits up to ``block_ms`` for one."""

    @abstractmethod
    def last_id(self, stream: str) -> str:
        """The id of the newest event of ``stream``, ``"0-0"`` when it has none."""

    @abstractmethod
    def load_cursor(self, actor: str, stream: str) -> str | None:
        """The last id delivered to ``actor`` from ``stream``, None if never stored."""

    @abstractmethod
    def save_cursor(self, actor: str, stream: str, event_id: str) -> None:
        """Remember that ``event_id`` was delivered to ``actor``."""

    def wake(self) -> None:  # noqa: B027
        """Cut a blocking :meth:`read_after` short (a reader is stopping)."""

    def close(self) -> None:  # noqa: B027
        """Release connections."""


# ---- memory -------------------------------------------------------------------------


@dataclass
class _Stream:
    keys: list[tuple[int, int]] = field(default_factory=list)
    values: list[dict[str, str]] = field(default_factory=list)


class MemoryStore:
    """The process-wide in-memory streams: every memory binding of this process shares
    them (as bindings share one Redis), so a provider restarted in-process resumes."""

    def __init__(self) -> None:
        self.streams: dict[str, _Stream] = {}
        self.cursors: dict[tuple[str, str], str] = {}
        self.changed = threading.Condition()


_STORE = MemoryStore()


class MemoryBackend(StreamBackend):
    """Streams in this process's memory (the embedded default); lost when it exits."""

    def __init__(self, store: MemoryStore | None = None) -> None:
        self._store = store or _STORE
        self._woken = False

    def write(self, stream: str, values: Mapping[str, str]) -> str:
        _check_event(stream, values)
        store = self._store
        with store.changed:
            s = store.streams.setdefault(stream, _Stream())
            now = int(time.time() * 1000)
            last = s.keys[-1] if s.keys else (0, 0)
            key = (now, 0) if now > last[0] else (last[0], last[1] + 1)
            s.keys.append(key)
            s.values.append(dict(values))
            store.changed.notify_all()
        return format_id(key)

    def query(self, stream: str, min_ms: int | None, max_ms: int | None, count: int) -> list[Event]:
        with self._store.changed:
            s = self._store.streams.get(stream)
            if s is None:
                return []
            lo = 0 if min_ms is None else bisect.bisect_left(s.keys, (min_ms, 0))
            hi = len(s.keys) if max_ms is None else bisect.bisect_right(s.keys, (max_ms, _MAX_SEQ))
            if count:
                hi = min(hi, lo + count)
            return [
                Event(event_id=format_id(s.keys[i]), stream=stream, values=dict(s.values[i]))
                for i in range(lo, max(lo, hi))
            ]

    def _after(self, cursors: Mapping[str, str], count: int) -> list[Event]:
        found: list[Event] = []
        for stream, cursor in cursors.items():
            s = self._store.streams.get(stream)
            if s is None:
                continue
            start = bisect.bisect_right(s.keys, parse_id(cursor))
            for i in range(start, min(len(s.keys), start + count)):
                found.append(
                    Event(event_id=format_id(s.keys[i]), stream=stream, values=dict(s.values[i]))
                )
        return found

    def read_after(self, cursors: Mapping[str, str], block_ms: int, count: int) -> list[Event]:
        deadline = time.monotonic() + block_ms / 1000
        with self._store.changed:
            while True:
                found = self._after(cursors, count)
                left = deadline - time.monotonic()
                if found or left <= 0 or self._woken:
                    return found
                self._store.changed.wait(left)

    def last_id(self, stream: str) -> str:
        with self._store.changed:
            s = self._store.streams.get(stream)
            return format_id(s.keys[-1]) if s and s.keys else "0-0"

    def load_cursor(self, actor: str, stream: str) -> str | None:
        with self._store.changed:
            return self._store.cursors.get((actor, stream))

    def save_cursor(self, actor: str, stream: str, event_id: str) -> None:
        with self._store.changed:
            self._store.cursors[(actor, stream)] = event_id

    def wake(self) -> None:
        with self._store.changed:
            self._woken = True
            self._store.changed.notify_all()


# ---- Redis --------------------------------------------------------------------------


class RedisBackend(StreamBackend):
    """Redis streams (``XADD`` / ``XRANGE`` / ``XREAD BLOCK``); cursors are plain keys
    (:data:`CURSOR_KEY`), so they live and die with the streams themselves."""

    def __init__(self, url: str, *, block_ms: int = 500) -> None:
        # redis-py's command signatures are typed for every reply mode at once: with
        # decode_responses=True the replies are str, so the clients are used untyped.
        self._client: Any
        self._reader: Any
        try:
            self._client = redis.Redis.from_url(
                url, decode_responses=True, socket_connect_timeout=2.0, socket_timeout=5.0
            )
            # XREAD BLOCK holds its connection: the reader has a client of its own.
            self._reader = redis.Redis.from_url(
                url,
                decode_responses=True,
                socket_connect_timeout=2.0,
                socket_timeout=block_ms / 1000 + 5.0,
            )
        except (ValueError, redis.RedisError) as exc:
            raise ProviderError(
                f"wascc:eventstreams: URL {url!r} is not a Redis URL ({exc})"
            ) from exc
        kw = self._client.connection_pool.connection_kwargs
        where = kw.get("path") or f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"
        self.where = f"Redis at {where}"

    def _fail(self, what: str, exc: redis.RedisError) -> ProviderCallError:
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            return BackendUnavailable(f"{what}: cannot reach {self.where} ({exc})")
        return ProviderCallError(f"{what}: {self.where} refused it ({exc})")

    def write(self, stream: str, values: Mapping[str, str]) -> str:
        _check_event(stream, values)
        try:
            return str(self._client.xadd(stream, dict(values)))
        except redis.RedisError as exc:
            raise self._fail(f"WriteEvent to {stream!r}", exc) from exc

    def query(self, stream: str, min_ms: int | None, max_ms: int | None, count: int) -> list[Event]:
        lo = "-" if min_ms is None else str(min_ms)
        hi = "+" if max_ms is None else str(max_ms)
        try:
            rows = self._client.xrange(stream, lo, hi, count=count or None)
        except redis.RedisError as exc:
            raise self._fail(f"QueryStream {stream!r}", exc) from exc
        return [Event(event_id=i, stream=stream, values=dict(v)) for i, v in rows]

    def read_after(self, cursors: Mapping[str, str], block_ms: int, count: int) -> list[Event]:
        try:
            reply = self._reader.xread(dict(cursors), count=count, block=block_ms)
        except redis.RedisError as exc:
            raise self._fail(f"reading {', '.join(cursors)}", exc) from exc
        return [
            Event(event_id=i, stream=stream, values=dict(v))
            for stream, rows in reply or []
            for i, v in rows
        ]

    def last_id(self, stream: str) -> str:
        try:
            rows = self._client.xrevrange(stream, "+", "-", count=1)
        except redis.RedisError as exc:
            raise self._fail(f"reading the end of {stream!r}", exc) from exc
        return str(rows[0][0]) if rows else "0-0"

    def load_cursor(self, actor: str, stream: str) -> str | None:
        try:
            value = self._client.get(CURSOR_KEY.format(actor=actor, stream=stream))
        except redis.RedisError as exc:
            raise self._fail(f"reading the cursor of {actor} on {stream!r}", exc) from exc
        return None if value is None else str(value)

    def save_cursor(self, actor: str, stream: str, event_id: str) -> None:
        try:
            self._client.set(CURSOR_KEY.format(actor=actor, stream=stream), event_id)
        except redis.RedisError as exc:
            raise self._fail(f"saving the cursor of {actor} on {stream!r}", exc) from exc

    def close(self) -> None:
        self._client.close()
        self._reader.close()
