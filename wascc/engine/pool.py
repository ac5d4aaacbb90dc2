"""A pool of instances of one module, kept in C (``native/host/wascc_route.c``).

A wasmtime store must be used by one thread at a time, so each concurrent
call takes an instance of its own.  The pool lives in C so that a call from
a native provider's thread, or from another actor, reaches an instance
without the GIL: it keeps idle instances, starts a new one when all are
busy and it is below its maximum, and otherwise waits for one to come back,
up to the call's deadline.  An instance that trapped, timed out or reached
its memory cap is dropped; one that answered (even with an error) is kept.

Once retired (its actor replaced or removed) a pool starts no new instance:
idle ones close at once, busy ones when their call ends, and when the last
one has closed the pool calls ``on_empty`` once, so the module they were
made from is freed right then.

Every call is counted by operation in C, one in SAMPLE_EVERY timed
(:class:`~wascc.engine.stats.Counters` reads them).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wasmtime

from wascc.engine.ffi import _NULL, _address, _ffi, _from_handle, _lib
from wascc.engine.stats import Counters
from wascc.engine.wapc import GuestHost, WapcPre

__all__ = ["BUSY", "RETIRED", "START_FAILED", "CallResult", "InstancePool"]

BUSY: int = _lib.WH_BUSY
RETIRED: int = _lib.WH_RETIRED
START_FAILED: int = _lib.WH_START_FAILED

log = logging.getLogger(__name__)

_pool_call = _lib.wh_pool_call
_unpack = _ffi.unpack

_results = threading.local()


@dataclass(frozen=True, slots=True)
class CallResult:
    """How a call that did not answer ended (the pool already kept or dropped the instance)."""

    status: int
    text: str
    at_cap: bool = False
    memory_size: int = 0
    start_status: int = 0


class _Owner:
    """What the C pool calls back (one per pool): WASI contexts, and "now empty".

    Kept alive by a module-level table until the pool has emptied, so a C
    thread never finds it gone; it holds no reference to the Guest, which may
    be collected first.
    """

    live: dict[int, _Owner] = {}
    lock = threading.Lock()

    def __init__(
        self, host: GuestHost, make_wasi: Callable[[], wasmtime.WasiConfig] | None
    ) -> None:
        self.host_handle = _ffi.new_handle(host)  # each instance calls back into it
        self.handle = _ffi.new_handle(self)
        self.make_wasi = make_wasi
        #: The Guest the pool belongs to (weak: set by it), for wording failures.
        self.guest: Callable[[], Any] = lambda: None
        self.on_empty: list[Callable[[], None]] = []
        with _Owner.lock:
            _Owner.live[id(self)] = self

    def emptied(self) -> None:
        with _Owner.lock:
            _Owner.live.pop(id(self), None)
        callbacks, self.on_empty = self.on_empty, []
        for callback in callbacks:
            callback()


@_ffi.def_extern()  # type: ignore[untyped-decorator]
def wh_py_pool_empty(owner: Any) -> None:
    try:
        _from_handle(owner).emptied()
    except BaseException:  # never into C
        log.exception("freeing a retired pool's module failed")


@_ffi.def_extern()  # type: ignore[untyped-decorator]
def wh_py_wasi_config(owner: Any) -> Any:
    try:
        make = _from_handle(owner).make_wasi
        return _address(make()._consume()) if make is not None else _NULL
    except BaseException:
        return _NULL


class InstancePool:
    """Instances of one pre-linked module; each in use by at most one thread."""

    def __init__(
        self,
        pre: WapcPre,
        host: GuestHost,
        *,
        min_size: int,
        max_size: int,
        memory_limit: int,
        deadline: float,
        tick: float,
        label: str,
        make_wasi: Callable[[], wasmtime.WasiConfig] | None = None,
    ) -> None:
        if max_size < 1 or min_size < 0 or min_size > max_size:
            raise ValueError(f"bad pool size for {label}: min {min_size}, max {max_size}")
        self.label = label
        self.max_size = max_size
        self._pre = pre  # the pre-linked module outlives every instance
        self._owner = owner = _Owner(host, make_wasi)
        ptr = _lib.wh_pool_new(
            pre._engine_ptr,
            pre._ptr,
            owner.host_handle,
            owner.handle,
            memory_limit,
            deadline,
            tick,
            max_size,
            1 if make_wasi is not None else 0,
        )
        if ptr == _NULL:
            _Owner.live.pop(id(owner), None)
            raise MemoryError(f"cannot allocate the instance pool of {label}")
        self._ptr = ptr
        # dropped without retire (a failed load, a test): retire and let go in C
        self._finalizer = weakref.finalize(self, _drop, ptr)
        self.stats = Counters(_lib.wh_pool_stats(ptr))
        if min_size:
            out = _ffi.new("wh_result *")
            if _lib.wh_pool_fill(ptr, min_size, out) != 0:
                result = _failure(out)
                self.retire()
                raise _StartFailed(result)

    def belongs_to(self, guest: object) -> None:
        """Name the Guest whose failures the data plane reports (held weakly)."""
        self._owner.guest = weakref.ref(guest)

    @property
    def ptr(self) -> Any:
        """The C pool (for the router)."""
        return self._ptr

    def call(self, operation: bytes, payload: bytes, budget: float) -> bytes | CallResult:
        """Run one call: the reply, or how it failed.  ``budget`` > 0 shortens the deadline."""
        try:
            out = _results.out  # this thread's result struct
        except AttributeError:
            out = _results.out = _ffi.new("wh_result *")
        if _pool_call(self._ptr, operation, len(operation), payload, len(payload), budget, out):
            return _failure(out)
        reply: bytes = _unpack(out.data, out.len)
        return reply

    def retire(self, on_empty: Callable[[], None] | None = None) -> None:
        """Start nothing more: idle instances close now, busy ones when released.

        ``on_empty`` runs once, in whichever thread closes the last instance
        (here, if none is busy).
        """
        if on_empty is not None:
            self._owner.on_empty.append(on_empty)
        _lib.wh_pool_retire(self._ptr)

    def _info(self) -> tuple[int, ...]:
        out = _ffi.new("uint64_t[6]")
        _lib.wh_pool_info(self._ptr, out)
        return tuple(int(x) for x in out)

    @property
    def size(self) -> int:
        """Live instances (idle and busy)."""
        return self._info()[0]

    @property
    def busy(self) -> int:
        """Instances in a call right now."""
        return self._info()[5]

    @property
    def waits(self) -> int:
        """Calls that found every instance busy (at the maximum) and waited."""
        return self._info()[2]

    @property
    def errors(self) -> int:
        """Calls that failed (guest errors, traps, timeouts, memory cap, busy)."""
        return self._info()[3]


class _StartFailed(Exception):
    """The pool could not start its first instances (the Guest words it)."""

    def __init__(self, result: CallResult) -> None:
        super().__init__(result.text)
        self.result = result


def _failure(out: Any) -> CallResult:
    text = _unpack(out.data, out.len).decode("utf-8", "replace")
    return CallResult(
        int(out.status), text, bool(out.at_cap), int(out.memory_size), int(out.start_status)
    )


def _drop(ptr: Any) -> None:
    _lib.wh_pool_retire(ptr)
    _lib.wh_pool_unref(ptr)
