"""WIT interfaces a component may import or export, mapped onto the waSCC contracts.

A component reaches capabilities through the same door a waPC actor's
``__host_call`` does (:class:`~wascc.engine.wapc.GuestHost.host_call`: the
claims floor, the operator's bindings, the providers), so a WIT call is
turned into the contract's operation and payload here and nowhere else:

=====================================  ========================================================
import (any version)                   waSCC
=====================================  ========================================================
``wasi:logging/logging.log``           ``wascc:logging`` ``WriteLog`` ``{level, body}``
                                       (trace 5, debug 4, info 3, warn 2, error 1, critical 1;
                                       the context is prefixed to the body as ``context: ``;
                                       a provider's failure goes to the host's log: ``log``
                                       has no error to return)
``wasi:keyvalue/store``                ``open(name)``: the binding ``name`` ("" is ``default``);
                                       ``get`` -> ``Get``, ``set`` -> ``Set`` (UTF-8 values),
                                       ``delete`` -> ``Del``, ``exists`` -> ``KeyExists``;
                                       ``list-keys`` answers ``other`` (the contract has no scan)
``wasi:keyvalue/atomics.increment``    ``wascc:keyvalue`` ``Add {key, value: delta}``
``wasmcloud:messaging/consumer``       ``publish`` -> ``wascc:messaging`` ``Publish``,
                                       ``request`` -> ``Request`` (``types``: the record)
``wascc:actor/host.call``              the waPC host call itself: ``(binding, namespace,
                                       operation, payload)``, any capability or actor key
``wasi:http/types``                    no provider: the request being served and the response
                                       the component builds (see :mod:`wascc.engine.wit_http`)
``wasi:blobstore/blobstore``,          ``wascc:blobstore`` on the binding ``default`` (the WIT
``wasi:blobstore/container``,          names none): containers -> ``CreateContainer``,
``wasi:blobstore/types``               ``ListObjects``, ``RemoveContainer``; objects ->
                                       ``GetObjectInfo``, ``RemoveObject``; ``write-data`` ->
                                       ``StartUpload`` + ``UploadChunk``; ``get-data`` ->
                                       ``StartDownload``, its ``ReceiveChunk`` s taken before any
                                       instance (see :mod:`wascc.engine.wit_blob`; ``write-data``
                                       traps on wasmtime 50: two borrowed handles)
``wasi:io/streams``                    that request's body read, that response's body written;
                                       a blob value's bytes read or written
``wasi:io/error``                      the type of a stream's error (the host makes none)
=====================================  ========================================================

=====================================  ========================================================
export                                 reached by operation
=====================================  ========================================================
``wascc:actor/guest.call``             any operation: ``call(operation, payload)`` is
                                       ``__guest_call`` (so actors and components call each
                                       other by operation name, both ways)
``wasmcloud:messaging/handler``        ``DeliverMessage`` (a BrokerMessage)
``wasi:http/incoming-handler``         ``HandleRequest`` from ``wascc:http_server``: the
                                       HttpRequest becomes an ``incoming-request``, what the
                                       component sets on the ``response-outparam`` the
                                       HttpResponse (no response, an ``error-code``, an
                                       unfinished body: an error, so HTTP 500)
``ReceiveChunk`` of a ``get-data``     no export: the host hands it to the waiting call (its
in progress                            ``context`` is the adapter's); a late one is refused
=====================================  ========================================================

Deny by default: an import outside this table refuses the component at load
(naming the import); a capability the claims do not list or the operator did
not bind traps the call with the same ``Unauthorized`` / ``NotBound`` error
an actor gets.  A provider's own failure is the interface's error value where
it has one (keyvalue ``other``, messaging, blobstore and ``wascc:actor``
``err``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wasmtime
import wasmtime.component as wc

import wascc.engine.wit_patches  # noqa: F401 - applied on import: see there
from wascc.engine import wit_blob, wit_http
from wascc.engine.wapc import GuestHost
from wascc.engine.wit_contract import contract_call
from wascc.errors import ActorLoadError, ProviderCallError, WasccError
from wascc.wire.codec import (
    AddRequest,
    AddResponse,
    BrokerMessage,
    DelRequest,
    GetRequest,
    GetResponse,
    KeyExistsQuery,
    RequestMessage,
    SetRequest,
    WriteLogRequest,
)

__all__ = ["EXPORTS", "IMPORTS", "Downloads", "Exports", "interface_name", "serve_imports"]

Downloads = wit_blob.Downloads

logger = logging.getLogger(__name__)

KEYVALUE = "wascc:keyvalue"
LOGGING = "wascc:logging"
MESSAGING = "wascc:messaging"

_LEVELS = {"trace": 5, "debug": 4, "info": 3, "warn": 2, "error": 1, "critical": 1}
#: Refusals the claims floor and the bindings make: they trap the component.


def interface_name(name: str) -> str:
    """``wasi:keyvalue/store@0.2.0-draft`` -> ``wasi:keyvalue/store`` (versions are not matched)."""
    return re.sub(r"@[^/]*$", "", name)


class _Buckets:
    """What ``open`` handed out: a resource's rep is an index into the binding names."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def open(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            self.names.append(name)
            return len(self.names) - 1

    def name(self, store: Any, handle: Any) -> str:
        rep = handle.to_host(store).rep if isinstance(handle, wc.ResourceAny) else handle.rep
        return self.names[rep]


