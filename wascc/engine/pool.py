"""A pool of instances of one actor module.

A wasmtime store must be used by one thread at a time, so each concurrent
call takes an instance of its own.  The pool keeps idle instances in a deque
(``pop``/``append`` are atomic in CPython, so the common case takes no
lock), creates a new one when all are busy and the pool is below its
maximum, and otherwise waits for one to come back, up to the caller's
deadline.  A waiter counts itself before it looks, so a release never
goes unseen.

Once retired (its actor replaced or removed) a pool starts no new instance:
idle ones close at once, busy ones when their call ends, and when the last
one has closed the pool calls ``on_empty`` once, so the module they were
made from is freed right then, not at some later sweep.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from wascc.engine.wapc import WapcInstance
from wascc.errors import ActorRetired, InstancesBusy

__all__ = ["InstancePool"]


class InstancePool:
    """Instances of one module; each in use by at most one thread."""

    def __init__(
        self,
        factory: Callable[[], WapcInstance],
        *,
        min_size: int,
        max_size: int,
        label: str,
    ) -> None:
        if max_size < 1 or min_size < 0 or min_size > max_size:
            raise ValueError(f"bad pool size for {label}: min {min_size}, max {max_size}")
        self._factory: Callable[[], WapcInstance] | None = factory
        self._free: deque[WapcInstance] = deque()
        self._lock = threading.Lock()  # taken directly on the hot path (cheaper)
        self._cond = threading.Condition(self._lock)
        self._size = 0  # live instances and slots being filled: idle + in use + starting
        self._waiting = 0
        #: Calls that found every instance busy and at the maximum, and waited.
        self.waits = 0
        self._retired = False
        self._on_empty: Callable[[], None] | None = None
        self._live: set[WapcInstance] = set()
        self.max_size = max_size
        self.label = label
        try:
            for _ in range(min_size):
                inst = factory()
                self._live.add(inst)
                self._free.append(inst)
                self._size += 1
        except BaseException:
            self.retire()
            raise

    def acquire(self, timeout: float) -> WapcInstance:
        """An idle instance, a new one, or the first one released within ``timeout``."""
        try:
            return self._free.pop()
        except IndexError:
            return self._acquire_slow(timeout)

    def _acquire_slow(self, timeout: float) -> WapcInstance:
        deadline = time.monotonic() + timeout
        with self._cond:
            # Counted as waiting *before* looking at the free list: a release
            # that appends after that look then sees the count and notifies
            # (under the lock, so only once this thread sleeps); one that
            # read the count earlier appended earlier, and the look finds it.
            self._waiting += 1
            waited = False
            try:
                while True:
                    try:
                        return self._free.pop()
                    except IndexError:
                        pass
                    factory = self._factory
                    if self._retired or factory is None:
                        raise ActorRetired(
                            f"{self.label} was replaced or removed before this call could start"
                        )
                    if self._size < self.max_size:
                        self._size += 1
                        break
                    remaining = deadline - time.monotonic()
                    if not waited:
                        waited = True
                        self.waits += 1
                    if remaining <= 0:
                        raise InstancesBusy(
                            f"{self.label}: all {self.max_size} instances stayed busy for "
                            f"{timeout:g}s (raise max_instances or the deadline)"
                        )
                    self._cond.wait(remaining)
            finally:
                self._waiting -= 1
        try:
            inst = factory()
        except BaseException:
            self._shrink()
            raise
        with self._cond:
            self._live.add(inst)
        return inst

    def release(self, inst: WapcInstance) -> None:
        """Give back a healthy instance (closed instead once the pool is retired).

        Lock-free unless someone waits: see :meth:`_acquire_slow` for why no
        waiter can miss it, and :meth:`retire` for why none is stranded.
        """
        if self._retired:
            self._close(inst)
            return
        self._free.append(inst)
        if self._waiting:
            with self._lock:
                self._cond.notify()
        if self._retired:  # retired between the check and the append: do not strand it
            self._drain()

    def discard(self, inst: WapcInstance) -> None:
        """Drop an instance that trapped, timed out or reached its memory cap."""
        self._close(inst)

    def _drain(self) -> None:
        while True:
            try:
                inst = self._free.pop()
            except IndexError:
                return
            self._close(inst)

    def _close(self, inst: WapcInstance) -> None:
        with self._cond:
            self._live.discard(inst)
        inst.close()
        self._shrink()

    def _shrink(self) -> None:
        """One instance (or reserved slot) fewer; the last one of a retired pool frees it."""
        with self._cond:
            self._size -= 1
            self._cond.notify()
            on_empty = self._take_on_empty()
        if on_empty is not None:
            on_empty()

    def _take_on_empty(self) -> Callable[[], None] | None:
        """The callback to run now that the pool may be empty (call with the lock held)."""
        if not (self._retired and self._size == 0):
            return None
        on_empty, self._on_empty = self._on_empty, None
        self._factory = None  # drop the module the factory holds
        return on_empty

    def retire(self, on_empty: Callable[[], None] | None = None) -> None:
        """Start nothing more: idle instances close now, busy ones when released.

        ``on_empty`` runs once, in whichever thread closes the last instance
        (here, if none is busy).  Retiring twice keeps the first callback.
        """
        with self._cond:
            if not self._retired:
                self._on_empty = on_empty
                self._retired = True  # set before the drain: a later release drains itself
            self._cond.notify_all()  # waiters give up: no instance will come back
            now = self._take_on_empty()
        if now is not None:
            now()
        self._drain()

    @property
    def retired(self) -> bool:
        """Has :meth:`retire` been called?"""
        return self._retired

    @property
    def size(self) -> int:
        """Live instances (idle and busy)."""
        return self._size

    @property
    def idle(self) -> int:
        return len(self._free)

    @property
    def busy(self) -> int:
        """Instances in a call right now."""
        return max(0, self._size - len(self._free))
