"""``wascc:http_client``: outbound HTTP(S) requests for actors (CONTRACTS section 3).

An actor calls ``PerformRequest`` with an :class:`~wascc.wire.codec.HttpRequest`
whose ``path`` is the full ``http://`` or ``https://`` URL (``queryString``,
when set, is appended with ``?`` or ``&``) and gets an
:class:`~wascc.wire.codec.HttpResponse` back: the status code, the reason phrase,
the headers (names lower-cased as the original's Rust client gave them,
repeated headers joined with ``", "``) and the body exactly as sent (not
decompressed, so it matches ``Content-Encoding`` and ``Content-Length``).
Every failure to get a response (refused or reset connection, DNS, TLS,
timeout, too many redirects, a URL that is not http(s)) is a provider error
with a message saying which; the actor receives it as its host call's error.
A response with any status, 4xx and 5xx included, is a success.

Built on **urllib3**: the client under requests and pip, maintained, typed,
thread-safe connection pooling per host (keep-alive without our own
bookkeeping), redirects with a limit through ``Retry`` (``Authorization``
and ``Cookie`` dropped when a redirect changes host), separate connect and
read timeouts, and certificate verification against the system store by
default.  The standard library's ``http.client`` has none of pooling,
redirects or verification defaults; requests adds a session layer we do not
need on top of urllib3.

Binding values (keys are case-insensitive):

=================== =========== ==================================================
``timeout``         30          seconds to connect, to wait for each read, and for
                                the whole body
``max_redirects``   5           redirects followed; more is an error; ``0`` =
                                do not follow (the actor gets the 3xx itself)
``max_response_bytes`` 16777216 largest body handed to the actor (more is an error)
=================== =========== ==================================================
"""

from __future__ import annotations

import errno
import http
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationValueError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
    SSLError,
)
from urllib3.util import parse_url

from wascc.errors import ProviderCallError, ProviderError
from wascc.hookspecs import hookimpl
from wascc.logs import provider_logger
from wascc.providers.base import CapabilityProvider
from wascc.wire.codec import (
    CapabilityConfiguration,
    CapabilityDescriptor,
    Direction,
    HttpRequest,
    HttpResponse,
    OperationDescriptor,
)

__all__ = ["CAPABILITY_ID", "OP_PERFORM_REQUEST", "ClientSettings", "HttpClientProvider"]

CAPABILITY_ID = "wascc:http_client"
log = provider_logger(__name__, CAPABILITY_ID)

OP_PERFORM_REQUEST = "PerformRequest"

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_REDIRECTS = 5
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024

_SCHEMES = frozenset({"http", "https"})
# Framing and connection headers are the client library's to write.
_DROPPED_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """One actor's client configuration, read from the BindActor values."""

    timeout: float = DEFAULT_TIMEOUT
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    @classmethod
    def from_values(cls, values: Mapping[str, str], who: str = "") -> ClientSettings:
        """Parse binding values; a bad value raises ``ProviderError``."""
        lower = {k.lower(): v.strip() for k, v in values.items() if not k.startswith("__wascc_")}
        where = f" for {who}" if who else ""

        def read(key: str, kind: type[int] | type[float], default: float, low: float) -> float:
            raw = lower.get(key)
            if not raw:
                return default
            try:
                value = kind(raw)
            except ValueError:
                what = "an integer" if kind is int else "a number"
                raise ProviderError(
                    f"{CAPABILITY_ID}: {key}={raw!r}{where} is not {what}"
                ) from None
            if not value >= low:  # also refuses NaN
                raise ProviderError(f"{CAPABILITY_ID}: {key}={raw!r}{where} must be >= {low}")
            return value

        timeout = read("timeout", float, DEFAULT_TIMEOUT, 0.001)
        if timeout == float("inf"):
            raise ProviderError(f"{CAPABILITY_ID}: timeout{where} must be finite")
        return cls(
            timeout=timeout,
            max_redirects=int(read("max_redirects", int, DEFAULT_MAX_REDIRECTS, 0)),
            max_response_bytes=int(read("max_response_bytes", int, DEFAULT_MAX_RESPONSE_BYTES, 0)),
        )


