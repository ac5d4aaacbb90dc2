"""OpenTelemetry traces: HTTP -> actor -> keyvalue as one trace, and OTLP export to a receiver."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from wascc_capabilities.http_server import HttpServerProvider

from wascc import CapabilityProvider, Host, ObserveError
from wascc.observe.tracing import Tracing
from wascc.wire.codec import AddRequest, AddResponse, CapabilityDescriptor

from conftest import BuiltExamples

HTTP = "wascc:http_server"
KEYVALUE = "wascc:keyvalue"


class KeyValue(CapabilityProvider):
    """wascc:keyvalue with just Add (what kvcounter calls); ``fail`` makes Add raise."""

    capability_id = KEYVALUE

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}
        self.fail = False

    def descriptor(self) -> CapabilityDescriptor:
        return CapabilityDescriptor(id=KEYVALUE, name="test keyvalue", version="1")

    def handle(self, actor: str, operation: str, msg: bytes) -> bytes:
        if self.fail:
            raise ConnectionError("the store is down")
        request = AddRequest.decode(msg)
        value = self.counts[request.key] = self.counts.get(request.key, 0) + request.value
        return AddResponse(value=value).encode()


@pytest.fixture
def host(examples: BuiltExamples) -> Iterator[Host]:
    h = Host(trusted_issuers=[examples.account], health_interval=0, load_entry_points=False)
    yield h
    h.stop()


@pytest.fixture
def kvcounter(host: Host, examples: BuiltExamples) -> tuple[str, KeyValue, str]:
    """kvcounter behind the HTTP server and a Python keyvalue; (key, store, base URL)."""
    server = HttpServerProvider()
    store = KeyValue()
    host.add_provider(server)
    host.add_provider(store)
    actor = host.add_actor(examples.signed("kvcounter"))
    host.set_binding(actor, KEYVALUE)
    host.set_binding(actor, HTTP, values={"PORT": "0"})
    address, port = server.address(actor)
    return actor, store, f"http://{address}:{port}"


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans}


def test_one_trace_from_http_through_the_actor_to_keyvalue(
    host: Host, kvcounter: tuple[str, KeyValue, str]
) -> None:
    actor, _, url = kvcounter
    exporter = InMemorySpanExporter()
    with Tracing(host, exporter=exporter, labels={"site": "lab"}):
        assert _get(url + "/visits") == 200
    spans = _by_name(exporter.get_finished_spans())
    assert set(spans) == {"GET", "kvcounter HandleRequest", f"{KEYVALUE} Add"}
    http, handle, add = spans["GET"], spans["kvcounter HandleRequest"], spans[f"{KEYVALUE} Add"]
    assert http.parent is None
    assert handle.parent is not None and handle.parent.span_id == http.context.span_id
    assert add.parent is not None and add.parent.span_id == handle.context.span_id
    assert len({s.context.trace_id for s in spans.values()}) == 1
    assert (http.kind, handle.kind, add.kind) == (
        SpanKind.SERVER,
        SpanKind.INTERNAL,
        SpanKind.CLIENT,
    )
    assert http.attributes is not None and handle.attributes is not None
    assert http.attributes["http.request.method"] == "GET"
    assert http.attributes["url.path"] == "/visits"
    assert http.attributes["http.response.status_code"] == 200
    assert handle.attributes["wascc.actor"] == actor
    assert add.attributes is not None and add.attributes["wascc.binding"] == "default"
    assert http.resource.attributes["service.name"] == "wascc"
    assert http.resource.attributes["wascc.label.site"] == "lab"


def test_two_requests_are_two_traces(host: Host, kvcounter: tuple[str, KeyValue, str]) -> None:
    _, _, url = kvcounter
    exporter = InMemorySpanExporter()
    with Tracing(host, exporter=exporter):
        _get(url + "/a")
        _get(url + "/b")
    spans = exporter.get_finished_spans()
    assert len(spans) == 6
    assert len({s.context.trace_id for s in spans}) == 2


def test_a_failed_provider_call_marks_its_spans(
    host: Host, kvcounter: tuple[str, KeyValue, str]
) -> None:
    _, store, url = kvcounter
    store.fail = True
    exporter = InMemorySpanExporter()
    with Tracing(host, exporter=exporter):
        assert _get(url + "/visits") >= 500
    spans = _by_name(exporter.get_finished_spans())
    add = spans[f"{KEYVALUE} Add"]
    assert add.status.status_code is StatusCode.ERROR
    assert "the store is down" in (add.status.description or "")
    assert spans["GET"].status.status_code is StatusCode.ERROR


def test_closing_stops_tracing(host: Host, kvcounter: tuple[str, KeyValue, str]) -> None:
    _, _, url = kvcounter
    exporter = InMemorySpanExporter()
    tracing = Tracing(host, exporter=exporter)
    tracing.close()
    tracing.close()
    _get(url + "/visits")
    assert exporter.get_finished_spans() == ()
    assert not host.plugins.intercepting


class _Receiver(BaseHTTPRequestHandler):
    got: list[tuple[str, str, int]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.got.append((self.path, self.headers.get("Content-Type", ""), length))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_spans_are_exported_over_otlp_http(
    host: Host, kvcounter: tuple[str, KeyValue, str]
) -> None:
    _, _, url = kvcounter
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{receiver.server_address[1]}"
        with Tracing(host, endpoint=endpoint):
            assert _get(url + "/visits") == 200
        # close() flushed the batch to the collector
        assert _Receiver.got and _Receiver.got[0][0] == "/v1/traces"
        assert _Receiver.got[0][1] == "application/x-protobuf" and _Receiver.got[0][2] > 0
    finally:
        receiver.shutdown()
        receiver.server_close()


@pytest.mark.parametrize("endpoint", ["collector:4318", "grpc://x:4317"])
def test_a_bad_endpoint_is_refused(host: Host, endpoint: str) -> None:
    with pytest.raises(ObserveError, match="http:// or https://"):
        Tracing(host, endpoint=endpoint)


def test_tracing_needs_an_endpoint_or_an_exporter(host: Host) -> None:
    with pytest.raises(ObserveError, match="exactly one"):
        Tracing(host)
