"""Native providers isolated in a child process: crashes, deadlines, restarts, re-binds, limits.

The providers are real shared objects built with gcc (``tests/native/testprovider.c``
and the first-party keyvalue); the children are real processes killed by real
signals.  In-process, the same segfault takes the whole host down: that is shown
in a subprocess of its own, since it would end the test run.
"""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wascc import Host, InvocationError, ProviderCrashed, ProviderError
from wascc._providers import library
from wascc.errors import ProviderCallError
from wascc.providers._ipc import CALL, REPLY, FrameError, encode, read_frame
from wascc.providers.isolated import (
    GIVEN_UP,
    RUNNING,
    IsolatedProvider,
    IsolationSettings,
    Limits,
    load_isolated_provider,
)
from wascc.wire.codec import SetRequest, SetResponse

from conftest import NativeBuilder, Signer, call_payload

NATIVETEST = "wascc:nativetest"
KV = "wascc:keyvalue"
FAST = IsolationSettings(backoff=0.05, backoff_max=0.2, max_crashes=100, deadline=10.0)


@pytest.fixture
def lifecycle_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "lifecycle.log"
    monkeypatch.setenv("WASCC_TEST_LOG", str(log))  # inherited by the child process
    return log


@pytest.fixture(params=["c", "python"])
def child(request: pytest.FixtureRequest) -> str:
    """Both child programs: wascc-provider-child (C) and python -m wascc.providers._child."""
    return str(request.param)


@pytest.fixture
def isolated(build_native: NativeBuilder, child: str) -> Iterator[Callable[..., IsolatedProvider]]:
    """isolated(*defines, settings=...) -> a started isolated testprovider (stopped after),
    run by each child program in turn."""
    made: list[IsolatedProvider] = []

    def _make(*defines: str, settings: IsolationSettings = FAST) -> IsolatedProvider:
        settings = dataclasses.replace(settings, child=child)
        provider = load_isolated_provider(build_native("testprovider", *defines), settings)
        made.append(provider)
        return provider

    yield _make
    for provider in made:
        provider.stop()


def bound_actor(host: Host, sign: Signer, provider: IsolatedProvider, cap: str = NATIVETEST) -> str:
    host.add_provider(provider)
    signed, _ = sign(caps=[cap], name="isolated-user")
    key = host.add_actor(signed, max_instances=8)
    host.set_binding(key, cap)
    return key


def wait_running(provider: IsolatedProvider, timeout: float) -> float:
    """Seconds until the provider is running again (fails the test past ``timeout``)."""
    started = time.monotonic()
    while provider.state != RUNNING:
        assert time.monotonic() - started < timeout, f"still {provider.state} after {timeout}s"
        time.sleep(0.01)
    return time.monotonic() - started


def echo(host: Host, key: str, payload: bytes) -> bytes:
    return host.call_actor(key, "Call", call_payload(NATIVETEST, "Echo", payload))


def test_segfault_of_an_in_process_provider_kills_the_whole_host(
    build_native: NativeBuilder,
) -> None:
    """Why isolation exists: in-process, a provider's segfault ends the host (exit -11)."""
    script = (
        "from wascc.providers.native import load_native_provider\n"
        f"p = load_native_provider({str(build_native('testprovider'))!r})\n"
        "p.handle_call('system', 'Crash', b'segv')\n"
        "print('survived')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, timeout=60
    )
    assert done.returncode == -signal.SIGSEGV
    assert b"survived" not in done.stdout


