"""``wasi:http/incoming-handler@0.2.0`` behind ``wascc:http_server``.

The provider dispatches ``HandleRequest`` (an
:class:`~wascc.wire.codec.HttpRequest`) and expects an
:class:`~wascc.wire.codec.HttpResponse`, as from an actor.  For a component
exporting ``wasi:http/incoming-handler``, :func:`handle` turns the request
into an ``incoming-request`` and a ``response-outparam`` (host resources),
calls ``handle(request, response-out)`` and, when it returns, turns what the
component set into the response: the status, the headers (repeated names
joined with ", ", values as ISO-8859-1 as the provider reads them) and the
body written to the ``outgoing-body``, whole (the contract has one reply, so
the body is buffered, up to :data:`MAX_BODY` bytes).

What the host serves (exactly these; an import of anything else in these
interfaces makes instantiation fail, naming the function):

* ``wasi:http/types``: ``fields`` (constructor, ``from-list``, ``get``,
  ``has``, ``set``, ``delete``, ``append``, ``entries``, ``clone``),
  ``incoming-request`` (``method``, ``path-with-query``, ``scheme``,
  ``authority``, ``headers``, ``consume``), ``incoming-body`` (``stream``,
  ``[static] finish``), ``future-trailers`` (``get``: no trailers),
  ``outgoing-response`` (constructor, ``status-code``, ``set-status-code``,
  ``headers``, ``body``), ``outgoing-body`` (``write``, ``[static] finish``),
  ``response-outparam`` (``[static] set``);
* ``wasi:io/streams``: ``input-stream`` (``read``, ``blocking-read``),
  ``output-stream`` (``check-write``, ``write``,
  ``blocking-write-and-flush``, ``flush``, ``blocking-flush``);
* ``wasi:io/error``: ``error`` (``to-debug-string``; the host never makes
  one: a finished stream is ``closed``).

These reach no provider, only the request being served, so they need no
claim: what the component may reach is still decided by the imports of
:mod:`wascc.engine.wit` (deny by default).

State is per call: the objects behind the resources live in an
:class:`HttpCall` registered for the store running the call (a store runs
one call at a time) and dropped when the call returns; resource reps are
never reused, so a handle kept from an earlier request finds nothing and
traps.  The spec's traps (a second ``consume`` is an error value, but a
write past ``check-write``'s permit, or finishing a body whose stream is
still open, is a trap) are raised as ``WasmtimeError``, which travels back
through wasmtime's own error rather than the process-wide pending
exception (see DESIGN: threads).

The answer: a component that returns without ``response-outparam.set``,
that sets an ``error-code``, that drops its ``outgoing-body`` without
``finish`` or never finishes it answers with an error, which the provider
turns into a 500 as for an actor.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

import wasmtime
import wasmtime.component as wc

from wascc.errors import CodecError
from wascc.wire.codec import HttpRequest, HttpResponse

__all__ = ["HANDLER", "IMPORTS", "MAX_BODY", "HttpCall", "handle"]

log = logging.getLogger(__name__)

HANDLER = "wasi:http/incoming-handler"
#: The most response body a component may write (it is buffered whole).
MAX_BODY = 64 << 20
#: What ``check-write`` permits at a time.
_PERMIT = 1 << 20

# host resource type ids (distinct from the other adapters' ids)
_FIELDS = 0x4854_0001
_INCOMING_REQUEST = 0x4854_0002
_INCOMING_BODY = 0x4854_0003
_FUTURE_TRAILERS = 0x4854_0004
_OUTGOING_RESPONSE = 0x4854_0005
_OUTGOING_BODY = 0x4854_0006
_RESPONSE_OUTPARAM = 0x4854_0007
_INPUT_STREAM = 0x4854_0008
_OUTPUT_STREAM = 0x4854_0009
_IO_ERROR = 0x4854_000A

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

_reps = itertools.count(1)
#: The call each store is running, by the address of its wasmtime context.
_CALLS: dict[int, HttpCall] = {}


class _Trap(wasmtime.WasmtimeError):
    """A misuse the spec answers with a trap (ends the call, the instance is dropped)."""


# ---- the objects behind the resources ------------------------------------------------


class _Fields:
    __slots__ = ("entries", "mutable")

    def __init__(self, entries: list[tuple[str, bytes]], mutable: bool) -> None:
        self.entries = entries
        self.mutable = mutable


class _IncomingRequest:
    __slots__ = ("body", "consumed", "request")

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.body = request.body
        self.consumed = False


class _IncomingBody:
    __slots__ = ("data", "streamed")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.streamed = False


class _InputStream:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0


class _FutureTrailers:
    __slots__ = ()


class _OutgoingBody:
    __slots__ = ("chunks", "dropped", "finished", "size", "stream", "written")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.written = False  # write() handed its output-stream out
        self.stream: int | None = None  # the rep of that output-stream, while open
        self.finished = False
        self.dropped = False


class _OutgoingResponse:
    __slots__ = ("body", "headers", "status")

    def __init__(self, headers: _Fields) -> None:
        self.status = 200
        self.headers = headers
        self.body: _OutgoingBody | None = None


class _OutputStream:
    __slots__ = ("body", "rep")

    def __init__(self, body: _OutgoingBody) -> None:
        self.body = body
        self.rep = 0


class _Outparam:
    __slots__ = ()


T = TypeVar("T")


class HttpCall:
    """One request on one store: the objects its resources stand for, and the answer."""

    __slots__ = ("failure", "objects", "response")

    def __init__(self) -> None:
        self.objects: dict[int, object] = {}
        self.response: _OutgoingResponse | None = None
        self.failure: str | None = None  # the error-code the component set

    def own(self, obj: object, ty: int) -> wc.ResourceHost:
        """A new resource for ``obj``, owned by the component."""
        rep = next(_reps) & 0xFFFF_FFFF
        self.objects[rep] = obj
        if isinstance(obj, _OutputStream):
            obj.rep = rep
        return wc.ResourceHost.own(rep, ty)

    def get(self, store: Any, handle: Any, kind: type[T], what: str) -> T:
        """The object behind a handle the component passed (borrowed)."""
        obj = self.objects.get(_rep(store, handle))
        if not isinstance(obj, kind):
            raise _Trap(
                f"the {what} handle is not one of this request's (kept from an earlier one?)"
            )
        return obj

    def take(self, store: Any, handle: Any, kind: type[T], what: str) -> T:
        """The object behind a handle whose ownership the component gave the host."""
        rep = _rep(store, handle)
        obj = self.objects.get(rep)
        if not isinstance(obj, kind):
            raise _Trap(
                f"the {what} handle is not one of this request's (kept from an earlier one?)"
            )
        del self.objects[rep]
        return obj

    def dropped(self, rep: int) -> None:
        """The component dropped the handle ``rep``."""
        obj = self.objects.pop(rep, None)
        if isinstance(obj, _OutgoingBody) and not obj.finished:
            obj.dropped = True
        elif isinstance(obj, _OutputStream) and obj.body.stream == rep:
            obj.body.stream = None

    def reply(self) -> bytes | str:
        """The HttpResponse the component gave, or why there is none (as an actor's error)."""
        if self.failure is not None:
            return f"the component answered with the error-code {self.failure}"
        response = self.response
        if response is None:
            return "the component returned without setting a response (response-outparam.set)"
        body = b""
        if response.body is not None:
            if response.body.dropped:
                return (
                    "the component dropped its outgoing-body without finish: the body is incomplete"
                )
            if not response.body.finished:
                return (
                    "the component returned without finishing its outgoing-body "
                    "(outgoing-body.finish)"
                )
            body = b"".join(response.body.chunks)
        header: dict[str, str] = {}
        for name, value in response.headers.entries:
            text = value.decode("latin-1")
            header[name] = f"{header[name]}, {text}" if name in header else text
        try:
            status = HTTPStatus(response.status).phrase
        except ValueError:
            status = ""
        return HttpResponse(response.status, status, header, body).encode()


def _rep(store: Any, handle: Any) -> int:
    host = handle.to_host(store) if isinstance(handle, wc.ResourceAny) else handle
    return int(host.rep)


def _key(store: Any) -> int:
    """The address of a store's wasmtime context: the same in every host call of that store."""
    return ctypes.addressof(store._context().contents)


def _call(store: Any) -> HttpCall:
    call = _CALLS.get(_key(store))
    if call is None:
        raise _Trap("wasi:http is served only while the component handles an HTTP request")
    return call


def handle(store: Any, func: Any, payload: bytes) -> bytes | str:
    """Run ``handle(request, response-out)`` for one HandleRequest: the reply, or the error."""
    try:
        request = HttpRequest.decode(payload)
    except CodecError as exc:
        return f"HandleRequest did not carry an HttpRequest: {exc}"
    call = HttpCall()
    key = _key(store)
    _CALLS[key] = call
    try:
        func(
            store,
            call.own(_IncomingRequest(request), _INCOMING_REQUEST),
            call.own(_Outparam(), _RESPONSE_OUTPARAM),
        )
        func.post_return(store)
    finally:
        del _CALLS[key]
    return call.reply()


def _header_bytes(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


# ---- host functions ---------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def _guarded(func: F) -> F:
    """Never let a Python exception reach wasmtime's process-wide pending slot."""

    @functools.wraps(func)
    def run(store: Any, *args: Any) -> Any:
        try:
            return func(store, *args)
        except wasmtime.WasmtimeError:
            raise
        except Exception as exc:  # a bug here: trap this call, say what happened
            log.exception("wasi:http host function %s failed", func.__name__)
            raise _Trap(f"the host failed in {func.__name__}: {exc}") from None

    return run  # type: ignore[return-value]


def _dtor(store: Any, rep: int) -> None:
    call = _CALLS.get(_key(store))
    if call is not None:
        call.dropped(rep)


def _header_error(name: str, value: bytes | None, fields: _Fields) -> wc.Variant | None:
    if not fields.mutable:
        return wc.Variant("immutable")
    if not _TOKEN.fullmatch(name) or (value is not None and _BAD_VALUE.search(value)):
        return wc.Variant("invalid-syntax")
    if name.lower() in _FORBIDDEN:
        return wc.Variant("forbidden")
    return None


def _serve_fields(inst: wc.LinkerInstance) -> None:
    @_guarded
    def new(store: Any) -> Any:
        return _call(store).own(_Fields([], mutable=True), _FIELDS)

    @_guarded
    def from_list(store: Any, entries: list[tuple[str, bytes]]) -> Any:
        fields = _Fields([], mutable=True)
        for name, raw in entries:
            value = bytes(raw)
            err = _header_error(name, value, fields)
            if err is not None:
                return err
            fields.entries.append((name, value))
        return _call(store).own(fields, _FIELDS)

    def fields_of(store: Any, handle: Any) -> _Fields:
        return _call(store).get(store, handle, _Fields, "fields")

    @_guarded
    def get(store: Any, handle: Any, name: str) -> Any:
        wanted = name.lower()
        return [v for n, v in fields_of(store, handle).entries if n.lower() == wanted]

    @_guarded
    def has(store: Any, handle: Any, name: str) -> Any:
        wanted = name.lower()
        return any(n.lower() == wanted for n, _ in fields_of(store, handle).entries)

    @_guarded
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

    @_guarded
    def delete(store: Any, handle: Any, name: str) -> Any:
        fields = fields_of(store, handle)
        err = _header_error(name, None, fields)
        if err is not None:
            return err
        wanted = name.lower()
        fields.entries[:] = [(n, v) for n, v in fields.entries if n.lower() != wanted]
        return None

    @_guarded
    def append(store: Any, handle: Any, name: str, value: bytes) -> Any:
        fields = fields_of(store, handle)
        value = bytes(value)
        err = _header_error(name, value, fields)
        if err is not None:
            return err
        fields.entries.append((name, value))
        return None

    @_guarded
    def entries(store: Any, handle: Any) -> Any:
        return list(fields_of(store, handle).entries)

    @_guarded
    def clone(store: Any, handle: Any) -> Any:
        fields = fields_of(store, handle)
        return _call(store).own(_Fields(list(fields.entries), mutable=True), _FIELDS)

    inst.add_resource("fields", wc.ResourceType.host(_FIELDS), _dtor)
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
    def request_of(store: Any, handle: Any) -> _IncomingRequest:
        return _call(store).get(store, handle, _IncomingRequest, "incoming-request")

    @_guarded
    def method(store: Any, handle: Any) -> Any:
        name = request_of(store, handle).request.method
        lower = name.lower()
        if lower in _METHODS and name.isupper():
            return wc.Variant(lower)
        return wc.Variant("other", name)

    @_guarded
    def path_with_query(store: Any, handle: Any) -> Any:
        request = request_of(store, handle).request
        return f"{request.path}?{request.query_string}" if request.query_string else request.path

    @_guarded
    def scheme(store: Any, handle: Any) -> Any:
        request_of(store, handle)
        return wc.Variant("HTTP")  # wascc:http_server listens for plain HTTP/1.1

    @_guarded
    def authority(store: Any, handle: Any) -> Any:
        return request_of(store, handle).request.header.get("host") or None

    @_guarded
    def headers(store: Any, handle: Any) -> Any:
        request = request_of(store, handle).request
        entries = [(name, _header_bytes(value)) for name, value in request.header.items()]
        return _call(store).own(_Fields(entries, mutable=False), _FIELDS)

    @_guarded
    def consume(store: Any, handle: Any) -> Any:
        req = request_of(store, handle)
        if req.consumed:
            return None  # err: the body was taken before
        req.consumed = True
        return _call(store).own(_IncomingBody(req.body), _INCOMING_BODY)

    @_guarded
    def body_stream(store: Any, handle: Any) -> Any:
        body = _call(store).get(store, handle, _IncomingBody, "incoming-body")
        if body.streamed:
            return None
        body.streamed = True
        return _call(store).own(_InputStream(body.data), _INPUT_STREAM)

    @_guarded
    def body_finish(store: Any, handle: Any) -> Any:
        call = _call(store)
        call.take(store, handle, _IncomingBody, "incoming-body")
        return call.own(_FutureTrailers(), _FUTURE_TRAILERS)

    @_guarded
    def trailers_get(store: Any, handle: Any) -> Any:
        _call(store).get(store, handle, _FutureTrailers, "future-trailers")
        return wc.Variant("ok", None)  # some(ok(ok(none))): the request had no trailers

    inst.add_resource("incoming-request", wc.ResourceType.host(_INCOMING_REQUEST), _dtor)
    inst.add_resource("incoming-body", wc.ResourceType.host(_INCOMING_BODY), _dtor)
    inst.add_resource("future-trailers", wc.ResourceType.host(_FUTURE_TRAILERS), _dtor)
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
    def response_of(store: Any, handle: Any) -> _OutgoingResponse:
        return _call(store).get(store, handle, _OutgoingResponse, "outgoing-response")

    @_guarded
    def response_new(store: Any, headers: Any) -> Any:
        call = _call(store)
        fields = call.take(store, headers, _Fields, "fields")
        # the response owns the headers from now on; its headers() view is immutable
        return call.own(
            _OutgoingResponse(_Fields(fields.entries, mutable=True)), _OUTGOING_RESPONSE
        )

    @_guarded
    def status_code(store: Any, handle: Any) -> Any:
        return response_of(store, handle).status

    @_guarded
    def set_status_code(store: Any, handle: Any, code: int) -> Any:
        response = response_of(store, handle)
        if not 100 <= code <= 599:
            return wc.Variant("err")
        response.status = code
        return wc.Variant("ok")

    @_guarded
    def response_headers(store: Any, handle: Any) -> Any:
        response = response_of(store, handle)
        return _call(store).own(_Fields(response.headers.entries, mutable=False), _FIELDS)

    @_guarded
    def response_body(store: Any, handle: Any) -> Any:
        response = response_of(store, handle)
        if response.body is not None:
            return None  # err: at most once
        response.body = _OutgoingBody()
        return _call(store).own(response.body, _OUTGOING_BODY)

    @_guarded
    def body_write(store: Any, handle: Any) -> Any:
        call = _call(store)
        body = call.get(store, handle, _OutgoingBody, "outgoing-body")
        if body.written:
            return None  # err: the stream is handed out at most once
        stream = _OutputStream(body)
        resource = call.own(stream, _OUTPUT_STREAM)
        body.written = True
        body.stream = stream.rep
        return resource

    @_guarded
    def body_finish(store: Any, handle: Any, trailers: Any) -> Any:
        call = _call(store)
        body = call.take(store, handle, _OutgoingBody, "outgoing-body")
        if body.stream is not None:
            raise _Trap(
                "outgoing-body.finish while its output-stream is still open (drop it first)"
            )
        if trailers is not None:
            call.take(store, trailers, _Fields, "trailers")  # wascc:http_server sends none
        body.finished = True
        return None

    @_guarded
    def set_(store: Any, param: Any, response: Any) -> Any:
        call = _call(store)
        call.take(store, param, _Outparam, "response-outparam")
        if isinstance(response, wc.Variant):
            call.failure = _error_code(response)
        else:
            call.response = call.take(store, response, _OutgoingResponse, "outgoing-response")
        return None

    inst.add_resource("outgoing-response", wc.ResourceType.host(_OUTGOING_RESPONSE), _dtor)
    inst.add_resource("outgoing-body", wc.ResourceType.host(_OUTGOING_BODY), _dtor)
    inst.add_resource("response-outparam", wc.ResourceType.host(_RESPONSE_OUTPARAM), _dtor)
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


def _add_streams(inst: wc.LinkerInstance) -> None:
    inst.add_resource("input-stream", wc.ResourceType.host(_INPUT_STREAM), _dtor)
    inst.add_resource("output-stream", wc.ResourceType.host(_OUTPUT_STREAM), _dtor)


def serve_types(root: wc.LinkerInstance, name: str) -> None:
    """``wasi:http/types``."""
    with root.add_instance(name) as inst:
        _serve_fields(inst)
        _serve_incoming(inst)
        _serve_outgoing(inst)
        _add_streams(inst)


def serve_streams(root: wc.LinkerInstance, name: str) -> None:
    """``wasi:io/streams``: a request body to read, a response body to write."""

    def stream_of(store: Any, handle: Any) -> _OutputStream:
        return _call(store).get(store, handle, _OutputStream, "output-stream")

    @_guarded
    def read(store: Any, handle: Any, size: int) -> Any:
        stream = _call(store).get(store, handle, _InputStream, "input-stream")
        if stream.pos >= len(stream.data):
            return None  # err(closed)
        chunk = stream.data[stream.pos : stream.pos + size]
        stream.pos += len(chunk)
        return chunk

    def room(stream: _OutputStream) -> int:
        return max(0, MAX_BODY - stream.body.size)

    @_guarded
    def check_write(store: Any, handle: Any) -> Any:
        return min(_PERMIT, room(stream_of(store, handle)))

    @_guarded
    def write(store: Any, handle: Any, contents: bytes) -> Any:
        stream = stream_of(store, handle)
        contents = bytes(contents)
        if len(contents) > room(stream):
            raise _Trap(
                f"the response body would pass {MAX_BODY} bytes (the most a component may write)"
            )
        stream.body.chunks.append(contents)
        stream.body.size += len(contents)
        return wc.Variant("ok")

    @_guarded
    def flush(store: Any, handle: Any) -> Any:
        stream_of(store, handle)
        return wc.Variant("ok")

    with root.add_instance(name) as inst:
        _add_streams(inst)
        inst.add_func("[method]input-stream.read", read)
        inst.add_func("[method]input-stream.blocking-read", read)
        inst.add_func("[method]output-stream.check-write", check_write)
        inst.add_func("[method]output-stream.write", write)
        inst.add_func("[method]output-stream.blocking-write-and-flush", write)
        inst.add_func("[method]output-stream.flush", flush)
        inst.add_func("[method]output-stream.blocking-flush", flush)


def serve_error(root: wc.LinkerInstance, name: str) -> None:
    """``wasi:io/error`` (the type streams' ``last-operation-failed`` carries)."""

    @_guarded
    def to_debug_string(store: Any, handle: Any) -> Any:
        return "wascc: stream error"

    with root.add_instance(name) as inst:
        inst.add_resource("error", wc.ResourceType.host(_IO_ERROR), _dtor)
        inst.add_func("[method]error.to-debug-string", to_debug_string)


#: The interfaces served here, by name without version.
IMPORTS: dict[str, Callable[[wc.LinkerInstance, str], None]] = {
    "wasi:http/types": serve_types,
    "wasi:io/streams": serve_streams,
    "wasi:io/error": serve_error,
}