class HttpClientProvider(CapabilityProvider):
    """``wascc:http_client``: ``PerformRequest`` through a shared urllib3 pool."""

    capability_id = CAPABILITY_ID

    def __init__(self, *, pool: urllib3.PoolManager | None = None) -> None:
        super().__init__()
        self._pool = pool or urllib3.PoolManager(num_pools=64, maxsize=16, block=False)
        self._settings: dict[str, ClientSettings] = {}
        self._lock = threading.Lock()

    def descriptor(self) -> CapabilityDescriptor:
        return CapabilityDescriptor(
            id=CAPABILITY_ID,
            name="wascc HTTP client",
            version="0.1.0",
            revision=1,
            long_description="outbound HTTP and HTTPS requests (urllib3)",
            supported_operations=(
                OperationDescriptor(
                    OP_PERFORM_REQUEST, Direction.TO_PROVIDER, "send a request, get the response"
                ),
            ),
        )

    def bind_actor(self, config: CapabilityConfiguration) -> None:
        settings = ClientSettings.from_values(config.values, f"actor {config.module}")
        with self._lock:
            self._settings[config.module] = settings

    def remove_actor(self, config: CapabilityConfiguration) -> None:
        with self._lock:
            self._settings.pop(config.module, None)

    def stop(self) -> None:
        self._pool.clear()

    def handle(self, actor: str, operation: str, msg: bytes) -> bytes:
        if operation != OP_PERFORM_REQUEST:
            raise ProviderCallError(f"{CAPABILITY_ID} has no operation {operation!r}")
        request = HttpRequest.decode(msg)
        settings = self._settings.get(actor) or ClientSettings()
        return self.perform(request, settings).encode()

    def perform(self, request: HttpRequest, settings: ClientSettings) -> HttpResponse:
        """Send one request and read the whole response (see the module doc)."""
        method = (request.method or "GET").upper()
        url = _full_url(request)
        what = f"{method} {url}"
        headers = {k: v for k, v in request.header.items() if k.lower() not in _DROPPED_HEADERS}
        follow = settings.max_redirects > 0
        retries = urllib3.Retry(
            total=None,
            connect=0,
            read=0,
            status=0,
            other=0,
            redirect=settings.max_redirects if follow else False,
            raise_on_redirect=True,
            raise_on_status=False,
            respect_retry_after_header=False,
        )
        deadline = time.monotonic() + settings.timeout
        try:
            response = self._pool.urlopen(
                method,
                url,
                body=request.body or None,
                headers=headers,
                retries=retries,
                redirect=follow,
                timeout=urllib3.Timeout(connect=settings.timeout, read=settings.timeout),
                preload_content=False,
                decode_content=False,
            )
        except (HTTPError, ValueError) as exc:
            raise ProviderCallError(f"{what}: {_explain(exc, settings)}") from exc
        try:
            body = _read_body(response, settings, deadline, what)
        finally:
            response.release_conn()
        header: dict[str, str] = {}
        for name in response.headers:
            header[name.lower()] = response.headers[name]  # repeated ones joined with ", "
        reason = response.reason or _phrase(response.status)
        return HttpResponse(status_code=response.status, status=reason, header=header, body=body)


def _full_url(request: HttpRequest) -> str:
    """The request's URL with its query string; refuses anything but http(s)."""
    url = request.path.strip()
    try:
        parsed = parse_url(url)
    except LocationValueError as exc:
        raise ProviderCallError(f"PerformRequest: {url!r} is not a URL ({exc})") from exc
    if (parsed.scheme or "").lower() not in _SCHEMES or not parsed.host:
        raise ProviderCallError(
            f"PerformRequest refuses {url!r}: only http:// and https:// URLs are allowed"
        )
    query = request.query_string.lstrip("?")
    if query:
        url, hash_mark, fragment = url.partition("#")
        url += ("&" if parsed.query is not None else "?") + query + hash_mark + fragment
    return url


def _read_body(
    response: urllib3.BaseHTTPResponse, settings: ClientSettings, deadline: float, what: str
) -> bytes:
    limit = settings.max_response_bytes
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.stream(_CHUNK, decode_content=False):
            size += len(chunk)
            if size > limit:
                response.close()  # do not read (or pool) the rest
                raise ProviderCallError(
                    f"{what}: the response body is larger than max_response_bytes ({limit})"
                )
            chunks.append(chunk)
            if time.monotonic() > deadline:
                response.close()
                raise ProviderCallError(
                    f"{what}: the response took longer than the timeout ({settings.timeout:g}s)"
                )
    except (HTTPError, OSError) as exc:
        raise ProviderCallError(f"{what}: {_explain(exc, settings)}") from exc
    return b"".join(chunks)


def _explain(exc: BaseException, settings: ClientSettings) -> str:
    """A short, specific reason for a failed request."""
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        reason: BaseException = exc.reason
        if isinstance(reason, ResponseError):
            return f"more than {settings.max_redirects} redirects (max_redirects)"
        return _explain(reason, settings)
    # NameResolutionError < NewConnectionError < ConnectTimeoutError in urllib3 2.
    if isinstance(exc, NameResolutionError):
        return f"cannot resolve the host name ({exc.__cause__ or exc})"
    if isinstance(exc, NewConnectionError):
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == (
            errno.ECONNREFUSED
        ):
            return "connection refused"
        if isinstance(cause, TimeoutError):
            return f"timed out connecting after {settings.timeout:g}s"
        return f"cannot connect ({cause or exc})"
    if isinstance(exc, ConnectTimeoutError):
        return f"timed out connecting after {settings.timeout:g}s"
    if isinstance(exc, ReadTimeoutError):
        return f"no answer within the timeout ({settings.timeout:g}s)"
    if isinstance(exc, SSLError):
        return f"TLS failed ({exc})"
    if isinstance(exc, ProtocolError):
        return f"the connection failed ({exc})"
    if isinstance(exc, LocationValueError):
        return f"redirected to a URL it cannot follow ({exc})"
    if isinstance(exc, ValueError):
        return f"invalid request ({exc})"
    return f"{type(exc).__name__}: {exc}"


def _phrase(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return ""


@hookimpl
def wascc_providers() -> list[type[HttpClientProvider]]:
    return [HttpClientProvider]
