"""The embedded in-process broker: NATS subject semantics with nothing installed.

Subjects, ``*`` and ``>`` wildcards and queue groups behave as in NATS: every
plain subscription whose pattern matches gets a copy; each queue group gets
one copy, handed to its members in turn.  Delivery is at most once and never
blocks the publisher (a subscriber's sink is :meth:`Subscription.offer`).

Matching is cached per literal subject (cleared whenever the subscriptions
change), so publishing to a known subject costs one dict lookup and one call
per receiver.  Plain Python code can publish and subscribe too
(``MessagingProvider.broker``): that is how the host's own code, tests and
benchmarks talk to actors without a server.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Callable

from wascc.errors import ProviderCallError

from .subjects import check_subject, matches

__all__ = ["Broker", "Sink"]

Sink = Callable[[str, str, bytes], object]
"""Receives (subject, reply_to, body); must not block."""

_CACHE_LIMIT = 4096


class _Group:
    """Members of one queue group under one pattern set, served in turn."""

    __slots__ = ("members", "turn")

    def __init__(self, members: list[Sink]) -> None:
        self.members = members
        self.turn = itertools.count()

    def pick(self) -> Sink:
        return self.members[next(self.turn) % len(self.members)]


class Broker:
    """A thread-safe in-process message broker (one per provider)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[int, tuple[str, str, Sink]] = {}
        self._ids = itertools.count(1)
        self._cache: dict[str, tuple[tuple[Sink, ...], tuple[_Group, ...]]] = {}
        self.published = 0

    def subscribe(self, pattern: str, sink: Sink, queue_group: str = "") -> int:
        """Subscribe ``sink`` to ``pattern``; the subscription id."""
        check_subject(pattern, wildcards=True)
        with self._lock:
            sid = next(self._ids)
            self._subs[sid] = (pattern, queue_group, sink)
            self._cache = {}
        return sid

    def unsubscribe(self, sid: int) -> None:
        """Remove a subscription (unknown ids are ignored)."""
        with self._lock:
            if self._subs.pop(sid, None) is not None:
                self._cache = {}

    @property
    def subscriptions(self) -> int:
        return len(self._subs)

    def _targets(self, subject: str) -> tuple[tuple[Sink, ...], tuple[_Group, ...]]:
        with self._lock:
            found = self._cache.get(subject)
            if found is not None:
                return found
            plain: list[Sink] = []
            groups: dict[str, list[Sink]] = {}
            for pattern, group, sink in self._subs.values():
                if matches(pattern, subject):
                    if group:
                        groups.setdefault(group, []).append(sink)
                    else:
                        plain.append(sink)
            found = (tuple(plain), tuple(_Group(m) for m in groups.values()))
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache = {}
            self._cache[subject] = found
            return found

    def publish(self, subject: str, body: bytes, reply_to: str = "") -> int:
        """Send ``body`` to every matching subscription; how many received it."""
        found = self._cache.get(subject)
        if found is None:
            check_subject(subject, wildcards=False)
            found = self._targets(subject)
        plain, groups = found
        self.published += 1
        for sink in plain:
            sink(subject, reply_to, body)
        for group in groups:
            group.pick()(subject, reply_to, body)
        return len(plain) + len(groups)

    def request(self, subject: str, body: bytes, timeout: float) -> bytes:
        """Publish with a fresh reply subject and wait up to ``timeout`` s for the first answer."""
        check_subject(subject, wildcards=False)
        inbox = f"_INBOX.{secrets.token_hex(11)}"
        answer: list[bytes] = []
        done = threading.Event()

        def on_reply(_subject: str, _reply_to: str, reply: bytes) -> None:
            if not answer:
                answer.append(reply)
                done.set()

        sid = self.subscribe(inbox, on_reply)
        try:
            receivers = self.publish(subject, body, inbox)
            if receivers and done.wait(timeout):
                return answer[0]
        finally:
            self.unsubscribe(sid)
        why = "" if receivers else " (nobody is subscribed to it)"
        raise ProviderCallError(
            f"Request to {subject!r} got no answer within {timeout * 1000:.0f} ms{why}"
        )
