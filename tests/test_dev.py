"""`wascc dev`: rebuild, sign and hot-swap an example actor while a client calls it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from wascc.standalone.dev import DevError, DevLoop

from conftest import EXAMPLES

WASCC = str(Path(sys.executable).parent / "wascc")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def host(tmp_path: Path) -> tuple[Path, subprocess.Popen[bytes]]:
    """`wascc up` with only the HTTP server provider, trusting any signature."""
    manifest = tmp_path / "host.yaml"
    manifest.write_text("capabilities:\n  - path: wascc:http_server\n")
    control = tmp_path / "ctl.sock"
    log = (tmp_path / "up.log").open("wb")
    process = subprocess.Popen(
        [WASCC, "up", "--manifest", str(manifest), "--control", str(control)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    _wait(lambda: control.exists() or process.poll() is not None, "the control socket")
    assert process.poll() is None, (tmp_path / "up.log").read_text()
    yield control, process
    process.send_signal(signal.SIGTERM)
    process.wait(30)


def test_dev_rebuilds_and_swaps_the_echo_actor_with_no_failed_call(
    tmp_path: Path, host: tuple[Path, subprocess.Popen[bytes]]
) -> None:
    control, _ = host
    source = tmp_path / "echo"
    source.mkdir()
    shutil.copy(EXAMPLES / "echo" / "echo.c", source / "echo.c")
    port = _free_port()
    env = {**os.environ, "WASCC_DEV_DIR": str(tmp_path / "devkeys")}
    out = (tmp_path / "dev.log").open("w")
    dev = subprocess.Popen(
        [
            WASCC, "dev", str(source), "--control", str(control), "-c", "wascc:http_server",
            "--bind", "wascc:http_server", "-v", f"PORT={port}", "--interval", "0.2",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
    )  # fmt: skip
    log = tmp_path / "dev.log"
    try:
        _wait(lambda: "bound echo" in log.read_text() or dev.poll() is not None, "first deploy")
        assert dev.poll() is None, log.read_text()
        seen: list[bytes] = []
        failures: list[str] = []
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/x", timeout=10) as r:
                        seen.append(r.read())
                except (urllib.error.URLError, OSError) as exc:
                    failures.append(repr(exc))

        caller = threading.Thread(target=client)
        caller.start()
        _wait(lambda: len(seen) > 5, "calls to the first build")
        text = (
            (source / "echo.c")
            .read_text()
            .replace('"{\\"method\\":"', '"{\\"v\\":2,\\"method\\":"')
        )
        assert text != (source / "echo.c").read_text()
        (source / "echo.c").write_text(text)
        _wait(lambda: "swapped echo" in log.read_text(), "the swap")
        _wait(lambda: any(b'"v":2' in body for body in seen[-3:]), "the new module's answers")
        stop.set()
        caller.join()
        assert failures == []
        assert seen[0].startswith(b'{"method":"GET"')
        # a broken edit is reported and the running module keeps serving
        (source / "echo.c").write_text(text + "\nthis is not C;\n")
        _wait(lambda: "failed (exit" in log.read_text(), "the build error")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/y", timeout=10) as r:
            assert b'"v":2' in r.read()
    finally:
        dev.send_signal(signal.SIGINT)
        dev.wait(30)
    output = log.read_text()
    assert "signed echo_dev.wasm as M" in output
    assert "changed: echo.c" in output


def test_dev_refuses_a_directory_it_cannot_build(tmp_path: Path) -> None:
    (tmp_path / "a.c").write_text("")
    (tmp_path / "b.c").write_text("")
    loop = DevLoop(tmp_path, control=tmp_path / "none.sock", keys_dir=tmp_path / "keys")
    with pytest.raises(DevError, match="2 C files: say how to build it with --build"):
        loop.build()


def test_dev_reports_an_unreachable_host_and_goes_on(tmp_path: Path) -> None:
    said: list[str] = []
    shutil.copy(EXAMPLES / "echo" / "echo.c", tmp_path / "echo.c")
    loop = DevLoop(
        tmp_path, control=tmp_path / "none.sock", keys_dir=tmp_path / "keys", say=said.append
    )
    assert loop.once() is False
    assert said[0].startswith("built ")
    assert said[-1].startswith("error: cannot reach a host at")
