"""Responses this server writes: the actor's, sanitized, and its own error answers.

An actor's ``HttpResponse`` is decoded and stripped of the headers that
describe the connection or the framing (this server owns those), and
:func:`_render` frames every response the same way: status line, headers,
``Date``, ``Content-Length``, ``Connection``.  The status codes the server
produces itself (400, 408, 413, 417, 431, 502-505) are built here too, so
the wording of every error body lives in one place.
"""

from __future__ import annotations

import http
import re
import time
from email.utils import formatdate
from typing import TYPE_CHECKING

from wascc.errors import CodecError
from wascc.logs import provider_logger
from wascc.wire.codec import HttpResponse

from .settings import CAPABILITY_ID

if TYPE_CHECKING:
    from .parser import _Request

log = provider_logger(__name__, CAPABILITY_ID)

_RETRY_AFTER = "1"
# Headers that describe the connection or the framing: the provider owns them.
_HOP_BY_HOP = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer"}
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_NO_BODY_STATUS = frozenset({204, 304})


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


# Written as is to a connection over MAX_CONNECTIONS that no eviction could admit.
_BUSY_TEXT = b"503 Service Unavailable: too many connections\n"
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: " + _RETRY_AFTER.encode() + b"\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_BUSY_TEXT), _BUSY_TEXT)
)
