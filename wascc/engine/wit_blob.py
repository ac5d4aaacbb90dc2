"""``wasi:blobstore@0.2.0-draft`` (``blobstore``, ``container``, ``types``) on wascc:blobstore.

Every call goes through the component's port on the binding ``default``
(the WIT has no place to name a binding: a component that needs another
one calls ``wascc:actor/host.call`` with the contract's operations), so the
claims floor and the operator's bindings decide as for an actor:

==================================  ================================================================
WIT                                 wascc:blobstore
==================================  ================================================================
``create-container``                ``CreateContainer`` (an existing one is answered as it is;
                                    its ``name`` is the id the provider stored: ``a/b`` -> ``a_b``)
``get-container``                   ``ListObjects``: it answers, or the container does not exist
``container-exists``                ``ListObjects``: a provider failure is ``false``
``delete-container``                ``ListObjects``, ``RemoveObject`` each, ``RemoveContainer``
``container.name`` / ``info``       the name; ``created-at`` 0 (the contract keeps no times)
``write-data`` + ``finish``         ``StartUpload`` (``totalBytes``), ``UploadChunk`` s of 512 KiB
``get-data(name, start, end)``      ``StartDownload`` with a unique ``context``; the
                                    ``ReceiveChunk`` s the provider dispatches are taken by
                                    :meth:`Downloads.deliver` before any instance; the bytes
                                    in ``[start, end]`` are kept
``list-objects``                    ``ListObjects`` -> ``stream-object-names`` (``read`` / ``skip``)
``delete-object(s)``                ``RemoveObject`` (a missing object is not an error)
``has-object`` / ``object-info``    ``GetObjectInfo`` (the "none" blob is a missing one)
``clear``                           ``ListObjects``, ``RemoveObject`` each
``copy-object`` / ``move-object``   a download and an upload (``RemoveObject`` of the source)
==================================  ================================================================

Writing.  ``write-data`` may come before or after the bytes are written to
the value's output-stream: if the stream was taken and dropped, the upload
runs in ``write-data``; otherwise it runs in ``outgoing-value.finish``
(whose error is the upload's).  A value dropped without ``finish`` writes
nothing.  A value is buffered whole, up to ``MAX_BODY`` (64 MiB).
**Known limit:** wasmtime(-py) 50.0.x traps inside its own lifting ("BUG:
deferred host scope has no call context") whenever a host function takes
two borrowed handles, and ``write-data(self: borrow<container>, ...,
data: borrow<outgoing-value>)`` does: the call traps before the host runs
(reported as that limit by :mod:`wascc.engine.component`).  The code above
is what runs once wasmtime lifts it; until then a component writes blobs
only with ``copy-object`` / ``move-object``, or through
``wascc:actor/host.call`` with the contract's ``StartUpload`` /
``UploadChunk``.

Reading.  ``get-data`` waits for the download at most until the call's
deadline; then it traps with ``InvocationTimeout`` (the instance is
dropped) and the chunks that still come are refused, which stops the
provider's download.  The whole blob is downloaded (the contract has no
range), and at most ``MAX_BODY`` bytes of it kept.

Errors are this WIT's ``error`` string: a provider's failure is
``err(text)``; ``Unauthorized`` and ``NotBound`` trap the call as for every
import.  Resources (containers, values, name streams) live for one call,
like wasi:http's (:class:`~wascc.engine.wit_http.CallState`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import wasmtime.component as wc

from wascc.engine import wit_http
from wascc.engine.wapc import GuestHost
from wascc.engine.wit_contract import contract_call
from wascc.engine.wit_http import InputStream, OutgoingBody, current, guarded
from wascc.errors import (
    CodecError,
    GuestError,
    InvocationTimeout,
)
from wascc.wire.codec import Blob, BlobList, Container, FileChunk, StreamRequest

__all__ = ["BLOBSTORE", "CHUNK", "CONTEXT_PREFIX", "IMPORTS", "Downloads"]

BLOBSTORE = "wascc:blobstore"
#: Bytes per UploadChunk, and the chunkSize a download asks for.
CHUNK = 512 * 1024
#: Every download context the adapter makes starts so (others reach the component).
CONTEXT_PREFIX = "wascc-wit-blob:"
#: How long get-data waits when the call has no deadline (it always has one in a host).
DEFAULT_WAIT = 30.0

# host resource type ids (distinct from wasi:http's 0x4854_xxxx)
CONTAINER = 0x424C_0001
STREAM_OBJECT_NAMES = 0x424C_0002
OUTGOING_VALUE = 0x424C_0003
INCOMING_VALUE = 0x424C_0004


class _Failed(Exception):
    """An ``err(text)`` answer (never reaches wasmtime: the host functions return it)."""


# ---- the objects behind the resources ------------------------------------------------


class _Container:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _Names:
    __slots__ = ("names", "pos")

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.pos = 0


class _OutgoingValue(OutgoingBody):
    """The bytes written to the value's stream, and where ``write-data`` said they go."""

    __slots__ = ("targets",)

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[tuple[str, str]] = []  # (container, name) not yet uploaded


