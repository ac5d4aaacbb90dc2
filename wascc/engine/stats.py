"""Per-operation call counters of actor modules and native providers, kept in C.

The data plane counts every call where it runs it (``native/host/wascc_route.c``,
``wh_stats``): one atomic counter per operation, and one call in
:data:`SAMPLE_EVERY` of each operation (the 1st, 65th, 129th...) timed into
a fixed-bucket histogram, so a call from a provider thread is counted
without Python.  Timing every call would cost two clock reads and a bucket
search, more than the 5% of a microsecond call the host allows itself
(``benchmarks/bench_observe.py``).  :class:`Counters` reads them.

Operation names come from callers: past :data:`MAX_OPERATIONS` distinct
names a module counts the rest as :data:`OTHER`, so a caller cannot grow
the tables (or the metrics' label sets) without end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wascc.engine.ffi import _ffi, _lib

__all__ = [
    "BUCKETS",
    "MAX_OPERATIONS",
    "OTHER",
    "SAMPLE_EVERY",
    "Counters",
    "OperationStats",
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
_COMPILED_AS = (_lib.WH_MAX_OPS, _lib.WH_SAMPLE_EVERY, _lib.WH_NBUCKETS)
if (MAX_OPERATIONS, SAMPLE_EVERY, len(BUCKETS) + 1) != _COMPILED_AS:  # pragma: no cover
    raise ImportError("wascc's compiled module is stale (it counts differently): make setup")
_lib.wh_set_buckets(_ffi.new("double[]", BUCKETS), len(BUCKETS))
OTHER = "other"


class Counters:
    """Calls by operation (exact) and sampled timings, kept in C.

    The data plane (``native/host/wascc_route.c``) counts each call of an
    actor module or a native provider in ``wh_stats``: a per-operation
    atomic counter (MAX_OPERATIONS names, then OTHER) and one call in
    SAMPLE_EVERY timed into the BUCKETS histogram.  This reads them.
    """

    def __init__(self, ptr: Any) -> None:
        self._ptr = ptr

    def read(self) -> dict[str, OperationStats]:
        """Every operation's calls and sampled latency so far."""
        out = _ffi.new("wh_op_stats *")
        found: dict[str, OperationStats] = {}
        for i in range(MAX_OPERATIONS + 1):
            if not _lib.wh_stats_get(self._ptr, i, out):
                continue
            name = _ffi.buffer(out.name, out.name_len)[:].decode("utf-8", "replace")
            found[name] = OperationStats(
                int(out.calls),
                int(out.timed),
                out.ns / 1e9,
                tuple(int(x) for x in out.buckets[0 : len(BUCKETS) + 1]),
            )
        return found

    def calls(self) -> int:
        """Calls of every operation so far."""
        return sum(s.calls for s in self.read().values())


@dataclass(frozen=True)
class OperationStats:
    """One operation of one actor module: calls, and the sampled latency histogram."""

    calls: int
    #: Calls that were timed (one in SAMPLE_EVERY), their total seconds, and
    #: how many fell in each BUCKETS slot (the last one is +Inf).
    timed: int
    seconds: float
    buckets: tuple[int, ...]
