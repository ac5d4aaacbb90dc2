"""The host functions of ``wasi:http/types``, ``wasi:io/streams`` and ``wasi:io/error``."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

import wasmtime
import wasmtime.component as wc

from wascc.errors import WasccError

from ._calls import (
    CALLS,
    FIELDS,
    FUTURE_TRAILERS,
    INCOMING_BODY,
    INCOMING_REQUEST,
    INPUT_STREAM,
    IO_ERROR,
    MAX_BODY,
    OUTGOING_BODY,
    OUTGOING_RESPONSE,
    OUTPUT_STREAM,
    PERMIT,
    RESPONSE_OUTPARAM,
    Fields,
    FutureTrailers,
    IncomingBody,
    IncomingRequest,
    InputStream,
    OutgoingBody,
    OutgoingResponse,
    Outparam,
    OutputStream,
    Trap,
    current,
    current_http,
    header_bytes,
    store_key,
)

log = logging.getLogger("wascc.engine.wit_http")

_METHODS = ("get", "head", "post", "put", "delete", "connect", "options", "trace", "patch")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
#: Names the server frames itself: a component may not set them (``forbidden``).
_FORBIDDEN = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "trailer",
        "http2-settings",
    }
)


# ---- host functions ---------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def guarded(func: F) -> F:
    """Turn a bug in a host function into a trap naming it.

    A ``WasccError`` (a refusal of the claims floor or the bindings, a
    timeout) is the host's answer, not a bug: it goes on to
    :mod:`~wascc.engine.wit_patches`, which hands it to the failed call as raised.
    """

    @functools.wraps(func)
    def run(store: Any, *args: Any) -> Any:
        try:
            return func(store, *args)
        except (wasmtime.WasmtimeError, WasccError):
            raise
        except Exception as exc:  # a bug here: trap this call, say what happened
            log.exception("host function %s failed", func.__name__)
            raise Trap(f"the host failed in {func.__name__}: {exc}") from None

    return run  # type: ignore[return-value]


def on_drop(store: Any, rep: int) -> None:
    """The destructor of every host resource: the call forgets the object."""
    call = CALLS.get(store_key(store))
    if call is not None:
        call.dropped(rep)


def _header_error(name: str, value: bytes | None, fields: Fields) -> wc.Variant | None:
    if not fields.mutable:
        return wc.Variant("immutable")
    if not _TOKEN.fullmatch(name) or (value is not None and _BAD_VALUE.search(value)):
        return wc.Variant("invalid-syntax")
    if name.lower() in _FORBIDDEN:
        return wc.Variant("forbidden")
    return None


def _serve_fields(inst: wc.LinkerInstance) -> None:
    @guarded
    def new(store: Any) -> Any:
        return current(store).own(Fields([], mutable=True), FIELDS)

    @guarded
    def from_list(store: Any, entries: list[tuple[str, bytes]]) -> Any:
        fields = Fields([], mutable=True)
        for name, raw in entries:
            value = bytes(raw)
            err = _header_error(name, value, fields)
            if err is not None:
                return err
            fields.entries.append((name, value))
        return current(store).own(fields, FIELDS)

    def fields_of(store: Any, handle: Any) -> Fields:
        return current(store).get(store, handle, Fields, "fields")

    @guarded
    def get(store: Any, handle: Any, name: str) -> Any:
        wanted = name.lower()
        return [v for n, v in fields_of(store, handle).entries if n.lower() == wanted]

    @guarded
    def has(store: Any, handle: Any, name: str) -> Any:
        wanted = name.lower()
        return any(n.lower() == wanted for n, _ in fields_of(store, handle).entries)

    @guarded
    def set_(store: Any, handle: Any, name: str, raw: list[bytes]) -> Any:
        fields = fields_of(store, handle)
        values = [bytes(v) for v in raw]
        checks: list[bytes | None] = list(values) or [None]
        for value in checks:
            err = _header_error(name, value, fields)
            if err is not None:
                return err
        wanted = name.lower()
        fields.entries[:] = [(n, v) for n, v in fields.entries if n.lower() != wanted]
        fields.entries.extend((name, v) for v in values)
        return None

    @guarded
    def delete(store: Any, handle: Any, name: str) -> Any:
        fields = fields_of(store, handle)
        err = _header_error(name, None, fields)
        if err is not None:
            return err
        wanted = name.lower()
        fields.entries[:] = [(n, v) for n, v in fields.entries if n.lower() != wanted]
        return None

    @guarded
    def append(store: Any, handle: Any, name: str, value: bytes) -> Any:
        fields = fields_of(store, handle)
        value = bytes(value)
        err = _header_error(name, value, fields)
        if err is not None:
            return err
        fields.entries.append((name, value))
        return None

    @guarded
    def entries(store: Any, handle: Any) -> Any:
        return list(fields_of(store, handle).entries)

    @guarded
    def clone(store: Any, handle: Any) -> Any:
        fields = fields_of(store, handle)
        return current(store).own(Fields(list(fields.entries), mutable=True), FIELDS)

    inst.add_resource("fields", wc.ResourceType.host(FIELDS), on_drop)
    inst.add_func("[constructor]fields", new)
    inst.add_func("[static]fields.from-list", from_list)
    inst.add_func("[method]fields.get", get)
    inst.add_func("[method]fields.has", has)
    inst.add_func("[method]fields.set", set_)
    inst.add_func("[method]fields.delete", delete)
    inst.add_func("[method]fields.append", append)
    inst.add_func("[method]fields.entries", entries)
    inst.add_func("[method]fields.clone", clone)


def _serve_incoming(inst: wc.LinkerInstance) -> None:
    def request_of(store: Any, handle: Any) -> IncomingRequest:
        return current(store).get(store, handle, IncomingRequest, "incoming-request")

    @guarded
    def method(store: Any, handle: Any) -> Any:
        name = request_of(store, handle).request.method
        lower = name.lower()
        if lower in _METHODS and name.isupper():
            return wc.Variant(lower)
        return wc.Variant("other", name)

    @guarded
    def path_with_query(store: Any, handle: Any) -> Any:
        request = request_of(store, handle).request
        return f"{request.path}?{request.query_string}" if request.query_string else request.path

    @guarded
    def scheme(store: Any, handle: Any) -> Any:
        request_of(store, handle)
        return wc.Variant("HTTP")  # wascc:http_server listens for plain HTTP/1.1

    @guarded
    def authority(store: Any, handle: Any) -> Any:
        return request_of(store, handle).request.header.get("host") or None

    @guarded
    def headers(store: Any, handle: Any) -> Any:
        request = request_of(store, handle).request
        entries = [(name, header_bytes(value)) for name, value in request.header.items()]
        return current(store).own(Fields(entries, mutable=False), FIELDS)

    @guarded
    def consume(store: Any, handle: Any) -> Any:
        req = request_of(store, handle)
        if req.consumed:
            return None  # err: the body was taken before
        req.consumed = True
        return current(store).own(IncomingBody(req.body), INCOMING_BODY)

    @guarded
    def body_stream(store: Any, handle: Any) -> Any:
        body = current(store).get(store, handle, IncomingBody, "incoming-body")
        if body.streamed:
            return None
        body.streamed = True
        return current(store).own(InputStream(body.data), INPUT_STREAM)

    @guarded
    def body_finish(store: Any, handle: Any) -> Any:
        call = current(store)
        call.take(store, handle, IncomingBody, "incoming-body")
        return call.own(FutureTrailers(), FUTURE_TRAILERS)

    @guarded
    def trailers_get(store: Any, handle: Any) -> Any:
        current(store).get(store, handle, FutureTrailers, "future-trailers")
        return wc.Variant("ok", None)  # some(ok(ok(none))): the request had no trailers

    inst.add_resource("incoming-request", wc.ResourceType.host(INCOMING_REQUEST), on_drop)
    inst.add_resource("incoming-body", wc.ResourceType.host(INCOMING_BODY), on_drop)
    inst.add_resource("future-trailers", wc.ResourceType.host(FUTURE_TRAILERS), on_drop)
    inst.add_func("[method]incoming-request.method", method)
    inst.add_func("[method]incoming-request.path-with-query", path_with_query)
    inst.add_func("[method]incoming-request.scheme", scheme)
    inst.add_func("[method]incoming-request.authority", authority)
    inst.add_func("[method]incoming-request.headers", headers)
    inst.add_func("[method]incoming-request.consume", consume)
    inst.add_func("[method]incoming-body.stream", body_stream)
    inst.add_func("[static]incoming-body.finish", body_finish)
    inst.add_func("[method]future-trailers.get", trailers_get)


def _serve_outgoing(inst: wc.LinkerInstance) -> None:
    def response_of(store: Any, handle: Any) -> OutgoingResponse:
        return current(store).get(store, handle, OutgoingResponse, "outgoing-response")

    @guarded
    def response_new(store: Any, headers: Any) -> Any:
        call = current(store)
        fields = call.take(store, headers, Fields, "fields")
        # the response owns the headers from now on; its headers() view is immutable
        return call.own(OutgoingResponse(Fields(fields.entries, mutable=True)), OUTGOING_RESPONSE)

    @guarded
    def status_code(store: Any, handle: Any) -> Any:
        return response_of(store, handle).status

    @guarded
    def set_status_code(store: Any, handle: Any, code: int) -> Any:
        response = response_of(store, handle)
        if not 100 <= code <= 599:
            return wc.Variant("err")
        response.status = code
        return wc.Variant("ok")

    @guarded
    def response_headers(store: Any, handle: Any) -> Any:
        response = response_of(store, handle)
        return current(store).own(Fields(response.headers.entries, mutable=False), FIELDS)

    @guarded
    def response_body(store: Any, handle: Any) -> Any:
        response = response_of(store, handle)
        if response.body is not None:
            return None  # err: at most once
        response.body = OutgoingBody()
        return current(store).own(response.body, OUTGOING_BODY)

    @guarded
    def body_write(store: Any, handle: Any) -> Any:
        call = current(store)
        return call.output_stream(call.get(store, handle, OutgoingBody, "outgoing-body"))

    @guarded
    def body_finish(store: Any, handle: Any, trailers: Any) -> Any:
        call = current(store)
        body = call.take(store, handle, OutgoingBody, "outgoing-body")
        body.finish("outgoing-body")
        if trailers is not None:
            call.take(store, trailers, Fields, "trailers")  # wascc:http_server sends none
        return None

    @guarded
    def set_(store: Any, param: Any, response: Any) -> Any:
        call = current_http(store)
        call.take(store, param, Outparam, "response-outparam")
        if isinstance(response, wc.Variant):
            call.failure = _error_code(response)
        else:
            call.response = call.take(store, response, OutgoingResponse, "outgoing-response")
        return None

    inst.add_resource("outgoing-response", wc.ResourceType.host(OUTGOING_RESPONSE), on_drop)
    inst.add_resource("outgoing-body", wc.ResourceType.host(OUTGOING_BODY), on_drop)
    inst.add_resource("response-outparam", wc.ResourceType.host(RESPONSE_OUTPARAM), on_drop)
    inst.add_func("[constructor]outgoing-response", response_new)
    inst.add_func("[method]outgoing-response.status-code", status_code)
    inst.add_func("[method]outgoing-response.set-status-code", set_status_code)
    inst.add_func("[method]outgoing-response.headers", response_headers)
    inst.add_func("[method]outgoing-response.body", response_body)
    inst.add_func("[method]outgoing-body.write", body_write)
    inst.add_func("[static]outgoing-body.finish", body_finish)
    inst.add_func("[static]response-outparam.set", set_)


def _error_code(value: wc.Variant) -> str:
    payload = value.payload
    if payload is None:
        return value.tag
    return f"{value.tag}: {payload}" if isinstance(payload, str) else f"{value.tag} {payload!r}"


def add_streams(inst: wc.LinkerInstance) -> None:
    inst.add_resource("input-stream", wc.ResourceType.host(INPUT_STREAM), on_drop)
    inst.add_resource("output-stream", wc.ResourceType.host(OUTPUT_STREAM), on_drop)


def serve_types(root: wc.LinkerInstance, name: str) -> None:
    """``wasi:http/types``."""
    with root.add_instance(name) as inst:
        _serve_fields(inst)
        _serve_incoming(inst)
        _serve_outgoing(inst)
        add_streams(inst)


def serve_streams(root: wc.LinkerInstance, name: str) -> None:
    """``wasi:io/streams``: a request body to read, a response body to write."""

    def stream_of(store: Any, handle: Any) -> OutputStream:
        return current(store).get(store, handle, OutputStream, "output-stream")

    @guarded
    def read(store: Any, handle: Any, size: int) -> Any:
        stream = current(store).get(store, handle, InputStream, "input-stream")
        if stream.pos >= len(stream.data):
            return None  # err(closed)
        chunk = stream.data[stream.pos : stream.pos + size]
        stream.pos += len(chunk)
        return chunk

    def room(stream: OutputStream) -> int:
        return max(0, MAX_BODY - stream.body.size)

    @guarded
    def check_write(store: Any, handle: Any) -> Any:
        return min(PERMIT, room(stream_of(store, handle)))

    @guarded
    def write(store: Any, handle: Any, contents: bytes) -> Any:
        stream = stream_of(store, handle)
        contents = bytes(contents)
        if len(contents) > room(stream):
            raise Trap(
                f"the body would pass {MAX_BODY} bytes (the most a component may write to one)"
            )
        stream.body.chunks.append(contents)
        stream.body.size += len(contents)
        return wc.Variant("ok")

    @guarded
    def flush(store: Any, handle: Any) -> Any:
        stream_of(store, handle)
        return wc.Variant("ok")

    with root.add_instance(name) as inst:
        add_streams(inst)
        inst.add_func("[method]input-stream.read", read)
        inst.add_func("[method]input-stream.blocking-read", read)
        inst.add_func("[method]output-stream.check-write", check_write)
        inst.add_func("[method]output-stream.write", write)
        inst.add_func("[method]output-stream.blocking-write-and-flush", write)
        inst.add_func("[method]output-stream.flush", flush)
        inst.add_func("[method]output-stream.blocking-flush", flush)


def serve_error(root: wc.LinkerInstance, name: str) -> None:
    """``wasi:io/error`` (the type streams' ``last-operation-failed`` carries)."""

    @guarded
    def to_debug_string(store: Any, handle: Any) -> Any:
        return "wascc: stream error"

    with root.add_instance(name) as inst:
        inst.add_resource("error", wc.ResourceType.host(IO_ERROR), on_drop)
        inst.add_func("[method]error.to-debug-string", to_debug_string)


#: The interfaces served here, by name without version.
