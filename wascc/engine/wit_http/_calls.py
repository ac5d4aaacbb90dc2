"""The per-call state behind host resources: the objects, and the call each store runs.

Every resource handed to a component (wasi:http's, wasi:io's streams,
wasi:blobstore's) is a rep (a number never reused) into the
:class:`CallState` of the call being run (an :class:`HttpCall` for an HTTP
request); the state is registered under its store's wasmtime context for as
long as the call runs (:func:`scope`).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any, TypeVar

import wasmtime
import wasmtime.component as wc

from wascc.wire.codec import HttpRequest, HttpResponse

#: The most a component may write to one body or value (it is buffered whole).
MAX_BODY = 64 << 20
#: What ``check-write`` permits at a time.
PERMIT = 1 << 20

# host resource type ids (distinct from the other adapters' ids)
FIELDS = 0x4854_0001
INCOMING_REQUEST = 0x4854_0002
INCOMING_BODY = 0x4854_0003
FUTURE_TRAILERS = 0x4854_0004
OUTGOING_RESPONSE = 0x4854_0005
OUTGOING_BODY = 0x4854_0006
RESPONSE_OUTPARAM = 0x4854_0007
INPUT_STREAM = 0x4854_0008
OUTPUT_STREAM = 0x4854_0009
IO_ERROR = 0x4854_000A


_reps = itertools.count(1)
#: The call each store is running, by the address of its wasmtime context.
CALLS: dict[int, CallState] = {}


class Trap(wasmtime.WasmtimeError):
    """A misuse the spec answers with a trap (ends the call, the instance is dropped)."""


# ---- the objects behind the resources ------------------------------------------------


class Fields:
    __slots__ = ("entries", "mutable")

    def __init__(self, entries: list[tuple[str, bytes]], mutable: bool) -> None:
        self.entries = entries
        self.mutable = mutable


class IncomingRequest:
    __slots__ = ("body", "consumed", "request")

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.body = request.body
        self.consumed = False


class IncomingBody:
    __slots__ = ("data", "streamed")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.streamed = False


class InputStream:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0


class FutureTrailers:
    __slots__ = ()


class OutgoingBody:
    __slots__ = ("chunks", "dropped", "finished", "size", "stream", "written")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.written = False  # write() handed its output-stream out
        self.stream: int | None = None  # the rep of that output-stream, while open
        self.finished = False
        self.dropped = False

    def finish(self, what: str) -> None:
        """The body is complete (a trap while its output-stream is still open, as WASI says)."""
        if self.stream is not None:
            raise Trap(f"{what}.finish while its output-stream is still open (drop it first)")
        self.finished = True


class OutgoingResponse:
    __slots__ = ("body", "headers", "status")

    def __init__(self, headers: Fields) -> None:
        self.status = 200
        self.headers = headers
        self.body: OutgoingBody | None = None


class OutputStream:
    __slots__ = ("body", "rep")

    def __init__(self, body: OutgoingBody) -> None:
        self.body = body
        self.rep = 0


class Outparam:
    __slots__ = ()


T = TypeVar("T")


class CallState:
    """One call on one store: the objects its resources stand for, and when it must end.

    ``deadline`` (``time.monotonic()``) bounds what a host function may wait
    for (a blobstore download), so no call outlives its deadline in Python.
    """

    __slots__ = ("deadline", "objects")

    def __init__(self, deadline: float | None = None) -> None:
        self.objects: dict[int, object] = {}
        self.deadline = deadline

    def own(self, obj: object, ty: int) -> wc.ResourceHost:
        """A new resource for ``obj``, owned by the component."""
        rep = next(_reps) & 0xFFFF_FFFF
        self.objects[rep] = obj
        if isinstance(obj, OutputStream):
            obj.rep = rep
        return wc.ResourceHost.own(rep, ty)

    def get(self, store: Any, handle: Any, kind: type[T], what: str) -> T:
        """The object behind a handle the component passed (borrowed)."""
        obj = self.objects.get(rep_of(store, handle))
        if not isinstance(obj, kind):
            raise Trap(f"the {what} handle is not one of this call's (kept from an earlier one?)")
        return obj

    def take(self, store: Any, handle: Any, kind: type[T], what: str) -> T:
        """The object behind a handle whose ownership the component gave the host."""
        rep = rep_of(store, handle)
        obj = self.objects.get(rep)
        if not isinstance(obj, kind):
            raise Trap(f"the {what} handle is not one of this call's (kept from an earlier one?)")
        del self.objects[rep]
        return obj

    def output_stream(self, body: OutgoingBody) -> wc.ResourceHost | None:
        """A new output-stream writing ``body``; None once one was handed out (at most once)."""
        if body.written:
            return None
        stream = OutputStream(body)
        resource = self.own(stream, OUTPUT_STREAM)
        body.written = True
        body.stream = stream.rep
        return resource

    def dropped(self, rep: int) -> None:
        """The component dropped the handle ``rep``."""
        obj = self.objects.pop(rep, None)
        if isinstance(obj, OutgoingBody) and not obj.finished:
            obj.dropped = True
        elif isinstance(obj, OutputStream) and obj.body.stream == rep:
            obj.body.stream = None


class HttpCall(CallState):
    """One HTTP request on one store: its resources, and the answer."""

    __slots__ = ("failure", "response")

    def __init__(self, deadline: float | None = None) -> None:
        super().__init__(deadline)
        self.response: OutgoingResponse | None = None
        self.failure: str | None = None  # the error-code the component set

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


def rep_of(store: Any, handle: Any) -> int:
    host = handle.to_host(store) if isinstance(handle, wc.ResourceAny) else handle
    return int(host.rep)


def store_key(store: Any) -> int:
    """The address of a store's wasmtime context: the same in every host call of that store."""
    return ctypes.addressof(store._context().contents)


def current(store: Any) -> CallState:
    call = CALLS.get(store_key(store))
    if call is None:
        raise Trap(
            "host resources (wasi:http, wasi:io) are served only during a call that has them"
        )
    return call


def current_http(store: Any) -> HttpCall:
    call = current(store)
    if not isinstance(call, HttpCall):
        raise Trap("wasi:http is served only while the component handles an HTTP request")
    return call


@contextlib.contextmanager
def scope(store: Any, call: CallState) -> Iterator[CallState]:
    """Serve ``call``'s resources to ``store`` while the block runs (one call per store)."""
    key = store_key(store)
    CALLS[key] = call
    try:
        yield call
    finally:
        del CALLS[key]


def header_bytes(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")
