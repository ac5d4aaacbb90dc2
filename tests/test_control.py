"""wascc.standalone.control: the control socket's server against real Unix sockets.

Bounded reads, a bounded pool of workers behind a real listen backlog, an
error answer for every bad line, and an idle timeout.  The daemon-level
tests (20 concurrent ``wascc ctl`` clients, a 200 MiB line against ``wascc
up``) are in test_daemon.py.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wascc.errors import ActorLoadError, ControlError, NotFound, ProviderError
from wascc.host import Host
from wascc.standalone.control import ControlServer, handle_line, request
from wascc.standalone.resolve import resolve_provider


def _handlers() -> dict[str, Any]:
    def bind(m: dict[str, Any]) -> dict[str, Any]:
        return {"values": m.get("values") or {}}

    def stop_actor(m: dict[str, Any]) -> dict[str, Any]:
        raise NotFound(f"no actor {m['actor']}")

    return {"inventory": lambda m: {"actors": []}, "bind": bind, "stop-actor": stop_actor}


@pytest.fixture
def control(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "c.sock"
    server = ControlServer(path, _handlers(), workers=2, idle_timeout=5.0, max_line=1 << 20)
    server.start()
    yield path
    server.stop()


def exchange(path: Path, data: bytes) -> dict[str, Any]:
    """Send raw bytes, read one answer line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(path))
        s.sendall(data)
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = s.recv(65536)
            assert chunk, f"closed without an answer after {answer!r}"
            answer += chunk
    result = json.loads(answer)
    assert isinstance(result, dict)
    return result


