"""A guest: a compiled waPC module, its limits and its pool of instances.

:class:`Guest` is what actors and portable providers have in common:
:meth:`Guest.invoke` is the hot path of every call into wasm - take an
instance, run ``__guest_call`` in C, give the instance back, or discard it
when it trapped, timed out or reached its memory cap - and the failure is
classified (guest error, trap, timeout, memory cap).  Claims, keys and
bindings are the core's business (:mod:`wascc.actor`), not the engine's.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from wascc.engine import ffi
from wascc.engine.pool import BUSY, RETIRED, START_FAILED, CallResult, InstancePool, _StartFailed
from wascc.engine.runtime import Runtime, WapcModule
from wascc.engine.stats import OperationStats
from wascc.engine.wapc import GuestHost
from wascc.errors import (
    ActorLoadError,
    ActorRetired,
    ActorTrap,
    GuestError,
    InstancesBusy,
    InvocationTimeout,
    MemoryLimitExceeded,
)

__all__ = ["WASM_PAGE", "ActorSettings", "Guest", "WasiGrant", "read_module"]

log = logging.getLogger(__name__)

WASM_PAGE = 65536


@dataclass(frozen=True)
class ActorSettings:
    """Per-actor limits.  ``deadline`` is seconds per call (and for the start
    code of each instance); ``memory_limit`` bytes of linear memory per
    instance, which also bounds its tables (see ``wascc_host.h``); the pool
    grows from ``min_instances`` to ``max_instances`` under concurrent load."""

    deadline: float = 10.0
    memory_limit: int = 128 * 1024 * 1024
    min_instances: int = 1
    max_instances: int = 8

    def __post_init__(self) -> None:
        if self.deadline <= 0:
            raise ValueError("deadline must be positive")
        if self.memory_limit < WASM_PAGE:
            raise ValueError("memory_limit must be at least one wasm page (65536 bytes)")
        if not 0 <= self.min_instances <= self.max_instances or self.max_instances < 1:
            raise ValueError("need 0 <= min_instances <= max_instances and max_instances >= 1")


#: The largest module file read (the control socket lets an operator name any path:
#: ``/dev/zero`` or a huge file must be refused, not read until memory runs out).
MAX_MODULE_BYTES = 256 * 1024 * 1024


def read_module(source: str | os.PathLike[str] | bytes) -> tuple[bytes, str]:
    """The module bytes and a label for messages (the file name, or a hash)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return data, f"module {hashlib.sha256(data).hexdigest()[:12]}"
    path = Path(source)
    try:
        with path.open("rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ActorLoadError(f"cannot read actor {path}: it is not a regular file")
            data = f.read(MAX_MODULE_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise ActorLoadError(
            f"cannot read actor {path}: {getattr(exc, 'strerror', None) or exc}"
        ) from exc
    if len(data) > MAX_MODULE_BYTES:
        raise ActorLoadError(
            f"cannot read actor {path}: it is larger than {MAX_MODULE_BYTES} bytes"
        )
    return data, path.name


@dataclass(frozen=True)
class WasiGrant:
    """The WASI access granted to a guest (nothing by default; actors get none).

    ``dirs`` maps host directories to the paths the module sees them at;
    ``writable`` lets it modify them (read-only otherwise).
    """

    dirs: Mapping[str, str] = field(default_factory=dict)
    writable: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    args: Sequence[str] = ()
    inherit_stdout: bool = False
    inherit_stderr: bool = False

    def config(self) -> wasmtime.WasiConfig:
        """A fresh WASI context holding exactly this grant."""
        wasi = wasmtime.WasiConfig()
        if self.args:
            wasi.argv = list(self.args)
        if self.env:
            wasi.env = [[k, v] for k, v in self.env.items()]
        for host_dir, guest_dir in self.dirs.items():
            wasi.preopen_dir(host_dir, guest_dir, self.writable)
        if self.inherit_stdout:
            wasi.inherit_stdout()
        if self.inherit_stderr:
            wasi.inherit_stderr()
        return wasi


class Guest:
    """A compiled waPC module and its pool of instances (an actor, or a portable provider).

    ``who`` names it in every message.  Replacing a module makes a new Guest.
    """

    def __init__(
        self,
        wasm: bytes,
        who: str,
        runtime: Runtime,
        settings: ActorSettings,
        guest_host: GuestHost,
        *,
        wasi: WasiGrant | None = None,
    ) -> None:
        """``wasi`` is the WASI access of each instance; given only for portable
        providers (actors get no WASI).  A module that imports WASI without it
        gets an empty context: no files, no environment."""
        self.who = who
        self.settings = settings
        compiled = runtime.load(wasm, who, allow_wasi=wasi is not None)
        self.size = len(wasm)
        self._compiled: WapcModule | None = compiled
        self._on_freed: list[Callable[[], None]] = []
        try:
            self._pool = InstancePool(
                compiled.pre,
                guest_host,
                min_size=settings.min_instances,
                max_size=settings.max_instances,
                memory_limit=settings.memory_limit,
                deadline=settings.deadline,
                tick=runtime.tick,
                label=who,
                make_wasi=(wasi or WasiGrant()).config if compiled.uses_wasi else None,
            )
        except _StartFailed as exc:
            self._free_module()
            raise self._start_error(exc.result) from None
        except BaseException:
            self._free_module()
            raise
        self._pool.belongs_to(self)
        #: Calls by operation, one in SAMPLE_EVERY timed (counted in C).
        self.stats = self._pool.stats
        self._hot: dict[str, bytes] = {}

    @property
    def pool(self) -> InstancePool:
        """The C pool of instances (the host publishes it to its router)."""
        return self._pool

    def invoke(self, operation: str, payload: bytes, budget: float | None = None) -> bytes:
        """Run one waPC call; the reply, or an :class:`InvocationError`.

        One call into C (``wh_pool_call``, without the GIL): take an
        instance, run ``__guest_call``, give it back or drop it, count the
        call by operation.  ``budget``: seconds the caller still waits (a
        lattice invocation's deadline); the call gets the smaller of it and
        the module's deadline.
        """
        op = self._hot.get(operation)
        if op is None:
            op = operation.encode()
            if len(self._hot) < 256:
                self._hot[operation] = op
        reply = self._pool.call(op, payload, budget or 0.0)
        if type(reply) is bytes:
            return reply
        assert isinstance(reply, CallResult)
        raise self.failure(operation, reply)

    def failure(self, operation: str, result: CallResult) -> BaseException:
        """The error of a call that did not answer (from Python or from the data plane)."""
        status, text = result.status, result.text
        if status == START_FAILED:
            return self._start_error(result)
        if status == BUSY:
            return InstancesBusy(
                f"{self.who}: all {self.settings.max_instances} instances stayed busy for "
                f"{self.settings.deadline:g}s (raise max_instances or the deadline)"
            )
        if status == RETIRED:
            return ActorRetired(f"{self.who} was replaced or removed before this call could start")
        if status == ffi.GUEST_ERROR and not result.at_cap:
            return GuestError(f"{self.who} answered {operation} with an error: {text}")
        if status == ffi.TIMEOUT:
            return InvocationTimeout(
                f"{self.who} did not finish {operation} within its deadline of "
                f"{self.settings.deadline:g}s; the instance was discarded"
            )
        if result.at_cap:
            return MemoryLimitExceeded(
                f"{self.who} ran into its memory cap of {self.settings.memory_limit} bytes "
                f"during {operation} (it had grown to {result.memory_size} bytes); the "
                f"instance was discarded ({text})"
            )
        return ActorTrap(
            f"{self.who} trapped during {operation}: {text}; the instance was discarded"
        )

    def _start_error(self, result: CallResult) -> ActorLoadError:
        if result.start_status == ffi.TIMEOUT:
            return ActorLoadError(
                f"{self.who} failed to start: its start code (start section, _start or "
                f"wapc_init) did not finish within the deadline of {self.settings.deadline:g}s"
            )
        return ActorLoadError(f"{self.who} failed to start: {result.text}")

    @property
    def errors(self) -> int:
        """Calls that failed (guest errors, traps, timeouts, memory cap, all busy)."""
        return self._pool.errors

    @property
    def instances(self) -> int:
        return self._pool.size

    @property
    def busy(self) -> int:
        """Calls running on this module now."""
        return self._pool.busy

    def calls(self) -> int:
        """Calls run on this module's instances."""
        return self.stats.calls()

    def operations(self) -> dict[str, OperationStats]:
        """Calls by operation (exact) with their sampled latency."""
        return self.stats.read()

    @property
    def waits(self) -> int:
        """Calls that found every instance busy (at the maximum) and waited for one."""
        return self._pool.waits

    def retire(self, on_freed: Callable[[], None] | None = None) -> None:
        """Start no new call; close idle instances now and busy ones when their call ends.

        When the last instance has closed, the compiled module is freed and
        ``on_freed`` runs (in the thread that closed it).
        """
        if on_freed is not None:
            if self._compiled is None:
                on_freed()
            else:
                self._on_freed.append(on_freed)
        self._pool.retire(self._free_module)

    @property
    def freed(self) -> bool:
        """Has the compiled module been freed (retired, no instance left)?"""
        return self._compiled is None

    def _free_module(self) -> None:
        compiled, self._compiled = self._compiled, None
        if compiled is not None:
            compiled.close()
            log.debug("freed the module of %s", self.who)
        callbacks, self._on_freed = self._on_freed, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("callback after freeing %s failed", self.who)