class _Shared:
    """What one component's imports share: the buckets it opened, the downloads it waits for."""

    def __init__(self, downloads: wit_blob.Downloads) -> None:
        self.buckets = _Buckets()
        self.downloads = downloads


def _other(text: str) -> wc.Variant:
    return wc.Variant("other", text)


def _serve_logging(root: wc.LinkerInstance, name: str, port: GuestHost, _: _Shared) -> None:
    def log(store: Any, level: str, context: str, message: str) -> None:
        body = f"{context}: {message}" if context else message
        request = WriteLogRequest(_LEVELS.get(level, 3), body)
        _, failed = contract_call(port, "", LOGGING, "WriteLog", request.encode())
        if failed is not None:  # log has no error channel: the host's log keeps it
            logger.warning("%s (the component's log line: %s)", failed, body)

    with root.add_instance(name) as inst:
        inst.add_func("log", log)


def _kv_call(
    port: GuestHost, binding: str, op: str, payload: bytes
) -> tuple[bytes | None, wc.Variant | None]:
    """One wascc:keyvalue call: the reply, or the provider's failure as ``other``."""
    reply, failed = contract_call(port, binding, KEYVALUE, op, payload)
    return reply, (_other(failed) if failed is not None else None)


def _serve_store(root: wc.LinkerInstance, name: str, port: GuestHost, shared: _Shared) -> None:
    bucket = wc.ResourceType.host(1)
    buckets = shared.buckets

    def open_(store: Any, identifier: str) -> Any:
        return wc.ResourceHost.own(buckets.open(identifier.strip()), 1)

    def get(store: Any, handle: Any, key: str) -> Any:
        reply, err = _kv_call(port, buckets.name(store, handle), "Get", GetRequest(key).encode())
        if err is not None:
            return err
        got = GetResponse.decode(reply or b"")
        return got.value.encode() if got.exists else None

    def set_(store: Any, handle: Any, key: str, value: bytes) -> Any:
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return _other("wascc:keyvalue holds UTF-8 text: the value is not")
        _, err = _kv_call(port, buckets.name(store, handle), "Set", SetRequest(key, text).encode())
        return err

    def delete(store: Any, handle: Any, key: str) -> Any:
        _, err = _kv_call(port, buckets.name(store, handle), "Del", DelRequest(key).encode())
        return err

    def exists(store: Any, handle: Any, key: str) -> Any:
        reply, err = _kv_call(
            port, buckets.name(store, handle), "KeyExists", KeyExistsQuery(key).encode()
        )
        return err if err is not None else GetResponse.decode(reply or b"").exists

    def list_keys(store: Any, handle: Any, cursor: Any) -> Any:
        return _other("wascc:keyvalue has no operation that lists keys")

    with root.add_instance(name) as inst:
        inst.add_resource("bucket", bucket, lambda store, rep: None)
        inst.add_func("open", open_)
        inst.add_func("[method]bucket.get", get)
        inst.add_func("[method]bucket.set", set_)
        inst.add_func("[method]bucket.delete", delete)
        inst.add_func("[method]bucket.exists", exists)
        inst.add_func("[method]bucket.list-keys", list_keys)


