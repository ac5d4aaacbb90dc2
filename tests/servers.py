"""Real servers for the tests: start a process on a free loopback port, stop it by pid.

Generic on purpose: a server is an argv template with ``{port}`` (and
``{dir}``, a private directory) and a readiness probe; the fixtures in
``conftest.py`` start each one once per session.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["Server", "free_port", "redis_ping"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_ping(port: int) -> bool:
    """True when a Redis-protocol server answers PING on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class Server:
    """One server process; :meth:`stop` and :meth:`start` again keep its port."""

    def __init__(
        self, name: str, argv: Sequence[str], ready: Callable[[int], bool], timeout: float = 20.0
    ) -> None:
        self.name = name
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"wascc-test-{name}-"))
        self._argv = [a.format(port=self.port, dir=self.dir) for a in argv]
        self._ready = ready
        self._timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Server:
        log = (self.dir / "server.log").open("ab")
        self._proc = subprocess.Popen(self._argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + self._timeout
        while not self._ready(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.dir / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} did not start: {self._argv}\n{tail}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop the process by its pid (SIGTERM, then SIGKILL)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def close(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.dir)