class _IncomingValue:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


# ---- downloads -------------------------------------------------------------------------


class _Download:
    """One StartDownload's chunks as they arrive, the bytes of ``[start, end]`` kept."""

    __slots__ = ("cond", "done", "end", "failure", "kept", "next_seq", "parts", "received", "start")

    def __init__(self, start: int, end: int) -> None:
        self.cond = threading.Condition()
        self.start = start
        self.end = end  # inclusive
        self.next_seq = 0
        self.received = 0
        self.parts: list[bytes] = []
        self.kept = 0
        self.done = False
        self.failure: str | None = None

    def add(self, chunk: FileChunk) -> None:
        with self.cond:
            if self.done:
                return
            if chunk.sequence_no != self.next_seq:
                self.failure = (
                    f"chunk {chunk.sequence_no} arrived where chunk {self.next_seq} was due"
                )
            else:
                data = chunk.chunk_bytes
                low = self.received
                self.received += len(data)
                self.next_seq += 1
                begin = max(self.start - low, 0)
                stop = min(self.end + 1 - low, len(data))
                if stop > begin:
                    self.parts.append(data[begin:stop])
                    self.kept += stop - begin
                if self.kept > wit_http.MAX_BODY:
                    self.failure = f"the value passes {wit_http.MAX_BODY} bytes (the most kept)"
                elif self.received < chunk.total_bytes and data:
                    return
            self.done = True
            self.cond.notify_all()


