"""Prometheus metrics of a host, scraped over HTTP after a known number of calls."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from wascc_capabilities.http_server import HttpServerProvider

from wascc import GuestError, Host, InvocationTimeout, ObserveError, ProviderCallError
from wascc.engine.stats import SAMPLE_EVERY
from wascc.observe import ObserveServer, Recorder, metrics_route, parse_address, quantile, registry

from conftest import BuiltExamples, call_payload
from providers import TESTING, RecordingProvider

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, metric: str, **labels: str) -> float:
    return samples[(metric, frozenset(labels.items()))]


@pytest.fixture
def observed(host: Host) -> Iterator[str]:
    """A recorder on ``host`` and a metrics server on a free loopback port; its URL."""
    with (
        Recorder(host) as recorder,
        ObserveServer(("127.0.0.1", 0), {"/metrics": metrics_route(registry(host, recorder))}) as s,
    ):
        yield s.url


def test_metrics_count_calls_errors_and_timeouts_exactly(
    host: Host, observed: str, start_actor: Callable[..., str]
) -> None:
    provider = RecordingProvider()
    host.add_provider(provider)
    actor = start_actor(caps=[TESTING], deadline=0.2)
    host.set_binding(actor, TESTING)
    for _ in range(7):
        host.call_actor(actor, "Echo", b"hi")
    for _ in range(3):
        with pytest.raises(GuestError):
            host.call_actor(actor, "Fail", b"no")
    for _ in range(2):
        with pytest.raises(InvocationTimeout):
            host.call_actor(actor, "Loop")
    for _ in range(4):
        host.call_actor(actor, "Call", call_payload(TESTING, "Echo", b"x"))
    with pytest.raises(GuestError):  # the provider's failure comes back as the actor's error
        host.call_actor(actor, "Call", call_payload(TESTING, "Fail", b"x"))

    m = scrape(observed)
    calls = "wascc_actor_invocations_total"
    assert value(m, calls, actor=actor, operation="Echo") == 7
    assert value(m, calls, actor=actor, operation="Fail") == 3
    assert value(m, calls, actor=actor, operation="Loop") == 2
    assert value(m, calls, actor=actor, operation="Call") == 5
    errors = "wascc_actor_errors_total"
    assert value(m, errors, actor=actor, operation="Fail", kind="GuestError") == 3
    assert value(m, errors, actor=actor, operation="Loop", kind="InvocationTimeout") == 2
    assert value(m, errors, actor=actor, operation="Call", kind="GuestError") == 1
    assert (errors, frozenset({("actor", actor), ("operation", "Echo")})) not in m
    # one call in SAMPLE_EVERY (the 1st, 17th...) of each operation is timed
    histogram = "wascc_actor_invocation_seconds"
    assert value(m, histogram + "_count", actor=actor, operation="Echo") == 1
    assert value(m, histogram + "_bucket", actor=actor, operation="Loop", le="+Inf") == 1
    assert value(m, histogram + "_bucket", actor=actor, operation="Loop", le="0.1") == 0
    assert value(m, histogram + "_sum", actor=actor, operation="Loop") >= 0.2

    pcalls = "wascc_provider_calls_total"
    assert value(m, pcalls, capability=TESTING, binding="default", operation="Echo") == 4
    assert value(m, pcalls, capability=TESTING, binding="default", operation="Fail") == 1
    kind = ProviderCallError.__name__
    assert (
        value(
            m,
            "wascc_provider_errors_total",
            capability=TESTING,
            binding="default",
            operation="Fail",
            kind=kind,
        )
        == 1
    )
    assert value(m, "wascc_provider_bound_actors", capability=TESTING, binding="default") == 1
    assert value(m, "wascc_actor_info", actor=actor, name="test") == 1
    assert value(m, "wascc_actor_instances", actor=actor) >= 1
    assert value(m, "wascc_actor_instances_busy", actor=actor) == 0
    assert value(m, "wascc_host_actors") == 1
    assert value(m, "wascc_host_providers") == 2  # the testing provider and wascc:extras
    assert value(m, "wascc_host_uptime_seconds") > 0
    assert any(name == "wascc_host_info" for name, _ in m)


def test_health_and_pool_waits_are_exported(
    host: Host, observed: str, start_actor: Callable[..., str]
) -> None:
    provider = RecordingProvider()
    host.add_provider(provider)
    actor = start_actor(caps=[TESTING], deadline=1.0, max_instances=1, min_instances=1)
    host.set_binding(actor, TESTING)
    host.check_health()

    def loop() -> None:
        with pytest.raises(InvocationTimeout):
            host.call_actor(actor, "Loop")

    slow = threading.Thread(target=loop)
    slow.start()
    while host.actor(actor).busy == 0:  # the loop holds the only instance now
        time.sleep(0.001)
    # half the deadline in: this call waits for the only instance, which the loop
    # gives up at its deadline, half this call's wait before it would give up
    time.sleep(0.5)
    host.call_actor(actor, "Echo", b"after the loop")
    slow.join()
    m = scrape(observed)
    assert value(m, "wascc_provider_healthy", capability=TESTING, binding="default") == 1
    assert value(m, "wascc_actor_healthy", actor=actor) == 1
    assert value(m, "wascc_actor_instance_waits_total", actor=actor) == 1


def test_http_requests_by_status_and_connections(
    examples: BuiltExamples, account_host: Host, observed_account: str
) -> None:
    host = account_host
    server = HttpServerProvider()
    host.add_provider(server)
    echo = host.add_actor(examples.signed("echo"))
    host.set_binding(echo, "wascc:http_server", values={"PORT": "0"})
    address, port = server.address(echo)
    for _ in range(3):
        with urllib.request.urlopen(f"http://{address}:{port}/x?y=1", timeout=10) as r:
            assert r.status == 200
    m = scrape(observed_account)
    assert value(m, "wascc_http_requests_total", binding="default", status="200") == 3
    assert value(m, "wascc_http_connections", binding="default") >= 0
    assert value(m, "wascc_actor_invocations_total", actor=echo, operation="HandleRequest") == 3


@pytest.fixture
def account_host(examples: BuiltExamples) -> Iterator[Host]:
    h = Host(trusted_issuers=[examples.account], health_interval=0, load_entry_points=False)
    yield h
    h.stop()


@pytest.fixture
def observed_account(account_host: Host) -> Iterator[str]:
    with (
        Recorder(account_host) as recorder,
        ObserveServer(
            ("127.0.0.1", 0), {"/metrics": metrics_route(registry(account_host, recorder))}
        ) as s,
    ):
        yield s.url


def test_operation_names_are_bounded(host: Host, start_actor: Callable[..., str]) -> None:
    actor = start_actor(max_instances=1)
    with Recorder(host) as recorder:
        for i in range(100):
            with pytest.raises(GuestError):
                host.call_actor(actor, f"Nope{i}")
        failed = {op for _, op, _ in recorder.actor_errors()}
    counted = host.actor(actor).operations
    assert len(failed) == len(counted) == 65
    assert "other" in failed and counted["other"].calls == 36


def test_one_call_in_sample_every_is_timed(host: Host, start_actor: Callable[..., str]) -> None:
    actor = start_actor(max_instances=1)
    for _ in range(SAMPLE_EVERY * 2 + 1):
        host.call_actor(actor, "Echo", b"")
    stats = host.actor(actor).operations["Echo"]
    assert stats.calls == SAMPLE_EVERY * 2 + 1
    assert stats.timed == 3 == sum(stats.buckets)
    assert stats.seconds > 0


def test_the_host_is_no_longer_observed_after_close(
    host: Host, start_actor: Callable[..., str]
) -> None:
    actor = start_actor()
    recorder = Recorder(host).attach()
    with pytest.raises(GuestError):
        host.call_actor(actor, "Fail", b"")
    recorder.close()
    with pytest.raises(GuestError):
        host.call_actor(actor, "Fail", b"")
    assert host.observer is None
    assert recorder.actor_errors() == [(actor, "Fail", {"GuestError": 1})]


def test_quantile_interpolates_within_the_bucket() -> None:
    assert quantile(0.5, [0] * 18) is None
    buckets = [0] * 18
    buckets[4] = 10  # ten calls between 0.5 ms and 1 ms
    assert quantile(0.5, buckets) == pytest.approx(0.00075)
    buckets[-1] = 1000  # most above 10 s: reported as the last bound
    assert quantile(0.99, buckets) == 10.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9100", ("127.0.0.1", 9100)),
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),
        ("[::1]:0", ("::1", 0)),
        (":8080", ("127.0.0.1", 8080)),
    ],
)
def test_addresses_default_to_loopback(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", "http", "1.2.3.4:99999", "host:-1"])
def test_a_bad_address_is_refused(text: str) -> None:
    with pytest.raises(ObserveError, match="--metrics"):
        parse_address(text)


def test_a_port_in_use_is_refused(host: Host) -> None:
    with (
        ObserveServer(("127.0.0.1", 0), {}) as first,
        pytest.raises(ObserveError, match="cannot listen"),
    ):
        ObserveServer(first.address, {})


def test_a_failed_health_check_is_health_not_an_error(
    examples: BuiltExamples, account_host: Host
) -> None:
    echo = account_host.add_actor(examples.signed("echo"))  # answers no HealthRequest
    with Recorder(account_host) as recorder:
        account_host.check_health()
        assert account_host.actor(echo).health is not None
        assert not account_host.actor(echo).health.healthy  # type: ignore[union-attr]
        assert recorder.actor_errors() == []
        assert not recorder.errors


def test_a_bad_content_length_is_a_400(host: Host) -> None:
    with (
        ObserveServer(("127.0.0.1", 0), {}) as server,
        socket.create_connection(server.address, timeout=10) as conn,
    ):
        conn.sendall(b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: lots\r\n\r\n")
        assert conn.recv(100).startswith(b"HTTP/1.1 400")
