"""One actor's listener: leader/followers threads, polling, connection pressure.

One thread at a time, the leader, polls the listener's selector and serves
each connection with data itself; a watchdog hands leadership to another
thread when the leader is stuck in one request (a slow actor), so fast
actors cost no hand-off and slow ones hold up no one (the measurements are
in the package docstring).  At ``MAX_CONNECTIONS`` a new connection evicts
the waiting one that matters least, or is answered 503.  Closing is two
phases (stop accepting, then drain until ``DRAIN_TIMEOUT``) so the provider
can close every listener at once and wait once.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

from wascc.errors import ProviderError
from wascc.logs import provider_logger

from .connection import _ACTIVE, _QUEUED, _RECV_SIZE, _WAITING, _Connection
from .responses import _BUSY, _Reply
from .settings import CAPABILITY_ID, ServerSettings

log = provider_logger(__name__, CAPABILITY_ID)

_STUCK = 0.002  # seconds in one connection after which the leader counts as stuck
_WATCH_IDLE = 1.0  # the watchdog's period while dozing (it is woken when work starts)
_IDLE_EXIT = 30.0  # seconds a follower waits before it leaves
# Under connection pressure (at least _HIGH_WATER of MAX_CONNECTIONS open) idle
# connections and unfinished request heads get much shorter deadlines, and a new
# connection at the limit evicts a waiting one instead of being refused.
_HIGH_WATER = 0.75
_ACCEPT = "accept"
_WAKE = "wake"


class _Slot:
    """One serving thread, and since when it has been serving its current connection."""

    __slots__ = ("since", "thread")

    def __init__(self) -> None:
        self.since = 0.0
        self.thread: threading.Thread | None = None


class _Listener:
    """One actor's listening socket, its connections and the threads that serve them.

    Leader/followers with a watchdog.  One thread at a time, the leader, owns
    the listener: it polls the selector (accepting, expiring idle and slow
    connections) and serves each connection that has data itself: read,
    parse, call the actor, write.  No hand-off between threads, so with fast
    actors one thread serves every connection without fighting anyone for the
    GIL.  Actor calls block, though: when the watchdog sees the leader stuck in
    one connection for ``_STUCK`` seconds it makes another thread the leader
    (waking an idle one or starting one, at most one per connection); the
    stuck thread finishes its request and then waits as a follower.  Followers
    idle for ``_IDLE_EXIT`` seconds leave.
    """

    def __init__(
        self,
        actor: str,
        settings: ServerSettings,
        invoke: Callable[[str, bytes], _Reply],
        sock: socket.socket | None = None,
    ) -> None:
        self.actor = actor
        self.settings = settings
        self._invoke = invoke
        self.sock = _listen(settings, actor) if sock is None else sock
        host, port = self.sock.getsockname()[:2]
        self.address: tuple[str, int] = (host, port)
        self.label = f"{CAPABILITY_ID} {_format_address(host, port)}"
        self.closing = False
        self._connections: set[_Connection] = set()
        #: Responses written, by status code (refusals included); under _count_lock.
        self.responses: dict[int, int] = {}
        self._count_lock = threading.Lock()
        self._lock = threading.Lock()  # the connection set
        self._gone = threading.Condition(self._lock)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self.sock.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.sock, selectors.EVENT_READ, _ACCEPT)
        self._selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        self._poll_lock = threading.Lock()  # held while polling; closing takes it last
        self._cond = threading.Condition(threading.Lock())  # leadership and the queue below
        self._pending: deque[_Connection] = deque()  # have data, wait for the leader
        self._slots: list[_Slot] = []
        self._leader: _Slot | None = None
        self._idle = 0
        self._served = 0  # serve() calls: the watchdog dozes while this stands still
        self._dozing = False
        self._rouse = threading.Event()  # wakes a dozing watchdog
        tick = min(settings.keepalive_timeout, settings.request_timeout) / 4
        self._tick = min(max(tick, 0.01), 0.5)
        self._high_water = max(1, int(settings.max_connections * _HIGH_WATER))
        self._next_sweep = 0.0
        self._stopped = threading.Event()
        self._watchdog = threading.Thread(
            target=self._watch, name=f"{self.label} watchdog", daemon=True
        )

    def start(self) -> None:
        with self._cond:
            self._spawn()
        self._watchdog.start()

    @property
    def alive(self) -> bool:
        return self._watchdog.is_alive() and not self.closing

    def invoke(self, payload: bytes) -> _Reply:
        return self._invoke(self.actor, payload)

    # -- the serving threads --

    def _spawn(self) -> None:
        """Start a thread (called with ``_cond`` held)."""
        slot = _Slot()
        slot.thread = threading.Thread(
            target=self._run, args=(slot,), name=f"{self.label} server", daemon=True
        )
        slot.thread.start()
        self._slots.append(slot)

    def _run(self, slot: _Slot) -> None:
        buffer = bytearray(_RECV_SIZE)
        cond = self._cond
        pending = self._pending
        try:
            while True:
                with cond:
                    while self._leader is not slot:
                        if self.closing:
                            return
                        if self._leader is None:
                            self._leader = slot
                            break
                        self._idle += 1
                        notified = cond.wait(_IDLE_EXIT)
                        self._idle -= 1
                        if not notified and self._leader is not None and len(self._slots) > 1:
                            return
                    if self.closing:
                        self._leader = None
                        cond.notify_all()
                        return
                    conn = pending.popleft() if pending else None
                if conn is None:
                    self._poll()
                    continue
                self._served += 1
                if self._dozing:
                    self._rouse.set()
                slot.since = time.monotonic()
                conn.serve(buffer)
                slot.since = 0.0
        except Exception:
            log.exception("%s: a serving thread failed", self.label)
        finally:
            with cond:
                self._slots.remove(slot)
                if self._leader is slot:
                    self._leader = None
                    cond.notify()
                leftovers = list(pending) if self.closing and not self._slots else []
                if leftovers:
                    pending.clear()
            for conn in leftovers:
                conn.close()

    def _poll(self) -> None:
        """The leader waits for events; connections with data join ``_pending``."""
        ready: list[_Connection] = []
        with self._poll_lock:
            if self.closing:
                return
            selector = self._selector
            events = selector.select(self._tick)
            now = time.monotonic()
            for key, _ in events:
                data = key.data
                if data is _ACCEPT:
                    self._accept(now)
                elif data is _WAKE:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(64)
                else:
                    conn: _Connection = data
                    with conn.lock:
                        if conn.state != _WAITING:
                            continue
                        selector.unregister(conn.sock)
                        conn.state = _QUEUED
                    ready.append(conn)
            if now >= self._next_sweep:
                self._sweep(now)
                self._next_sweep = now + self._tick
        if ready:
            with self._cond:
                self._pending.extend(ready)

    def _watch(self) -> None:
        """Hand leadership to another thread while the leader is stuck in one connection."""
        seen = -1
        while not self._stopped.is_set():
            leader = self._leader
            if self._served == seen and leader is not None and not leader.since:
                # The leader is polling and nothing was served for a tick: doze until the
                # next serve() rouses us.  The leader counts, then reads _dozing; we set
                # it, then read the count again, so one of us sees the other.
                self._dozing = True
                if self._served == seen:
                    self._rouse.wait(_WATCH_IDLE)
                self._rouse.clear()
                self._dozing = False
            seen = self._served
            if self._stopped.wait(_STUCK):
                return
            now = time.monotonic()
            with self._cond:
                leader = self._leader
                if leader is not None:
                    if not leader.since or now - leader.since < _STUCK:
                        continue
                    self._leader = None  # stuck: another thread leads meanwhile
                elif any(not s.since for s in self._slots):
                    if self._idle:  # a thread that is not serving takes the lead
                        self._cond.notify()
                    continue
                if self._idle:
                    self._cond.notify()
                elif len(self._slots) <= self.settings.max_connections:
                    try:
                        self._spawn()
                    except RuntimeError as exc:  # the system is out of threads
                        log.error("%s cannot start a thread: %s", self.label, exc)

    # -- connections (on the leader) --

    def _accept(self, now: float) -> None:
        for _ in range(64):
            try:
                sock, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.error("%s cannot accept: %s", self.label, exc)
                    return
                raise
            who = _format_address(*peer[:2])
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            with self._lock:
                full = len(self._connections) >= self.settings.max_connections
            if full and not self.closing:
                full = not self._evict(now)
            with self._lock:
                refused = self.closing or full
                if not refused:
                    conn = _Connection(self, sock, who)
                    self._connections.add(conn)
            if refused:
                log.warning("%s refused a connection from %s: too many", self.label, who)
                _refuse(sock)
                continue
            conn.deadline = now + self.settings.keepalive_timeout
            conn.state = _WAITING
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _evict(self, now: float) -> bool:
        """At the limit: close the waiting connection that matters least (on the leader).

        True if one was closed.  Connections being served are never evicted; when
        every connection is busy the newcomer gets 503.
        """
        for _ in range(8):  # a candidate may start being served while we look
            with self._lock:
                waiting = [c for c in self._connections if c.state == _WAITING]
            if not waiting:
                return False
            victim = min(waiting, key=lambda c: c.eviction_rank(now))
            with victim.lock:
                if victim.state != _WAITING:
                    continue
                self._selector.unregister(victim.sock)
                victim.state = _ACTIVE
            log.debug(
                "%s: closed a waiting connection from %s to admit another", self.label, victim.peer
            )
            victim.expire()
            return True
        return False

    def _sweep(self, now: float) -> None:
        """Close connections whose client went quiet past their deadline.

        Under pressure (``_HIGH_WATER`` of ``MAX_CONNECTIONS`` open) idle
        connections and unfinished request heads get short deadlines, so an idle
        flood or a slowloris cannot fill the server for long.
        """
        with self._lock:
            pressure = len(self._connections) >= self._high_water
            late = [c for c in self._connections if c.state == _WAITING and c.due(pressure) < now]
        for conn in late:
            with conn.lock:
                if conn.state != _WAITING or conn.due(pressure) >= now:
                    continue
                self._selector.unregister(conn.sock)
                conn.state = _ACTIVE
            conn.expire()

    def wait_for(self, conn: _Connection) -> None:
        """Watch a served connection for its next request (or close it if we are closing)."""
        with conn.lock:
            if not self.closing:
                conn.state = _WAITING
                self._selector.register(conn.sock, selectors.EVENT_READ, conn)
                return
        conn.close()

    def count(self, status: int) -> None:
        """One response with ``status`` was written (for the provider's :meth:`stats`)."""
        with self._count_lock:
            self.responses[status] = self.responses.get(status, 0) + 1

    def response_counts(self, *, reset: bool = False) -> dict[int, int]:
        """A copy of the responses written by status code; ``reset`` starts over at zero."""
        with self._count_lock:
            counted = dict(self.responses)
            if reset:
                self.responses.clear()
        return counted

    @property
    def open_connections(self) -> int:
        """Connections open right now (waiting or being served)."""
        return len(self._connections)

    def forget(self, conn: _Connection) -> None:
        with self._lock:
            self._connections.discard(conn)
            self._gone.notify_all()

    # -- closing --

    def begin_close(self) -> None:
        """Stop accepting (the port is closed when this returns) and close idle connections."""
        with self._lock:
            if self.closing:
                return
            self.closing = True
        self._stopped.set()
        self._rouse.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        with self._cond:
            self._cond.notify_all()
        with self._poll_lock:  # the leader is out of select() and will not poll again
            with self._lock:
                connections = list(self._connections)
            for conn in connections:
                with conn.lock:
                    if conn.state != _WAITING:
                        continue
                    with contextlib.suppress(KeyError, ValueError):
                        self._selector.unregister(conn.sock)
                    conn.state = _ACTIVE
                conn.close()
            self._selector.close()
            self.sock.close()
            self._wake_r.close()
            self._wake_w.close()

    def finish_close(self, deadline: float) -> None:
        """Wait for requests in flight until ``deadline``, then cut what is left."""
        with self._lock:
            while self._connections:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._gone.wait(remaining)
            left = list(self._connections)
        if left:
            log.warning(
                "%s: %d connection(s) still busy after %gs; closing them",
                self.label,
                len(left),
                self.settings.drain_timeout,
            )
        for conn in left:
            conn.abort()
        with self._cond:
            threads = [s.thread for s in self._slots if s.thread is not None]
        threads.append(self._watchdog)
        me = threading.current_thread()
        until = time.monotonic() + 1.0
        for thread in threads:
            if thread is not me and thread.ident is not None:
                thread.join(max(0.0, until - time.monotonic()))

    def close(self) -> None:
        self.begin_close()
        self.finish_close(time.monotonic() + self.settings.drain_timeout)


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listen(settings: ServerSettings, actor: str) -> socket.socket:
    where = _format_address(settings.address, settings.port)
    try:
        infos = socket.getaddrinfo(
            settings.address, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ProviderError(
            f"{CAPABILITY_ID}: cannot listen on {where} for actor {actor}: bad address ({exc})"
        ) from exc
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        if hasattr(socket, "SO_REUSEADDR"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(min(socket.SOMAXCONN, 1024))
    except OSError as exc:
        sock.close()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ProviderError(
            f"{CAPABILITY_ID}: cannot listen on {where} for actor {actor}: {reason}"
        ) from exc
    return sock


def _refuse(sock: socket.socket) -> None:
    """Answer 503 on a connection over the limit without blocking the leader."""
    try:
        with contextlib.suppress(BlockingIOError):
            sock.recv(_RECV_SIZE)  # what already arrived, so closing does not reset
        sock.send(_BUSY)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        sock.close()
