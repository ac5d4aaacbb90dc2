"""The routing tables of the data plane, kept in C and written by the control plane.

DESIGN "Two planes": once the host has decided who may call whom, it writes
it here, and calls between native providers and actors (and between actors)
run in C (``native/host/wascc_route.c``) without the GIL:

* an **actor** entry publishes an actor's current pool of instances (its
  key and the capabilities its claims list are given to the pool once, by
  :meth:`Router.identify`);
* a **route** (actor, capability, binding) says the provider there may
  dispatch to the actor (``bound``) and, when the provider is native and the
  actor's claims list the capability, that the actor's host calls reach it
  from C (``native``).

What the tables do not hold goes through Python as before: a Python
provider, a remote actor, a refusal to word.  With ``python_only`` set (a
plugin applies to every call) everything does.  A call from C that fails is
worded and reported by Python (``wh_py_failed``), the only time it enters
Python.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from wascc.engine.ffi import (
    _NULL,
    _buffer,
    _dispatch_error_text,
    _error_text,
    _ffi,
    _from_handle,
    _lib,
)
from wascc.engine.library import NativeLibrary
from wascc.engine.pool import CallResult, InstancePool, _Owner

__all__ = ["CODEC_MAP", "CODEC_NONE", "CODEC_OTHER", "Router"]

log = logging.getLogger(__name__)

CODEC_NONE: int = _lib.WH_CODEC_NONE
CODEC_MAP: int = _lib.WH_CODEC_MAP
CODEC_OTHER: int = _lib.WH_CODEC_OTHER

#: (the failed call's owner, operation, how it ended) -> the error to report
ActorFailure = Callable[[Any, str, CallResult], BaseException]
#: (the calling actor's port, capability, binding, operation, provider's words) -> the error
ProviderFailure = Callable[[Any, str, str, str, str], BaseException]


def request_structs(operations: Iterable[str]) -> None:
    """Tell the data plane which operations carry a request struct (codec eras)."""
    if _lib.wh_set_request_structs("\n".join(sorted(operations)).encode()) != 0:
        raise MemoryError("cannot store the request struct names")


@_ffi.def_extern()  # type: ignore[untyped-decorator]
def wh_py_failed(handle: Any, f: Any, words: Any) -> None:
    try:
        router: Router = _from_handle(handle)
        operation = _buffer(f.op, f.op_len)[:].decode("utf-8", "replace")
        text = (_buffer(f.data, f.len)[:] if f.len else b"").decode("utf-8", "replace")
        if f.kind == _lib.WH_FAIL_ACTOR:
            owner: _Owner = _from_handle(f.owner)
            result = CallResult(
                int(f.status), text, bool(f.at_cap), int(f.memory_size), int(f.start_status)
            )
            exc = router.actor_failed(owner, operation, result)
        else:
            capability = _buffer(f.capability, f.capability_len)[:].decode("utf-8", "replace")
            binding = _buffer(f.binding, f.binding_len)[:].decode("utf-8", "replace")
            exc = router.provider_failed(
                _from_handle(f.owner), capability, binding, operation, text
            )
        data = (_dispatch_error_text if f.to_provider else _error_text)(exc)
    except BaseException as exc:  # never into C
        data = _error_text(exc)
    _lib.wh_reply_set(words, data, len(data))


class Router:
    """One host's routing tables in C."""

    def __init__(self, actor_failed: ActorFailure, provider_failed: ProviderFailure) -> None:
        self._actor_failed = actor_failed
        self.provider_failed = provider_failed
        self._handle = _ffi.new_handle(self)
        ptr = _lib.wh_router_new(self._handle)
        if ptr == _NULL:
            raise MemoryError("cannot allocate the routing tables")
        self._ptr = ptr

    def actor_failed(self, owner: _Owner, operation: str, result: CallResult) -> BaseException:
        return self._actor_failed(owner.guest(), operation, result)

    def flags(self, *, python_only: bool, draining: bool) -> None:
        _lib.wh_router_flags(self._ptr, int(python_only), int(draining))

    def identify(self, pool: InstancePool, key: str, caps: Iterable[str]) -> None:
        """Who the pool's actor is and what it may call (once, before it is published)."""
        if _lib.wh_pool_identify(pool.ptr, key.encode(), "\n".join(caps).encode()) != 0:
            raise MemoryError("cannot store the actor's capabilities")
        _lib.wh_pool_route(pool.ptr, self._ptr)

    @staticmethod
    def reads_map(pool: InstancePool, operation: str) -> None:
        """The actor reads request struct ``operation`` as a map: dispatch it from C."""
        _lib.wh_pool_read_map(pool.ptr, operation.encode())

    def actor(self, key: str, pool: InstancePool | None) -> None:
        """Publish the actor's current pool (None: it no longer runs here)."""
        if _lib.wh_router_actor(self._ptr, key.encode(), pool.ptr if pool else _NULL) != 0:
            raise MemoryError(f"cannot publish the route of {key}")

    def route(
        self,
        actor: str,
        capability: str,
        binding: str,
        *,
        bound: bool,
        native: NativeLibrary | None,
        codec: int = CODEC_NONE,
    ) -> None:
        """Write (or with neither ``bound`` nor ``native``, remove) one route."""
        rc = _lib.wh_router_route(
            self._ptr,
            actor.encode(),
            capability.encode(),
            binding.encode(),
            int(bound),
            native.native if native is not None else _NULL,
            codec,
        )
        if rc != 0:
            raise MemoryError(f"cannot publish the route {actor} -> {capability} ({binding})")

    def dispatcher(self, library: NativeLibrary, capability: str, binding: str) -> None:
        """Route the dispatches of a native provider at (capability, binding) through the tables."""
        library.route(self._ptr, capability, binding)

    # The router is never freed while its host may run a call: a host lives
    # as long as its process in practice, and the few hundred bytes of an
    # abandoned one are not worth a use-after-free.
