"""Real servers for the tests: started on 127.0.0.1 on a free port, stopped by pid.

Generic on purpose (one class for redis-server today, nats-server or mosquitto
tomorrow): a command line with ``{port}`` in it, a wait until the port accepts
connections, a stop by the process's own pid, and a restart on the same port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on the port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Server:
    """One server process; ``command`` is a list of arguments with ``{port}`` placeholders."""

    def __init__(self, name: str, command: Sequence[str], log: Path, port: int = 0) -> None:
        self.name = name
        self.command = list(command)
        self.log = log
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, wait: float = 20.0) -> Server:
        """Starts the process and waits until its port accepts connections."""
        args = [part.replace("{port}", str(self.port)) for part in self.command]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait
        while not accepts(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}; see {self.log}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not accept on port {self.port} in {wait} s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stops the process by its pid (SIGTERM, then SIGKILL) and waits until the port is free."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        while accepts(self.port):
            time.sleep(0.02)

    def restart(self) -> Server:
        """Stops and starts again on the same port."""
        self.stop()
        return self.start()
