"""One client connection: reading, answering in order, keep-alive, timeouts, eviction.

A connection is owned by exactly one party at a time (the listener's
selector while it waits for data, the queue of connections with data, the
thread serving it, or nobody once closed); ownership moves under
``conn.lock``.  The serving thread reads what arrived, lets the parser
queue the complete requests, answers them in order (pipelining), writes
``100 Continue`` when a body is awaited, and sets the deadline the leader
enforces next: ``KEEPALIVE_TIMEOUT`` when idle, ``REQUEST_TIMEOUT`` once a
request began, much shorter for idle connections and unfinished heads under
connection pressure.  :meth:`_Connection.eviction_rank` says which waiting
connection goes first when a new one must be admitted at the limit.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import TYPE_CHECKING

from wascc.logs import provider_logger
from wascc.wire.codec import HttpRequest

from .parser import _Request, _RequestParser
from .responses import _Refusal, _render
from .settings import CAPABILITY_ID

if TYPE_CHECKING:
    from .scheduler import _Listener

log = provider_logger(__name__, CAPABILITY_ID)
#: The access log (binding value ACCESS_LOG=true): one line per request.
access_log = provider_logger("wascc_capabilities.http_server.access", CAPABILITY_ID)

_RECV_SIZE = 65536
_LINGER_SECONDS = 0.5
_LINGER_BYTES = 1 << 20
_NEVER = float("inf")
# Under connection pressure (see scheduler._HIGH_WATER) idle connections and
# unfinished request heads get much shorter deadlines.
_PRESSURE_IDLE = 1.0  # seconds an idle connection may stay open under pressure
_PRESSURE_HEAD = 2.0  # seconds a request head may take to arrive under pressure
_EVICT_GRACE = 0.1  # an idle connection younger than this is evicted after partial heads

# Who owns a connection: the selector (waiting for data), the queue of connections
# with data, the thread serving it, or nobody (closed).  Ownership moves under
# ``conn.lock``.
_WAITING, _QUEUED, _ACTIVE, _CLOSED = range(4)


class _Connection(_RequestParser):
    """One client connection; its parser state is the :class:`_RequestParser` it extends.

    The socket is non-blocking.  The listener's selector watches it while it
    waits for data; a serving thread then reads what arrived, answers every
    complete request in order, and hands it back to the selector.
    """

    def __init__(self, listener: _Listener, sock: socket.socket, peer: str) -> None:
        super().__init__(listener.settings, listener.label)
        self.listener = listener
        self.sock = sock
        self.peer = peer
        self.lock = threading.Lock()
        self.state = _ACTIVE
        self.deadline = _NEVER  # while waiting: when the leader gives up on it
        self.idle_since = time.monotonic()  # when it last finished a request (or connected)

    def due(self, pressure: bool) -> float:
        """When the leader gives up waiting; much sooner for idle or slow heads under pressure."""
        if not pressure:
            return self.deadline
        request = self.current
        if request is None:
            return min(self.deadline, self.idle_since + _PRESSURE_IDLE)
        if not request.headers_done:
            return min(self.deadline, request.began + _PRESSURE_HEAD)
        return self.deadline

    def eviction_rank(self, now: float) -> tuple[int, float]:
        """Which waiting connection goes first to admit a new one: lower goes first.

        Idle connections (keep-alive, or never sent a byte) first, the longest
        idle first; then unfinished requests, the oldest first; a connection
        that only just arrived last, so a new client is not evicted by the next.
        """
        request = self.current
        if request is None:
            if now - self.idle_since >= _EVICT_GRACE:
                return (0, self.idle_since)
            return (2, self.idle_since)
        return (1, request.began)

    # -- on the serving thread --

    def serve(self, buffer: bytearray) -> None:
        """Read what arrived, answer what is complete, then wait for more."""
        try:
            keep = self._serve(buffer)
        except OSError as exc:
            log.debug("%s: connection from %s ended: %s", self.listener.label, self.peer, exc)
            keep = False
        except Exception:
            log.exception("%s: connection from %s failed", self.listener.label, self.peer)
            keep = False
        if keep:
            self.listener.wait_for(self)
        else:
            self.close()

    def _serve(self, buffer: bytearray) -> bool:
        sock = self.sock
        view = memoryview(buffer)
        size = len(buffer)
        while True:
            try:
                n = sock.recv_into(buffer)
            except (BlockingIOError, InterruptedError):
                break
            if not n:
                return False
            self._feed(view[:n], n)
            if not self._answer_ready():
                return False
            if n < size:
                break
        request = self.current
        if request is not None:
            if (
                request.expect_continue
                and request.headers_done
                and not request.continued
                and not request.body_len
            ):
                request.continued = True
                self._send(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.deadline = request.deadline
        else:
            now = time.monotonic()
            self.idle_since = now
            self.deadline = now + self.settings.keepalive_timeout
        return True

    def _answer_ready(self) -> bool:
        """Answer the parsed requests in order; False when the connection must close."""
        while self.ready:
            item = self.ready.popleft()
            if isinstance(item, _Refusal):
                self._send(_render(item.reply, None, False))
                self.listener.count(item.reply.code)
                self._linger()
                return False
            if not self._answer(item):
                if self.surplus:
                    self._linger()
                return False
        return not self.ended

    def _answer(self, request: _Request) -> bool:
        """Dispatch one request and write the answer; False when the connection must close."""
        listener = self.listener
        if listener.closing:
            return False
        try:
            path, query = request.target()
        except _Refusal as refusal:
            self._send(_render(refusal.reply, request, False))
            listener.count(refusal.reply.code)
            return False
        started = time.perf_counter()
        body = request.body[0] if len(request.body) == 1 else b"".join(request.body)
        payload = HttpRequest(request.method, path, query, request.header, body).encode()
        reply = listener.invoke(payload)
        keep = request.keep_alive and not request.last and not reply.close and not listener.closing
        self._send(_render(reply, request, keep))
        listener.count(reply.code)
        if self.settings.access_log:
            micros = int((time.perf_counter() - started) * 1e6)
            access_log.info(
                "%s %s %d %dus",
                request.method,
                path,
                reply.code,
                micros,
                extra={
                    "actor": listener.actor,
                    "method": request.method,
                    "path": path,
                    "status": reply.code,
                    "duration_us": micros,
                },
            )
        return keep

    def _send(self, data: bytes) -> None:
        sock = self.sock
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            # The client reads slowly: wait for it, at most REQUEST_TIMEOUT in all.
            sock.settimeout(self.settings.request_timeout)
            try:
                sock.sendall(memoryview(data)[sent:])
            finally:
                sock.setblocking(False)

    def _linger(self) -> None:
        """Close our side, then read what the client still sends so it gets our answer."""
        sock = self.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + _LINGER_SECONDS
            read = 0
            while read < _LINGER_BYTES:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                sock.settimeout(remaining)
                chunk = sock.recv(_RECV_SIZE)
                if not chunk:
                    break
                read += len(chunk)
        except OSError:
            pass

    def expire(self) -> None:
        """The deadline passed while waiting (408 if a request began); on the leader."""
        if self.current is not None:
            reply = _Refusal(408, "the request took too long to arrive").reply
            with contextlib.suppress(OSError):
                self.sock.send(_render(reply, None, False))  # best effort, never blocks
            self.listener.count(reply.code)
        self.close()

    def close(self) -> None:
        """Close the socket; only the connection's owner calls this."""
        with self.lock:
            if self.state == _CLOSED:
                return
            self.state = _CLOSED
        with contextlib.suppress(OSError):
            self.sock.close()
        self.listener.forget(self)

    def abort(self) -> None:
        """From any thread: make pending reads and writes fail now."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
