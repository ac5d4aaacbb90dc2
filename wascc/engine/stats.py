"""Per-operation call counters of an actor module, kept on the hot path.

A module's :class:`Counters` hold one ``itertools.count`` per operation:
``next()`` on it is one C call, atomic under the GIL, so the instances of
the module (each on its own thread) count into it without a lock, and the
number it hands out says which call this is.  One call in
:data:`SAMPLE_EVERY` of each operation (the 1st, 65th, 129th...) is timed
into a fixed-bucket histogram (under a lock).  Per call the engine looks the
operation up once, getting the counter's ``__next__`` and the operation
already encoded (which pays for most of the lookup: the call needs the
bytes anyway); timing every call would cost two clock reads and a bisect,
more than the 5% of a microsecond call the host allows itself
(``benchmarks/bench_observe.py``).

Operation names come from callers: past :data:`MAX_OPERATIONS` distinct
names a module counts the rest as :data:`OTHER`, so a caller cannot grow
the tables (or the metrics' label sets) without end.
"""

from __future__ import annotations

import itertools
import threading
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "BUCKETS",
    "MAX_OPERATIONS",
    "OTHER",
    "SAMPLE_EVERY",
    "Counters",
    "OperationStats",
    "count_of",
]

#: Histogram bucket upper bounds in seconds (then +Inf): 50 us to 10 s.
BUCKETS: tuple[float, ...] = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: One call in this many (per module and operation) is timed; a power of two.
SAMPLE_EVERY = 64
#: Distinct operation names counted per module; the rest count as OTHER.
MAX_OPERATIONS = 64
OTHER = "other"

#: A timing record: [timed calls, total seconds, count per bucket (then +Inf)...].
Timing = list[float]


def count_of(counter: itertools.count[int]) -> int:
    """How many numbers ``counter`` (started at 1) has handed out, without taking one."""
    return int(repr(counter)[6:-1]) - 1  # "count(N)": N is the next number


class Counters:
    """Calls by operation (exact) and sampled timings of one actor module."""

    def __init__(self) -> None:
        #: operation -> its counter; read under the lock (see :meth:`read`).
        self.counters: dict[str, itertools.count[int]] = {}
        #: operation -> (the bound ``__next__`` of its counter, the operation as
        #: UTF-8): what :meth:`Guest.invoke` looks up per call, without a lock.
        self.hot: dict[str, tuple[Callable[[], int], bytes]] = {}
        self._timings: dict[str, Timing] = {}
        self._lock = threading.Lock()

    def counter(self, operation: str) -> tuple[Callable[[], int], bytes]:
        """The hot entry of an operation not in :attr:`hot` yet (OTHER past the cap)."""
        with self._lock:
            found = self.hot.get(operation)
            if found is not None:
                return found
            key = operation if len(self.counters) < MAX_OPERATIONS else OTHER
            counter = self.counters.get(key)
            if counter is None:
                counter = self.counters[key] = itertools.count(1)
            entry = (counter.__next__, operation.encode())
            if key == operation:  # an overflowing name is not remembered: the table stays bounded
                self.hot[operation] = entry
            return entry

    def record(self, operation: str, seconds: float) -> None:
        """Add one timed call of ``operation``."""
        if operation not in self.counters:
            operation = OTHER
        slot = 2 + bisect_left(BUCKETS, seconds)
        with self._lock:
            found = self._timings.get(operation)
            if found is None:
                found = self._timings[operation] = [0.0] * (len(BUCKETS) + 3)
            found[0] += 1
            found[1] += seconds
            found[slot] += 1

    def read(self) -> dict[str, OperationStats]:
        """Every operation's calls and sampled latency so far."""
        with self._lock:
            counters = dict(self.counters)
            timings = {op: list(t) for op, t in self._timings.items()}
        return {op: OperationStats.of(count_of(c), timings.get(op)) for op, c in counters.items()}

    def calls(self) -> int:
        """Calls of every operation so far."""
        return sum(count_of(c) for c in list(self.counters.values()))


@dataclass(frozen=True)
class OperationStats:
    """One operation of one actor module: calls, and the sampled latency histogram."""

    calls: int
    #: Calls that were timed (one in SAMPLE_EVERY), their total seconds, and
    #: how many fell in each BUCKETS slot (the last one is +Inf).
    timed: int
    seconds: float
    buckets: tuple[int, ...]

    @staticmethod
    def of(calls: int, timing: Timing | None) -> OperationStats:
        if timing is None:
            return OperationStats(calls, 0, 0.0, (0,) * (len(BUCKETS) + 1))
        return OperationStats(calls, int(timing[0]), timing[1], tuple(int(x) for x in timing[2:]))
