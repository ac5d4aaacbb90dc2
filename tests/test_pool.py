"""The instance pool (in C): a waiter gets a released instance, a busy pool
refuses past the deadline, a retired pool starts nothing new and frees its
module when its last instance closes."""

from __future__ import annotations

import threading
import time

from wascc.engine.pool import BUSY, RETIRED, CallResult, InstancePool
from wascc.engine.runtime import Runtime

from conftest import build_test_actor, call_payload


class _Port:
    """Host calls block until ``go`` is set: a call holds its instance as long as we like."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.entered = threading.Semaphore(0)

    def host_call(self, binding: str, namespace: str, operation: str, payload: bytes) -> bytes:
        self.entered.release()
        self.go.wait(30)
        return b"done"

    def console_log(self, line: str) -> None:
        pass


def _pool(port: _Port, *, min_size: int, max_size: int, label: str) -> InstancePool:
    compiled = Runtime.default().load(build_test_actor(), "pool-test")
    return InstancePool(
        compiled.pre,
        port,
        min_size=min_size,
        max_size=max_size,
        memory_limit=1 << 20,
        deadline=10.0,
        tick=Runtime.default().tick,
        label=label,
    )


def _hold(pool: InstancePool, port: _Port) -> threading.Thread:
    """A call that keeps one instance busy until ``port.go`` is set."""
    results: list[object] = []
    t = threading.Thread(
        target=lambda: results.append(pool.call(b"Call", call_payload("x", "Op"), 0.0))
    )
    t.results = results  # type: ignore[attr-defined]
    t.start()
    assert port.entered.acquire(timeout=10)
    return t


def test_a_waiter_gets_the_instance_released_by_another_call() -> None:
    port = _Port()
    pool = _pool(port, min_size=1, max_size=1, label="race")
    holder = _hold(pool, port)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(pool.call(b"Echo", b"hi", 30.0)))
    waiter.start()
    while not pool.waits:
        time.sleep(0.001)
    started = time.monotonic()
    port.go.set()
    waiter.join(20)
    holder.join(20)
    assert got == [b"hi"] and holder.results == [b"done"]  # type: ignore[attr-defined]
    assert time.monotonic() - started < 15, "the waiter slept while an instance was free"
    assert pool.size == 1 and pool.busy == 0
    pool.retire()


def test_every_instance_busy_past_the_budget_is_refused() -> None:
    port = _Port()
    pool = _pool(port, min_size=0, max_size=1, label="busy")
    holder = _hold(pool, port)
    result = pool.call(b"Echo", b"x", 0.05)
    assert isinstance(result, CallResult) and result.status == BUSY
    assert pool.errors == 1
    port.go.set()
    holder.join(20)
    pool.retire()


def test_retired_pool_starts_no_new_instance() -> None:
    pool = _pool(_Port(), min_size=0, max_size=4, label="retired-test")
    pool.retire()
    result = pool.call(b"Echo", b"x", 1.0)
    assert isinstance(result, CallResult) and result.status == RETIRED
    assert pool.size == 0


def test_retired_pool_frees_once_when_its_last_busy_instance_closes() -> None:
    freed: list[str] = []
    port = _Port()
    pool = _pool(port, min_size=2, max_size=4, label="busy")
    a = _hold(pool, port)
    b = _hold(pool, port)
    assert pool.call(b"Echo", b"c", 1.0) == b"c"  # a third instance, made on demand
    assert pool.size == 3
    pool.retire(lambda: freed.append("freed"))
    assert pool.size == 2 and freed == []  # the idle one closed at once
    port.go.set()
    a.join(20)
    b.join(20)
    assert pool.size == 0 and freed == ["freed"]
    pool.retire(lambda: freed.append("again"))  # retiring twice runs nothing more
    assert freed == ["freed"]


def test_retiring_an_idle_pool_frees_at_once() -> None:
    freed = threading.Event()
    pool = _pool(_Port(), min_size=3, max_size=4, label="idle")
    assert pool.size == 3
    pool.retire(freed.set)
    assert freed.is_set() and pool.size == 0


def test_waiter_on_a_retired_pool_gives_up_instead_of_sleeping() -> None:
    port = _Port()
    pool = _pool(port, min_size=1, max_size=1, label="waited")
    holder = _hold(pool, port)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(pool.call(b"Echo", b"x", 30.0)))
    waiter.start()
    while not pool.waits:
        time.sleep(0.001)
    pool.retire()
    waiter.join(10)
    assert not waiter.is_alive()
    assert [r.status for r in got if isinstance(r, CallResult)] == [RETIRED]
    port.go.set()
    holder.join(20)
    assert pool.size == 0


def test_counters_count_every_call_by_operation() -> None:
    pool = _pool(_Port(), min_size=1, max_size=2, label="count")
    for _ in range(130):
        assert pool.call(b"Echo", b"x", 0.0) == b"x"
    assert isinstance(pool.call(b"Fail", b"no", 0.0), CallResult)
    stats = pool.stats.read()
    assert stats["Echo"].calls == 130 and stats["Fail"].calls == 1
    assert stats["Echo"].timed == 3  # the 1st, 65th and 129th
    assert sum(stats["Echo"].buckets) == 3 and stats["Echo"].seconds > 0
    assert pool.errors == 1
    pool.retire()
