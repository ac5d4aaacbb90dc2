"""``wascc:http_server``: real HTTP/1.1 in front of actors (CONTRACTS section 3).

One listener per bound actor.  Every request becomes ``HandleRequest`` with an
:class:`~wascc.wire.codec.HttpRequest` and the actor's
:class:`~wascc.wire.codec.HttpResponse` is written back with a ``Content-Length``
this provider computes (the actor's ``Content-Length``, ``Transfer-Encoding``,
``Connection`` and other hop-by-hop headers are dropped so they cannot break
the framing; its ``Content-Type`` and other headers are kept).

Protocol work is done by **httptools** (MagicStack's bindings to llhttp, the
parser of Node.js, and uvicorn's default): measured here it parses a typical
request in about 2 us, against about 110 us per request/response cycle for
h11 (pure Python), which alone would cap a core at roughly 9k requests per
second, while an echo actor call costs about 4 us.  llhttp in strict mode
also refuses the request-smuggling shapes (duplicate ``Content-Length``,
``Content-Length`` with ``Transfer-Encoding``, bare LF) and decodes chunked
bodies.  This module adds what a parser leaves to the server: keep-alive,
pipelining (answers in order), ``Expect: 100-continue``, HEAD, size limits
and timeouts.

Requests as actors see them:

* ``path`` and ``queryString`` are the request target split at ``?`` (not
  percent-decoded; an absolute-form target is reduced to its path).
* ``header`` maps lower-cased names to values (as the original waSCC server,
  built on the Rust ``http`` crate, did).  Repeated headers are joined with
  ``", "`` (``Cookie`` with ``"; "``, as RFC 9113 joins it); chunked-body
  trailers are not included.
* Header values map their bytes 1:1 to code points U+0000-U+00FF
  (ISO-8859-1, as WSGI does), so nothing in a value is lost or refused,
  0x80-0xFF (RFC 9110 ``obs-text``) included.  The request target must be a
  URI and header names tokens (RFC 9112): both are ASCII, and a byte such as
  0xFF in either is a 400 that names the problem; ``path`` and
  ``queryString`` therefore hold ASCII only (percent-encoded as sent).

Binding values (keys are case-insensitive):

* ``PORT`` (required): TCP port; ``0`` picks a free one (see
  :meth:`HttpServerProvider.address`).
* ``ADDRESS`` (``127.0.0.1``; ``ADDR`` is read too): where to listen.  Never a
  wildcard address unless configured.
* ``MAX_HEADER_BYTES`` (65536): request line plus header block.
* ``MAX_BODY_BYTES`` (10485760): request body, after de-chunking.
* ``MAX_CONNECTIONS`` (1024): open connections.  At the limit a new
  connection evicts a waiting one (an idle connection first, the longest
  idle first, then the oldest unfinished request, which gets 408); only when
  every connection is being served is it answered 503 and closed.
* ``KEEPALIVE_TIMEOUT`` (15): seconds an idle connection stays open.
* ``REQUEST_TIMEOUT`` (30): seconds to receive one request once it began
  (then 408), and to write one response.
* ``DRAIN_TIMEOUT`` (10): seconds RemoveActor and stop wait for requests in
  flight before cutting their connections.

Under connection pressure (at least 3/4 of ``MAX_CONNECTIONS`` open) an idle
connection is closed after 1 s instead of ``KEEPALIVE_TIMEOUT`` and a request
head must arrive within 2 s instead of ``REQUEST_TIMEOUT``, so an idle flood
or a slowloris cannot keep normal clients out.

Status codes this provider produces:

* 400 malformed request, including a target or header name that is not
  ASCII (then the connection closes), 408 request not
  received within ``REQUEST_TIMEOUT``, 413 body over ``MAX_BODY_BYTES`` (a
  ``Content-Length`` or a chunk size over the limit is refused as soon as it
  is read, before any of the body),
  417 an ``Expect`` other than ``100-continue``, 431 headers over
  ``MAX_HEADER_BYTES``, 505 an HTTP version other than 1.0/1.1;
* 500 the actor failed (``GuestError``, ``ActorTrap``, any other
  ``InvocationError``; the detail is logged, the body says only that);
* 502 the actor answered something that is not an ``HttpResponse`` (or a
  status outside 200-599);
* 503 with ``Connection: close`` and ``Retry-After``: the host is draining
  (``HostStopped``), the actor is gone or being unbound, no instance became
  free in time, or too many connections;
* 504 the actor did not answer within its deadline.

A BindActor for a bound actor with new values is a reconfiguration: the new
listener is opened first (a re-bind to the same address and port takes the
listening socket over), and only then is the old one closed as by
RemoveActor; if the new values are bad or the port cannot be listened on,
the old listener keeps serving and BindActor fails.

After RemoveActor the actor's port is closed: new connections are refused
and idle keep-alive connections are closed; requests in flight finish (up to
``DRAIN_TIMEOUT``).  A request that reaches the provider after the host
dropped the actor but before RemoveActor arrived gets 503.

Threads (see :class:`_Listener`): leader/followers per listener.  The leader
polls the sockets and serves each request itself, so with fast actors one
thread serves every connection with no hand-off and no fight for the GIL; a
watchdog makes another thread the leader whenever the leader has been stuck
in one request for 2 ms (a slow or blocked actor), so slow calls never hold
up other connections.  Measured with wrk, 64 connections, echo actor, 2
CPUs: thread per connection 4.5k req/s and p99 300 ms (each actor call
releases the GIL, and 64 threads then fight for it); poller plus worker
pool 4.7k req/s, p99 20 ms (8 context switches per request); leader/followers
8-9k req/s, p99 11-17 ms (benchmarks/bench_http.py).  The price: calls
shorter than 2 ms run one at a time per listener even on several cores.

For benchmarks and embedding, ``HttpServerProvider(handler=f)`` replaces
only the dispatch step: ``f(actor, request_msgpack) -> response_msgpack``
runs where the actor call would, behind the same listener, parser and
writer.
"""

