"""Prometheus metrics of one host, read from its counters when scraped.

:func:`registry` makes one ``CollectorRegistry`` per host holding a
:class:`HostCollector`: at each scrape it reads the :class:`Recorder`'s
series, the host's inventory (instances, busy, waits, health) and the
counters the first-party HTTP server and messaging providers keep.  Nothing
is exported per call.

Names follow ``wascc_<noun>_<unit>_total`` (counters) and ``_seconds``
(histograms); labels are bounded: actor (public key), operation,
capability, binding, kind (a wascc error class), status (an HTTP code) -
never a payload or a request path.

=========================================  =======  ====================================
metric                                      type     labels
=========================================  =======  ====================================
wascc_actor_invocations_total               counter  actor, operation
wascc_actor_errors_total                    counter  actor, operation, kind
wascc_actor_invocation_seconds              histo    actor, operation
wascc_actor_info                            gauge    actor, name
wascc_actor_instances                       gauge    actor
wascc_actor_instances_busy                  gauge    actor
wascc_actor_instance_waits_total            counter  actor
wascc_actor_healthy                         gauge    actor (after a health check)
wascc_provider_calls_total                  counter  capability, binding, operation
wascc_provider_errors_total                 counter  capability, binding, operation, kind
wascc_provider_call_seconds                 histo    capability, binding, operation
wascc_provider_healthy                      gauge    capability, binding (after a check)
wascc_provider_bound_actors                 gauge    capability, binding
wascc_http_requests_total                   counter  binding, status
wascc_http_connections                      gauge    binding
wascc_messaging_delivered_total             counter  binding
wascc_messaging_dropped_total               counter  binding
wascc_messaging_failed_total                counter  binding
wascc_host_uptime_seconds                   gauge
wascc_host_actors / wascc_host_providers    gauge
wascc_host_info                             gauge    version
=========================================  =======  ====================================
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from wascc.engine.stats import BUCKETS, SAMPLE_EVERY
from wascc.host import Host
from wascc.observe.recorder import Recorder
from wascc.observe.server import Request, Response, Route

__all__ = ["HostCollector", "metrics_route", "registry", "wascc_version"]


def wascc_version() -> str:
    """The installed wascc's version."""
    try:
        return dist_version("wascc")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


_BOUNDS = [*(f"{b:g}" for b in BUCKETS), "+Inf"]


def _histogram_buckets(buckets: list[int]) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    running = 0
    for bound, n in zip(_BOUNDS, buckets, strict=True):
        running += n
        out.append((bound, float(running)))
    return out


