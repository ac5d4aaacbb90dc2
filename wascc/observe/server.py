"""A small HTTP server for ``/metrics`` and the dashboard (stdlib ``http.server``).

One :class:`ObserveServer` listens on one address and answers the routes it
is given: ``wascc up --metrics ADDR`` serves only ``/metrics``; ``--dashboard
ADDR`` serves the page, its JSON API and ``/metrics`` too.  It is an
operator's port, not the data plane: a thread per connection is plenty.

:func:`parse_address` reads ``PORT``, ``HOST:PORT`` or ``[V6]:PORT``; a bare
port binds the loopback interface, so nothing is exposed unless asked for.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from wascc.errors import ObserveError

__all__ = ["LOOPBACK", "ObserveServer", "Request", "Response", "Route", "parse_address"]

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
MAX_BODY = 1 << 20  # the dashboard's actions are small JSON objects


def parse_address(text: str, what: str = "--metrics") -> tuple[str, int]:
    """(host, port) from ``PORT``, ``HOST:PORT`` or ``[V6]:PORT``; loopback by default."""
    raw = text.strip()
    host, sep, port = raw.rpartition(":")
    if not sep:
        host, port = LOOPBACK, raw
    host = host.strip("[]") or LOOPBACK
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise ObserveError(
            f"{what} {text!r}: expected PORT, HOST:PORT or [IPV6]:PORT with a port 0-65535"
        )
    return host, number


@dataclass(frozen=True)
class Request:
    """What a route sees of one HTTP request."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


@dataclass
class Response:
    """What a route answers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


#: One route: request -> response.  Routes are matched on the exact path.
Route = Callable[[Request], Response]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    routes: Mapping[str, Route]


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "wascc-observe"

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        route = self.server.routes.get(path)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._answer(Response(400, b'{"error": "bad Content-Length"}'))
            return
        if length > MAX_BODY:
            self._answer(Response(413, b'{"error": "body too large"}'))
            return
        body = self.rfile.read(length) if length > 0 else b""
        if route is None:
            self._answer(Response(404, b'{"error": "not found"}'))
            return
        request = Request(
            self.command, path, query, {k.lower(): v for k, v in self.headers.items()}, body
        )
        try:
            response = route(request)
        except Exception as exc:
            log.exception("%s %s failed", self.command, path)
            kind = type(exc).__name__.encode()
            response = Response(500, b'{"error": "internal error: ' + kind + b'"}')
        self._answer(response)

    do_GET = do_POST = _serve

    def _answer(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class ObserveServer:
    """Serves ``routes`` on ``address`` in a thread of its own until :meth:`close`."""

    def __init__(self, address: tuple[str, int], routes: Mapping[str, Route]) -> None:
        try:
            server_class = _Server6 if ":" in address[0] else _Server
            self._server = server_class(address, _Handler)
        except OSError as exc:
            raise ObserveError(f"cannot listen on {address[0]}:{address[1]}: {exc}") from exc
        self._server.routes = dict(routes)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"wascc-observe {address[0]}:{address[1]}",
            daemon=True,
        )
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound (useful with port 0)."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def close(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5.0)
        self._server.server_close()

    def __enter__(self) -> ObserveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
