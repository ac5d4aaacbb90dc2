"""Health: unhealthy, failing, garbage-answering and hanging providers are removed."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from wascc import GuestError, Host, KeyPair
from wascc.wire.codec import OP_HEALTH_REQUEST, HealthResponse

from conftest import Signer, call_payload
from providers import TESTING, RecordingProvider


def _bound(host: Host, sign: Signer, provider: RecordingProvider) -> str:
    host.add_provider(provider)
    signed, _ = sign(caps=[TESTING])
    key = host.add_actor(signed)
    host.set_binding(key, TESTING)
    return key


def _assert_removed(host: Host, key: str, provider: RecordingProvider) -> None:
    assert TESTING not in {p.capability_id for p in host.providers()}
    assert [b for b in host.bindings() if b.capability_id == TESTING] == []
    with pytest.raises(GuestError, match="no provider is registered"):
        host.call_actor(key, "Call", call_payload(TESTING, "Echo", b"x"))


def test_healthy_provider_stays(fast_host: Host, sign: Signer) -> None:
    provider = RecordingProvider()
    key = _bound(fast_host, sign, provider)
    reports = fast_host.check_health()
    assert reports[(TESTING, "default")].healthy
    assert reports[(TESTING, "default")].message == "fine"
    assert fast_host.call_actor(key, "Call", call_payload(TESTING, "Echo", b"ok")) == b"ok"


@pytest.mark.parametrize(
    "answer, reason",
    [
        (HealthResponse(healthy=False, message="disk full"), "disk full"),
        (RuntimeError("sensor unplugged"), "sensor unplugged"),
    ],
)
def test_unhealthy_or_failing_provider_is_removed_and_logged(
    fast_host: Host, sign: Signer, caplog: pytest.LogCaptureFixture, answer: object, reason: str
) -> None:
    provider = RecordingProvider()
    provider.health_answer = answer
    key = _bound(fast_host, sign, provider)
    with caplog.at_level(logging.ERROR, logger="wascc.host"):
        report = fast_host.check_health()[(TESTING, "default")]
    assert not report.healthy and reason in report.message
    _assert_removed(fast_host, key, provider)
    assert provider.stopped.is_set()
    assert [c.module for c in provider.removes] == [key]
    assert any(
        reason in r.getMessage() and "removed provider" in r.getMessage() for r in caplog.records
    )
    assert fast_host.call_actor(key, "Echo", b"host goes on") == b"host goes on"


class _GarbageHealth(RecordingProvider):
    def handle_call(self, actor: str, operation: str, msg: bytes) -> bytes:
        if operation == OP_HEALTH_REQUEST:
            return b"\xff\xfe not msgpack"
        return super().handle_call(actor, operation, msg)


def test_provider_answering_health_with_garbage_is_removed(fast_host: Host, sign: Signer) -> None:
    provider = _GarbageHealth()
    key = _bound(fast_host, sign, provider)
    report = fast_host.check_health()[(TESTING, "default")]
    assert not report.healthy and "HealthResponse" in report.message
    _assert_removed(fast_host, key, provider)


def test_provider_that_hangs_on_health_is_removed_after_the_timeout(
    fast_host: Host, sign: Signer
) -> None:
    release = threading.Event()
    provider = RecordingProvider()

    def hang() -> HealthResponse:
        release.wait(30)
        return HealthResponse(healthy=True)

    provider.health_answer = hang
    key = _bound(fast_host, sign, provider)
    started = time.monotonic()
    report = fast_host.check_health()[(TESTING, "default")]
    elapsed = time.monotonic() - started
    release.set()
    assert not report.healthy and "within 0.3s" in report.message
    assert elapsed < 10  # the monitor did not wait for the hung provider
    _assert_removed(fast_host, key, provider)


def test_health_monitor_polls_on_its_interval(account: KeyPair, sign: Signer) -> None:
    provider = RecordingProvider()
    calls: list[float] = []

    def counted() -> HealthResponse:
        calls.append(time.monotonic())
        return HealthResponse(healthy=len(calls) < 3, message=f"poll {len(calls)}")

    provider.health_answer = counted
    with Host(
        trusted_issuers=[account.public_key], health_interval=0.05, load_entry_points=False
    ) as h:
        h.add_provider(provider)
        deadline = time.monotonic() + 20
        while TESTING in {p.capability_id for p in h.providers()}:
            assert time.monotonic() < deadline, "unhealthy provider was never removed"
            time.sleep(0.02)
    assert len(calls) == 3


def test_actor_health_is_recorded_for_the_inventory(fast_host: Host, sign: Signer) -> None:
    signed, _ = sign()
    key = fast_host.add_actor(signed)
    fast_host.check_health()
    health = fast_host.actor(key).health
    assert health is not None and health.healthy


def test_health_check_does_not_remove_the_provider_that_replaced_the_ill_one(
    host: Host, sign: Signer
) -> None:
    """The check found the old provider ill, but by then a healthy one had replaced it."""
    asked = threading.Event()
    release = threading.Event()
    old = RecordingProvider()

    def ill_after_release() -> HealthResponse:
        asked.set()
        release.wait(30)
        return HealthResponse(healthy=False, message="old one is ill")

    old.health_answer = ill_after_release
    key = _bound(host, sign, old)
    reports: list[dict[tuple[str, str], object]] = []
    checker = threading.Thread(target=lambda: reports.append(host.check_health()))
    checker.start()
    assert asked.wait(30)
    new = RecordingProvider()
    host.replace_provider(new)
    release.set()
    checker.join(30)
    report = reports[0][(TESTING, "default")]
    assert not report.healthy  # type: ignore[attr-defined]
    assert [p.capability_id for p in host.providers()].count(TESTING) == 1
    assert not new.stopped.is_set()
    assert [c.module for c in new.binds] == [key]
    assert new.removes == []
    assert host.call_actor(key, "Call", call_payload(TESTING, "Echo", b"still")) == b"still"