class Downloads:
    """The downloads one component's get-data calls wait for, by their ``context``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, _Download] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def begin(self, start: int, end: int) -> tuple[str, _Download]:
        context = CONTEXT_PREFIX + uuid.uuid4().hex
        download = _Download(start, end)
        with self._lock:
            self._pending[context] = download
        return context, download

    def end(self, context: str) -> None:
        with self._lock:
            self._pending.pop(context, None)

    def deliver(self, payload: bytes) -> bytes | None:
        """Take a ``ReceiveChunk`` for a get-data in progress (the reply), or None (not ours).

        A chunk of a download no get-data waits for any more is refused, so the
        provider stops sending it.
        """
        try:
            chunk = FileChunk.decode(payload)
        except CodecError:
            return None
        context = chunk.context
        if not context or not context.startswith(CONTEXT_PREFIX):
            return None
        with self._lock:
            download = self._pending.get(context)
        if download is None:
            raise GuestError(
                f"no get-data waits for the download {context} any more (it timed out or "
                f"failed): chunk {chunk.sequence_no} of {chunk.container}/{chunk.id} refused"
            )
        download.add(chunk)
        return b""


# ---- the calls onto wascc:blobstore -----------------------------------------------------


class _Store:
    """One component's wascc:blobstore calls, on its port."""

    def __init__(self, port: GuestHost, downloads: Downloads) -> None:
        self.port = port
        self.downloads = downloads

    def call(self, operation: str, payload: bytes) -> bytes:
        """The reply; a refusal raises (a trap), a provider failure is :class:`_Failed`."""
        reply, failed = contract_call(self.port, "", BLOBSTORE, operation, payload)
        if failed is not None:
            raise _Failed(failed)
        return reply or b""

    def names(self, container: str) -> list[str]:
        reply = self.call("ListObjects", Container(container).encode())
        return [blob.id for blob in BlobList.decode(reply).blobs]

    def info(self, container: str, name: str) -> Blob | None:
        reply = self.call("GetObjectInfo", Blob(id=name, container=container).encode())
        blob = Blob.decode(reply)
        if blob.id == "" or (blob.id == "none" and blob.container == "none"):
            return None  # the contract's "none" blob (and the Rust SDK's empty id)
        return blob

    def remove(self, container: str, name: str) -> None:
        """RemoveObject; an object that is not there is not an error (as the WIT says)."""
        try:
            self.call("RemoveObject", Blob(id=name, container=container).encode())
        except _Failed:
            if self.info(container, name) is not None:
                raise

    def upload(self, container: str, name: str, data: bytes) -> None:
        total = len(data)
        start = FileChunk(0, container, name, total_bytes=total, chunk_size=CHUNK)
        self.call("StartUpload", start.encode())
        for seq, at in enumerate(range(0, total, CHUNK)):
            chunk = FileChunk(seq, container, name, total, CHUNK, chunk_bytes=data[at : at + CHUNK])
            self.call("UploadChunk", chunk.encode())

    def download(
        self, container: str, name: str, start: int, end: int, deadline: float | None
    ) -> bytes:
        """The bytes ``[start, end]`` of the blob, once its ReceiveChunks have come."""
        context, download = self.downloads.begin(start, end)
        try:
            request = StreamRequest(name, container, CHUNK, context)
            self.call("StartDownload", request.encode())
            until = deadline if deadline is not None else time.monotonic() + DEFAULT_WAIT
            with download.cond:
                while not download.done:
                    remaining = until - time.monotonic()
                    if remaining <= 0:
                        raise InvocationTimeout(
                            f"the download of {container}/{name} ({download.received} bytes so "
                            "far) did not finish within the component's deadline"
                        )
                    download.cond.wait(remaining)
        finally:
            self.downloads.end(context)
        if download.failure is not None:
            raise _Failed(f"the download of {container}/{name} failed: {download.failure}")
        return b"".join(download.parts)


def _answers(func: Callable[..., Any]) -> Callable[..., Any]:
    """A host function whose ``_Failed`` is its ``err(text)`` (the WIT error is a string)."""

    def run(store: Any, *args: Any) -> Any:
        try:
            return func(store, *args)
        except _Failed as exc:
            return str(exc)

    run.__name__ = func.__name__
    return guarded(run)


def _record(**fields: Any) -> wc.Record:
    record = wc.Record()
    for name, value in fields.items():
        setattr(record, name.replace("_", "-"), value)
    return record


def _deadline(store: Any) -> float | None:
    return current(store).deadline


# ---- the interfaces -----------------------------------------------------------------


