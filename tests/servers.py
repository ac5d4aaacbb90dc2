"""Real servers for the tests: started on 127.0.0.1 on a free port, stopped by pid.

``ServerProcess`` is the one helper: it runs a server binary with the command
line ``argv(port)`` gives, logs to a file, waits until the port accepts
connections, stops it by its own pid (``stop``: SIGTERM, then SIGKILL if it
lingers; ``kill``: SIGKILL, a crash) and starts it again on the same port
(``restart``, or ``kill`` then ``start``: the reconnect tests).  The
``start_*`` functions are the servers themselves (redis-server, nats-server,
nats-server in operator mode, mosquitto); the session fixtures in conftest.py,
the benchmarks and the fuzz targets use them.
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
    "nats_jwt",
    "start_mosquitto",
    "start_nats",
    "start_nats_operator",
    "start_redis",
    "which",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def which(name: str) -> str | None:
    """The path of a server binary, or None (Debian puts some in /usr/sbin, off a user's PATH)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")


def find_binary(name: str) -> str:
    """The path of a server binary; an error naming the fix if it is not installed."""
    found = which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed; run `bash .ci/system-deps` as root")
    return found


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class ServerProcess:
    """One server process on a fixed port (a free one unless given); it keeps the port."""

    def __init__(
        self, name: str, argv: Callable[[int], list[str]], log: Path, port: int = 0
    ) -> None:
        self.name = name
        self.port = port or free_port()
        self.log = log
        self._argv = argv
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 20.0) -> ServerProcess:
        """Start the server and wait until its port accepts connections."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self._argv(self.port),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while not _accepts(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}: "
                    f"{self.log.read_text(errors='replace')[-2000:]}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not listen on port {self.port} in {timeout}s")
            time.sleep(0.02)
        return self

    def kill(self) -> None:
        """SIGKILL by pid (a crash, not a clean shutdown) and reap it."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM by pid, SIGKILL if it lingers; returns once the port no longer accepts."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()
        deadline = time.monotonic() + 5
        while _accepts(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self) -> ServerProcess:
        """Stop, then start again on the same port."""
        self.stop()
        return self.start()


def start_redis(workdir: Path, *extra: str) -> ServerProcess:
    """redis-server on 127.0.0.1, no persistence; ``extra`` are more of its options."""
    binary = find_binary("redis-server")

    def argv(port: int) -> list[str]:
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        return [binary, "--port", str(port), *options, "--dir", str(workdir), *extra]

    return ServerProcess("redis-server", argv, workdir / "redis.log").start()


def start_nats(workdir: Path) -> ServerProcess:
    """nats-server on 127.0.0.1 (max_payload 8 MB so 1 MiB bodies fit with room)."""
    binary = find_binary("nats-server")
    config = workdir / "nats.conf"
    config.write_text("max_payload: 8MB\n")

    def argv(port: int) -> list[str]:
        return [binary, "-a", "127.0.0.1", "-p", str(port), "-c", str(config)]

    return ServerProcess("nats-server", argv, workdir / "nats.log").start()


def start_mosquitto(workdir: Path) -> ServerProcess:
    """mosquitto on 127.0.0.1, anonymous clients allowed, no persistence."""
    binary = find_binary("mosquitto")
    port = free_port()
    config = workdir / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 100000\n"
    )
    return ServerProcess(
        "mosquitto", lambda _port: [binary, "-c", str(config)], workdir / "mosquitto.log", port
    ).start()


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

    server = ServerProcess("nats-server (operator)", argv, workdir / "op.log").start()
    return server, NatsUser(user_jwt, user.seed, creds)
