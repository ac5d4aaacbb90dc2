"""The ``wascc:http_server`` CapabilityProvider: bindings, listeners, dispatch, status mapping.

BindActor opens (or, on a re-bind, replaces) the actor's listener,
RemoveActor and stop close them, and :meth:`HttpServerProvider._invoke` is
the one place where a request meets the actor: every failure of the call
becomes the status code the package docstring lists.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

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
from wascc.providers.base import CapabilityProvider
from wascc.wire.codec import (
    CapabilityConfiguration,
    CapabilityDescriptor,
    Direction,
    HealthResponse,
    OperationDescriptor,
)

from .responses import _error_reply, _Reply, _reply_from_actor, _unavailable
from .scheduler import _Listener
from .settings import CAPABILITY_ID, OP_HANDLE_REQUEST, ServerSettings

log = provider_logger(__name__, CAPABILITY_ID)

#: ``handler(actor, HttpRequest msgpack) -> HttpResponse msgpack``; may raise wascc errors.
Handler = Callable[[str, bytes], bytes]


@dataclass(frozen=True, slots=True)
class HttpServerStats:
    """What one HTTP server provider has answered and holds open, over all its listeners.

    ``responses`` counts responses written by status code since the provider
    started (listeners closed since then included); ``connections`` is the
    number of client connections open now.
    """

    responses: dict[int, int]
    connections: int


class HttpServerProvider(CapabilityProvider):
    """``wascc:http_server``: one HTTP/1.1 listener per bound actor (see the module doc)."""

    capability_id = CAPABILITY_ID

    def __init__(self, *, handler: Handler | None = None) -> None:
        super().__init__()
        self._handler = handler
        self._listeners: dict[str, _Listener] = {}
        self._lock = threading.Lock()
        self._closed_responses: dict[int, int] = {}  # of listeners closed so far

    def descriptor(self) -> CapabilityDescriptor:
        return CapabilityDescriptor(
            id=CAPABILITY_ID,
            name="wascc HTTP server",
            version="0.1.0",
            revision=1,
            long_description="HTTP/1.1 server (httptools/llhttp): one listener per bound actor",
            supported_operations=(
                OperationDescriptor(
                    OP_HANDLE_REQUEST, Direction.TO_ACTOR, "an HTTP request for the actor"
                ),
            ),
        )

    def handle(self, actor: str, operation: str, msg: bytes) -> bytes:
        raise ProviderCallError(
            f"{CAPABILITY_ID} has no operation {operation!r} for actors to call"
        )

    def stats(self) -> HttpServerStats:
        """Responses by status code and open connections (read by ``wascc.observe``)."""
        with self._lock:
            listeners = list(self._listeners.values())
            responses = dict(self._closed_responses)
        for listener in listeners:
            for code, n in listener.response_counts().items():
                responses[code] = responses.get(code, 0) + n
        return HttpServerStats(responses, sum(x.open_connections for x in listeners))

    def _retire_counts(self, listener: _Listener) -> None:
        """Keep a closing listener's response counts in the provider's totals."""
        counted = listener.response_counts(reset=True)
        with self._lock:
            for code, n in counted.items():
                self._closed_responses[code] = self._closed_responses.get(code, 0) + n

    def address(self, actor: str) -> tuple[str, int]:
        """(host, port) the actor's listener is bound to (useful with ``PORT=0``)."""
        with self._lock:
            listener = self._listeners.get(actor)
        if listener is None:
            raise NotFound(f"{CAPABILITY_ID}: actor {actor} is not bound")
        return listener.address

    def bind_actor(self, config: CapabilityConfiguration) -> None:
        """Open the actor's listener; on a re-bind, open the new one before closing the old.

        A re-bind whose values are bad or whose port cannot be listened on
        raises and leaves the old listener serving.  A re-bind to the same
        address and port takes the open listening socket over (a dup), so
        clients waiting in the backlog are not lost.
        """
        actor = config.module
        settings = ServerSettings.from_values(config.values, f"actor {actor}")
        with self._lock:
            current = self._listeners.get(actor)
        sock = None
        if (
            current is not None
            and settings.port != 0
            and (settings.address, settings.port) == (current.settings.address, current.address[1])
        ):
            with contextlib.suppress(OSError):
                sock = current.sock.dup()
        listener = _Listener(actor, settings, self._invoke, sock)
        with self._lock:
            old = self._listeners.pop(actor, None)
            self._listeners[actor] = listener
        listener.start()
        if old is not None:
            old.close()
            self._retire_counts(old)
            log.info("%s replaced %s for actor %s", listener.label, old.label, actor)
        log.info("%s serves actor %s", listener.label, actor)

    def remove_actor(self, config: CapabilityConfiguration) -> None:
        with self._lock:
            listener = self._listeners.pop(config.module, None)
        if listener is not None:
            listener.close()
            self._retire_counts(listener)
            log.info("%s closed (actor %s unbound)", listener.label, config.module)

    def health(self) -> HealthResponse:
        with self._lock:
            listeners = list(self._listeners.values())
        dead = [x.label for x in listeners if not x.alive]
        if dead:
            return HealthResponse(healthy=False, message=f"listener(s) stopped: {', '.join(dead)}")
        return HealthResponse(healthy=True, message=f"{len(listeners)} listener(s)")

    def stop(self) -> None:
        with self._lock:
            listeners = list(self._listeners.values())
            self._listeners.clear()
        for listener in listeners:
            listener.begin_close()
        deadline = time.monotonic() + max((x.settings.drain_timeout for x in listeners), default=0)
        for listener in listeners:
            listener.finish_close(deadline)
            self._retire_counts(listener)

    # -- the call into the actor and what each failure becomes --

    def _invoke(self, actor: str, payload: bytes) -> _Reply:
        who = f"actor {actor}"
        try:
            handler = self._handler
            if handler is not None:
                raw = handler(actor, payload)
            else:
                dispatcher = self.dispatcher
                if dispatcher is None:
                    return _unavailable("the server is not attached to a host")
                raw = dispatcher.dispatch(actor, OP_HANDLE_REQUEST, payload)
        except HostStopped as exc:
            log.info("%s: %s", who, exc)
            return _unavailable("the host is shutting down")
        except (NotFound, NotBound, ProviderError) as exc:
            log.warning("%s is not available: %s", who, exc)
            return _unavailable("the actor is not available")
        except InstancesBusy as exc:
            log.warning("%s is busy: %s", who, exc)
            return _unavailable("the actor is busy")
        except InvocationTimeout as exc:
            log.warning("%s timed out: %s", who, exc)
            return _error_reply(504, "the actor did not answer in time")
        except InvocationError as exc:
            log.warning("%s failed HandleRequest: %s", who, exc)
            return _error_reply(500, "the actor failed to handle the request")
        except Exception:
            log.exception("%s: HandleRequest failed", who)
            return _error_reply(500, "the request could not be handled")
        return _reply_from_actor(raw, who)
