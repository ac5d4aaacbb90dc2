"""Components (WASI 0.2, the component model) beside waPC actors.

A component is compiled by wasmtime's component model and runs like an
actor: a pool of instances (a store each, made on demand up to
``max_instances``), an epoch deadline per call, a memory cap per instance,
and an instance that trapped or timed out is dropped while other calls go
on.  What it imports is served, and what it exports is reached, through the
WIT adapters of :mod:`wascc.engine.wit`, which turn each WIT call into a
waSCC contract's operation on the same door an actor's ``__host_call``
uses.  :class:`ComponentGuest` has the interface of
:class:`~wascc.engine.guest.Guest` the host relies on (``invoke``,
``retire``, the counters), so the host treats both alike; calls into a
component run on the Python path (the data plane's C routing is waPC's).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wasmtime
import wasmtime.component as wc

from wascc.engine import wit, wit_patches
from wascc.engine.guest import ActorSettings
from wascc.engine.runtime import Runtime
from wascc.engine.stats import OperationStats, StatsTable
from wascc.engine.wapc import GuestHost
from wascc.errors import (
    ActorLoadError,
    ActorRetired,
    ActorTrap,
    GuestError,
    InstancesBusy,
    InvocationTimeout,
    ModuleError,
)
from wascc.wire import wasm as wasm_format
from wascc.wire.claims import LEGACY_SECTIONS as CLAIMS_SECTIONS

__all__ = ["ComponentGuest", "ComponentInterface", "describe_component"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComponentInterface:
    """A component's imports and exports, by their WIT names."""

    imports: tuple[str, ...]
    exports: tuple[str, ...]


def _compile(runtime: Runtime, wasm: bytes, label: str) -> wc.Component:
    try:
        return wc.Component(runtime.engine, wasm)
    except wasmtime.WasmtimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid component"
        raise ModuleError(f"{label} is not a valid component: {first}") from exc


def _interface(runtime: Runtime, component: wc.Component) -> ComponentInterface:
    ty = component.type
    return ComponentInterface(
        tuple(sorted(ty.imports(runtime.engine))), tuple(sorted(ty.exports(runtime.engine)))
    )


def describe_component(wasm: bytes, runtime: Runtime | None = None) -> ComponentInterface:
    """The WIT names a component imports and exports (for ``wascc inspect``)."""
    runtime = runtime or Runtime.default()
    component = _compile(runtime, bytes(wasm), "the component")
    try:
        return _interface(runtime, component)
    finally:
        component.close()


class _Instance:
    __slots__ = ("funcs", "instance", "store")

    def __init__(self, store: wasmtime.Store, instance: Any) -> None:
        self.store = store
        self.instance = instance
        self.funcs: dict[str, Any] = {}  # exported functions, looked up once


