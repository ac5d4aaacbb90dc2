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
:class:`HttpCall` (a :class:`CallState`) registered for the store running
the call (a store runs one call at a time) and dropped when the call
returns; other adapters with resources (:mod:`wascc.engine.wit_blob`) use
the same table, streams and :func:`scope`; resource reps are
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

from collections.abc import Callable
from typing import Any

import wasmtime.component as wc

from wascc.errors import CodecError
from wascc.wire.codec import HttpRequest

from ._calls import (
    CALLS,
    INCOMING_REQUEST,
    INPUT_STREAM,
    MAX_BODY,
    RESPONSE_OUTPARAM,
    CallState,
    HttpCall,
    IncomingRequest,
    InputStream,
    OutgoingBody,
    Outparam,
    current,
    scope,
)
from ._serve import add_streams, guarded, on_drop, serve_error, serve_streams, serve_types

__all__ = [
    "HANDLER",
    "IMPORTS",
    "INPUT_STREAM",
    "MAX_BODY",
    "CallState",
    "HttpCall",
    "InputStream",
    "OutgoingBody",
    "add_streams",
    "calls_in_progress",
    "current",
    "guarded",
    "handle",
    "on_drop",
    "scope",
]

HANDLER = "wasi:http/incoming-handler"


def handle(store: Any, func: Any, payload: bytes, deadline: float | None = None) -> bytes | str:
    """Run ``handle(request, response-out)`` for one HandleRequest: the reply, or the error."""
    try:
        request = HttpRequest.decode(payload)
    except CodecError as exc:
        return f"HandleRequest did not carry an HttpRequest: {exc}"
    call = HttpCall(deadline)
    with scope(store, call):
        func(
            store,
            call.own(IncomingRequest(request), INCOMING_REQUEST),
            call.own(Outparam(), RESPONSE_OUTPARAM),
        )
        func.post_return(store)
    return call.reply()


def calls_in_progress() -> int:
    """How many stores are running a call with host resources (an HTTP request...) right now."""
    return len(CALLS)


IMPORTS: dict[str, Callable[[wc.LinkerInstance, str], None]] = {
    "wasi:http/types": serve_types,
    "wasi:io/streams": serve_streams,
    "wasi:io/error": serve_error,
}