from __future__ import annotations

import contextlib
import errno
import http
import re
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import formatdate

import httptools

from wascc.errors import (
    CodecError,
    HostStopped,
    InstancesBusy,
    InvocationError,
    InvocationTimeout,
    NotBound,
    NotFound,
    ProviderCallError,
    ProviderError,
)
from wascc.hookspecs import hookimpl
from wascc.logs import provider_logger
from wascc.providers.base import CapabilityProvider
from wascc.wire.codec import (
    CapabilityConfiguration,
    CapabilityDescriptor,
    Direction,
    HealthResponse,
    HttpRequest,
    HttpResponse,
    OperationDescriptor,
)

__all__ = ["CAPABILITY_ID", "OP_HANDLE_REQUEST", "Handler", "HttpServerProvider", "ServerSettings"]

CAPABILITY_ID = "wascc:http_server"
log = provider_logger(__name__, CAPABILITY_ID)

OP_HANDLE_REQUEST = "HandleRequest"

#: ``handler(actor, HttpRequest msgpack) -> HttpResponse msgpack``; may raise wascc errors.
Handler = Callable[[str, bytes], bytes]

_RECV_SIZE = 65536
_SLICE = 4096  # bytes fed to the parser at a time (bounds an unfinished header's growth)
_LINGER_SECONDS = 0.5
_LINGER_BYTES = 1 << 20
_RETRY_AFTER = "1"
# Headers that describe the connection or the framing: the provider owns them.
_HOP_BY_HOP = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer"}
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_NO_BODY_STATUS = frozenset({204, 304})
_NEVER = float("inf")
_STUCK = 0.002  # seconds in one connection after which the leader counts as stuck
_WATCH_IDLE = 1.0  # the watchdog's period while dozing (it is woken when work starts)
_IDLE_EXIT = 30.0  # seconds a follower waits before it leaves
# Under connection pressure (at least _HIGH_WATER of MAX_CONNECTIONS open) idle
# connections and unfinished request heads get much shorter deadlines, and a new
# connection at the limit evicts a waiting one instead of being refused.
_HIGH_WATER = 0.75
_PRESSURE_IDLE = 1.0  # seconds an idle connection may stay open under pressure
_PRESSURE_HEAD = 2.0  # seconds a request head may take to arrive under pressure
_EVICT_GRACE = 0.1  # an idle connection younger than this is evicted after partial heads
_EMPTY: dict[str, str] = {}
_HEAD_END = b"\r\n\r\n"
_CHUNK_LINE_CAP = 256  # bytes of a chunk-size line kept to read the size from
_HEX = frozenset(b"0123456789abcdefABCDEF")