def test_isolated_segfault_fails_the_call_and_the_provider_is_back_and_bound_within_5s(
    host: Host, sign: Signer, build_native: NativeBuilder, lifecycle_log: Path
) -> None:
    # the default settings: the first restart comes after 1 s
    provider = load_isolated_provider(build_native("testprovider"))
    key = bound_actor(host, sign, provider)
    first = provider.pid
    assert echo(host, key, b"before") == b"before"
    with pytest.raises(InvocationError, match="crashed: its process was killed by SIGSEGV"):
        host.call_actor(key, "Call", call_payload(NATIVETEST, "Crash", b"segv"))
    # the host is alive and serves other work at once
    assert host.call_actor(key, "Echo", b"host alive") == b"host alive"
    assert wait_running(provider, 5.0) < 5.0
    assert provider.pid != first and provider.restarts == 1
    assert echo(host, key, b"after") == b"after"
    assert lifecycle_log.read_text().splitlines().count(f"bind {key}") == 2
    (info,) = [p for p in host.providers() if p.capability_id == NATIVETEST]
    assert info.state == RUNNING and info.pid == provider.pid and info.actors == (key,)


@pytest.mark.parametrize(
    "how, said",
    [("abort", "killed by SIGABRT"), ("exit", "exited with status 7")],
)
def test_abort_and_exit_are_crashes_too(
    isolated: Callable[..., IsolatedProvider], how: str, said: str
) -> None:
    provider = isolated()
    with pytest.raises(ProviderCrashed, match=said):
        provider.handle_call("system", "Crash", how.encode())
    wait_running(provider, 5.0)
    assert provider.handle_call("system", "Echo", b"x") == b"x"


def test_killed_from_outside_fails_calls_in_flight_at_once(
    isolated: Callable[..., IsolatedProvider],
) -> None:
    provider = isolated()
    failures: list[BaseException] = []

    def blocked() -> None:
        try:
            provider.handle_call("system", "Block", b"30000")
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=blocked) for _ in range(4)]
    for w in workers:
        w.start()
    time.sleep(0.3)
    assert provider.pid is not None
    os.kill(provider.pid, signal.SIGKILL)
    for w in workers:
        w.join(5.0)
        assert not w.is_alive(), "a call in flight hung after its provider died"
    assert len(failures) == 4
    assert all(isinstance(f, ProviderCrashed) and "SIGKILL" in str(f) for f in failures)
    wait_running(provider, 5.0)


def test_provider_hanging_past_its_deadline_is_killed_and_restarted(
    isolated: Callable[..., IsolatedProvider],
) -> None:
    provider = isolated(settings=IsolationSettings(deadline=0.5, backoff=0.05))
    first = provider.pid
    started = time.monotonic()
    with pytest.raises(ProviderCrashed, match=r"missed the 0\.5s deadline of Block; killed"):
        provider.handle_call("system", "Block", b"60000")
    assert time.monotonic() - started < 3.0
    wait_running(provider, 5.0)
    assert provider.pid != first
    assert "deadline" in provider.last_crash
    assert provider.handle_call("system", "Echo", b"ok") == b"ok"


def test_calls_while_restarting_fail_fast_with_the_reason(
    isolated: Callable[..., IsolatedProvider],
) -> None:
    provider = isolated(settings=IsolationSettings(backoff=2.0))
    with pytest.raises(ProviderCrashed):
        provider.handle_call("system", "Crash", b"segv")
    started = time.monotonic()
    with pytest.raises(ProviderCrashed, match=r"is restarting after a crash .*SIGSEGV"):
        provider.handle_call("system", "Echo", b"x")
    assert time.monotonic() - started < 1.0


def test_crash_looping_provider_is_given_up_and_reported(
    fast_host: Host, build_native: NativeBuilder, caplog: pytest.LogCaptureFixture
) -> None:
    settings = IsolationSettings(backoff=0.05, backoff_max=0.1, max_crashes=3, crash_window=60)
    provider = load_isolated_provider(
        build_native("testprovider", "-DCRASH_AFTER_MS=400"), settings
    )
    try:
        fast_host.add_provider(provider)
        deadline = time.monotonic() + 20
        while provider.state != GIVEN_UP:
            assert time.monotonic() < deadline, f"still {provider.state}"
            time.sleep(0.05)
        with pytest.raises(ProviderCrashed, match="given up after 3 crashes within 60s"):
            provider.handle_call("system", "Echo", b"x")
        report = fast_host.check_health()[(NATIVETEST, "default")]
        assert not report.healthy and "given up" in report.message
        # reported, not removed: the inventory says what became of it
        (info,) = [p for p in fast_host.providers() if p.capability_id == NATIVETEST]
        assert info.state == GIVEN_UP and info.pid is None
        assert "giving it up" in caplog.text
    finally:
        provider.stop()


