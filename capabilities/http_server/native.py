"""The native ``wascc:http_server`` (``native/providers/http_server/``) as a provider.

The C server does the protocol work and calls actors from its own threads
(through the host's data plane in C when the route is in its tables, else
through the dispatcher given here); this class adds what the Python provider
offers around it: :meth:`address` (for ``PORT=0``), :meth:`stats`,
:meth:`bound_actors`, and a dispatcher that prefixes a failure's text with
the kind of wascc error (``NotFound: ...``, ``InvocationTimeout: ...``), from
which the C server picks the status code (503, 504 or 500; ``http_server.c``
lists them).

The C server keeps a record of every failed call (its status and the
dispatcher's words, which the client is not told) and, with
``ACCESS_LOG=true``, of every request; a thread of this class reads them
every 0.1 s (``TakeLog``) and logs them, the access records on the same
``wascc_capabilities.http_server.access`` logger with the same fields as the
Python server, so no request waits for Python to log it.

Which server the plugin offers: the native one when its library is installed,
unless ``WASCC_HTTP_SERVER=python`` (see :func:`server_class`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import msgpack

from wascc._providers import libraries
from wascc.engine.library import NativeLibrary
from wascc.errors import (
    NotFound,
    ProviderCallError,
    ProviderError,
)
from wascc.logs import provider_logger
from wascc.providers.native import NativeProvider
from wascc.wire.codec import CapabilityConfiguration

from .connection import access_log
from .provider import HttpServerProvider, HttpServerStats
from .settings import CAPABILITY_ID, OP_HANDLE_REQUEST

log = provider_logger(__name__, CAPABILITY_ID)

#: ``WASCC_HTTP_SERVER``: ``native`` (the default when built) or ``python``.
SERVER_ENV = "WASCC_HTTP_SERVER"
_STATUS_OP = "ServerStatus"
_TAKE_LOG_OP = "TakeLog"
_LOG_PERIOD = 0.1  # seconds between two reads of the C server's log records


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


def _log_failure(actor: str, status: int, text: str, words: str) -> None:
    """One failed call, as the Python server words it (the detail the client is not told)."""
    who = f"actor {actor}"
    if status == 503 and text == "the host is shutting down":
        log.info("%s: %s", who, words)
    elif status == 502:
        log.warning("%s answered %s with something unusable: %s", who, OP_HANDLE_REQUEST, text)
    else:
        log.warning("%s: %s (%d): %s", who, text, status, words)


class NativeHttpServerProvider(NativeProvider):
    """``wascc:http_server`` in C: the same binding values and answers as the Python one."""

    capability_id = CAPABILITY_ID

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        file = Path(path) if path is not None else native_library()
        if file is None:
            raise ProviderError(f"{CAPABILITY_ID}: the native server library is not installed")
        super().__init__(NativeLibrary(str(file.resolve())), file)
        self.bundled = path is None
        self._log_thread: threading.Thread | None = None
        self._log_stop = threading.Event()

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
                    was_bound = True
                else:
                    was_bound = self._bound.pop(config.module, None) is not None
            if operation == "BindActor":
                self._start_log()
                with contextlib.suppress(NotFound):  # unless unbound meanwhile
                    host, port = self.address(config.module)
                    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                    log.info("%s %s serves actor %s", CAPABILITY_ID, where, config.module)
            elif was_bound:
                log.info("%s closed the listener of actor %s", CAPABILITY_ID, config.module)
        return reply

    def _start_log(self) -> None:
        with self._bound_lock:
            if self._log_thread is not None:
                return
            self._log_thread = threading.Thread(
                target=self._drain_log, name=f"{CAPABILITY_ID} log", daemon=True
            )
        self._log_thread.start()

    def _drain_log(self) -> None:
        while not self._log_stop.wait(_LOG_PERIOD):
            self._take_log()

    def _take_log(self) -> None:
        """Log the records the C server kept since the last call."""
        try:
            raw = self.handle_call("system", _TAKE_LOG_OP, b"")
        except ProviderCallError:  # stopping
            return
        records: dict[str, Any] = msgpack.unpackb(raw)
        for record in records["entries"]:
            if len(record) == 4:
                _log_failure(*record)
                continue
            actor, method, path, status, micros = record
            access_log.info(
                "%s %s %d %dus",
                method,
                path,
                status,
                micros,
                extra={
                    "actor": actor,
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_us": micros,
                },
            )
        if records["dropped"]:
            log.warning("%d log record(s) dropped: not read in time", records["dropped"])

    def stop(self) -> None:
        self._log_stop.set()
        thread = self._log_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
            self._take_log()  # what the last requests left
        super().stop()

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
