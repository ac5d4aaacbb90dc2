"""A pool of instances of one actor module.

A wasmtime store must be used by one thread at a time, so each concurrent
call takes an instance of its own.  The pool keeps idle instances in a deque
(``pop``/``append`` are atomic in CPython, so the common case takes no lock),
creates a new one when all are busy and the pool is below its maximum, and
otherwise waits for one to come back, up to the caller's deadline.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from wascc.errors import InstancesBusy
from wascc.ffi import WapcInstance

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
        self._factory = factory
        self._free: deque[WapcInstance] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._size = 0  # live instances: idle + in use
        self._waiting = 0
        self._retired = False
        self._closed_calls = 0
        self._live: set[WapcInstance] = set()
        self.max_size = max_size
        self.label = label
        for _ in range(min_size):
            inst = factory()
            self._live.add(inst)
            self._free.append(inst)
            self._size += 1

    def acquire(self, timeout: float) -> WapcInstance:
        """An idle instance, a new one, or the first one released within ``timeout``."""
        try:
            return self._free.pop()
        except IndexError:
            return self._acquire_slow(timeout)

    def _acquire_slow(self, timeout: float) -> WapcInstance:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                try:
                    return self._free.pop()
                except IndexError:
                    pass
                if self._size < self.max_size:
                    self._size += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise InstancesBusy(
                        f"{self.label}: all {self.max_size} instances stayed busy for "
                        f"{timeout:g}s (raise max_instances or the deadline)"
                    )
                self._waiting += 1
                try:
                    self._cond.wait(remaining)
                finally:
                    self._waiting -= 1
        try:
            inst = self._factory()
        except BaseException:
            with self._cond:
                self._size -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._live.add(inst)
        return inst

    def release(self, inst: WapcInstance) -> None:
        """Give back a healthy instance."""
        if self._retired:
            self._close(inst)
            return
        self._free.append(inst)
        if self._waiting:
            with self._cond:
                self._cond.notify()
        if self._retired:  # retired while we appended: do not strand it
            self._drain()

    def discard(self, inst: WapcInstance) -> None:
        """Drop an instance that trapped, timed out or reached its memory cap."""
        self._close(inst)

    def _close(self, inst: WapcInstance) -> None:
        with self._cond:
            self._closed_calls += inst.calls
            self._live.discard(inst)
            self._size -= 1
            self._cond.notify()
        inst.close()

    def _drain(self) -> None:
        while True:
            try:
                inst = self._free.pop()
            except IndexError:
                return
            self._close(inst)

    def retire(self) -> None:
        """Stop reusing instances: idle ones close now, busy ones when released."""
        self._retired = True
        self._drain()

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

    def calls(self) -> int:
        """Calls served so far by this pool's instances (exact when none is busy)."""
        with self._cond:
            return self._closed_calls + sum(inst.calls for inst in self._live)