class HostCollector(Collector):
    """Reads one host's numbers at scrape time (a prometheus-client custom collector)."""

    def __init__(self, host: Host, recorder: Recorder) -> None:
        self.host = host
        self.recorder = recorder
        self.version = wascc_version()

    def collect(self) -> Iterator[Metric]:
        yield from self._actors()
        yield from self._providers()
        yield from self._capabilities()
        yield from self._host()

    def _actors(self) -> Iterator[Metric]:
        labels = ["actor", "operation"]
        calls = CounterMetricFamily(
            "wascc_actor_invocations", "Calls run in an actor's instances", labels=labels
        )
        errors = CounterMetricFamily(
            "wascc_actor_errors",
            "Failed calls to an actor (in the guest, or refused before it), by wascc error kind",
            labels=[*labels, "kind"],
        )
        seconds = HistogramMetricFamily(
            "wascc_actor_invocation_seconds",
            f"Time in the guest of one call in {SAMPLE_EVERY} (of each operation)",
            labels=labels,
        )
        actors = self.host.actors()
        for a in actors:
            for op, stats in sorted(a.operations.items()):
                calls.add_metric([a.public_key, op], stats.calls)
                seconds.add_metric(
                    [a.public_key, op], _histogram_buckets(list(stats.buckets)), stats.seconds
                )
        for actor, op, kinds in self.recorder.actor_errors():
            for kind, n in sorted(kinds.items()):
                errors.add_metric([actor, op, kind], n)
        yield from (calls, errors, seconds)
        info = GaugeMetricFamily("wascc_actor_info", "A running actor", labels=["actor", "name"])
        instances = GaugeMetricFamily(
            "wascc_actor_instances", "Live instances of an actor", labels=["actor"]
        )
        busy = GaugeMetricFamily(
            "wascc_actor_instances_busy", "Instances in a call now", labels=["actor"]
        )
        waits = CounterMetricFamily(
            "wascc_actor_instance_waits",
            "Calls that found every instance busy and waited for one",
            labels=["actor"],
        )
        healthy = GaugeMetricFamily(
            "wascc_actor_healthy", "1 if the last health check passed", labels=["actor"]
        )
        for a in actors:
            info.add_metric([a.public_key, a.name], 1)
            instances.add_metric([a.public_key], a.instances)
            busy.add_metric([a.public_key], a.busy)
            waits.add_metric([a.public_key], a.waits)
            if a.health is not None:
                healthy.add_metric([a.public_key], 1 if a.health.healthy else 0)
        yield from (info, instances, busy, waits, healthy)

    def _providers(self) -> Iterator[Metric]:
        labels = ["capability", "binding", "operation"]
        calls = CounterMetricFamily(
            "wascc_provider_calls", "Calls from actors to a provider", labels=labels
        )
        errors = CounterMetricFamily(
            "wascc_provider_errors",
            "Failed calls to a provider, by wascc error kind",
            labels=[*labels, "kind"],
        )
        seconds = HistogramMetricFamily(
            "wascc_provider_call_seconds",
            f"Time of one provider call in {SAMPLE_EVERY} (per operation)",
            labels=labels,
        )
        for capability, binding, op, series in self.recorder.provider_series():
            count, _, total, buckets, kinds = series.read()
            values = [capability, binding, op]
            calls.add_metric(values, count)
            for kind, n in sorted(kinds.items()):
                errors.add_metric([*values, kind], n)
            seconds.add_metric(values, _histogram_buckets(buckets), total)
        yield from (calls, errors, seconds)
        healthy = GaugeMetricFamily(
            "wascc_provider_healthy",
            "1 if the provider's last health check passed",
            labels=["capability", "binding"],
        )
        bound = GaugeMetricFamily(
            "wascc_provider_bound_actors",
            "Actors bound to the provider",
            labels=["capability", "binding"],
        )
        for p in self.host.providers():
            bound.add_metric([p.capability_id, p.binding], len(p.actors))
            if p.health is not None:
                healthy.add_metric([p.capability_id, p.binding], 1 if p.health.healthy else 0)
        yield healthy
        yield bound

    def _capabilities(self) -> Iterator[Metric]:
        """The providers' own counters, read from their ``stats()`` by shape.

        A provider whose ``stats()`` answers ``responses`` (status -> count) and
        ``connections`` is an HTTP server (``wascc:http_server``'s
        HttpServerStats); one answering ``delivered``, ``dropped`` and
        ``failed`` is messaging (MessagingStats).  Read by shape, not class,
        so the observe layer does not depend on the capabilities package and
        a third-party provider can report the same figures.
        """
        requests = CounterMetricFamily(
            "wascc_http_requests",
            "HTTP responses written, by status code",
            labels=["binding", "status"],
        )
        connections = GaugeMetricFamily(
            "wascc_http_connections", "HTTP connections open now", labels=["binding"]
        )
        delivered = CounterMetricFamily(
            "wascc_messaging_delivered", "Messages delivered to actors", labels=["binding"]
        )
        dropped = CounterMetricFamily(
            "wascc_messaging_dropped",
            "Messages dropped (subscription queue full, or closed with messages queued)",
            labels=["binding"],
        )
        failed = CounterMetricFamily(
            "wascc_messaging_failed",
            "Messages the actor failed to handle",
            labels=["binding"],
        )
        for p in self.host.providers():
            try:
                provider = self.host.provider(p.capability_id, p.binding)
            except LookupError:  # removed while we looked
                continue
            read = getattr(provider, "stats", None)
            if not callable(read):
                continue
            stats = read()
            responses = getattr(stats, "responses", None)
            if isinstance(responses, dict):  # an HTTP server (HttpServerStats)
                for status, n in sorted(responses.items()):
                    requests.add_metric([p.binding, str(status)], n)
                connections.add_metric([p.binding], getattr(stats, "connections", 0))
            if isinstance(getattr(stats, "dropped", None), int):  # messaging (MessagingStats)
                delivered.add_metric([p.binding], stats.delivered)
                dropped.add_metric([p.binding], stats.dropped)
                failed.add_metric([p.binding], stats.failed)
        yield from (requests, connections, delivered, dropped, failed)

    def _host(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "wascc_host_uptime_seconds", "Seconds since the host started", self.recorder.uptime
        )
        yield GaugeMetricFamily("wascc_host_actors", "Running actors", len(self.host.actors()))
        yield GaugeMetricFamily(
            "wascc_host_providers", "Registered providers", len(self.host.providers())
        )
        info = GaugeMetricFamily("wascc_host_info", "The host's version", labels=["version"])
        info.add_metric([self.version], 1)
        yield info


def registry(host: Host, recorder: Recorder) -> CollectorRegistry:
    """A registry of its own for one host (never the process-global default one)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(HostCollector(host, recorder))
    return reg


def metrics_route(reg: CollectorRegistry) -> Route:
    """The ``/metrics`` route: the registry in Prometheus' text format."""

    def serve(request: Request) -> Response:
        return Response(200, generate_latest(reg), CONTENT_TYPE_LATEST)

    return serve
