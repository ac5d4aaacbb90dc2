"""``wascc ctl top``: the frame from a host's recorder, and the real CLI against ``wascc up``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wascc import GuestError, Host
from wascc.observe import Recorder
from wascc.observe.top import duration, render_text, uptime
from wascc.standalone.control import handlers
from wascc.standalone.reconciler import Reconciler

from conftest import call_payload
from providers import TESTING, RecordingProvider


def test_top_renders_actors_providers_bindings_and_errors(
    host: Host, start_actor: Callable[..., str]
) -> None:
    host.add_provider(RecordingProvider())
    actor = start_actor(caps=[TESTING], name="counter")
    host.set_binding(actor, TESTING)
    with Recorder(host) as recorder:
        for _ in range(5):
            host.call_actor(actor, "Call", call_payload(TESTING, "Echo", b"x"))
        with pytest.raises(GuestError):
            host.call_actor(actor, "Fail", b"out of coffee")
        answer = handlers(host, Reconciler(host), lambda: {"site": "lab"}, recorder)["top"]({})
    text = render_text(answer)
    lines = text.splitlines()
    assert "wascc top" in lines[0] and "1 actor(s), 2 provider(s)" in lines[0]
    assert "labels: site=lab" in lines[0]
    (row,) = [line for line in lines if f"│ counter │ {actor[:12]}…" in line]
    cells = row.replace("│", " ").split()
    # name, key, calls/s, p50, p99, calls, errors, instances, health
    assert cells[0] == "counter" and cells[5:7] == ["6", "1"]
    (prow,) = [line for line in lines if line.startswith(f"│ {TESTING} │ default")]
    assert prow.replace("│", " ").split()[3:5] == ["5", "0"]  # calls, errors
    assert any(f"│ counter │ {TESTING} │ default │" in line for line in lines)
    assert "recent errors" in text
    (err,) = [line for line in lines if "GuestError" in line]
    assert "Fail" in err and "out of coffee" in err


def test_top_without_a_recorder_is_refused(host: Host) -> None:
    from wascc import ControlError

    with pytest.raises(ControlError, match="no call statistics"):
        handlers(host, Reconciler(host), dict)["top"]({})


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (0.000085, "85us"), (0.0032, "3.2ms"), (1.5, "1.50s")],
)
def test_durations_fit_a_narrow_column(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_uptime_reads_like_a_clock() -> None:
    assert [uptime(s) for s in (12, 250, 7500, 3 * 86400 + 4 * 3600)] == [
        "12s",
        "4m10s",
        "2h05m",
        "3d04h",
    ]


# ---- the real thing: `wascc up` (the demo) and `wascc ctl top --once` -------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The built-in demo under ``wascc up`` with a control socket and --metrics."""
    port, metrics = _free_port(), _free_port()
    control = tmp_path / "wascc.sock"
    env = {**os.environ, "WASCC_DEMO_DIR": str(tmp_path / "keys"), "WASCC_DEMO_PORT": str(port)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wascc",
            "up",
            "--health-interval",
            "0",
            "--control",
            str(control),
            "--metrics",
            str(metrics),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        for _ in range(4):  # the banner, then one line per demo URL
            if not process.stdout.readline():
                process.wait(30)
                raise AssertionError(f"exit {process.returncode}: {process.communicate()[1]}")
        yield {"port": port, "metrics": metrics, "control": control}
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def test_ctl_top_once_against_a_running_host(demo: dict[str, Any]) -> None:
    for _ in range(3):
        with urllib.request.urlopen(f"http://127.0.0.1:{demo['port']}/hi", timeout=10) as r:
            assert r.status == 200
    time.sleep(1.2)  # one sample later: calls/s covers these calls
    done = subprocess.run(
        [sys.executable, "-m", "wascc", "ctl", "--control", str(demo["control"]), "top", "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    actor_rows = [line for line in lines if "…" in line]  # the actors table shortens keys
    (echo,) = [line for line in actor_rows if line.startswith("│ echo ")]
    assert echo.replace("│", " ").split()[5] == "3"  # calls
    assert any(line.startswith("│ kvcounter ") for line in actor_rows)
    assert sum("wascc:http_server" in line for line in lines) >= 3  # provider + 2 bindings
    assert "no recent errors" in done.stdout
    with urllib.request.urlopen(f"http://127.0.0.1:{demo['metrics']}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert 'wascc_http_requests_total{binding="default",status="200"} 3.0' in text
