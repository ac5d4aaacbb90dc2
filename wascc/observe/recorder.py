"""The Recorder: what the host did, counted per call, sampled each second.

Calls into actors are counted by the engine (by operation, exact; one in
SAMPLE_EVERY timed: :mod:`wascc.engine.stats`) and read through
``host.actors()``.  A :class:`Recorder` is the host's
:class:`~wascc.host.CallObserver` for the rest: it counts failed actor
calls by error kind (the error path only), and counts provider calls (a
dict lookup and an increment under the series' lock), timing one in
SAMPLE_EVERY.  That keeps an observed call within a few percent of an
unobserved one (``benchmarks/bench_observe.py``).  Nothing is formatted or
exported per call: Prometheus reads the cumulative counters when it scrapes
(:mod:`wascc.observe.metrics`).

A sampler thread copies the counters once a second into a ring of
:data:`HISTORY` samples; :meth:`Recorder.snapshot` turns the differences
into calls per second, p50/p99 over the last :data:`WINDOW` seconds and the
sparklines ``wascc ctl top`` and the dashboard draw.

Labels stay bounded: an actor is its public key (only actors that were
running when called get a series), an error is its wascc error class name
(``internal`` for anything else), and each actor or provider binding keeps
at most :data:`MAX_OPERATIONS` operation names (later ones count as
``other``): an operation name comes from a caller and must not grow the
series without end.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from wascc.engine.stats import BUCKETS, MAX_OPERATIONS, OTHER, OperationStats
from wascc.errors import WasccError
from wascc.host import Host

__all__ = [
    "BUCKETS",
    "HISTORY",
    "MAX_OPERATIONS",
    "OTHER",
    "WINDOW",
    "ErrorEvent",
    "Recorder",
    "Series",
    "quantile",
]

log = logging.getLogger(__name__)

#: Samples (one a second) kept for sparklines.
HISTORY = 60
#: Seconds p50 and p99 are computed over.
WINDOW = 10
#: Recent errors kept for ``wascc ctl top`` and the dashboard.
RECENT_ERRORS = 50


def error_kind(error: BaseException) -> str:
    """The bounded label of a failure: its wascc error class, else ``internal``."""
    return type(error).__name__ if isinstance(error, WasccError) else "internal"


class Series:
    """Calls, errors by kind and a sampled latency histogram of one provider operation.

    Calls are counted by an ``itertools.count``: ``next()`` on it is one C
    call, atomic under the GIL, so the hot path takes no lock.
    """

    __slots__ = ("buckets", "calls", "errors", "lock", "sum", "timed")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = itertools.count(1)  # next() is this call's number
        self.timed = 0
        self.sum = 0.0
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.errors: dict[str, int] = {}

    @property
    def count(self) -> int:
        """Calls counted so far (``count(N)`` is about to hand out N)."""
        return int(repr(self.calls)[6:-1]) - 1

    def time(self, seconds: float) -> None:
        slot = bisect_left(BUCKETS, seconds)
        with self.lock:
            self.timed += 1
            self.sum += seconds
            self.buckets[slot] += 1

    def fail(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def read(self) -> tuple[int, int, float, list[int], dict[str, int]]:
        """A consistent copy: (calls, timed calls, their seconds, buckets, errors by kind)."""
        count = self.count
        with self.lock:
            return count, self.timed, self.sum, list(self.buckets), dict(self.errors)


class Combined:
    """A provider operation counted in Python (a :class:`Series`) and in C (the data plane)."""

    __slots__ = ("counted", "series")

    def __init__(self, series: Series | None, counted: OperationStats | None) -> None:
        self.series = series
        self.counted = counted

    def read(self) -> tuple[int, int, float, list[int], dict[str, int]]:
        if self.series is not None:
            count, timed, total, buckets, errors = self.series.read()
        else:
            count, timed, total, buckets, errors = 0, 0, 0.0, [0] * (len(BUCKETS) + 1), {}
        c = self.counted
        if c is not None:
            count += c.calls
            timed += c.timed
            total += c.seconds
            buckets = [a + b for a, b in zip(buckets, c.buckets, strict=True)]
        return count, timed, total, buckets, errors


@dataclass(frozen=True)
class ErrorEvent:
    """One failed call, kept among the recent errors."""

    time: float
    who: str  # an actor key, or "capability (binding)"
    operation: str
    kind: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "who": self.who,
            "operation": self.operation,
            "kind": self.kind,
            "message": self.message,
        }


@dataclass
class _Sample:
    """The cumulative counters at one instant, per actor and per provider binding."""

    at: float
    actors: dict[str, tuple[int, int, list[int]]] = field(default_factory=dict)
    providers: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)


def quantile(q: float, buckets: list[int]) -> float | None:
    """The ``q`` quantile of a histogram (counts per BUCKETS slot), interpolated in its bucket.

    As Prometheus' ``histogram_quantile``: linear inside the bucket; a value
    in the +Inf bucket is reported as the last finite bound.  None without
    observations.
    """
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(buckets):
        if n and seen + n >= rank:
            if i >= len(BUCKETS):
                return BUCKETS[-1]
            lower = BUCKETS[i - 1] if i else 0.0
            return lower + (BUCKETS[i] - lower) * ((rank - seen) / n)
        seen += n
    return BUCKETS[-1]


class Recorder:
    """Observes one host (set as ``host.observer``) and samples its counters each second."""

    def __init__(self, host: Host, *, interval: float = 1.0) -> None:
        self.host = host
        self.interval = interval
        self._providers: dict[tuple[str, str, str], Series] = {}
        #: The calls counter of each provider series, read by the host per call.
        self.provider_counters: dict[tuple[str, str, str], Iterator[int]] = {}
        self._actor_errors: dict[tuple[str, str], dict[str, int]] = {}
        self._operations: dict[Any, int] = {}  # owner -> operation names it has
        self._lock = threading.Lock()  # new series and the actor error table
        self.errors: deque[ErrorEvent] = deque(maxlen=RECENT_ERRORS)
        self._history: deque[_Sample] = deque(maxlen=HISTORY + 1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- the CallObserver interface ------------------------------------------

    def actor_failed(self, actor: str, operation: str, error: BaseException) -> None:
        kind = error_kind(error)
        with self._lock:
            key = (actor, operation)
            kinds = self._actor_errors.get(key)
            if kinds is None:
                if self._operations.get(actor, 0) >= MAX_OPERATIONS:
                    key = (actor, OTHER)
                else:
                    self._operations[actor] = self._operations.get(actor, 0) + 1
                kinds = self._actor_errors.setdefault(key, {})
            kinds[kind] = kinds.get(kind, 0) + 1
        self.errors.append(ErrorEvent(time.time(), actor, operation, kind, str(error)))

    def provider_counter(self, capability_id: str, binding: str, operation: str) -> Iterator[int]:
        return self._series(capability_id, binding, operation).calls

    def provider_timed(
        self, capability_id: str, binding: str, operation: str, seconds: float
    ) -> None:
        self._series(capability_id, binding, operation).time(seconds)

    def provider_failed(
        self, capability_id: str, binding: str, operation: str, error: BaseException
    ) -> None:
        kind = error_kind(error)
        self._series(capability_id, binding, operation).fail(kind)
        self.errors.append(
            ErrorEvent(time.time(), f"{capability_id} ({binding})", operation, kind, str(error))
        )

    def _series(self, capability_id: str, binding: str, operation: str) -> Series:
        """The series of a provider operation (OTHER past MAX_OPERATIONS names)."""
        key = (capability_id, binding, operation)
        found = self._providers.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._providers.get(key)
            if found is not None:
                return found
            owner = (capability_id, binding)
            if self._operations.get(owner, 0) >= MAX_OPERATIONS:
                other = (capability_id, binding, OTHER)
                found = self._providers.get(other)
                if found is None:
                    found = self._providers[other] = Series()
                    self.provider_counters[other] = found.calls
                return found
            self._operations[owner] = self._operations.get(owner, 0) + 1
            series = self._providers[key] = Series()
            self.provider_counters[key] = series.calls
            return series

    # ---- lifecycle -----------------------------------------------------------

    def attach(self) -> Recorder:
        """Become the host's observer and start sampling; returns self."""
        self.host.observer = self
        self.sample()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="wascc-observe-sampler", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop sampling and stop observing the host (idempotent)."""
        if self.host.observer is self:
            self.host.observer = None
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def __enter__(self) -> Recorder:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:
                log.exception("sampling the host's counters failed")

    @property
    def uptime(self) -> float:
        """Seconds since the host started."""
        return max(0.0, time.time() - self.host.started)

    # ---- reading -------------------------------------------------------------

    def actor_errors(self) -> list[tuple[str, str, dict[str, int]]]:
        """(actor key, operation, errors by kind) of every actor operation that failed."""
        with self._lock:
            return [(a, op, dict(kinds)) for (a, op), kinds in self._actor_errors.items()]

    def provider_series(self) -> list[tuple[str, str, str, Series | Combined]]:
        """(capability, binding, operation, series) of every provider operation called.

        Calls the data plane ran in C (an actor calling a native provider) are
        counted there (:meth:`Host.native_operations`) and added in here;
        failures always reach :meth:`provider_failed`.
        """
        python = dict(list(self._providers.items()))
        native = self.host.native_operations()
        out: list[tuple[str, str, str, Series | Combined]] = []
        for key in sorted(python.keys() | native.keys()):
            series, counted = python.get(key), native.get(key)
            c, b, op = key
            if counted is None and series is not None:
                out.append((c, b, op, series))
            else:
                out.append((c, b, op, Combined(series, counted)))
        return out

    def sample(self) -> None:
        """Copy the cumulative counters into the history (the sampler does this each second)."""
        self._history.append(self._take())

    def _take(self) -> _Sample:
        """The cumulative counters now."""
        sample = _Sample(time.monotonic())
        errors: dict[str, int] = {}
        for actor, _, kinds in self.actor_errors():
            errors[actor] = errors.get(actor, 0) + sum(kinds.values())
        for info in self.host.actors():
            calls = 0
            buckets = [0] * (len(BUCKETS) + 1)
            for stats in info.operations.values():
                calls += stats.calls
                for i, n in enumerate(stats.buckets):
                    buckets[i] += n
            sample.actors[info.public_key] = (calls, errors.get(info.public_key, 0), buckets)
        for capability, binding, _, series in self.provider_series():
            count, _, _, _, kinds = series.read()
            c, e = sample.providers.get((capability, binding), (0, 0))
            sample.providers[(capability, binding)] = (c + count, e + sum(kinds.values()))
        return sample

    def snapshot(self) -> dict[str, Any]:
        """What ``wascc ctl top`` and the dashboard show, as JSON-ready data.

        Rates are over the last sampling interval, p50/p99 over the last
        WINDOW seconds, ``history`` is calls per second and ``latency`` the
        p50 (seconds, None when idle) of each of the last HISTORY seconds.
        """
        last = self._take()
        history = [*self._history, last]
        # the rate is over the newest sample at least half an interval old
        prev = next(
            (h for h in reversed(history[:-1]) if last.at - h.at >= self.interval / 2), None
        )
        window = _window_start(history, WINDOW)
        actors = []
        for info in self.host.actors():
            key = info.public_key
            count, errs, buckets = last.actors.get(key, (0, 0, [0] * (len(BUCKETS) + 1)))
            recent = _diff_buckets(buckets, window.actors.get(key))
            actors.append(
                {
                    "key": key,
                    "name": info.name,
                    "calls": count,
                    "errors": errs,
                    "rate": _rate(last, prev, partial(_actor_count, key=key)),
                    "p50": quantile(0.5, recent),
                    "p99": quantile(0.99, recent),
                    "instances": info.instances,
                    "busy": info.busy,
                    "waits": info.waits,
                    "history": _per_second(history, partial(_actor_count, key=key)),
                    "latency": _latency_history(history, key),
                    "health": None
                    if info.health is None
                    else {"healthy": info.health.healthy, "message": info.health.message},
                }
            )
        providers = []
        for p in self.host.providers():
            pkey = (p.capability_id, p.binding)
            count, errs = last.providers.get(pkey, (0, 0))
            providers.append(
                {
                    "capability": p.capability_id,
                    "binding": p.binding,
                    "name": p.descriptor.name,
                    "calls": count,
                    "errors": errs,
                    "rate": _rate(last, prev, partial(_provider_count, key=pkey)),
                    "healthy": None if p.health is None else p.health.healthy,
                    "health": "" if p.health is None else p.health.message,
                    "actors": list(p.actors),
                }
            )
        names = {a["key"]: a["name"] for a in actors}
        return {
            "uptime": self.uptime,
            "started": self.host.started,
            "actors": actors,
            "providers": providers,
            "bindings": [
                {
                    "actor": b.actor,
                    "name": names.get(b.actor, ""),
                    "capability": b.capability_id,
                    "binding": b.binding,
                }
                for b in self.host.bindings()
            ],
            "errors": [e.to_json() for e in reversed(self.errors)],
        }


def _actor_count(sample: _Sample, key: str) -> int:
    found = sample.actors.get(key)
    return 0 if found is None else found[0]


def _provider_count(sample: _Sample, key: tuple[str, str]) -> int:
    return sample.providers.get(key, (0, 0))[0]


def _rate(last: _Sample, prev: _Sample | None, count: Callable[[_Sample], int]) -> float:
    if prev is None or last.at <= prev.at:
        return 0.0
    return max(0, count(last) - count(prev)) / (last.at - prev.at)


def _window_start(history: list[_Sample], seconds: float) -> _Sample:
    """The oldest sample no more than ``seconds`` before the newest."""
    newest = history[-1].at
    for sample in history:
        if newest - sample.at <= seconds + 0.5:
            return sample
    return history[-1]


def _diff_buckets(now: list[int], then: tuple[int, int, list[int]] | None) -> list[int]:
    if then is None:
        return list(now)
    return [max(0, a - b) for a, b in zip(now, then[2], strict=True)]


def _per_second(history: list[_Sample], count: Callable[[_Sample], int]) -> list[float]:
    out: list[float] = []
    for prev, cur in itertools.pairwise(history):
        span = cur.at - prev.at
        out.append(max(0, count(cur) - count(prev)) / span if span > 0 else 0.0)
    return out[-HISTORY:]


def _latency_history(history: list[_Sample], key: str) -> list[float | None]:
    out: list[float | None] = []
    for prev, cur in itertools.pairwise(history):
        now = cur.actors.get(key)
        if now is None:
            out.append(None)
        else:
            out.append(quantile(0.5, _diff_buckets(now[2], prev.actors.get(key))))
    return out[-HISTORY:]
