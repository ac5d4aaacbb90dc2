"""The instance pool: waiters never miss a released instance; a retired pool
starts nothing new and frees its module when its last instance closes."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import pytest

from wascc import ActorRetired, NotFound
from wascc.engine.ffi import WapcInstance
from wascc.engine.pool import InstancePool
from wascc.engine.runtime import Runtime

from conftest import build_test_actor


class _Port:
    def host_call(self, binding: str, namespace: str, operation: str, payload: bytes) -> bytes:
        return b""

    def console_log(self, line: str) -> None:
        pass


def _factory() -> Callable[[], WapcInstance]:
    compiled = Runtime.default().load(build_test_actor(), "pool-test")
    port = _Port()

    def create() -> WapcInstance:
        return compiled.pre.instantiate(port, memory_limit=1 << 20, deadline_ticks=1000)

    return create


class _PausingDeque(deque[WapcInstance]):
    """A deque that runs ``on_empty_pop`` the n-th time a pop finds it empty.

    It puts a release exactly between a waiter's failed look at the free list
    and its going to sleep: the window where a release used to go unseen.
    """

    def __init__(self, nth: int, on_empty_pop: Callable[[], None]) -> None:
        super().__init__()
        self.nth = nth
        self.on_empty_pop = on_empty_pop
        self.empty_pops = 0

    def pop(self) -> WapcInstance:
        try:
            return super().pop()
        except IndexError:
            self.empty_pops += 1
            if self.empty_pops == self.nth:
                self.on_empty_pop()
            raise


def test_release_racing_a_waiter_going_to_sleep_wakes_it() -> None:
    pool = InstancePool(_factory(), min_size=1, max_size=1, label="race")
    held = pool.acquire(1.0)
    released = threading.Event()

    def release_now() -> None:
        # old code released without the lock: this would finish before the
        # waiter counted itself, and nobody would wake it
        threading.Thread(target=lambda: (pool.release(held), released.set())).start()
        released.wait(0.5)  # with the fix the release waits for the lock instead

    # empty pop 1: acquire's lock-free attempt; 2: the first look under the lock
    pool._free = _PausingDeque(2, release_now)
    deadline = 30.0
    started = time.monotonic()
    got = pool.acquire(deadline)
    waited = time.monotonic() - started
    assert got is held
    # before the fix the waiter was never woken: it slept until its deadline
    assert waited < deadline / 2, f"the waiter slept {waited:.1f}s while an instance was free"
    pool.release(got)
    pool.retire()


def test_retired_pool_starts_no_new_instance() -> None:
    pool = InstancePool(_factory(), min_size=0, max_size=4, label="actor retired-test")
    pool.retire()
    with pytest.raises(ActorRetired, match="retired-test was replaced or removed") as info:
        pool.acquire(1.0)
    assert isinstance(info.value, NotFound)


def test_retired_pool_frees_once_when_its_last_busy_instance_closes() -> None:
    freed: list[str] = []
    pool = InstancePool(_factory(), min_size=2, max_size=4, label="busy")
    a = pool.acquire(1.0)
    b = pool.acquire(1.0)
    c = pool.acquire(1.0)  # a third, made on demand
    pool.release(c)  # idle: closes on retire
    pool.retire(lambda: freed.append("freed"))
    assert pool.size == 2 and freed == []
    pool.release(a)
    assert pool.size == 1 and freed == []
    pool.discard(b)
    assert pool.size == 0 and freed == ["freed"]
    pool.retire(lambda: freed.append("again"))  # retiring twice runs nothing more
    assert freed == ["freed"]


def test_retiring_an_idle_pool_frees_at_once() -> None:
    freed = threading.Event()
    pool = InstancePool(_factory(), min_size=3, max_size=4, label="idle")
    pool.retire(freed.set)
    assert freed.is_set() and pool.size == 0


def test_waiter_on_a_retired_pool_gives_up_instead_of_sleeping() -> None:
    pool = InstancePool(_factory(), min_size=1, max_size=1, label="waited")
    held = pool.acquire(1.0)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            pool.acquire(30.0)
        except BaseException as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    while not pool._waiting:
        threading.Event().wait(0.001)
    pool.retire()
    waiter.join()
    assert [type(e) for e in errors] == [ActorRetired]
    pool.release(held)
    assert pool.size == 0
