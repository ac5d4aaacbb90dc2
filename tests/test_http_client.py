"""capabilities.http_client (wascc:http_client) against a local HTTP server.

The server is the standard library's ThreadingHTTPServer on 127.0.0.1.  The
actor tests/guests/c/http_fetch.c forwards its payload to PerformRequest, so
those tests go actor -> host -> provider -> network and back; the others call
the provider's handle_call directly.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from capabilities import http_client
from capabilities.http_client import ClientSettings, HttpClientProvider
from wascc import BindingError, GuestError, Host, ProviderCallError
from wascc.wire.codec import CapabilityConfiguration, HttpRequest, HttpResponse

from conftest import ROOT, Signer

CLIENT = "wascc:http_client"
GUEST = Path(__file__).resolve().parent / "guests" / "c" / "http_fetch.c"
BIG = bytes(range(256)) * 8192  # 2 MiB


# ---- the server the actor talks to -------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    release: threading.Event

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.route()

    def do_POST(self) -> None:
        self.route()

    def do_PUT(self) -> None:
        self.route()

    def route(self) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path == "/ok":
            self.reply(200, b"ok", [("X-Test", "1"), ("X-Twice", "a"), ("X-Twice", "b")])
        elif path == "/echo":
            echo = {
                "method": self.command,
                "query": query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("latin-1"),
            }
            self.reply(200, json.dumps(echo).encode(), [("Content-Type", "application/json")])
        elif path.startswith("/redirect-chain/"):
            left = int(path.rsplit("/", 1)[1])
            if left == 0:
                self.reply(200, b"arrived")
            else:
                self.reply(302, b"", [("Location", f"/redirect-chain/{left - 1}")])
        elif path == "/redirect-file":
            self.reply(302, b"", [("Location", "file:///etc/passwd")])
        elif path == "/slow":
            self.release.wait(5)
            self.reply(200, b"late")
        elif path == "/big":
            self.reply(200, BIG, [("Content-Type", "application/octet-stream")])
        elif path == "/teapot":
            self.reply(418, b"short and stout")
        else:
            self.reply(404, b"no such path")

    def reply(self, code: int, body: bytes, headers: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # tests hang up on purpose
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    """Base URL of a local test server with /ok, /echo, /redirect-chain/N, /slow, /big."""
    release = threading.Event()
    handler = type("BoundHandler", (Handler,), {"release": release})
    server = Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


# ---- the actor ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def http_fetch_wasm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    clang = shutil.which("clang")
    if clang is None or shutil.which("wasm-ld") is None:
        pytest.fail("clang and wasm-ld (lld) are needed to build tests/guests/c/http_fetch.c")
    out = tmp_path_factory.mktemp("http_fetch") / "http_fetch.wasm"
    command = [clang, "--target=wasm32", "-nostdlib", "-Oz", "-Wall", "-Wextra", "-Werror"]
    command += [f"-I{ROOT / 'native' / 'include'}", "-Wl,--no-entry", "-Wl,--strip-all"]
    done = subprocess.run(
        [*command, "-o", str(out), str(GUEST)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"clang could not build {GUEST.name}:\n{done.stderr}"
    return out.read_bytes()


Fetch = Callable[..., HttpResponse]


@pytest.fixture
def fetcher(host: Host, sign: Signer, http_fetch_wasm: bytes) -> Callable[..., Fetch]:
    """fetcher(**binding values) -> fetch(url, **HttpRequest fields) through the actor."""

    def bind(**values: str) -> Fetch:
        signed, _ = sign(http_fetch_wasm, caps=[CLIENT], name="http_fetch")
        actor = host.add_actor(signed)
        if not any(p.capability_id == CLIENT for p in host.providers()):
            host.add_provider(HttpClientProvider())
        host.set_binding(actor, CLIENT, values=values)

        def fetch(url: str, **fields: object) -> HttpResponse:
            request = HttpRequest(path=url, **fields)  # type: ignore[arg-type]
            return HttpResponse.decode(host.call_actor(actor, "Fetch", request.encode()))

        return fetch

    return bind


def perform(url: str, settings: ClientSettings | None = None, **fields: object) -> HttpResponse:
    """PerformRequest straight on a provider (no actor, no host)."""
    provider = HttpClientProvider()
    try:
        return provider.perform(HttpRequest(path=url, **fields), settings or ClientSettings())  # type: ignore[arg-type]
    finally:
        provider.stop()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- through the actor ---------------------------------------------------------------


def test_actor_gets_status_headers_and_body(origin: str, fetcher: Callable[..., Fetch]) -> None:
    response = fetcher()(f"{origin}/ok")
    assert (response.status_code, response.status, response.body) == (200, "OK", b"ok")
    assert response.header["x-test"] == "1"
    assert response.header["x-twice"] == "a, b"  # repeated headers joined
    assert response.header["content-length"] == "2"


def test_actor_request_carries_method_headers_body_and_query(
    origin: str, fetcher: Callable[..., Fetch]
) -> None:
    response = fetcher()(
        f"{origin}/echo?a=1",
        method="POST",
        query_string="b=2&c=3",
        header={"X-From": "actor", "Content-Length": "999"},  # framing is the client's
        body=b"payload",
    )
    echo = json.loads(response.body)
    assert echo["method"] == "POST" and echo["query"] == "a=1&b=2&c=3"
    assert echo["headers"]["x-from"] == "actor" and echo["headers"]["content-length"] == "7"
    assert echo["body"] == "payload"


def test_error_statuses_are_responses_not_errors(
    origin: str, fetcher: Callable[..., Fetch]
) -> None:
    fetch = fetcher()
    assert fetch(f"{origin}/teapot").status_code == 418
    missing = fetch(f"{origin}/nowhere")
    assert (missing.status_code, missing.status, missing.body) == (
        404,
        "Not Found",
        b"no such path",
    )


def test_redirects_followed_up_to_max_redirects_and_refused_beyond(
    origin: str, fetcher: Callable[..., Fetch]
) -> None:
    fetch = fetcher(max_redirects="3")
    arrived = fetch(f"{origin}/redirect-chain/3")
    assert (arrived.status_code, arrived.body) == (200, b"arrived")
    with pytest.raises(GuestError, match=r"http_fetch: .*more than 3 redirects"):
        fetch(f"{origin}/redirect-chain/4")


def test_default_follows_five_redirects(origin: str) -> None:
    assert perform(f"{origin}/redirect-chain/5").body == b"arrived"
    with pytest.raises(ProviderCallError, match="more than 5 redirects"):
        perform(f"{origin}/redirect-chain/6")


def test_max_redirects_zero_hands_the_redirect_to_the_actor(
    origin: str, fetcher: Callable[..., Fetch]
) -> None:
    response = fetcher(max_redirects="0")(f"{origin}/redirect-chain/2")
    assert response.status_code == 302 and response.header["location"] == "/redirect-chain/1"


def test_timeout_is_honoured(origin: str, fetcher: Callable[..., Fetch]) -> None:
    fetch = fetcher(timeout="0.3")
    started = time.monotonic()
    with pytest.raises(GuestError, match=r"no answer within the timeout \(0\.3s\)"):
        fetch(f"{origin}/slow")
    assert time.monotonic() - started < 2
    assert fetch(f"{origin}/ok").status_code == 200  # the provider is fine afterwards


def test_connection_refused_is_reported(fetcher: Callable[..., Fetch]) -> None:
    with pytest.raises(GuestError, match="connection refused"):
        fetcher()(f"http://127.0.0.1:{closed_port()}/")


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://h/", "/relative/path", "http://"],
)
def test_non_http_urls_are_refused(fetcher: Callable[..., Fetch], url: str) -> None:
    with pytest.raises(GuestError, match=r"only http:// and https:// URLs|is not a URL"):
        fetcher()(url)


def test_big_body_reaches_the_actor_whole(origin: str, fetcher: Callable[..., Fetch]) -> None:
    response = fetcher()(f"{origin}/big")
    assert response.body == BIG and response.header["content-type"] == "application/octet-stream"


# ---- the provider alone ----------------------------------------------------------------


def test_redirect_to_a_non_http_url_is_refused(origin: str) -> None:
    with pytest.raises(ProviderCallError, match="redirected to a URL it cannot follow"):
        perform(f"{origin}/redirect-file")


def test_header_injection_is_refused(origin: str) -> None:
    with pytest.raises(ProviderCallError, match="invalid request"):
        perform(f"{origin}/echo", header={"X-Evil": "a\r\nX-Injected: 1"})


def test_body_over_max_response_bytes_is_an_error(origin: str) -> None:
    with pytest.raises(ProviderCallError, match=r"larger than max_response_bytes \(1000\)"):
        perform(f"{origin}/big", ClientSettings(max_response_bytes=1000))


def test_only_perform_request_is_served() -> None:
    provider = HttpClientProvider()
    with pytest.raises(ProviderCallError, match="no operation 'Fetch'"):
        provider.handle_call("Mactor", "Fetch", b"")


def test_settings_from_binding_values() -> None:
    settings = ClientSettings.from_values({"timeout": "2.5", "MAX_REDIRECTS": "0"})
    assert (settings.timeout, settings.max_redirects) == (2.5, 0)
    assert ClientSettings.from_values({}) == ClientSettings(30.0, 5, 16 * 1024 * 1024)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"timeout": "soon"}, "timeout='soon' .*not a number"),
        ({"timeout": "0"}, "must be >= 0.001"),
        ({"timeout": "nan"}, "must be >= 0.001"),
        ({"max_redirects": "-1"}, "max_redirects"),
    ],
)
def test_bad_binding_values_are_refused(
    host: Host, sign: Signer, http_fetch_wasm: bytes, values: dict[str, str], message: str
) -> None:
    signed, _ = sign(http_fetch_wasm, caps=[CLIENT], name="http_fetch")
    actor = host.add_actor(signed)
    host.add_provider(HttpClientProvider())
    with pytest.raises(BindingError, match=message):
        host.set_binding(actor, CLIENT, values=values)
    host.set_binding(actor, CLIENT, values={"timeout": "1"})  # a good one is then accepted


def test_bindings_keep_their_own_settings(origin: str) -> None:
    provider = HttpClientProvider()
    for actor, redirects in (("Mstrict", "0"), ("Mlax", "5")):
        config = CapabilityConfiguration(actor, {"max_redirects": redirects})
        provider.handle_call("system", "BindActor", config.encode())
    request = HttpRequest(path=f"{origin}/redirect-chain/1").encode()
    strict = HttpResponse.decode(provider.handle_call("Mstrict", "PerformRequest", request))
    lax = HttpResponse.decode(provider.handle_call("Mlax", "PerformRequest", request))
    assert (strict.status_code, lax.status_code) == (302, 200)
    provider.stop()


def test_registers_through_the_wascc_providers_hook() -> None:
    assert http_client.wascc_providers() == [HttpClientProvider]
    assert HttpClientProvider.capability_id == CLIENT
    with Host(plugins=[http_client], health_interval=0, load_entry_points=False) as h:
        assert h.provider_factories()[CLIENT] is HttpClientProvider
        assert h.add_provider(CLIENT).id == CLIENT  # found by capability id
