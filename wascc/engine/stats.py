"""Per-operation call counters of an actor's instances, kept on the hot path.

Each instance counts its calls by operation in a plain dict (an instance
serves one thread at a time, so no lock is needed) and times one call in
:data:`SAMPLE_EVERY` of each operation (the 1st, 17th, 33rd...) into a
fixed-bucket histogram.  Counting every call costs a dict get and set (about
what the single call counter it replaced cost, plus ~40 ns); timing every
call would cost two clock reads and a bisect, more than the 5% of a
microsecond call the host allows itself (``benchmarks/bench_observe.py``).
The pool folds a closed instance's numbers into its totals, so nothing is
lost when instances come and go; :mod:`wascc.observe` reads them.

Operation names come from callers: past :data:`MAX_OPERATIONS` distinct
names an instance counts the rest as :data:`OTHER`, so a caller cannot grow
the tables (or the metrics' label sets) without end.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

__all__ = [
    "BUCKETS",
    "MAX_OPERATIONS",
    "OTHER",
    "SAMPLE_EVERY",
    "OperationStats",
    "merge_counts",
    "merge_timings",
    "record",
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
#: One call in this many (per instance and operation) is timed; a power of two.
SAMPLE_EVERY = 16
#: Distinct operation names counted per instance; the rest count as OTHER.
MAX_OPERATIONS = 64
OTHER = "other"

#: A timing record: [timed calls, total seconds, count per bucket (then +Inf)...].
Timing = list[float]


def record(timings: dict[str, Timing], operation: str, seconds: float) -> None:
    """Add one timed call of ``operation`` to ``timings`` (one instance's, no lock)."""
    found = timings.get(operation)
    if found is None:
        found = timings[operation] = [0.0] * (len(BUCKETS) + 3)
    found[0] += 1
    found[1] += seconds
    found[2 + bisect_left(BUCKETS, seconds)] += 1


def merge_counts(into: dict[str, int], counts: dict[str, int]) -> None:
    for op, n in counts.items():
        into[op] = into.get(op, 0) + n


def merge_timings(into: dict[str, Timing], timings: dict[str, Timing]) -> None:
    for op, t in timings.items():
        found = into.get(op)
        if found is None:
            into[op] = list(t)
        else:
            for i, x in enumerate(t):
                found[i] += x


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
