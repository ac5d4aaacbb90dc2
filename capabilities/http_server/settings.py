"""The binding values of one ``wascc:http_server`` listener, and the capability's names.

Every other module of the package reads its limits and timeouts from a
:class:`ServerSettings`; keeping the parsing of BindActor values here gives
one place that says what each value means, its default and its bounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from wascc.errors import ProviderError

CAPABILITY_ID = "wascc:http_server"
OP_HANDLE_REQUEST = "HandleRequest"

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
    #: One INFO line per request on the ``...http_server.access`` logger (off by default).
    access_log: bool = False

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
        flag = upper.get("ACCESS_LOG", "").strip().lower()
        if flag not in ("", "0", "1", "true", "false", "yes", "no", "on", "off"):
            raise ProviderError(f"{CAPABILITY_ID}: ACCESS_LOG={flag!r}{where} is not true or false")
        return cls(
            port=port,
            address=address,
            max_header_bytes=int(number("MAX_HEADER_BYTES", DEFAULT_MAX_HEADER_BYTES, int, 256)),
            max_body_bytes=int(number("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, int, 0)),
            max_connections=int(number("MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS, int, 1)),
            keepalive_timeout=number("KEEPALIVE_TIMEOUT", DEFAULT_KEEPALIVE_TIMEOUT, float, 0.001),
            request_timeout=number("REQUEST_TIMEOUT", DEFAULT_REQUEST_TIMEOUT, float, 0.001),
            drain_timeout=number("DRAIN_TIMEOUT", DEFAULT_DRAIN_TIMEOUT, float, 0),
            access_log=flag in ("1", "true", "yes", "on"),
        )
