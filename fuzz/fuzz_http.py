"""HTTP requests: raw bytes through the server's parser glue, without sockets.

Each case is fed to a real :class:`capabilities.http_server._Connection` (its
httptools parser, size limits, chunked-body and header accounting) in one to
three pieces, as recv() might deliver them.  Every request it completes must
turn into an :class:`~wascc.wire.codec.HttpRequest` that encodes (what the actor
would be sent); every refusal must be a clean error status (400, 413, 417,
431, 505) rendered as a response.  Anything else is a finding.
"""

from __future__ import annotations

import contextlib
import random
import zlib
from typing import Any, cast

import httptools

from capabilities.http_server import (
    ServerSettings,
    _Connection,
    _Refusal,
    _render,
    _Request,
)
from wascc.errors import ProviderError
from wascc.wire.codec import HttpRequest

from fuzz.engine import Target

_SETTINGS = ServerSettings(port=0, max_header_bytes=8192, max_body_bytes=4096)
_STATUSES = frozenset({400, 408, 413, 417, 431, 505})


class _Reference:
    """A plain httptools parse of the whole input: the bodies it completes."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.body = b""

    def on_message_begin(self) -> None:
        self.body = b""

    def on_body(self, body: bytes) -> None:
        if len(self.body) <= _SETTINGS.max_body_bytes:
            self.body += body

    def on_message_complete(self) -> None:
        self.bodies.append(self.body)


def _reference(data: bytes) -> list[bytes]:
    reference = _Reference()
    with contextlib.suppress(httptools.HttpParserError, httptools.HttpParserUpgrade):
        httptools.HttpRequestParser(reference).feed_data(data)
    return reference.bodies


class _Listener:
    """What a connection reads from its listener while parsing."""

    settings = _SETTINGS
    label = "fuzz"


def run(data: bytes) -> None:
    conn = _Connection(cast(Any, _Listener()), cast(Any, None), "fuzz")
    cuts = sorted({zlib.crc32(data) % (len(data) + 1), len(data) // 3}) if data else []
    view = memoryview(bytearray(data))
    start = 0
    for end in [*cuts, len(data)]:
        if end > start:
            conn._feed(view[start:end], end - start)
        start = max(start, end)
        if conn.ended:
            break
    refusals = 0
    expected = _reference(data)
    for i, item in enumerate(conn.ready):
        if (
            isinstance(item, _Refusal)
            and item.reply.code == 413
            and i < len(expected)
            and len(expected[i]) <= _SETTINGS.max_body_bytes
        ):
            raise AssertionError(f"413 for a {len(expected[i])}-byte body")
        if isinstance(item, _Request) and i < len(expected) and b"".join(item.body) != expected[i]:
            raise AssertionError("the body differs from a plain parse of the same bytes")
    for item in conn.ready:
        if isinstance(item, _Refusal):
            if item.reply.code not in _STATUSES:
                raise AssertionError(f"a refusal with status {item.reply.code}")
            _render(item.reply, None, False)
            refusals += 1
            continue
        assert isinstance(item, _Request)
        try:
            path, query = item.target()
        except _Refusal as refusal:
            if refusal.reply.code != 400:
                raise AssertionError(f"a target refused with {refusal.reply.code}") from None
            refusals += 1
            continue
        body = b"".join(item.body)
        if len(body) > _SETTINGS.max_body_bytes:
            raise AssertionError(
                f"a {len(body)}-byte body passed the {_SETTINGS.max_body_bytes} limit"
            )
        HttpRequest(item.method, path, query, item.header, body).encode()
    if refusals:
        raise ProviderError(f"{refusals} request(s) refused")  # a clean refusal


_GET = b"GET /path?q=1 HTTP/1.1\r\nHost: example\r\nUser-Agent: fuzz\r\n\r\n"
_POST = b"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
_CHUNKED = (
    b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: t\r\n\r\n"
)
SEEDS = [
    _GET,
    _POST,
    _CHUNKED,
    _GET + _POST + _CHUNKED + _GET,  # pipelined
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"PUT /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"GET http://example.com/abs?x=y HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nextra",
]


def generate(rng: random.Random) -> bytes:
    head = b"POST / HTTP/1.1\r\nHost: x\r\n"
    choice = rng.randrange(12)
    if choice == 0:  # CL + TE
        return head + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    if choice == 1:  # duplicated, conflicting CL
        return head + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
    if choice == 2:  # bad or huge chunk sizes
        size = rng.choice(
            [
                b"-1",
                b"0x10",
                b"g",
                b"FFFFFFFFFFFFFFFFF",
                b"1000",
                b"0" * 300 + b"1",
                b"fff",
                b"1 ",
                b" 1",
                b"1;" + b"e" * 500,
            ]
        )
        return (
            head
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + size
            + b"\r\n"
            + b"x" * 16
            + b"\r\n0\r\n\r\n"
        )
    if choice == 3:  # a header flood
        count = rng.choice([100, 1000, 5000])
        return b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * count + b"\r\n"
    if choice == 4:  # 0xFF and other high bytes
        where = rng.randrange(3)
        if where == 0:
            return b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n"
        if where == 1:
            return b"GET / HTTP/1.1\r\nHost: x\xff\r\n\r\n"
        return b"GET / HTTP/1.1\r\nX\xff: y\r\n\r\n"
    if choice == 5:  # bare LF, bare CR
        return rng.choice([b"GET / HTTP/1.1\nHost: x\n\n", b"GET / HTTP/1.1\rHost: x\r\r"])
    if choice == 6:  # obs-fold, NUL, spaces before colon
        return rng.choice(
            [
                b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
                b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
                b"GET / HTTP/1.1\r\nX : a\r\n\r\n",
            ]
        )
    if choice == 7:  # huge Content-Length
        return (
            head
            + b"Content-Length: "
            + rng.choice([b"99999999999999999999", b"4097", b"-1"])
            + b"\r\n\r\n"
        )
    if choice == 8:  # versions and methods
        return rng.choice(
            [
                b"GET / HTTP/2.0\r\n\r\n",
                b"GET / HTTP/0.9\r\n\r\n",
                b"FOO / HTTP/1.1\r\n\r\n",
                b"GET / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n",
            ]
        )
    if choice == 9:  # a long target
        return b"GET /" + b"a" * rng.choice([100, 8192, 20000]) + b" HTTP/1.1\r\n\r\n"
    if choice == 10:  # many small chunks, some over the limit in sum
        n = rng.randint(1, 600)
        return (
            head + b"Transfer-Encoding: chunked\r\n\r\n" + b"8\r\n12345678\r\n" * n + b"0\r\n\r\n"
        )
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))


TARGET = Target(name="http", run=run, seeds=SEEDS, generate=generate, deadline=5.0)