class ComponentGuest:
    """A compiled component and its pool of instances (see the module docstring)."""

    def __init__(
        self,
        wasm: bytes,
        who: str,
        runtime: Runtime,
        settings: ActorSettings,
        guest_host: GuestHost,
    ) -> None:
        self.who = who
        self.settings = settings
        self.size = len(wasm)
        self._runtime = runtime
        self._ticks = runtime.ticks(settings.deadline)
        code = wasm_format.strip_custom_sections(bytes(wasm), CLAIMS_SECTIONS)
        self.code_hash = hashlib.sha256(code).hexdigest()
        self._component: wc.Component | None = _compile(runtime, bytes(wasm), who)
        self.interface = _interface(runtime, self._component)
        imports = list(self.interface.imports)
        self._exports = wit.Exports.of(list(self.interface.exports), imports)
        #: blobstore downloads in progress: their ReceiveChunks are taken before any instance
        self._downloads = wit.Downloads()
        self._linker = wit.serve_imports(runtime.engine, imports, guest_host, who, self._downloads)
        self.stats = StatsTable()
        self._free: deque[_Instance] = deque()
        self._cond = threading.Condition()
        self._size = 0
        self._errors = 0
        self.waits = 0
        self._retired = False
        self._on_freed: list[Callable[[], None]] = []
        self._freed = False
        try:
            for _ in range(settings.min_instances):
                self._free.append(self._new_instance())
                self._size += 1
        except BaseException:
            self.retire()
            raise

    # ---- instances -----------------------------------------------------------

    def _new_instance(self) -> _Instance:
        component = self._component
        if component is None:
            raise ActorRetired(f"{self.who} was replaced or removed")
        store = wasmtime.Store(self._runtime.engine)
        store.set_limits(
            memory_size=self.settings.memory_limit, instances=64, tables=64, memories=16
        )
        store.set_epoch_deadline(self._ticks)
        try:
            instance = self._linker.instantiate(store, component)
        except wasmtime.Trap as exc:
            raise ActorLoadError(f"{self.who} failed to start: {_chain(exc)}") from exc
        except wasmtime.WasmtimeError as exc:
            refused = wit_patches.take_pending()  # a host function failed while it started
            why = f"{type(refused).__name__}: {refused}" if refused is not None else _chain(exc)
            raise ActorLoadError(f"{self.who} failed to start: {why}") from exc
        return _Instance(store, instance)

    def _acquire(self, wait: float) -> _Instance:
        try:
            return self._free.pop()
        except IndexError:
            pass
        deadline = time.monotonic() + wait
        with self._cond:
            waited = False
            while True:
                try:
                    return self._free.pop()
                except IndexError:
                    pass
                if self._retired:
                    raise ActorRetired(
                        f"{self.who} was replaced or removed before this call could start"
                    )
                if self._size < self.settings.max_instances:
                    self._size += 1
                    break
                if not waited:
                    waited = True
                    self.waits += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._errors += 1
                    raise InstancesBusy(
                        f"{self.who}: all {self.settings.max_instances} instances stayed busy "
                        f"for {wait:g}s (raise max_instances or the deadline)"
                    )
                self._cond.wait(remaining)
        try:
            return self._new_instance()
        except BaseException:
            self._shrink()
            raise

    def _release(self, inst: _Instance) -> None:
        with self._cond:
            if not self._retired:
                self._free.append(inst)
                self._cond.notify()
                return
        self._close(inst)

    def _close(self, inst: _Instance) -> None:
        inst.store.close()
        self._shrink()

    def _shrink(self) -> None:
        with self._cond:
            self._size -= 1
            self._cond.notify()
            empty = self._retired and self._size == 0 and not self._freed
            if empty:
                self._freed = True
        if empty:
            self._free_component()

    # ---- calls ---------------------------------------------------------------

    def invoke(self, operation: str, payload: bytes, budget: float | None = None) -> bytes:
        """Run ``operation`` on an instance: the reply, or an InvocationError (as an actor)."""
        if operation == "ReceiveChunk":
            # a chunk for a get-data in progress: that call's instance is busy waiting
            # for it, so it must not wait for an instance (or take one) itself
            taken = self._downloads.deliver(payload)
            if taken is not None:
                return taken
        wait, ticks = self.settings.deadline, self._ticks
        if budget is not None and budget < wait:
            wait = max(budget, 0.001)
            ticks = self._runtime.ticks(wait)
        inst = self._acquire(wait)
        started = time.perf_counter()
        try:
            inst.store.set_epoch_deadline(ticks)
            result = self._exports.call(
                inst.store,
                inst.instance,
                operation,
                payload,
                inst.funcs,
                time.monotonic() + wait,
            )
        except wit._NoExport:
            self._release(inst)
            self._errors += 1
            self.stats.record(operation, time.perf_counter() - started)
            raise GuestError(
                f"{self.who} answered {operation} with an error: the component exports "
                f"{self._exports.describe()}, not wascc:actor/guest (which takes any operation)"
            ) from None
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            # the component model reports a trap (and a host function's trap or
            # refusal) as an error, not a wasmtime.Trap; the instance cannot be
            # entered again
            self._close(inst)
            self._errors += 1
            self.stats.record(operation, time.perf_counter() - started)
            refused = wit_patches.take_pending()
            if refused is not None:  # Unauthorized, NotBound...: as raised
                raise refused from None
            cause = _explain(_cause(exc))
            if cause == "wasm trap: interrupt":
                raise InvocationTimeout(
                    f"{self.who} did not finish {operation} within its deadline of "
                    f"{self.settings.deadline:g}s; the instance was discarded"
                ) from None
            raise ActorTrap(
                f"{self.who} trapped during {operation}: {cause}; the instance was discarded"
            ) from None
        except BaseException:
            # a host function's refusal (Unauthorized, NotBound) or wasmtime's own
            # error: the instance may be mid-call, it is not reused
            self._close(inst)
            self._errors += 1
            self.stats.record(operation, time.perf_counter() - started)
            raise
        self._release(inst)
        self.stats.record(operation, time.perf_counter() - started)
        if isinstance(result, str):
            self._errors += 1
            raise GuestError(f"{self.who} answered {operation} with an error: {result}")
        return result

    # ---- the Guest interface the host reads ------------------------------------

    @property
    def pool(self) -> None:
        """Components are not in the data plane's C tables (their calls run in Python)."""
        return None

    @property
    def errors(self) -> int:
        return self._errors

    @property
    def instances(self) -> int:
        return self._size

    @property
    def busy(self) -> int:
        return max(0, self._size - len(self._free))

    def calls(self) -> int:
        return self.stats.calls()

    def operations(self) -> dict[str, OperationStats]:
        return self.stats.read()

    def retire(self, on_freed: Callable[[], None] | None = None) -> None:
        """Start nothing new; idle instances close now, busy ones when their call ends."""
        with self._cond:
            if on_freed is not None:
                if self._freed:
                    run_now = True
                else:
                    self._on_freed.append(on_freed)
                    run_now = False
            else:
                run_now = False
            self._retired = True
            self._cond.notify_all()
            idle = list(self._free)
            self._free.clear()
            empty = self._size == 0 and not self._freed and not idle
            if empty:
                self._freed = True
        if run_now and on_freed is not None:
            on_freed()
        for inst in idle:
            self._close(inst)
        if empty:
            self._free_component()

    @property
    def freed(self) -> bool:
        return self._freed

    def _free_component(self) -> None:
        component, self._component = self._component, None
        if component is not None:
            component.close()
        callbacks, self._on_freed = self._on_freed, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("callback after freeing %s failed", self.who)


def _chain(exc: BaseException) -> str:
    """Every line of wasmtime's error chain, joined (the function a linker lacks is in a cause)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    lines = [line for line in lines if line != "Caused by:"]
    return "; ".join(lines) if lines else type(exc).__name__


#: Traps wasmtime itself injects for a limit of its own, by a line of its message: what they mean.
_WASMTIME_LIMITS = {
    "BUG: deferred host scope has no call context": (
        "wasmtime 50 cannot pass two borrowed handles to one host function (it traps before "
        "the host runs; wasi:blobstore's container.write-data takes two)"
    ),
}


def _explain(cause: str) -> str:
    for marker, meaning in _WASMTIME_LIMITS.items():
        if marker in cause:
            return meaning
    return cause


def _cause(exc: BaseException) -> str:
    """What a component call's error says after wasmtime's backtrace ("Caused by: ...")."""
    text = str(exc)
    head, sep, tail = text.partition("Caused by:")
    lines = [line.strip() for line in (tail if sep else head).splitlines() if line.strip()]
    return "; ".join(lines) if lines else type(exc).__name__