# ---- configuration -------------------------------------------------------------------


DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 1024
DEFAULT_KEEPALIVE_TIMEOUT = 15.0
DEFAULT_REQUEST_TIMEOUT = 30.0
DEFAULT_DRAIN_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """One listener's configuration, read from the BindActor values."""

    port: int
    address: str = DEFAULT_ADDRESS
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT

    @classmethod
    def from_values(cls, values: Mapping[str, str], who: str = "") -> ServerSettings:
        """Parse binding values; a bad or missing value raises ``ProviderError``."""
        upper = {k.upper(): v for k, v in values.items() if not k.startswith("__wascc_")}
        where = f" for {who}" if who else ""

        def number(key: str, default: float, kind: type[int] | type[float], low: float) -> float:
            raw = upper.get(key)
            if raw is None or not raw.strip():
                return default
            try:
                value = kind(raw.strip())
            except ValueError:
                what = "an integer" if kind is int else "a number"
                raise ProviderError(
                    f"{CAPABILITY_ID}: {key}={raw!r}{where} is not {what}"
                ) from None
            if value < low:
                raise ProviderError(f"{CAPABILITY_ID}: {key}={raw!r}{where} must be >= {low}")
            return value

        if not upper.get("PORT", "").strip():
            raise ProviderError(f"{CAPABILITY_ID}: the binding{where} needs a PORT value")
        port = int(number("PORT", 0, int, 0))
        if port > 65535:
            raise ProviderError(f"{CAPABILITY_ID}: PORT={port}{where} is not a TCP port")
        address = (upper.get("ADDRESS") or upper.get("ADDR") or "").strip() or DEFAULT_ADDRESS
        return cls(
            port=port,
            address=address,
            max_header_bytes=int(number("MAX_HEADER_BYTES", DEFAULT_MAX_HEADER_BYTES, int, 256)),
            max_body_bytes=int(number("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, int, 0)),
            max_connections=int(number("MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS, int, 1)),
            keepalive_timeout=number("KEEPALIVE_TIMEOUT", DEFAULT_KEEPALIVE_TIMEOUT, float, 0.001),
            request_timeout=number("REQUEST_TIMEOUT", DEFAULT_REQUEST_TIMEOUT, float, 0.001),
            drain_timeout=number("DRAIN_TIMEOUT", DEFAULT_DRAIN_TIMEOUT, float, 0),
        )


# ---- responses -----------------------------------------------------------------------


class _Reply:
    """A response ready to be written: status, extra headers, body, close after."""

    __slots__ = ("body", "close", "code", "headers", "reason")

    def __init__(
        self,
        code: int,
        reason: str,
        headers: list[tuple[str, str]],
        body: bytes,
        close: bool = False,
    ) -> None:
        self.code = code
        self.reason = reason
        self.headers = headers
        self.body = body
        self.close = close


def _phrase(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def _error_reply(code: int, text: str, *, close: bool = False) -> _Reply:
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    if code == 503:
        headers.append(("Retry-After", _RETRY_AFTER))
        close = True
    return _Reply(code, _phrase(code), headers, f"{code} {_phrase(code)}: {text}\n".encode(), close)


class _Refusal(Exception):
    """A request this server answers itself (400, 408, 413, 417, 431, 505); then it closes."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.reply = _error_reply(code, text, close=True)


_date: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The Date header value, formatted once per second."""
    global _date
    now = int(time.time())
    cached = _date
    if cached[0] != now:
        cached = _date = (now, formatdate(now, usegmt=True))
    return cached[1]


def _reply_from_actor(raw: bytes, who: str) -> _Reply:
    """Decode and sanitize an actor's HttpResponse; anything unusable is a 502."""
    try:
        response = HttpResponse.decode(raw)
    except CodecError as exc:
        log.warning("%s answered HandleRequest with something that is not a response: %s", who, exc)
        return _error_reply(502, "the actor's answer is not an HTTP response")
    code, reason, header, body = (
        response.status_code,
        response.status,
        response.header,
        response.body,
    )
    if not 200 <= code <= 599:
        log.warning("%s answered with HTTP status %d", who, code)
        return _error_reply(502, "the actor's answer has an invalid status code")
    if not reason or _BAD_VALUE.search(reason):
        reason = _phrase(code)
    headers: list[tuple[str, str]] = []
    for name, value in header.items():
        if name.lower() in _HOP_BY_HOP:
            continue
        if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            log.warning("%s: dropped the invalid response header %r", who, name)
            continue
        headers.append((name, value))
    return _Reply(code, reason, headers, body)


def _unavailable(text: str) -> _Reply:
    return _error_reply(503, text)


# ---- one request ---------------------------------------------------------------------


class _Request:
    """A request being parsed, then waiting in the connection's queue."""

    __slots__ = (
        "began",
        "body",
        "body_len",
        "continued",
        "deadline",
        "expect_continue",
        "header",
        "headers_done",
        "keep_alive",
        "last",
        "method",
        "url",
        "version",
    )

    def __init__(self, began: float, deadline: float) -> None:
        self.began = began
        self.url = b""
        self.method = "GET"
        self.version = "1.1"
        self.header: dict[str, str] = {}
        self.body: list[bytes] = []
        self.body_len = 0
        self.headers_done = False
        self.expect_continue = False
        self.continued = False
        self.keep_alive = True
        self.last = False  # the connection closes after this one (upgrade)
        self.deadline = deadline

    def target(self) -> tuple[str, str]:
        """(path, queryString) of the request target."""
        url = self.url
        if url[:1] == b"/":
            path, _, query = url.partition(b"?")
            query = query.partition(b"#")[0]
            return path.decode("latin-1"), query.decode("latin-1")
        if url == b"*" or self.method == "CONNECT":
            return url.decode("latin-1"), ""
        try:
            parsed = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError:
            raise _Refusal(400, "the request target is not a URL") from None
        path_b = parsed.path or b"/"
        return path_b.decode("latin-1"), (parsed.query or b"").decode("latin-1")


# ---- one connection ------------------------------------------------------------------

# Who owns a connection: the selector (waiting for data), the queue of connections
# with data, the thread serving it, or nobody (closed).  Ownership moves under
# ``conn.lock``.
_WAITING, _QUEUED, _ACTIVE, _CLOSED = range(4)


class _Connection:
    """One client connection and its parser state (it is also the parser's protocol).

    The socket is non-blocking.  The listener's selector watches it while it
    waits for data; a serving thread then reads what arrived, answers every
    complete request in order, and hands it back to the selector.
    """

    def __init__(self, listener: _Listener, sock: socket.socket, peer: str) -> None:
        self.listener = listener
        self.settings = listener.settings
        self.sock = sock
        self.peer = peer
        self.parser = httptools.HttpRequestParser(self)
        self.ready: deque[_Request | _Refusal] = deque()
        self.current: _Request | None = None
        self.header_bytes = 0  # request line and complete headers of the current request
        self.unseen = 0  # bytes of an unfinished header inside the parser (at least)
        self.header_event = False
        self.ended = False  # no request may follow (Connection: close, an error, an upgrade)
        self.surplus = False  # bytes arrived after the last request we will read
        # Chunked bodies: the parser does not tell us a chunk's declared size, so while
        # one is read we feed it line by line and read each size line ourselves.
        self.chunked = False  # the current request's body is chunked
        self.chunk_left = 0  # data bytes of the current chunk still to come (known sizes)
        self.line = b""  # the chunk-size line being fed (its first _CHUNK_LINE_CAP bytes)
        self.line_known = False  # ``line`` holds the whole current line from its start
        self.tail = b""  # the last bytes of a request head fed (a terminator may straddle)
        self.head_fed = False  # the part being fed ends with a request head's blank line
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

    # -- httptools callbacks (called from feed_data, on the serving thread) --

    def on_message_begin(self) -> None:
        now = time.monotonic()
        self.current = _Request(now, now + self.settings.request_timeout)
        self.header_bytes = self.unseen = 0
        self.header_event = True

    def on_url(self, url: bytes) -> None:
        assert self.current is not None
        self.current.url += url
        self.header_bytes += len(url)
        self.header_event = True
        if self.header_bytes > self.settings.max_header_bytes:
            raise _Refusal(431, "the request target is too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self.current
        assert request is not None
        self.header_bytes += len(name) + len(value) + 4
        self.header_event = True
        if self.header_bytes > self.settings.max_header_bytes:
            raise _Refusal(431, "the request headers are too large")
        if request.headers_done:
            return  # a trailer after a chunked body: not part of the contract's map
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1").strip(" \t")
        header = request.header
        previous = header.get(key)
        if previous is None:
            header[key] = text
        else:
            header[key] = previous + ("; " if key == "cookie" else ", ") + text

    def on_headers_complete(self) -> None:
        request = self.current
        assert request is not None
        parser = self.parser
        request.headers_done = True
        request.method = parser.get_method().decode("ascii")
        request.version = parser.get_http_version()
        if request.version not in ("1.1", "1.0"):
            raise _Refusal(505, f"HTTP/{request.version} is not supported")
        header = request.header
        length = header.get("content-length")
        if length is not None and int(length) > self.settings.max_body_bytes:
            raise _Refusal(413, "the request body is too large")
        coding = header.get("transfer-encoding")
        if coding is not None and coding.rpartition(",")[2].strip().lower() == "chunked":
            self.chunked = True
            self.chunk_left = 0
            self.line = b""
            self.line_known = self.head_fed
        expect = header.get("expect")
        if expect is not None and request.version == "1.1":
            if expect.lower() != "100-continue":
                raise _Refusal(417, "only Expect: 100-continue is supported")
            request.expect_continue = True

    def on_chunk_header(self) -> None:
        """A chunk's size line was read: refuse at once a chunk the body limit cannot hold."""
        if not self.line_known or len(self.line) >= _CHUNK_LINE_CAP:
            return  # we did not see the whole line: on_body still enforces the limit
        line = self.line
        end = 0
        while end < len(line) and line[end] in _HEX:
            end += 1
        if not end:
            return
        size = int(line[:end], 16)
        request = self.current
        assert request is not None
        if size > self.settings.max_body_bytes - request.body_len:
            raise _Refusal(413, "a chunk of the request body is larger than the body limit")
        self.chunk_left = size

    def on_body(self, body: bytes) -> None:
        request = self.current
        assert request is not None
        request.body_len += len(body)
        if request.body_len > self.settings.max_body_bytes:
            raise _Refusal(413, "the request body is too large")
        request.body.append(body)

    def on_message_complete(self) -> None:
        request = self.current
        assert request is not None
        self.current = None
        self.chunked = False
        self.tail = b""
        request.keep_alive = self.parser.should_keep_alive()
        if not request.keep_alive:
            self.ended = True
        self.ready.append(request)

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
                self._linger()
                return False
            if not self._answer(item):
                if self.surplus:
                    self._linger()
                return False
        return not self.ended

    def _feed(self, data: memoryview, n: int) -> None:
        """Parse what arrived, in slices so an unfinished header cannot grow unseen."""
        for start in range(0, n, _SLICE):
            piece = data[start : start + _SLICE]
            self.header_event = False
            if not self._feed_parts(piece):
                return
            request = self.current
            if request is not None and not request.headers_done:
                # httptools buffers an unfinished header field or value without telling us;
                # a slice with no header event went entirely into that buffer.
                self.unseen = 0 if self.header_event else self.unseen + len(piece)
                if self.header_bytes + self.unseen > self.settings.max_header_bytes:
                    self.ready.append(_Refusal(431, "the request headers are too large"))
                    self.current = None
                    self.ended = True
                    return

    def _feed_parts(self, piece: memoryview) -> bool:
        """Feed a slice in parts that end where we must know the parser's position.

        A request head is fed up to its blank line; a chunked body line by line
        (a chunk's data, once its size is known, in one part), so that when the
        parser reports a chunk header, the line just fed is its size line.
        """
        size = len(piece)
        pos = 0
        while pos < size:
            request = self.current
            self.head_fed = False
            if self.chunked and request is not None and request.headers_done:
                if self.chunk_left:
                    end = min(size, pos + self.chunk_left)
                    self.chunk_left -= end - pos
                    self.line = b""
                    self.line_known = True  # the CRLF after the data comes next
                else:
                    rest = bytes(piece[pos:])
                    newline = rest.find(b"\n")
                    end = size if newline < 0 else pos + newline + 1
                    if len(self.line) < _CHUNK_LINE_CAP:
                        self.line += rest[: min(end - pos, _CHUNK_LINE_CAP)]
                if not self._feed_slice(piece[pos:end]):
                    return False
                if end > pos and piece[end - 1] == 0x0A:
                    self.line = b""
                    self.line_known = True
                pos = end
                continue
            if request is None or not request.headers_done:
                rest = bytes(piece[pos:])
                tail = self.tail
                found = (tail + rest).find(_HEAD_END)
                if found < 0:
                    end = size
                    self.tail = (tail + rest)[-3:]
                else:
                    end = pos + found + len(_HEAD_END) - len(tail)
                    self.tail = b""
                    self.head_fed = True  # the part ends with the head's blank line
            else:
                end = size  # a Content-Length body
            if not self._feed_slice(piece[pos:end]):
                return False
            pos = end
        return True

    def _feed_slice(self, piece: memoryview) -> bool:
        """Feed the parser; False when nothing more may be parsed on this connection."""
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refusal):
                self.ready.append(cause)
            else:
                log.error("%s: request handling failed: %r", self.listener.label, cause)
                self.ready.append(_Refusal(400, "the request could not be read"))
            self.current = None
            self.ended = True
            return False
        except httptools.HttpParserUpgrade:
            # The request is complete; what follows is another protocol: answer, then close.
            if self.ready and isinstance(self.ready[-1], _Request):
                self.ready[-1].last = True
            self.ended = self.surplus = True
            return False
        except httptools.HttpParserError as exc:
            if self.ended:  # data after a "Connection: close" request is not read
                self.surplus = True
            elif isinstance(exc, httptools.HttpParserInvalidURLError):
                self.ready.append(
                    _Refusal(400, "the request target holds a byte a URI may not (RFC 3986)")
                )
                self.ended = True
            else:
                self.ready.append(_Refusal(400, f"malformed request ({exc})"))
                self.ended = True
            self.current = None
            return False
        return True

    def _answer(self, request: _Request) -> bool:
        """Dispatch one request and write the answer; False when the connection must close."""
        listener = self.listener
        if listener.closing:
            return False
        try:
            path, query = request.target()
        except _Refusal as refusal:
            self._send(_render(refusal.reply, request, False))
            return False
        body = request.body[0] if len(request.body) == 1 else b"".join(request.body)
        payload = HttpRequest(request.method, path, query, request.header, body).encode()
        reply = listener.invoke(payload)
        keep = request.keep_alive and not request.last and not reply.close and not listener.closing
        self._send(_render(reply, request, keep))
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


def _render(reply: _Reply, request: _Request | None, keep: bool) -> bytes:
    """Status line, headers and body of one response, framed by this server."""
    code = reply.code
    parts = [f"HTTP/1.1 {code} {reply.reason}\r\n"]
    date = True
    for name, value in reply.headers:
        parts.append(f"{name}: {value}\r\n")
        if date and name.lower() == "date":
            date = False
    if date:
        parts.append(f"Date: {_http_date()}\r\n")
    body = reply.body
    if code in _NO_BODY_STATUS:
        body = b""
    else:
        parts.append(f"Content-Length: {len(body)}\r\n")
    if not keep:
        parts.append("Connection: close\r\n\r\n")
    elif request is not None and request.version == "1.0":
        parts.append("Connection: keep-alive\r\n\r\n")
    else:
        parts.append("\r\n")
    text = "".join(parts)
    try:
        head = text.encode("latin-1")
    except UnicodeEncodeError:
        head = text.encode("utf-8")
    if request is not None and request.method == "HEAD":
        return head
    return head + body


# ---- one listener per actor ----------------------------------------------------------


_BUSY_TEXT = b"503 Service Unavailable: too many connections\n"
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: " + _RETRY_AFTER.encode() + b"\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_BUSY_TEXT), _BUSY_TEXT)
)
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


# ---- the provider --------------------------------------------------------------------


class HttpServerProvider(CapabilityProvider):
    """``wascc:http_server``: one HTTP/1.1 listener per bound actor (see the module doc)."""

    capability_id = CAPABILITY_ID

    def __init__(self, *, handler: Handler | None = None) -> None:
        super().__init__()
        self._handler = handler
        self._listeners: dict[str, _Listener] = {}
        self._lock = threading.Lock()

    def descriptor(self) -> CapabilityDescriptor:
        return CapabilityDescriptor(
            id=CAPABILITY_ID,
            name="wascc HTTP server",
            version="0.1.0",
            revision=1,
            long_description="HTTP/1.1 server (httptools/llhttp): one listener per bound actor",
            supported_operations=(
                OperationDescriptor(
                    OP_HANDLE_REQUEST, Direction.TO_ACTOR, "an HTTP request for the actor"
                ),
            ),
        )

    def handle(self, actor: str, operation: str, msg: bytes) -> bytes:
        raise ProviderCallError(
            f"{CAPABILITY_ID} has no operation {operation!r} for actors to call"
        )

    def address(self, actor: str) -> tuple[str, int]:
        """(host, port) the actor's listener is bound to (useful with ``PORT=0``)."""
        with self._lock:
            listener = self._listeners.get(actor)
        if listener is None:
            raise NotFound(f"{CAPABILITY_ID}: actor {actor} is not bound")
        return listener.address

    def bind_actor(self, config: CapabilityConfiguration) -> None:
        """Open the actor's listener; on a re-bind, open the new one before closing the old.

        A re-bind whose values are bad or whose port cannot be listened on
        raises and leaves the old listener serving.  A re-bind to the same
        address and port takes the open listening socket over (a dup), so
        clients waiting in the backlog are not lost.
        """
        actor = config.module
        settings = ServerSettings.from_values(config.values, f"actor {actor}")
        with self._lock:
            current = self._listeners.get(actor)
        sock = None
        if (
            current is not None
            and settings.port != 0
            and (settings.address, settings.port) == (current.settings.address, current.address[1])
        ):
            with contextlib.suppress(OSError):
                sock = current.sock.dup()
        listener = _Listener(actor, settings, self._invoke, sock)
        with self._lock:
            old = self._listeners.pop(actor, None)
            self._listeners[actor] = listener
        listener.start()
        if old is not None:
            old.close()
            log.info("%s replaced %s for actor %s", listener.label, old.label, actor)
        log.info("%s serves actor %s", listener.label, actor)

    def remove_actor(self, config: CapabilityConfiguration) -> None:
        with self._lock:
            listener = self._listeners.pop(config.module, None)
        if listener is not None:
            listener.close()
            log.info("%s closed (actor %s unbound)", listener.label, config.module)

    def health(self) -> HealthResponse:
        with self._lock:
            listeners = list(self._listeners.values())
        dead = [x.label for x in listeners if not x.alive]
        if dead:
            return HealthResponse(healthy=False, message=f"listener(s) stopped: {', '.join(dead)}")
        return HealthResponse(healthy=True, message=f"{len(listeners)} listener(s)")

    def stop(self) -> None:
        with self._lock:
            listeners = list(self._listeners.values())
            self._listeners.clear()
        for listener in listeners:
            listener.begin_close()
        deadline = time.monotonic() + max((x.settings.drain_timeout for x in listeners), default=0)
        for listener in listeners:
            listener.finish_close(deadline)

    # -- the call into the actor and what each failure becomes --

    def _invoke(self, actor: str, payload: bytes) -> _Reply:
        who = f"actor {actor}"
        try:
            handler = self._handler
            if handler is not None:
                raw = handler(actor, payload)
            else:
                dispatcher = self.dispatcher
                if dispatcher is None:
                    return _unavailable("the server is not attached to a host")
                raw = dispatcher.dispatch(actor, OP_HANDLE_REQUEST, payload)
        except HostStopped as exc:
            log.info("%s: %s", who, exc)
            return _unavailable("the host is shutting down")
        except (NotFound, NotBound, ProviderError) as exc:
            log.warning("%s is not available: %s", who, exc)
            return _unavailable("the actor is not available")
        except InstancesBusy as exc:
            log.warning("%s is busy: %s", who, exc)
            return _unavailable("the actor is busy")
        except InvocationTimeout as exc:
            log.warning("%s timed out: %s", who, exc)
            return _error_reply(504, "the actor did not answer in time")
        except InvocationError as exc:
            log.warning("%s failed HandleRequest: %s", who, exc)
            return _error_reply(500, "the actor failed to handle the request")
        except Exception:
            log.exception("%s: HandleRequest failed", who)
            return _error_reply(500, "the request could not be handled")
        return _reply_from_actor(raw, who)


@hookimpl
def wascc_providers() -> list[type[HttpServerProvider]]:
    return [HttpServerProvider]