def serve_types(root: wc.LinkerInstance, name: str, store_: _Store) -> None:
    """``types``: ``outgoing-value`` (written through an output-stream), ``incoming-value``."""

    @guarded
    def new_value(store: Any) -> Any:
        return current(store).own(_OutgoingValue(), OUTGOING_VALUE)

    @guarded
    def write_body(store: Any, handle: Any) -> Any:
        call = current(store)
        return call.output_stream(call.get(store, handle, _OutgoingValue, "outgoing-value"))

    @_answers
    def finish(store: Any, handle: Any) -> Any:
        value = current(store).take(store, handle, _OutgoingValue, "outgoing-value")
        value.finish("outgoing-value")
        _flush(store_, value)
        return None

    @guarded
    def consume_sync(store: Any, handle: Any) -> Any:
        return current(store).take(store, handle, _IncomingValue, "incoming-value").data

    @guarded
    def consume_async(store: Any, handle: Any) -> Any:
        call = current(store)
        value = call.take(store, handle, _IncomingValue, "incoming-value")
        return call.own(InputStream(value.data), wit_http.INPUT_STREAM)

    @guarded
    def size(store: Any, handle: Any) -> Any:
        return len(current(store).get(store, handle, _IncomingValue, "incoming-value").data)

    with root.add_instance(name) as inst:
        wit_http.add_streams(inst)
        inst.add_resource("outgoing-value", wc.ResourceType.host(OUTGOING_VALUE), wit_http.on_drop)
        inst.add_resource("incoming-value", wc.ResourceType.host(INCOMING_VALUE), wit_http.on_drop)
        inst.add_func("[static]outgoing-value.new-outgoing-value", new_value)
        inst.add_func("[method]outgoing-value.outgoing-value-write-body", write_body)
        inst.add_func("[static]outgoing-value.finish", finish)
        inst.add_func("[static]incoming-value.incoming-value-consume-sync", consume_sync)
        inst.add_func("[static]incoming-value.incoming-value-consume-async", consume_async)
        inst.add_func("[method]incoming-value.size", size)


def _flush(store_: _Store, value: _OutgoingValue) -> None:
    """Upload the value to every target write-data named (its bytes are complete)."""
    data = b"".join(value.chunks)
    while value.targets:
        container, name = value.targets.pop(0)
        store_.upload(container, name, data)


def serve_container(root: wc.LinkerInstance, name: str, store_: _Store) -> None:
    """``container``: the ``container`` and ``stream-object-names`` resources."""

    def name_of(store: Any, handle: Any) -> str:
        return current(store).get(store, handle, _Container, "container").name

    @guarded
    def container_name(store: Any, handle: Any) -> Any:
        return wc.Variant("ok", name_of(store, handle))

    @guarded
    def info(store: Any, handle: Any) -> Any:
        return _record(name=name_of(store, handle), created_at=0)

    @_answers
    def get_data(store: Any, handle: Any, key: str, start: int, end: int) -> Any:
        container = name_of(store, handle)
        if end < start:
            raise _Failed(f"get-data of {container}/{key}: end {end} is before start {start}")
        data = store_.download(container, key, start, end, _deadline(store))
        return current(store).own(_IncomingValue(data), INCOMING_VALUE)

    @_answers
    def write_data(store: Any, handle: Any, key: str, data: Any) -> Any:
        container = name_of(store, handle)
        value = current(store).get(store, data, _OutgoingValue, "outgoing-value")
        value.targets.append((container, key))
        if value.written and value.stream is None:  # the bytes are all there: upload now
            _flush(store_, value)
        return None

    @_answers
    def list_objects(store: Any, handle: Any) -> Any:
        names = store_.names(name_of(store, handle))
        return current(store).own(_Names(names), STREAM_OBJECT_NAMES)

    @_answers
    def delete_object(store: Any, handle: Any, key: str) -> Any:
        store_.remove(name_of(store, handle), key)
        return None

    @_answers
    def delete_objects(store: Any, handle: Any, keys: list[str]) -> Any:
        container = name_of(store, handle)
        for key in keys:
            store_.remove(container, key)
        return None

    @_answers
    def has_object(store: Any, handle: Any, key: str) -> Any:
        return store_.info(name_of(store, handle), key) is not None

    @_answers
    def object_info(store: Any, handle: Any, key: str) -> Any:
        container = name_of(store, handle)
        blob = store_.info(container, key)
        if blob is None:
            raise _Failed(f"no object {key!r} in container {container!r}")
        return _record(name=blob.id, container=blob.container, created_at=0, size=blob.byte_size)

    @_answers
    def clear(store: Any, handle: Any) -> Any:
        container = name_of(store, handle)
        for key in store_.names(container):
            store_.remove(container, key)
        return None

    def names_of(store: Any, handle: Any) -> _Names:
        return current(store).get(store, handle, _Names, "stream-object-names")

    @guarded
    def read_names(store: Any, handle: Any, count: int) -> Any:
        names = names_of(store, handle)
        taken = names.names[names.pos : names.pos + count]
        names.pos += len(taken)
        return (taken, names.pos >= len(names.names))

    @guarded
    def skip_names(store: Any, handle: Any, count: int) -> Any:
        names = names_of(store, handle)
        skipped = min(count, len(names.names) - names.pos)
        names.pos += skipped
        return (skipped, names.pos >= len(names.names))

    with root.add_instance(name) as inst:
        for resource, ty in (
            ("container", CONTAINER),
            ("stream-object-names", STREAM_OBJECT_NAMES),
        ):
            inst.add_resource(resource, wc.ResourceType.host(ty), wit_http.on_drop)
        for func_name, func in (
            ("name", container_name),
            ("info", info),
            ("get-data", get_data),
            ("write-data", write_data),
            ("list-objects", list_objects),
            ("delete-object", delete_object),
            ("delete-objects", delete_objects),
            ("has-object", has_object),
            ("object-info", object_info),
            ("clear", clear),
        ):
            inst.add_func(f"[method]container.{func_name}", func)
        inst.add_func("[method]stream-object-names.read-stream-object-names", read_names)
        inst.add_func("[method]stream-object-names.skip-stream-object-names", skip_names)


