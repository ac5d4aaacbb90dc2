"""The native ``wascc:http_server`` (``native/providers/http_server/``) as a provider.

The C server does the protocol work and calls actors from its own threads;
this class adds what the Python provider offers around it: :meth:`address`
(for ``PORT=0``), :meth:`stats`, :meth:`bound_actors`, and the dispatcher it
hands to the C server, which logs every failed call as the Python provider
does and prefixes its error text with the kind of wascc error (``NotFound: ...``,
``InvocationTimeout: ...``), from which the C server picks the status code
(503, 504 or 500; ``http_server.c`` lists them).

Which server the plugin offers: the native one when its library is installed,
unless ``WASCC_HTTP_SERVER=python`` (see :func:`server_class`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgpack

from wascc._providers import libraries
from wascc.engine.library import NativeLibrary
from wascc.errors import (
    HostStopped,
    InstancesBusy,
    InvocationError,
    InvocationTimeout,
    NotBound,
    NotFound,
    ProviderCallError,
    ProviderError,
)
from wascc.logs import provider_logger
from wascc.providers.base import Dispatcher
from wascc.providers.native import NativeProvider
from wascc.wire.codec import CapabilityConfiguration

from .provider import HttpServerProvider, HttpServerStats
from .settings import CAPABILITY_ID, OP_HANDLE_REQUEST

log = provider_logger(__name__, CAPABILITY_ID)

#: ``WASCC_HTTP_SERVER``: ``native`` (the default when built) or ``python``.
SERVER_ENV = "WASCC_HTTP_SERVER"
_STATUS_OP = "ServerStatus"


def native_library() -> Path | None:
    """The installed ``libwascc_http_server`` library, if any."""
    return libraries().get("http_server")


def server_class() -> type[HttpServerProvider] | type[NativeHttpServerProvider]:
    """The provider class ``wascc:http_server`` resolves to.

    The native server when its library is installed, unless the environment
    says ``WASCC_HTTP_SERVER=python``; ``WASCC_HTTP_SERVER=native`` without
    the library is an error rather than a silent fallback.
    """
    choice = os.environ.get(SERVER_ENV, "").strip().lower()
    if choice not in ("", "native", "python"):
        raise ProviderError(f"{SERVER_ENV}={choice!r} is neither 'native' nor 'python'")
    if choice == "python":
        return HttpServerProvider
    if native_library() is not None:
        return NativeHttpServerProvider
    if choice == "native":
        raise ProviderError(
            f"{SERVER_ENV}=native but the native http_server library is not installed "
            "(reinstall wascc to build native/)"
        )
    return HttpServerProvider


def _kind(exc: BaseException) -> str:
    """The error name the C server maps to a status (most specific that matters first)."""
    for kind in (HostStopped, InstancesBusy, InvocationTimeout, NotFound, NotBound, ProviderError):
        if isinstance(exc, kind):
            return kind.__name__
    return type(exc).__name__


class _DispatchFailed(Exception):
    """What the C server sees of a failed call: ``<kind>: <message>``."""


class _TaggingDispatcher:
    """The host's dispatcher as the C server needs it: failures logged and named."""

    def __init__(self, inner: Dispatcher) -> None:
        self.inner = inner

    def dispatch(self, actor: str, operation: str, payload: bytes) -> bytes:
        try:
            return self.inner.dispatch(actor, operation, payload)
        except BaseException as exc:
            who = f"actor {actor}"
            if isinstance(exc, HostStopped):
                log.info("%s: %s", who, exc)
            elif isinstance(exc, (NotFound, NotBound, ProviderError)):
                log.warning("%s is not available: %s", who, exc)
            elif isinstance(exc, InstancesBusy):
                log.warning("%s is busy: %s", who, exc)
            elif isinstance(exc, InvocationTimeout):
                log.warning("%s timed out: %s", who, exc)
            elif isinstance(exc, InvocationError):
                log.warning("%s failed %s: %s", who, OP_HANDLE_REQUEST, exc)
            else:
                log.exception("%s: %s failed", who, OP_HANDLE_REQUEST)
            raise _DispatchFailed(f"{_kind(exc)}: {exc}") from None


class NativeHttpServerProvider(NativeProvider):
    """``wascc:http_server`` in C: the same binding values and answers as the Python one."""

    capability_id = CAPABILITY_ID

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        file = Path(path) if path is not None else native_library()
        if file is None:
            raise ProviderError(f"{CAPABILITY_ID}: the native server library is not installed")
        super().__init__(NativeLibrary(str(file.resolve())), file)
        self.bundled = path is None

    def configure_dispatch(self, dispatcher: Dispatcher) -> None:
        super().configure_dispatch(_TaggingDispatcher(dispatcher))

    def handle_call(self, actor: str, operation: str, msg: bytes) -> bytes:
        try:
            reply = super().handle_call(actor, operation, msg)
        except ProviderCallError as exc:
            if operation in ("BindActor", "RemoveActor"):  # bad values: as the Python server says
                raise ProviderError(str(exc)) from None
            raise
        if operation in ("BindActor", "RemoveActor"):  # it succeeded: keep what is bound
            config = CapabilityConfiguration.decode(msg)
            with self._bound_lock:
                if operation == "BindActor":
                    self._bound[config.module] = config
                else:
                    self._bound.pop(config.module, None)
        return reply

    def _status(self) -> dict[str, Any]:
        raw = self.handle_call("system", _STATUS_OP, b"")
        status: dict[str, Any] = msgpack.unpackb(raw, strict_map_key=False)
        return status

    def address(self, actor: str) -> tuple[str, int]:
        """(host, port) the actor's listener is bound to (useful with ``PORT=0``)."""
        for listener in self._status()["listeners"]:
            if listener["actor"] == actor:
                return str(listener["address"]), int(listener["port"])
        raise NotFound(f"{CAPABILITY_ID}: actor {actor} is not bound")

    def stats(self) -> HttpServerStats:
        """Responses by status code and open connections (read by ``wascc.observe``)."""
        status = self._status()
        responses = {int(code): int(n) for code, n in status["responses"].items()}
        return HttpServerStats(responses, sum(int(x["connections"]) for x in status["listeners"]))

    def __repr__(self) -> str:
        return f"NativeHttpServerProvider({self.path})"
