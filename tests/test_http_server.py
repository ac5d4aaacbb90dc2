"""wascc_capabilities.http_server (wascc:http_server) with real sockets on 127.0.0.1.

Most tests serve the echo example actor (its JSON echo shows exactly what the
actor was handed); kvcounter with a slow Python keyvalue provider makes
requests that take a while.  Clients are http.client and raw sockets.

Where the contract is silent, the original waSCC server (actix-web, Rust
``http`` crate) lower-cased header names; this one does too, and joins
repeated headers with ", " (the original kept only one value).

Every test that serves requests runs against both servers: the Python one
(``python``) and the native one in C (``native``, skipped when its library
is not built).  A handler (``make_server(handler=f)``) answers in place of an
actor: the Python server's ``handler=``, or a dispatcher handed to the native
server that calls ``f``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import wasmtime
from wascc_capabilities import http_server
from wascc_capabilities.http_server import (
    HttpServerProvider,
    NativeHttpServerProvider,
    ServerSettings,
    native_library,
)

from wascc import BindingError, CapabilityProvider, Host, KeyPair, NotFound, ProviderError
from wascc.errors import (
    ActorRetired,
    ActorTrap,
    GuestError,
    HostStopped,
    InstancesBusy,
    InvocationTimeout,
    NotBound,
)
from wascc.providers.native import NativeProvider
from wascc.wire.codec import (
    AddRequest,
    AddResponse,
    CapabilityConfiguration,
    CapabilityDescriptor,
    HttpRequest,
    HttpResponse,
)

from conftest import TEST_ACTOR_WAT, BuiltExamples, Signer

HTTP = "wascc:http_server"
Address = tuple[str, int]


# ---- fixtures and helpers --------------------------------------------------------------


@pytest.fixture
def host(examples: BuiltExamples) -> Iterator[Host]:
    h = Host(trusted_issuers=[examples.account], health_interval=0, load_entry_points=False)
    yield h
    h.stop()


Server = HttpServerProvider | NativeHttpServerProvider
Handler = Callable[[str, bytes], bytes]

SERVERS = [
    "python",
    pytest.param(
        "native",
        marks=pytest.mark.skipif(native_library() is None, reason="native http_server not built"),
    ),
]


class HandlerDispatch:
    """A dispatcher that answers every call with ``handler`` (the native server's handler=)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    def dispatch(self, actor: str, operation: str, payload: bytes) -> bytes:
        assert operation == "HandleRequest"
        return self.handler(actor, payload)


def new_server(kind: str, handler: Handler | None = None) -> Server:
    if kind == "python":
        return HttpServerProvider(handler=handler)
    provider = NativeHttpServerProvider()
    if handler is not None:
        provider.configure_dispatch(HandlerDispatch(handler))
    return provider


@pytest.fixture(params=SERVERS)
def kind(request: pytest.FixtureRequest) -> str:
    """Which server a test runs against: ``python`` or ``native``."""
    name: str = request.param
    return name


@pytest.fixture
def make_server(kind: str) -> Iterator[Callable[..., Server]]:
    """make_server(handler=None) -> a server of this test's kind, stopped at the end."""
    made: list[Server] = []

    def _make(handler: Handler | None = None) -> Server:
        made.append(new_server(kind, handler))
        return made[-1]

    yield _make
    for provider in made:
        provider.stop()


@pytest.fixture
def server(host: Host, kind: str) -> Server:
    provider = new_server(kind)
    host.add_provider(provider)
    return provider


@pytest.fixture
def echo(host: Host, examples: BuiltExamples) -> str:
    return host.add_actor(examples.signed("echo"))


Serve = Callable[..., Address]


@pytest.fixture
def serve(host: Host, server: Server) -> Serve:
    """serve(actor, **values) -> the (host, port) its listener got (PORT=0 by default)."""

    def _serve(actor: str, **values: str) -> Address:
        host.set_binding(actor, HTTP, values={"PORT": "0", **values})
        return server.address(actor)

    return _serve


@pytest.fixture
def echo_at(echo: str, serve: Serve) -> Address:
    return serve(echo)


class SlowKeyValue(CapabilityProvider):
    """wascc:keyvalue whose Add takes ``delay`` seconds (for requests in flight)."""

    capability_id = "wascc:keyvalue"

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.entered = threading.Event()
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def descriptor(self) -> CapabilityDescriptor:
        return CapabilityDescriptor(id="wascc:keyvalue", name="slow keyvalue", version="1")

    def handle(self, actor: str, operation: str, msg: bytes) -> bytes:
        assert operation == "Add"
        request = AddRequest.decode(msg)
        self.entered.set()
        time.sleep(self.delay)
        with self.lock:
            value = self.counts[request.key] = self.counts.get(request.key, 0) + request.value
        return AddResponse(value=value).encode()


def slow_counter(
    host: Host, examples: BuiltExamples, delay: float, **settings: Any
) -> tuple[str, SlowKeyValue]:
    actor = host.add_actor(examples.signed("kvcounter"), **settings)
    kv = SlowKeyValue(delay)
    host.add_provider(kv)
    host.set_binding(actor, "wascc:keyvalue")
    return actor, kv


class Wire:
    """A raw client socket with a reader of whole responses (status, headers, body)."""

    def __init__(self, address: Address, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self, *, head: bool = False) -> tuple[int, dict[str, str], bytes]:
        status = self.file.readline()
        if not status:
            raise EOFError("the server closed the connection")
        code = int(status.split()[1])
        headers: dict[str, str] = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head or code in (100, 204, 304) else int(headers.get("content-length", 0))
        return code, headers, self.file.read(length)

    def at_eof(self) -> bool:
        """True when the server closed (or reset) the connection."""
        try:
            return self.file.read(1) == b""
        except (ConnectionResetError, TimeoutError):
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def wire() -> Iterator[Callable[..., Wire]]:
    opened: list[Wire] = []

    def _open(address: Address, timeout: float = 5.0) -> Wire:
        opened.append(Wire(address, timeout))
        return opened[-1]

    yield _open
    for w in opened:
        with contextlib.suppress(OSError):
            w.close()


def get(address: Address, path: str = "/", **kw: Any) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*address, timeout=5)
    try:
        conn.request(kw.pop("method", "GET"), path, **kw)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def refused(address: Address) -> bool:
    try:
        socket.create_connection(address, timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def echoed(body: bytes) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(body)
    return result


# ---- requests and responses ----------------------------------------------------------


def test_get_with_query_string_reaches_the_echo_actor(echo_at: Address) -> None:
    status, headers, body = get(echo_at, "/hello/world?x=1&y=two", headers={"X-Test": "yes"})
    assert status == 200
    assert headers["content-type"] == "application/json"  # the actor's, kept
    assert int(headers["content-length"]) == len(body)
    assert "date" in headers
    request = echoed(body)
    assert request["method"] == "GET"
    assert request["path"] == "/hello/world"
    assert request["query_string"] == "x=1&y=two"
    assert request["headers"]["x-test"] == "yes"
    assert request["headers"]["host"] == f"{echo_at[0]}:{echo_at[1]}"
    assert request["body"] == ""


def test_post_body_reaches_the_actor(echo_at: Address) -> None:
    status, _, body = get(echo_at, "/submit", method="POST", body=b'{"a": 1}')
    assert status == 200
    request = echoed(body)
    assert request["method"] == "POST" and request["body"] == '{"a": 1}'
    assert request["headers"]["content-length"] == "8"


def test_repeated_headers_are_joined_and_names_lower_cased(
    echo_at: Address, wire: Callable[..., Wire]
) -> None:
    client = wire(echo_at)
    client.send(
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Many: one\r\nx-many: two\r\nX-MANY:  three  \r\n"
        b"Cookie: a=1\r\nCookie: b=2\r\n\r\n"
    )
    status, _, body = client.response()
    headers = echoed(body)["headers"]
    assert status == 200
    assert headers["x-many"] == "one, two, three"
    assert headers["cookie"] == "a=1; b=2"  # cookies join with "; " (RFC 9113 8.2.3)


def test_absolute_form_target_is_reduced_to_path_and_query(
    echo_at: Address, wire: Callable[..., Wire]
) -> None:
    client = wire(echo_at)
    client.send(b"GET http://example.com/a/b?c=d HTTP/1.1\r\nHost: example.com\r\n\r\n")
    request = echoed(client.response()[2])
    assert (request["path"], request["query_string"]) == ("/a/b", "c=d")


def test_keep_alive_serves_many_requests_on_one_socket(echo_at: Address) -> None:
    conn = http.client.HTTPConnection(*echo_at, timeout=5)
    try:
        sockets = set()
        for i in range(5):
            conn.request("GET", f"/n/{i}")
            response = conn.getresponse()
            assert response.status == 200 and response.getheader("Connection") is None
            assert echoed(response.read())["path"] == f"/n/{i}"
            assert conn.sock is not None
            sockets.add(conn.sock.getsockname())
        assert len(sockets) == 1
    finally:
        conn.close()


def test_http10_keeps_alive_only_when_asked(echo_at: Address, wire: Callable[..., Wire]) -> None:
    client = wire(echo_at)
    client.send(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    status, headers, _ = client.response()
    assert status == 200 and headers["connection"] == "keep-alive"
    client.send(b"GET /b HTTP/1.0\r\n\r\n")
    status, headers, body = client.response()
    assert status == 200 and headers["connection"] == "close"
    assert echoed(body)["path"] == "/b"
    assert client.at_eof()


def test_connection_close_is_honoured(echo_at: Address, wire: Callable[..., Wire]) -> None:
    client = wire(echo_at)
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, headers, _ = client.response()
    assert status == 200 and headers["connection"] == "close"
    assert client.at_eof()


def test_pipelined_requests_are_answered_in_order(
    echo_at: Address, wire: Callable[..., Wire]
) -> None:
    client = wire(echo_at)
    client.send(
        b"".join(
            b"POST /p/%d HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nb%02d" % (i, i)
            for i in range(10)
        )
    )
    for i in range(10):
        status, _, body = client.response()
        request = echoed(body)
        assert status == 200
        assert (request["path"], request["body"]) == (f"/p/{i}", f"b{i:02d}")


def test_chunked_request_body_is_reassembled(echo_at: Address, wire: Callable[..., Wire]) -> None:
    client = wire(echo_at)
    client.send(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    for piece in (b"hello", b", ", b"chunked world"):
        client.send(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
        time.sleep(0.01)
    client.send(b"0\r\nX-Trailer: t\r\n\r\n")
    status, _, body = client.response()
    request = echoed(body)
    assert status == 200
    assert request["body"] == "hello, chunked world"
    assert "x-trailer" not in request["headers"]  # trailers are not part of the map


def test_expect_100_continue_gets_the_interim_response_first(
    echo_at: Address, wire: Callable[..., Wire]
) -> None:
    client = wire(echo_at)
    client.send(
        b"PUT /big HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n"
    )
    assert client.response()[0] == 100  # sent before the body is
    client.send(b"hello world")
    status, _, body = client.response()
    assert status == 200 and echoed(body)["body"] == "hello world"


def test_expect_100_continue_for_a_too_large_body_gets_413_instead(
    echo: str, serve: Serve, wire: Callable[..., Wire]
) -> None:
    client = wire(serve(echo, MAX_BODY_BYTES="10"))
    client.send(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
    status, headers, _ = client.response()
    assert status == 413 and headers["connection"] == "close"
    assert client.at_eof()


def test_head_sends_the_headers_of_get_without_a_body(
    echo_at: Address, wire: Callable[..., Wire]
) -> None:
    client = wire(echo_at)
    client.send(
        b"".join(b"%s /h HTTP/1.1\r\nHost: x\r\n\r\n" % m for m in (b"GET", b"HEAD", b"GET"))
    )
    _, get_headers, get_body = client.response()
    status, headers, body = client.response(head=True)
    assert status == 200 and body == b""
    # the actor saw HEAD (so its echo is 1 byte longer than for GET)
    assert int(headers["content-length"]) == int(get_headers["content-length"]) + 1
    status, _, body = client.response()  # the next response starts right after the head
    assert status == 200 and body == get_body


def test_access_log_has_one_line_per_request_with_its_fields(
    echo: str, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wascc_capabilities.http_server.access")
    address = serve(echo, ACCESS_LOG="true")
    assert get(address, "/logged?x=1")[0] == 200
    deadline = time.monotonic() + 5
    while not (records := [r for r in caplog.records if r.name.endswith("http_server.access")]):
        assert time.monotonic() < deadline, "no access log line"
        time.sleep(0.02)
    (record,) = records
    fields = {k: getattr(record, k) for k in ("actor", "method", "path", "status")}
    assert fields == {"actor": echo, "method": "GET", "path": "/logged", "status": 200}
    assert isinstance(record.duration_us, int)


# ---- what the server refuses ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\nHost: x\n\n", 400),  # bare LF
        (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nExpect: magic\r\n\r\n", 417),
    ],
)
def test_malformed_request_is_refused_and_the_connection_closed(
    echo_at: Address, wire: Callable[..., Wire], raw: bytes, code: int
) -> None:
    client = wire(echo_at)
    client.send(raw)
    status, headers, body = client.response()
    assert status == code and headers["connection"] == "close"
    assert body.startswith(str(code).encode())
    assert client.at_eof()


def test_an_error_after_good_pipelined_requests_answers_those_first(
    echo_at: Address, wire: Callable[..., Wire]
) -> None:
    client = wire(echo_at)
    client.send(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nBAD\r\n\r\n")
    assert [client.response()[0] for _ in range(3)] == [200, 200, 400]


def test_oversized_headers_get_431(echo: str, serve: Serve, wire: Callable[..., Wire]) -> None:
    address = serve(echo, MAX_HEADER_BYTES="20000")
    client = wire(address)
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Filler: %s\r\n" % (b"y" * 200) * 100)
    assert client.response()[0] == 431
    # one header value streamed without end is cut off too
    client = wire(address)
    client.send(b"GET / HTTP/1.1\r\nX-Huge: ")
    with contextlib.suppress(OSError):
        for _ in range(30):
            client.send(b"z" * 1000)
    assert client.response()[0] == 431
    # a big header under the limit, arriving in pieces, is fine
    client = wire(address)
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
    for _ in range(15):
        client.send(b"b" * 1000)
        time.sleep(0.002)
    client.send(b"\r\n\r\n")
    status, _, body = client.response()
    assert status == 200 and echoed(body)["headers"]["x-big"] == "b" * 15000


def test_oversized_body_gets_413(echo: str, serve: Serve, wire: Callable[..., Wire]) -> None:
    address = serve(echo, MAX_BODY_BYTES="1000")
    assert get(address, "/", method="POST", body=b"x" * 1000)[0] == 200
    assert get(address, "/", method="POST", body=b"x" * 1001)[0] == 413
    client = wire(address)  # chunked: counted as it arrives
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    with contextlib.suppress(OSError):
        for _ in range(5):
            client.send(b"1f4\r\n" + b"x" * 500 + b"\r\n")
    status, headers, _ = client.response()
    assert status == 413 and headers["connection"] == "close"


CHUNKED_HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_a_chunk_declared_over_the_body_limit_gets_413_at_once(
    echo: str, serve: Serve, wire: Callable[..., Wire]
) -> None:
    """The server does not wait for data it would refuse (REQUEST_TIMEOUT is 30 s here)."""
    address = serve(echo, MAX_BODY_BYTES="10")
    for sends in (
        [CHUNKED_HEAD + b"FFFFFFFF\r\n"],  # one packet: head and size line
        [CHUNKED_HEAD, b"b\r\n"],  # 11 > 10, in its own packet
        [CHUNKED_HEAD + b"5\r\nhello\r\n", b"6;ext=x\r\n"],  # 5 + 6 > 10
        [CHUNKED_HEAD, *(bytes([c]) for c in b"1000000\r\n")],  # a byte at a time
        [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + CHUNKED_HEAD + b"ffffff\r\n"],  # pipelined
    ):
        client = wire(address, timeout=5)
        for data in sends:
            client.send(data)
            time.sleep(0.01)
        status, headers, body = client.response()
        if status == 200:  # the pipelined GET first
            status, headers, body = client.response()
        assert status == 413 and headers["connection"] == "close", sends
        assert b"chunk" in body


def test_chunks_within_the_body_limit_still_pass(
    echo: str, serve: Serve, wire: Callable[..., Wire]
) -> None:
    address = serve(echo, MAX_BODY_BYTES="10")
    client = wire(address)
    client.send(CHUNKED_HEAD + b"5\r\nhe\nlo\r\n" + b"0005\r\n\r\n\r\n\n\r\n0\r\n\r\n")
    status, _, body = client.response()
    assert status == 200 and echoed(body)["body"] == "he\nlo\r\n\r\n\n"


def test_0xff_in_a_header_value_reaches_the_actor_as_latin_1(
    echo_at: Address, wire: Callable[..., Wire]
) -> None:
    client = wire(echo_at)
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Bytes: a\xffb\xe9\r\n\r\n")
    status, _, body = client.response()
    assert status == 200 and echoed(body)["headers"]["x-bytes"] == "a\u00ffb\u00e9"


@pytest.mark.parametrize(
    ("request_bytes", "reason"),
    [
        (b"GET /a\xffb HTTP/1.1\r\nHost: x\r\n\r\n", b"request target"),
        (b"GET /?q=\xff HTTP/1.1\r\nHost: x\r\n\r\n", b"request target"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX\xff: y\r\n\r\n", b"malformed request"),
    ],
)
def test_0xff_in_the_target_or_a_header_name_is_a_400_naming_it(
    echo_at: Address, wire: Callable[..., Wire], request_bytes: bytes, reason: bytes
) -> None:
    client = wire(echo_at)
    client.send(request_bytes)
    status, headers, body = client.response()
    assert status == 400 and headers["connection"] == "close"
    assert reason in body


def test_request_that_never_completes_gets_408(
    echo: str, serve: Serve, wire: Callable[..., Wire]
) -> None:
    client = wire(serve(echo, REQUEST_TIMEOUT="0.2"))
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    started = time.monotonic()
    assert client.response()[0] == 408
    assert 0.15 < time.monotonic() - started < 2


def test_idle_keep_alive_connection_is_closed_after_the_timeout(
    echo: str, serve: Serve, wire: Callable[..., Wire]
) -> None:
    client = wire(serve(echo, KEEPALIVE_TIMEOUT="0.2"))
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert client.response()[0] == 200
    started = time.monotonic()
    assert client.at_eof()
    assert 0.15 < time.monotonic() - started < 2


def test_a_connection_at_the_limit_evicts_the_longest_idle_one(
    echo: str, serve: Serve, wire: Callable[..., Wire]
) -> None:
    address = serve(echo, MAX_CONNECTIONS="2")
    first, second = wire(address), wire(address)
    for client in (first, second):
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.response()[0] == 200
    time.sleep(0.2)  # both idle past the grace period
    second.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert second.response()[0] == 200  # second is now the more recently idle
    time.sleep(0.2)
    assert get(address)[0] == 200  # admitted: the longest idle (first) was closed
    assert first.at_eof()


def test_connections_over_the_limit_get_503_when_all_are_busy(
    wire: Callable[..., Wire], make_server: Callable[..., Server]
) -> None:
    release = threading.Event()
    entered = threading.Semaphore(0)

    def slow(actor: str, payload: bytes) -> bytes:
        entered.release()
        release.wait(10)
        return HttpResponse(status_code=200, status="OK").encode()

    provider = make_server(slow)
    try:
        address = bind_bare(provider, "Mbusy", MAX_CONNECTIONS="2")
        busy = [wire(address), wire(address)]
        for client in busy:
            client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert entered.acquire(timeout=5)
        extra = wire(address)
        status, headers, body = extra.response()
        assert status == 503 and headers["retry-after"] and headers["connection"] == "close"
        assert body == b"503 Service Unavailable: too many connections\n" and extra.at_eof()
        release.set()
        for client in busy:
            assert client.response()[0] == 200
    finally:
        release.set()
        provider.stop()


def raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"needs {wanted} file descriptors (hard limit {hard})")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def test_an_idle_flood_does_not_lock_out_a_normal_client(
    echo: str, serve: Serve, server: Server
) -> None:
    """1,100 sockets that send nothing (over MAX_CONNECTIONS 1024): real clients get 200."""
    raise_fd_limit(8192)
    address = serve(echo)
    flood: list[socket.socket] = []
    try:
        for _ in range(1100):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(address)
            flood.append(s)
        deadline = time.monotonic() + 30
        while server.stats().connections < 1024:  # the server took them all in
            assert time.monotonic() < deadline, server.stats().connections
            time.sleep(0.01)
        statuses = [get(address, f"/fresh{i}")[0] for i in range(10)]
        conn = http.client.HTTPConnection(*address, timeout=5)
        for i in range(10):
            conn.request("GET", f"/kept{i}")
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        conn.close()
    finally:
        for s in flood:
            s.close()
    print(f"idle flood: {statuses.count(200)} of {len(statuses)} requests got 200")
    assert statuses == [200] * 20


def test_a_slowloris_does_not_lock_out_a_normal_client(echo: str, serve: Serve) -> None:
    """50 connections sending a request head a byte a second (over MAX_CONNECTIONS 32)."""
    address = serve(echo, MAX_CONNECTIONS="32")
    head = b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 64
    stop = threading.Event()

    def slowloris() -> None:
        conns: list[tuple[socket.socket, int]] = []
        try:
            while not stop.is_set():
                kept = []
                for s, sent in conns:
                    try:
                        s.send(head[sent : sent + 1])
                        kept.append((s, sent + 1))
                    except OSError:
                        s.close()
                for _ in range(50 - len(kept)):  # reconnect what the server closed
                    s = socket.socket()
                    s.settimeout(1)
                    try:
                        s.connect(address)
                        s.send(head[:1])
                        kept.append((s, 1))
                    except OSError:
                        s.close()
                conns = kept
                stop.wait(1.0)
        finally:
            for s, _ in conns:
                s.close()

    attacker = threading.Thread(target=slowloris)
    attacker.start()
    statuses = []
    try:
        time.sleep(1.5)  # the slow heads fill the server
        for i in range(20):
            statuses.append(get(address, f"/normal{i}")[0])
            time.sleep(0.2)
    finally:
        stop.set()
        attacker.join()
    print(f"slowloris: {statuses.count(200)} of {len(statuses)} requests got 200")
    assert statuses == [200] * 20


# ---- actor failures and the host's state ----------------------------------------------


def test_actor_error_gets_500_without_the_detail(
    host: Host, examples: BuiltExamples, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    counter = host.add_actor(examples.signed("kvcounter"))  # no keyvalue provider: Add fails
    status, headers, body = get(serve(counter), "/hits")
    assert status == 500 and headers["content-type"].startswith("text/plain")
    assert b"keyvalue" not in body and len(body) < 100
    deadline = time.monotonic() + 5  # the native server's log is written within 0.1 s
    while "keyvalue Add failed" not in caplog.text:  # the detail is logged
        assert time.monotonic() < deadline, caplog.text
        time.sleep(0.02)


def test_answer_that_is_not_a_response_gets_502(make_server: Callable[..., Server]) -> None:
    provider = make_server(lambda actor, payload: b"\xc1 not msgpack")
    address = bind_bare(provider, "Mactor")
    try:
        assert get(address)[0] == 502
    finally:
        provider.stop()


def test_actor_headers_cannot_break_the_framing(
    wire: Callable[..., Wire], make_server: Callable[..., Server]
) -> None:
    evil = HttpResponse(
        status_code=201,
        status="Made\r\nX-Injected: 1",
        header={
            "Content-Length": "999",
            "Transfer-Encoding": "chunked",
            "Connection": "close",
            "X-Split": "a\r\nX-Injected: 1",
            "Bad Name": "x",
            "Content-Type": "text/x-mine",
        },
        body=b"body",
    ).encode()
    provider = make_server(lambda actor, payload: evil)
    client = wire(bind_bare(provider, "Mactor"))
    try:
        for _ in range(2):  # the connection stays usable
            client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = client.response()
            assert (status, body) == (201, b"body")
            assert headers["content-length"] == "4" and headers["content-type"] == "text/x-mine"
            assert "x-injected" not in headers and "transfer-encoding" not in headers
            assert "connection" not in headers and "x-split" not in headers
    finally:
        provider.stop()


def bind_bare(provider: Server, actor: str, **values: str) -> Address:
    """Bind a provider that has no host (its handler answers) on a free port."""
    config = CapabilityConfiguration(actor, {"PORT": "0", **values})
    provider.handle_call("system", "BindActor", config.encode())
    return provider.address(actor)


def test_request_for_a_vanished_actor_gets_503(make_server: Callable[..., Server]) -> None:
    class Gone:
        def dispatch(self, actor: str, operation: str, payload: bytes) -> bytes:
            raise NotFound(f"no actor {actor} is running (called {operation} from host)")

    provider = make_server()
    provider.configure_dispatch(Gone())
    try:
        status, headers, _ = get(bind_bare(provider, "Mgone"))
        assert status == 503 and headers["connection"] == "close" and headers["retry-after"]
    finally:
        provider.stop()


def test_busy_actor_gets_503_and_a_deadline_overrun_504(
    host: Host, examples: BuiltExamples, serve: Serve
) -> None:
    actor, kv = slow_counter(host, examples, 0.5, deadline=0.3, max_instances=1)
    address = serve(actor)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(get, address, "/a")
        assert kv.entered.wait(2)
        second = pool.submit(get, address, "/b")  # waits 0.3 s for the only instance
        assert second.result()[0] == 503
        assert second.result()[1]["connection"] == "close"
        assert first.result()[0] == 504  # the actor ran past its 0.3 s deadline


def looping_http_actor() -> bytes:
    """The WAT test actor whose HandleRequest loops forever (its Loop operation, renamed)."""
    wat = TEST_ACTOR_WAT.replace(
        '(data (i32.const 256) "ErrorTrap")',
        '(data (i32.const 256) "ErrorTrap")\n  (data (i32.const 300) "HandleRequest")',
    )
    renamed = wat.replace("(i32.const 40) (i32.const 4)", "(i32.const 300) (i32.const 13)")
    assert renamed != wat
    return wasmtime.wat2wasm(renamed)


def test_a_looping_actor_gets_504(kind: str, sign: Signer, account: KeyPair) -> None:
    """No Python provider on the path: with the data plane in C the call never enters Python."""
    signed, _ = sign(looping_http_actor(), caps=[HTTP], name="looper")
    with Host(
        trusted_issuers=[account.public_key], health_interval=0, load_entry_points=False
    ) as host:
        actor = host.add_actor(signed, deadline=0.3)
        provider = new_server(kind)
        host.add_provider(provider)
        host.set_binding(actor, HTTP, values={"PORT": "0"})
        status, _, body = get(provider.address(actor), "/a")
        assert status == 504 and body.startswith(b"504 Gateway Timeout: ")


@pytest.mark.skipif(native_library() is None, reason="native http_server not built")
@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InstancesBusy("actor looper: all 1 instances stayed busy for 0.3s"), 503),
        (ActorRetired("actor looper was replaced or removed before this call could start"), 503),
        (NotBound("wascc:http_server (default) may not dispatch to MABC"), 503),
        (InvocationTimeout("actor looper did not finish HandleRequest within 0.3s"), 504),
        (HostStopped("the host is shutting down"), 503),
        (GuestError("actor looper answered with an error: the host is stopped"), 500),
        (ActorTrap("actor looper trapped during HandleRequest: unreachable"), 500),
        (RuntimeError("not a wascc error"), 500),
    ],
)
def test_each_kind_of_failure_maps_to_its_status(error: BaseException, status: int) -> None:
    """Native only: the host names a failed dispatch's kind (provider.h), the server maps it."""

    class Failing:
        def dispatch(self, actor: str, operation: str, payload: bytes) -> bytes:
            raise error

    provider = NativeHttpServerProvider()
    NativeProvider.configure_dispatch(provider, Failing())
    try:
        assert get(bind_bare(provider, "MABC"))[0] == status
    finally:
        provider.stop()


def test_drain_lets_the_request_in_flight_finish_and_refuses_new_ones(
    host: Host, examples: BuiltExamples, serve: Serve
) -> None:
    actor, kv = slow_counter(host, examples, 0.5)
    address = serve(actor)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(get, address, "/slow")
        assert kv.entered.wait(2)
        assert host.drain(0) is False  # draining now; one call still running
        status, headers, body = get(address, "/new")
        assert status == 503 and headers["connection"] == "close" and headers["retry-after"]
        status, _, body = slow.result()
        assert status == 200 and echoed(body) == {"counter": 1}
    assert host.drain(2) is True


def test_removing_the_actor_closes_its_port_and_idle_connections(
    host: Host, echo: str, echo_at: Address, wire: Callable[..., Wire]
) -> None:
    client = wire(echo_at)
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert client.response()[0] == 200
    host.remove_actor(echo)  # the host sends RemoveActor: the listener closes
    assert refused(echo_at)
    assert client.at_eof()


def test_remove_binding_lets_the_request_in_flight_finish(
    host: Host, examples: BuiltExamples, serve: Serve, server: Server
) -> None:
    actor, kv = slow_counter(host, examples, 0.4)
    address = serve(actor)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(get, address, "/slow")
        assert kv.entered.wait(2)
        host.remove_binding(actor, HTTP)  # returns once the request in flight is answered
        status, headers, _ = slow.result(timeout=2)
        assert status == 200 and headers["connection"] == "close"
    assert refused(address)
    with pytest.raises(NotFound):
        server.address(actor)


# ---- binding ------------------------------------------------------------------------


def test_port_in_use_is_a_binding_error_naming_address_and_port(
    host: Host, echo: str, server: Server
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BindingError, match=rf"127\.0\.0\.1:{port}.*already in use"):
            host.set_binding(echo, HTTP, values={"PORT": str(port)})
    host.set_binding(echo, HTTP, values={"PORT": str(port)})  # free now: binds
    assert server.address(echo) == ("127.0.0.1", port)
    assert get(("127.0.0.1", port))[0] == 200


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "needs a PORT"),
        ({"PORT": "http"}, "PORT='http'.*not an integer"),
        ({"PORT": "70000"}, "not a TCP port"),
        ({"PORT": "0", "MAX_BODY_BYTES": "-1"}, "MAX_BODY_BYTES"),
        ({"PORT": "0", "ADDRESS": "no.such.host.invalid"}, "bad address"),
    ],
)
def test_bad_binding_values_are_refused_clearly(
    host: Host, echo: str, kind: str, values: dict[str, str], message: str
) -> None:
    host.add_provider(new_server(kind))
    with pytest.raises(BindingError, match=message):
        host.set_binding(echo, HTTP, values=values)


def test_bind_twice_is_idempotent_and_a_failed_bind_can_be_retried(
    make_server: Callable[..., Server],
) -> None:
    provider = make_server(lambda actor, payload: HttpResponse().encode())
    try:
        with pytest.raises(ProviderError, match="PORT"):
            provider.handle_call(
                "system", "BindActor", CapabilityConfiguration("Ma", {"PORT": "x"}).encode()
            )
        address = bind_bare(provider, "Ma")
        again = CapabilityConfiguration("Ma", {"PORT": "0"})
        assert provider.handle_call("system", "BindActor", again.encode()) == b""
        assert provider.address("Ma") == address  # the same listener
        assert get(address)[0] == 200
    finally:
        provider.stop()
    assert refused(address)


def test_a_refused_rebind_keeps_the_old_listener_serving(
    host: Host, echo: str, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    address = bind_and_wait(host, server, echo, {"PORT": "0"})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = str(taken.getsockname()[1])
        for values in ({"PORT": "notaport"}, {"PORT": busy}):
            with (
                caplog.at_level(logging.WARNING, logger="wascc.host"),
                pytest.raises(BindingError),
            ):
                host.set_binding(echo, HTTP, values=values)
            assert get(address)[0] == 200
            assert server.address(echo) == address
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len([r for r in warnings if "previous binding stays" in r.getMessage()]) == 2
    (binding,) = [b for b in host.bindings() if b.capability_id == HTTP]
    assert binding.values == {"PORT": "0"}
    assert server.bound_actors()[echo].values["PORT"] == "0"


def test_a_good_rebind_moves_the_actor_and_closes_the_old_port(
    host: Host, echo: str, server: Server
) -> None:
    old = bind_and_wait(host, server, echo, {"PORT": "0"})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host.set_binding(echo, HTTP, values={"PORT": str(port)})
    assert server.address(echo) == ("127.0.0.1", port)
    assert get(("127.0.0.1", port))[0] == 200
    assert refused(old)


def test_a_rebind_on_the_same_port_takes_the_listening_socket_over(
    host: Host, echo: str, server: Server, wire: Callable[..., Wire]
) -> None:
    first = bind_and_wait(host, server, echo, {"PORT": "0"})
    port = str(first[1])
    host.set_binding(echo, HTTP, values={"PORT": port})  # PORT=0 -> the same port
    host.set_binding(echo, HTTP, values={"PORT": port, "MAX_BODY_BYTES": "4"})
    assert server.address(echo) == first
    conn = wire(first)
    conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    assert conn.response()[0] == 413  # the new settings are in force
    assert get(first)[0] == 200


def bind_and_wait(host: Host, server: Server, actor: str, values: dict[str, str]) -> Address:
    host.set_binding(actor, HTTP, values=values)
    return server.address(actor)


def test_listens_on_loopback_unless_told_otherwise() -> None:
    # Python-only: ServerSettings is the Python server's parser of the binding values
    # (the native server's bounds and wording are checked through BindActor above).
    assert ServerSettings.from_values({"PORT": "8080"}).address == "127.0.0.1"
    settings = ServerSettings.from_values(
        {"port": "1", "address": "::1", "keepalive_timeout": "2.5", "__wascc_name": "x"}
    )
    assert (settings.port, settings.address, settings.keepalive_timeout) == (1, "::1", 2.5)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_listens_on_ipv6_loopback_when_configured(echo: str, serve: Serve) -> None:
    address = serve(echo, ADDRESS="::1")
    assert address[0] == "::1"
    status, _, body = get(address, "/six")
    assert status == 200 and echoed(body)["headers"]["host"] == f"[::1]:{address[1]}"


def os_threads() -> int:
    """Threads of this process as the OS counts them (C threads too)."""
    return len(os.listdir("/proc/self/task"))


def test_stop_closes_every_listener(host: Host, examples: BuiltExamples, kind: str) -> None:
    provider = new_server(kind)
    host.add_provider(provider)
    echo = host.add_actor(examples.signed("echo"))
    counter = host.add_actor(examples.signed("kvcounter"))
    addresses = []
    for actor in (echo, counter):
        host.set_binding(actor, HTTP, values={"PORT": "0"})
        addresses.append(provider.address(actor))
    assert provider.health().healthy
    before = os_threads()
    host.remove_provider(HTTP)  # RemoveActor for both, then stop()
    assert all(refused(a) for a in addresses)
    assert os_threads() < before


@pytest.mark.parametrize("choice", ["", "python", "native"])
def test_registers_through_the_wascc_providers_hook(
    choice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The native server when built (the default), the Python one when asked for."""
    if choice == "native" and native_library() is None:
        pytest.skip("native http_server not built")
    monkeypatch.setenv("WASCC_HTTP_SERVER", choice)
    expected = HttpServerProvider if choice == "python" else http_server.server_class()
    if choice != "python" and native_library() is not None:
        assert expected is NativeHttpServerProvider
    assert http_server.wascc_providers() == [expected]
    assert expected.capability_id == HTTP
    with Host(plugins=[http_server], health_interval=0, load_entry_points=False) as h:
        assert h.provider_factories()[HTTP] is expected
        assert h.add_provider(HTTP).id == HTTP  # found by capability id


def test_an_unknown_server_choice_is_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WASCC_HTTP_SERVER", "nginx")
    with pytest.raises(ProviderError, match="WASCC_HTTP_SERVER='nginx' is neither"):
        http_server.server_class()


# ---- load ----------------------------------------------------------------------------


def test_fifty_clients_twenty_requests_each_all_answered_correctly(
    echo_at: Address, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)

    def client(n: int) -> int:
        conn = http.client.HTTPConnection(*echo_at, timeout=10)
        try:
            for i in range(20):
                body = f"client {n} request {i}".encode()
                conn.request("POST", f"/c/{n}?i={i}", body=body)
                response = conn.getresponse()
                request = echoed(response.read())
                assert response.status == 200
                assert request["path"] == f"/c/{n}" and request["query_string"] == f"i={i}"
                assert request["body"] == body.decode()
            return 20
        finally:
            conn.close()

    with ThreadPoolExecutor(50) as pool:
        assert sum(pool.map(client, range(50))) == 1000


def test_a_slow_request_does_not_hold_up_other_connections(
    make_server: Callable[..., Server],
) -> None:
    release = threading.Event()

    def handler(actor: str, payload: bytes) -> bytes:
        if HttpRequest.decode(payload).path == "/slow":
            release.wait(5)
        return HttpResponse(body=b"done").encode()

    provider = make_server(handler)
    address = bind_bare(provider, "Mslow")
    try:
        with ThreadPoolExecutor(3) as pool:
            slow = [pool.submit(get, address, "/slow") for _ in range(2)]
            time.sleep(0.05)
            started = time.monotonic()
            for _ in range(5):
                assert get(address, "/fast")[0] == 200  # answered while /slow waits
            assert time.monotonic() - started < 0.5
            assert not any(f.done() for f in slow)
            release.set()
            assert [f.result()[2] for f in slow] == [b"done", b"done"]
    finally:
        release.set()
        provider.stop()


def test_handler_sees_the_same_request_the_actor_would(
    make_server: Callable[..., Server],
) -> None:
    seen: list[HttpRequest] = []

    def handler(actor: str, payload: bytes) -> bytes:
        seen.append(HttpRequest.decode(payload))
        return HttpResponse(body=b"ok").encode()

    provider = make_server(handler)
    try:
        status, _, body = get(bind_bare(provider, "Mb"), "/x?y=1", headers={"A": "b"})
    finally:
        provider.stop()
    assert (status, body) == (200, b"ok")
    assert (seen[0].method, seen[0].path, seen[0].query_string) == ("GET", "/x", "y=1")
    assert seen[0].header["a"] == "b"