BAD_LINES = {
    "not JSON": b"inventory please",
    "not UTF-8": b'{"command": "\xff\xfe"}',
    "not an object": b"[1, 2, 3]",
    "no command": b'{"actor": "x"}',
    "command not a string": b'{"command": 7}',
    "deep nesting": b'{"command": "inventory", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "huge integer": b'{"command": "inventory", "x": ' + b"9" * 5000 + b"}",
    "unknown command": b'{"command": "reboot"}',
    "missing argument": b'{"command": "stop-actor"}',
    "wrong type": b'{"command": "stop-actor", "actor": 12}',
    "huge integer argument": b'{"command": "stop-actor", "actor": ' + b"1" * 4000 + b"}",
    "values not an object": b'{"command": "bind", "actor": "a", "capability": "c", "values": []}',
    "nested value": b'{"command": "bind", "actor": "a", "capability": "c", "values": {"K": [1]}}',
}


@pytest.mark.parametrize("line", BAD_LINES.values(), ids=list(BAD_LINES))
def test_every_bad_line_gets_an_error_answer(control: Path, line: bytes) -> None:
    answer = exchange(control, line + b"\n")
    assert answer["ok"] is False
    assert isinstance(answer["error"], str) and answer["error"]


def test_bad_lines_name_what_is_wrong() -> None:
    def error(line: bytes) -> str:
        answer = json.loads(handle_line(_handlers(), line))
        assert answer["ok"] is False
        return str(answer["error"])

    assert "nested too deeply" in error(BAD_LINES["deep nesting"])
    assert "not a JSON request" in error(BAD_LINES["huge integer"])
    assert "unknown command 'reboot'" in error(BAD_LINES["unknown command"])
    assert "missing argument 'actor'" in error(BAD_LINES["missing argument"])
    assert "'actor' must be a string, not 12" in error(BAD_LINES["wrong type"])
    assert "'values' must be an object" in error(BAD_LINES["values not an object"])
    assert len(error(b'{"command": "' + b"x" * 100_000 + b'"}')) < 500


def test_the_connection_serves_more_lines_after_a_bad_one(control: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(control))
        s.sendall(b"nonsense\n" + b'{"command": "inventory"}\n')
        data = b""
        while data.count(b"\n") < 2:
            chunk = s.recv(65536)
            assert chunk
            data += chunk
    first, second = (json.loads(x) for x in data.splitlines())
    assert first["ok"] is False and second == {"ok": True, "actors": []}


def test_a_line_over_the_limit_is_refused_before_it_ends(control: Path) -> None:
    """The server answers once the limit is passed, while the client is still sending."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(control))
        sent = 0
        chunk = b"x" * 65536
        with pytest.raises(OSError):  # the server closes: EPIPE / ECONNRESET
            while sent < 64 << 20:
                sent += s.send(chunk)
        answer = s.recv(65536)
    assert sent < 8 << 20  # refused near the 1 MiB limit, not after the whole line
    result = json.loads(answer)
    assert result["ok"] is False and "request too large" in result["error"]


def test_silent_clients_do_not_block_others(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    server = ControlServer(path, _handlers(), workers=2, idle_timeout=0.5)
    server.start()
    silent = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(4)]
    try:
        for s in silent:
            s.connect(str(path))  # and never send a byte: they hold both workers
        answer = request(path, "inventory", timeout=30)
        assert answer == {"ok": True, "actors": []}
        for s in silent:  # the server closed each after its idle timeout
            s.settimeout(30)
            assert s.recv(1) == b""
    finally:
        for s in silent:
            s.close()
        server.stop()


def test_more_clients_than_workers_wait_instead_of_being_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"

    workers: set[int] = set()

    def slow(m: dict[str, Any]) -> dict[str, Any]:
        workers.add(threading.get_ident())
        time.sleep(0.01)
        return {}

    server = ControlServer(path, {"slow": slow}, workers=2)
    server.start()
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(5):
            answer = request(path, "slow", timeout=60)
            with lock:
                answers.append(answer)

    try:
        threads = [threading.Thread(target=client) for _ in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.stop()
    assert answers == [{"ok": True}] * 150
    assert len(workers) == 2  # two workers, not a thread per client


def test_close_stops_accepting_and_removes_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    server = ControlServer(path, _handlers())
    server.start()
    assert request(path, "inventory")["ok"]
    server.stop()
    assert not path.exists()


@pytest.mark.parametrize("spec", [":Provider", "..relative:Provider"])
def test_a_provider_spec_with_no_importable_module_is_a_provider_error(
    fast_host: Host, spec: str
) -> None:
    """Found by fuzz_control: ``add-provider :x`` escaped as a ValueError."""
    with pytest.raises(ProviderError, match=f"{spec}: "):
        resolve_provider(spec, fast_host)


def test_an_actor_path_with_a_nul_byte_is_an_actor_load_error(fast_host: Host) -> None:
    """Found by fuzz_control: ``start-actor`` with "a\\x00b" escaped as a ValueError."""
    with pytest.raises(ActorLoadError, match="embedded null byte"):
        fast_host.add_actor(Path("/tmp/a\x00b.wasm"))


def test_an_actor_path_that_is_no_regular_file_is_refused_unread(fast_host: Host) -> None:
    """``start-actor /dev/zero`` through the socket must not read until memory runs out."""
    with pytest.raises(ActorLoadError, match="not a regular file"):
        fast_host.add_actor(Path("/dev/zero"))


def test_an_actor_file_over_the_size_limit_is_refused(
    fast_host: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wascc.engine import guest

    monkeypatch.setattr(guest, "MAX_MODULE_BYTES", 1024)
    big = tmp_path / "big.wasm"
    big.write_bytes(b"\0asm" + bytes(2048))
    with pytest.raises(ActorLoadError, match="larger than 1024 bytes"):
        fast_host.add_actor(big)


def test_serves_when_descriptors_are_past_1024(control: Path) -> None:
    """A busy host has many descriptors; select() could not watch one past 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        if hard != resource.RLIM_INFINITY and hard < 4096:
            pytest.skip("needs 4096 file descriptors")
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        for _ in range(3):
            assert request(control, "inventory", timeout=30)["ok"]
    finally:
        for fd in held:
            os.close(fd)


def test_the_client_reports_a_refused_oversized_request_as_a_control_error(
    control: Path,
) -> None:
    """The host answers 'request too large' and closes while the client still sends."""
    answer = request(control, "bind", actor="a", capability="c", values={"K": "x" * (4 << 20)})
    assert answer["ok"] is False and "request too large" in answer["error"]


def test_the_client_reports_a_host_that_answers_garbage(tmp_path: Path) -> None:
    path = tmp_path / "bad.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen()

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"not json\n")

        thread = threading.Thread(target=answer)
        thread.start()
        with pytest.raises(ControlError, match="not JSON"):
            request(path, "inventory", timeout=10)
        thread.join()