def test_health_checks_keep_working_for_isolated_providers(
    fast_host: Host, isolated: Callable[..., IsolatedProvider]
) -> None:
    provider = isolated()
    fast_host.add_provider(provider)
    assert fast_host.check_health()[(NATIVETEST, "default")].healthy
    unhealthy = isolated("-DUNHEALTHY")
    fast_host.add_provider(unhealthy, "ill")
    report = fast_host.check_health()[(NATIVETEST, "ill")]
    assert not report.healthy and report.message == "unhealthy on purpose"


def test_dispatch_from_the_isolated_providers_threads_reaches_the_actor_all_matched(
    host: Host, sign: Signer, isolated: Callable[..., IsolatedProvider]
) -> None:
    provider = isolated()
    bound_actor(host, sign, provider)
    assert provider.handle_call("system", "Flood", b"8 500") == b"ok=4000 bad=0 err=0"


def test_eight_threads_on_an_isolated_keyvalue_killed_five_times_get_their_own_replies(
    host: Host, sign: Signer, child: str
) -> None:
    provider = load_isolated_provider(library("keyvalue"), dataclasses.replace(FAST, child=child))
    try:
        key = bound_actor(host, sign, provider, KV)
        stop = threading.Event()
        wrong: list[str] = []
        counts = {"ok": 0, "crashed": 0}
        lock = threading.Lock()

        def worker(n: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                value = f"thread {n} call {i}"
                request = SetRequest(key=f"k{n}", value=value).encode()
                try:
                    reply = host.call_actor(key, "Call", call_payload(KV, "Set", request))
                except InvocationError as exc:
                    if "isolated provider" not in str(exc):
                        wrong.append(f"unexpected error: {exc}")
                    with lock:
                        counts["crashed"] += 1
                    continue
                if SetResponse.decode(reply).value != value:
                    wrong.append(f"{value!r} answered with {reply!r}")
                with lock:
                    counts["ok"] += 1

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for _ in range(5):
            time.sleep(0.3)
            old = provider.pid
            assert old is not None
            os.kill(old, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while provider.pid in (None, old) or provider.state != RUNNING:
                assert time.monotonic() < deadline, "not restarted within 10 s"
                time.sleep(0.01)
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(15.0)
            assert not t.is_alive(), "a call hung"
        assert wrong == []
        assert provider.restarts == 5
        assert counts["ok"] > 100 and counts["crashed"] >= 5
    finally:
        provider.stop()


def test_limits_are_set_in_the_child_before_the_provider_loads(
    isolated: Callable[..., IsolatedProvider],
) -> None:
    limits = Limits(address_space=4 << 30, cpu_seconds=3600, open_files=64)
    provider = isolated(settings=IsolationSettings(limits=limits))
    text = Path(f"/proc/{provider.pid}/limits").read_text()
    lines = text.splitlines()
    assert any(
        line.startswith("Max open files") and line.split()[3:5] == ["64", "64"]
        for line in text.splitlines()
    )
    assert any(line.startswith("Max cpu time") and "3600" in line for line in text.splitlines())
    assert any(line.startswith("Max address space") and str(4 << 30) in line for line in lines)


def test_a_limit_too_small_to_start_is_a_clear_error(
    build_native: NativeBuilder, child: str
) -> None:
    settings = IsolationSettings(limits=Limits(address_space=1 << 20), child=child)
    with pytest.raises(ProviderError, match="could not be loaded under its address-space limit"):
        load_isolated_provider(build_native("testprovider"), settings)


@pytest.mark.parametrize(
    "defines, reason",
    [
        (("-DBAD_ABI",), "ABI version 99"),
        (("-DNO_ENTRY",), "does not export __capability_provider_create"),
        (("-DGARBAGE_DESCRIPTOR",), "did not describe itself"),
    ],
)
def test_refused_libraries_are_refused_the_same_way_isolated(
    build_native: NativeBuilder, defines: tuple[str, ...], reason: str, child: str
) -> None:
    with pytest.raises(ProviderError, match=reason):
        load_isolated_provider(
            build_native("testprovider", *defines), IsolationSettings(child=child)
        )


def test_provider_call_errors_stay_call_errors(isolated: Callable[..., IsolatedProvider]) -> None:
    provider = isolated()
    with pytest.raises(ProviderCallError, match="failed on purpose: nope"):
        provider.handle_call("system", "Fail", b"nope")
    assert provider.state == RUNNING and provider.restarts == 0


def test_frames_round_trip_and_broken_frames_are_refused() -> None:
    frame = encode(CALL, 7, True, "Mactor", "Echo", b"\x00payload")
    got = read_frame(io.BytesIO(frame))
    assert got is not None and (got.kind, got.id, got.ok, got.actor, got.op, got.payload) == (
        CALL,
        7,
        True,
        "Mactor",
        "Echo",
        b"\x00payload",
    )
    assert read_frame(io.BytesIO(b"")) is None
    with pytest.raises(FrameError, match="inside a frame header"):
        read_frame(io.BytesIO(frame[:5]))
    with pytest.raises(FrameError, match="ended inside a frame"):
        read_frame(io.BytesIO(frame[:-1]))
    with pytest.raises(FrameError, match="unknown frame kind 99"):
        read_frame(io.BytesIO(bytes([0, 0, 0, 14, 99]) + frame[5:]))
    with pytest.raises(FrameError, match="announces"):
        read_frame(io.BytesIO(b"\xff\xff\xff\xff" + frame[4:]))
    assert REPLY != CALL


def test_a_slow_call_does_not_hold_up_the_replies_of_fast_ones(
    isolated: Callable[..., IsolatedProvider],
) -> None:
    """Whichever caller reads the socket hands each reply to its own caller at once."""
    provider = isolated()
    slow = threading.Thread(target=provider.handle_call, args=("system", "Block", b"3000"))
    slow.start()
    time.sleep(0.2)  # the slow caller is now the one reading
    worst = 0.0
    for i in range(200):
        started = time.monotonic()
        assert provider.handle_call("system", "Echo", str(i).encode()) == str(i).encode()
        worst = max(worst, time.monotonic() - started)
    assert slow.is_alive(), "the fast calls finished only after the slow one"
    slow.join()
    assert worst < 1.0


def test_the_child_never_outlives_its_host(build_native: NativeBuilder) -> None:
    """A host killed outright (no stop) leaves no provider process behind."""
    script = (
        "import os, sys\n"
        "from wascc.providers.isolated import load_isolated_provider\n"
        f"p = load_isolated_provider({str(build_native('testprovider'))!r})\n"
        "print(p.pid, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, timeout=60
    )
    assert done.returncode == -signal.SIGKILL
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and b"Z" not in _state(pid):
        assert time.monotonic() < deadline, f"provider process {pid} outlived its host"
        time.sleep(0.05)


def _state(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1][:3]
    except OSError:
        return b"Z"


def test_stopping_an_isolated_provider_stops_and_destroys_it_in_the_child(
    isolated: Callable[..., IsolatedProvider], lifecycle_log: Path
) -> None:
    provider = isolated()
    pid = provider.pid
    provider.stop()
    assert lifecycle_log.read_text().splitlines()[-2:] == ["stop", "destroy"]
    assert provider.state == "stopped"
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists():  # reaped by the host
        assert time.monotonic() < deadline, f"the child {pid} is still there"
        time.sleep(0.02)
