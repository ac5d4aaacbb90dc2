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
bodies.  This package adds what a parser leaves to the server: keep-alive,
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

The package, by concept: :mod:`.settings` (binding values), :mod:`.parser`
(httptools glue and limits), :mod:`.connection` (one connection's state
machine), :mod:`.scheduler` (the leader/followers listener),
:mod:`.responses` (status lines and error bodies) and :mod:`.provider` (the
CapabilityProvider).  This module is the plugin (``wascc_providers``) and
re-exports the names tests, benchmarks and fuzz targets use.

A native twin of this server, in C (``native/providers/http_server/``), has
the same binding values, requests and status codes; :mod:`.native` wraps it.
The plugin offers the native one when its library is installed, the Python
one otherwise or when ``WASCC_HTTP_SERVER=python`` (:func:`.native.server_class`).
"""

from __future__ import annotations

from wascc.hookspecs import hookimpl

from .connection import _Connection as _Connection
from .native import SERVER_ENV, NativeHttpServerProvider, native_library, server_class
from .parser import _Request as _Request
from .parser import _RequestParser as _RequestParser
from .provider import Handler, HttpServerProvider, HttpServerStats
from .responses import _Refusal as _Refusal
from .responses import _render as _render
from .responses import _Reply as _Reply
from .scheduler import _Listener as _Listener
from .settings import (
    CAPABILITY_ID,
    DEFAULT_ADDRESS,
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_REQUEST_TIMEOUT,
    OP_HANDLE_REQUEST,
    ServerSettings,
)

__all__ = [
    "CAPABILITY_ID",
    "DEFAULT_ADDRESS",
    "DEFAULT_DRAIN_TIMEOUT",
    "DEFAULT_KEEPALIVE_TIMEOUT",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_HEADER_BYTES",
    "DEFAULT_REQUEST_TIMEOUT",
    "OP_HANDLE_REQUEST",
    "SERVER_ENV",
    "Handler",
    "HttpServerProvider",
    "HttpServerStats",
    "NativeHttpServerProvider",
    "ServerSettings",
    "native_library",
    "server_class",
]

# The class's public home is this package: resolving a manifest's entry-point
# name (``path: http_server``) finds the factory whose ``__module__`` is the
# entry point's module, ``wascc_capabilities.http_server``.
HttpServerProvider.__module__ = __name__
NativeHttpServerProvider.__module__ = __name__


@hookimpl
def wascc_providers() -> list[type[HttpServerProvider] | type[NativeHttpServerProvider]]:
    """The plugin hook: the native server when built, else (or if asked) the Python one."""
    return [server_class()]