def serve_blobstore(root: wc.LinkerInstance, name: str, store_: _Store) -> None:
    """``blobstore``: containers by name, and copies between objects."""

    @_answers
    def create_container(store: Any, container: str) -> Any:
        reply = store_.call("CreateContainer", Container(container).encode())
        return current(store).own(_Container(Container.decode(reply).id), CONTAINER)

    @_answers
    def get_container(store: Any, container: str) -> Any:
        store_.names(container)  # answers only for a container that exists
        return current(store).own(_Container(container), CONTAINER)

    @_answers
    def delete_container(store: Any, container: str) -> Any:
        for key in store_.names(container):  # the contract removes only empty ones
            store_.remove(container, key)
        store_.call("RemoveContainer", Container(container).encode())
        return None

    @_answers
    def container_exists(store: Any, container: str) -> Any:
        try:
            store_.names(container)
        except _Failed:
            return False  # no such container (or a name none can have)
        return True

    def copy(store: Any, src: Any, dest: Any) -> None:
        data = store_.download(src.container, src.object, 0, (1 << 64) - 1, _deadline(store))
        store_.upload(dest.container, dest.object, data)

    @_answers
    def copy_object(store: Any, src: Any, dest: Any) -> Any:
        copy(store, src, dest)
        return None

    @_answers
    def move_object(store: Any, src: Any, dest: Any) -> Any:
        if (src.container, src.object) == (dest.container, dest.object):
            return None
        copy(store, src, dest)
        store_.call("RemoveObject", Blob(id=src.object, container=src.container).encode())
        return None

    with root.add_instance(name) as inst:
        inst.add_resource("container", wc.ResourceType.host(CONTAINER), wit_http.on_drop)
        inst.add_func("create-container", create_container)
        inst.add_func("get-container", get_container)
        inst.add_func("delete-container", delete_container)
        inst.add_func("container-exists", container_exists)
        inst.add_func("copy-object", copy_object)
        inst.add_func("move-object", move_object)


Server = Callable[[wc.LinkerInstance, str, GuestHost, Downloads], None]


def _server(serve: Callable[[wc.LinkerInstance, str, _Store], None]) -> Server:
    def server(root: wc.LinkerInstance, name: str, port: GuestHost, downloads: Downloads) -> None:
        serve(root, name, _Store(port, downloads))

    return server


#: The interfaces served here, by name without version (``types`` first: the others use it).
IMPORTS: dict[str, Server] = {
    "wasi:blobstore/types": _server(serve_types),
    "wasi:blobstore/container": _server(serve_container),
    "wasi:blobstore/blobstore": _server(serve_blobstore),
}