def _serve_atomics(root: wc.LinkerInstance, name: str, port: GuestHost, shared: _Shared) -> None:
    buckets = shared.buckets

    def increment(store: Any, handle: Any, key: str, delta: int) -> Any:
        reply, err = _kv_call(
            port, buckets.name(store, handle), "Add", AddRequest(key, int(delta)).encode()
        )
        return err if err is not None else AddResponse.decode(reply or b"").value

    with root.add_instance(name) as inst:
        inst.add_func("increment", increment)


def _message(record: Any) -> BrokerMessage:
    return BrokerMessage(
        subject=record.subject,
        reply_to=getattr(record, "reply-to", None) or "",
        body=bytes(record.body),
    )


def _record(message: BrokerMessage) -> Any:
    record = wc.Record()
    setattr(record, "subject", message.subject)  # noqa: B010 - WIT field names
    setattr(record, "body", message.body)  # noqa: B010
    setattr(record, "reply-to", message.reply_to or None)
    return record


def _serve_consumer(root: wc.LinkerInstance, name: str, port: GuestHost, _: _Shared) -> None:
    def publish(store: Any, msg: Any) -> Any:
        _, failed = contract_call(port, "", MESSAGING, "Publish", _message(msg).encode())
        return failed

    def request(store: Any, subject: str, body: bytes, timeout_ms: int) -> Any:
        message = RequestMessage(subject, bytes(body), timeout_ms)
        reply, failed = contract_call(port, "", MESSAGING, "Request", message.encode())
        if failed is not None:
            return failed
        return _record(BrokerMessage(subject=subject, body=reply or b""))

    with root.add_instance(name) as inst:
        inst.add_func("publish", publish)
        inst.add_func("request", request)


def _serve_actor_host(root: wc.LinkerInstance, name: str, port: GuestHost, _: _Shared) -> None:
    def call(store: Any, binding: str, namespace: str, operation: str, payload: bytes) -> Any:
        try:
            return port.host_call(binding, namespace, operation, bytes(payload))
        except WasccError as exc:  # as an actor's __host_call: the error is the guest's to read
            return str(exc)

    with root.add_instance(name) as inst:
        inst.add_func("call", call)


def _serve_types(root: wc.LinkerInstance, name: str, port: GuestHost, _: _Shared) -> None:
    """An interface of types only (records, variants): nothing to serve but its name."""
    with root.add_instance(name):
        pass


Server = Callable[[wc.LinkerInstance, str, GuestHost, _Shared], None]

#: The imports a component may have, by interface name without version.
IMPORTS: dict[str, Server] = {
    "wasi:logging/logging": _serve_logging,
    "wasi:keyvalue/store": _serve_store,
    "wasi:keyvalue/atomics": _serve_atomics,
    "wasmcloud:messaging/consumer": _serve_consumer,
    "wasmcloud:messaging/types": _serve_types,
    "wascc:actor/host": _serve_actor_host,
}


def _http_server(serve: Callable[[wc.LinkerInstance, str], None]) -> Server:
    def server(root: wc.LinkerInstance, name: str, port: GuestHost, _: _Shared) -> None:
        serve(root, name)

    return server


def _blob_server(serve: wit_blob.Server) -> Server:
    def server(root: wc.LinkerInstance, name: str, port: GuestHost, shared: _Shared) -> None:
        serve(root, name, port, shared.downloads)

    return server


IMPORTS.update({name: _http_server(serve) for name, serve in wit_http.IMPORTS.items()})
IMPORTS.update({name: _blob_server(serve) for name, serve in wit_blob.IMPORTS.items()})

#: The exports the host calls, by interface name without version.
EXPORTS = ("wascc:actor/guest", "wasmcloud:messaging/handler", wit_http.HANDLER)


