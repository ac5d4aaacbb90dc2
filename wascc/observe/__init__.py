"""See what the host does: metrics, ``wascc ctl top``, the dashboard, traces.

The observe layer sits above the core and below the standalone host: it
reads a :class:`~wascc.host.Host` and is told about each call through the
host's :class:`~wascc.host.CallObserver` slot; the host never imports it.

* :mod:`~wascc.observe.recorder`: per-call counters and histograms, sampled
  each second into the history ``top`` and the dashboard draw;
* :mod:`~wascc.observe.metrics`: the Prometheus registry (one per host);
* :mod:`~wascc.observe.server`: the small HTTP server for ``/metrics`` and
  the dashboard;
* :mod:`~wascc.observe.top`: the ``wascc ctl top`` view (rich).
"""

from __future__ import annotations

from wascc.observe.metrics import HostCollector, metrics_route, registry
from wascc.observe.recorder import BUCKETS, ErrorEvent, Recorder, quantile
from wascc.observe.server import ObserveServer, parse_address

__all__ = [
    "BUCKETS",
    "ErrorEvent",
    "HostCollector",
    "ObserveServer",
    "Recorder",
    "metrics_route",
    "parse_address",
    "quantile",
    "registry",
]
