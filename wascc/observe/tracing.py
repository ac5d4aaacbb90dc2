"""OpenTelemetry traces: one trace per request across provider, actor and provider calls.

:class:`Tracing` registers a middleware plugin on the host (``wascc_before_invoke``
/ ``wascc_after_invoke``), so every invocation the host routes becomes a span:

* a provider dispatching into an actor (an HTTP request, a message) starts
  the trace: a ``SERVER`` span (``CONSUMER`` for messaging) named after the
  request (``GET`` for HTTP, with ``http.request.method``, ``url.path`` and
  ``http.response.status_code``; ``wascc:messaging DeliverMessage``
  otherwise), and under it an ``INTERNAL`` span for the actor's handling
  (``kvcounter HandleRequest``);
* an actor calling a provider is a ``CLIENT`` span (``wascc:keyvalue Add``),
  an actor calling an actor an ``INTERNAL`` one, each the child of the span
  of the call it is made from;
* a failed call sets the span's status to ERROR with the wascc error kind
  (``error.type``).

The trace context travels with the call: a host call runs on the thread of
the actor call it is made from, so OpenTelemetry's context (a contextvar)
is the current span's all the way down.  Attributes follow the semantic
conventions (``rpc.system=wapc``, ``rpc.service``, ``rpc.method``,
``wascc.actor``, ``wascc.binding``); a request path is a span attribute,
never a metric label.

Spans are exported over OTLP/HTTP only when an endpoint is given
(``wascc up --otlp-endpoint http://collector:4318``); without one, wascc
sets up no tracing at all and pays nothing.  Tests hand in an in-memory
exporter instead.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from wascc.errors import ObserveError
from wascc.hookspecs import hookimpl
from wascc.host import Host
from wascc.observe.metrics import wascc_version
from wascc.wire.codec import HttpRequest, HttpResponse
from wascc.wire.invocation import SYSTEM, Invocation, InvocationResponse
from wascc.wire.keys import is_actor_key

__all__ = ["TRACER_NAME", "Tracing"]

log = logging.getLogger(__name__)

TRACER_NAME = "wascc"
HTTP_SERVER = "wascc:http_server"
MESSAGING = "wascc:messaging"
OP_HANDLE_REQUEST = "HandleRequest"


class _Open:
    """The spans one invocation opened and the context token to restore."""

    __slots__ = ("request", "span", "token")

    def __init__(self, span: Any, request: Any, token: object) -> None:
        self.span = span
        self.request = request
        self.token = token


class Tracing:
    """Traces every invocation of one host; :meth:`close` stops and flushes."""

    def __init__(
        self,
        host: Host,
        *,
        endpoint: str | None = None,
        exporter: SpanExporter | None = None,
        service_name: str = "wascc",
        labels: dict[str, str] | None = None,
    ) -> None:
        if (endpoint is None) == (exporter is None):
            raise ObserveError("tracing needs exactly one of an OTLP endpoint or an exporter")
        attributes: dict[str, Any] = {
            "service.name": service_name,
            "service.version": wascc_version(),
        }
        for key, value in (labels or {}).items():
            attributes[f"wascc.label.{key}"] = value
        self.provider = TracerProvider(resource=Resource.create(attributes))
        if endpoint is not None:
            self.provider.add_span_processor(BatchSpanProcessor(_otlp(endpoint)))
        else:
            assert exporter is not None
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer(TRACER_NAME, wascc_version())
        self.host = host
        self._open = threading.local()  # invocation id -> _Open, per thread
        self._names: dict[str, str] = {}
        host.add_plugin(self, "wascc-tracing")

    def close(self) -> None:
        """Stop tracing this host and flush what is left to the exporter (idempotent)."""
        if self.host.plugins.manager.is_registered(self):
            self.host.remove_plugin(self)
        self.provider.shutdown()

    def __enter__(self) -> Tracing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the middleware -------------------------------------------------------

    def _table(self) -> dict[str, _Open]:
        table: dict[str, _Open] | None = getattr(self._open, "table", None)
        if table is None:
            table = self._open.table = {}
        return table

    def _name(self, key: str) -> str:
        name = self._names.get(key)
        if name is None:
            try:
                name = self.host.actor(key).name
            except LookupError:
                return key
            self._names[key] = name
        return name

    @hookimpl(tryfirst=True)
    def wascc_before_invoke(self, invocation: Invocation) -> None:
        origin, target, operation = invocation.origin, invocation.target, invocation.operation
        parent = otel_context.get_current()
        request_span = None
        attributes: dict[str, Any] = {"rpc.system": "wapc", "rpc.method": operation}
        if is_actor_key(target):
            actor = self._name(target)
            attributes.update({"rpc.service": actor, "wascc.actor": target})
            if origin != SYSTEM and not is_actor_key(origin):  # a provider's request
                request_span = self._request_span(invocation, parent)
                parent = trace.set_span_in_context(request_span, parent)
                attributes["wascc.binding"] = invocation.binding or "default"
            span = self.tracer.start_span(
                f"{actor} {operation}", parent, SpanKind.INTERNAL, attributes
            )
        else:
            attributes.update(
                {
                    "rpc.service": target,
                    "wascc.capability": target,
                    "wascc.binding": invocation.binding or "default",
                    "wascc.actor": origin,
                }
            )
            span = self.tracer.start_span(
                f"{target} {operation}", parent, SpanKind.CLIENT, attributes
            )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        self._table()[invocation.id] = _Open(span, request_span, token)

    def _request_span(self, invocation: Invocation, parent: Any) -> Any:
        """The span of the request a provider dispatches (HTTP, a message...)."""
        origin, operation = invocation.origin, invocation.operation
        if origin == HTTP_SERVER and operation == OP_HANDLE_REQUEST:
            attributes: dict[str, Any] = {"wascc.capability": origin}
            name = "HTTP"
            try:
                request = HttpRequest.decode(invocation.msg)
            except Exception:  # not ours to judge: the actor will answer it
                request = None
            if request is not None:
                name = request.method
                attributes["http.request.method"] = request.method
                attributes["url.path"] = request.path
            return self.tracer.start_span(name, parent, SpanKind.SERVER, attributes)
        kind = SpanKind.CONSUMER if origin == MESSAGING else SpanKind.SERVER
        return self.tracer.start_span(
            f"{origin} {operation}", parent, kind, {"wascc.capability": origin}
        )

    @hookimpl(trylast=True)
    def wascc_after_invoke(self, invocation: Invocation, response: InvocationResponse) -> None:
        opened = self._table().pop(invocation.id, None)
        if opened is None:
            return
        span, request = opened.span, opened.request
        if response.error is not None:
            span.set_status(Status(StatusCode.ERROR, response.error[:200]))
        span.end()
        if request is not None:
            if response.error is not None:
                request.set_status(Status(StatusCode.ERROR, response.error[:200]))
            elif invocation.origin == HTTP_SERVER:
                try:
                    code = HttpResponse.decode(response.msg).status_code
                except Exception:
                    code = None
                if code is not None:
                    request.set_attribute("http.response.status_code", code)
                    if code >= 500:
                        request.set_status(Status(StatusCode.ERROR))
            request.end()
        otel_context.detach(opened.token)  # type: ignore[arg-type]


def _otlp(endpoint: str) -> SpanExporter:
    """An OTLP/HTTP exporter to ``endpoint`` (``http://collector:4318``)."""
    if not endpoint.startswith(("http://", "https://")):
        raise ObserveError(
            f"--otlp-endpoint {endpoint!r}: expected an http:// or https:// URL "
            "(an OTLP/HTTP collector, e.g. http://127.0.0.1:4318)"
        )
    return OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