def serve_imports(
    engine: wasmtime.Engine,
    imports: list[str],
    port: GuestHost,
    label: str,
    downloads: wit_blob.Downloads | None = None,
) -> wc.Linker:
    """A linker serving exactly ``imports`` (every one must be in :data:`IMPORTS`).

    ``downloads``: where the component's blobstore downloads wait for their
    ``ReceiveChunk`` (its guest hands those to :meth:`Downloads.deliver`).
    """
    linker = wc.Linker(engine)
    shared = _Shared(downloads if downloads is not None else wit_blob.Downloads())
    # keyvalue's atomics use the store's bucket type: define the store first
    ordered = sorted(imports, key=lambda n: interface_name(n) != "wasi:keyvalue/store")
    with linker.root() as root:
        for name in ordered:
            server = IMPORTS.get(interface_name(name))
            if server is None:
                raise ActorLoadError(
                    f"{label} imports {name}, which this host does not serve (components may "
                    f"import: {', '.join(sorted(IMPORTS))})"
                )
            server(root, name, port, shared)
    return linker


@dataclass
class Exports:
    """How an operation reaches a component's exports (the indices, looked up once per instance)."""

    guest: str | None  # the full name of wascc:actor/guest, if exported
    handler: str | None  # wasmcloud:messaging/handler
    http: str | None = None  # wasi:http/incoming-handler
    scoped: bool = False  # every call has host resources (it imports wasi:blobstore)

    @classmethod
    def of(cls, names: list[str], imports: list[str] | None = None) -> Exports:
        found = {interface_name(n): n for n in names}
        return cls(
            found.get("wascc:actor/guest"),
            found.get("wasmcloud:messaging/handler"),
            found.get(wit_http.HANDLER),
            any(interface_name(n) in wit_blob.IMPORTS for n in imports or ()),
        )

    def describe(self) -> str:
        names = (self.guest, self.handler, self.http)
        return ", ".join(n for n in names if n) or "nothing the host calls"

    def call(
        self,
        store: Any,
        instance: Any,
        operation: str,
        payload: bytes,
        funcs: dict[str, Any],
        deadline: float | None = None,
    ) -> bytes | str:
        """The reply (bytes) or the component's error (str); raises when nothing serves it.

        ``funcs`` caches this instance's exported functions (looked up once);
        ``deadline`` (``time.monotonic()``) bounds what host functions wait for.
        """
        if operation == "HandleRequest" and self.http is not None:
            return wit_http.handle(
                store, _cached(funcs, store, instance, self.http, "handle"), payload, deadline
            )
        if self.scoped:
            with wit_http.scope(store, wit_http.CallState(deadline)):
                return self._call(store, instance, operation, payload, funcs)
        return self._call(store, instance, operation, payload, funcs)

    def _call(
        self, store: Any, instance: Any, operation: str, payload: bytes, funcs: dict[str, Any]
    ) -> bytes | str:
        if operation == "DeliverMessage" and self.handler is not None:
            func = _cached(funcs, store, instance, self.handler, "handle-message")
            result = func(store, _record(BrokerMessage.decode(payload)))
            func.post_return(store)
            return result if isinstance(result, str) else b""
        if self.guest is None:
            raise _NoExport(operation)
        func = _cached(funcs, store, instance, self.guest, "call")
        result = func(store, operation, payload)
        func.post_return(store)
        return result if isinstance(result, str) else bytes(result)


def _cached(funcs: dict[str, Any], store: Any, instance: Any, interface: str, name: str) -> Any:
    func = funcs.get(name)
    if func is None:
        func = funcs[name] = _func(store, instance, interface, name)
    return func


class _NoExport(WasccError):
    def __init__(self, operation: str) -> None:
        super().__init__(operation)
        self.operation = operation


def _func(store: Any, instance: Any, interface: str, name: str) -> Any:
    at = instance.get_export_index(store, interface)
    index = instance.get_export_index(store, name, at) if at is not None else None
    func = instance.get_func(store, index) if index is not None else None
    if func is None:
        raise ProviderCallError(f"the component's {interface} has no function {name}")
    return func
