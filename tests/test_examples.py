"""The example actors, end to end against the real providers they use."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wascc import GuestError, Host, NotBound
from wascc._providers import library
from wascc.providers.native import load_native_provider
from wascc.wire.codec import HttpRequest, HttpResponse

from conftest import BuiltExamples


@pytest.fixture
def host(examples: BuiltExamples) -> Iterator[Host]:
    h = Host(trusted_issuers=[examples.account], health_interval=0, load_entry_points=False)
    yield h
    h.stop()


def http(host: Host, actor: str, path: str = "/", **fields: object) -> HttpResponse:
    request = HttpRequest(path=path, **fields)  # type: ignore[arg-type]
    return HttpResponse.decode(host.call_actor(actor, "HandleRequest", request.encode()))


def test_echo_answers_a_json_echo_of_the_request(host: Host, examples: BuiltExamples) -> None:
    actor = host.add_actor(examples.signed("echo"))
    response = http(
        host,
        actor,
        "/hello/wörld",
        method="POST",
        query_string="a=1&b=two",
        header={"Content-Type": "text/plain", "X-Quote": 'say "hi"\t\\'},
        body='line1\nline2 \u2713 "quoted"'.encode(),
    )
    assert response.status_code == 200 and response.header["Content-Type"] == "application/json"
    assert json.loads(response.body) == {
        "method": "POST",
        "path": "/hello/wörld",
        "query_string": "a=1&b=two",
        "headers": {"Content-Type": "text/plain", "X-Quote": 'say "hi"\t\\'},
        "body": 'line1\nline2 \u2713 "quoted"',
    }


def test_echo_keeps_json_valid_for_binary_bodies(host: Host, examples: BuiltExamples) -> None:
    actor = host.add_actor(examples.signed("echo"))
    body = bytes(range(256))
    echoed = json.loads(http(host, actor, "/bin", body=body).body)["body"]
    assert echoed.startswith("\x00\x01\x02") and "\ufffd" in echoed  # invalid UTF-8 replaced


def test_echo_refuses_a_payload_that_is_not_a_request(host: Host, examples: BuiltExamples) -> None:
    actor = host.add_actor(examples.signed("echo"))
    with pytest.raises(GuestError, match="not an HTTP request"):
        host.call_actor(actor, "HandleRequest", b"\x93\x01\x02")
    assert http(host, actor, "/after").status_code == 200


def test_kvcounter_counts_per_path_in_native_keyvalue(host: Host, examples: BuiltExamples) -> None:
    actor = host.add_actor(examples.signed("kvcounter"))
    host.add_provider(load_native_provider(library("keyvalue")))
    host.set_binding(actor, "wascc:keyvalue")
    counts = [json.loads(http(host, actor, "/hits").body)["counter"] for _ in range(3)]
    assert counts == [1, 2, 3]
    assert json.loads(http(host, actor, "/other").body) == {"counter": 1}


def test_kvcounter_without_keyvalue_fails_with_the_reason(
    host: Host, examples: BuiltExamples
) -> None:
    actor = host.add_actor(examples.signed("kvcounter"))
    with pytest.raises(GuestError, match=r"keyvalue Add failed: .*no provider is registered"):
        http(host, actor, "/hits")


def test_logger_writes_one_line_per_level(
    host: Host, examples: BuiltExamples, tmp_path: Path
) -> None:
    actor = host.add_actor(examples.signed("logger"))
    host.add_provider(load_native_provider(library("logging")))
    log = tmp_path / "logger.log"
    host.set_binding(actor, "wascc:logging", values={"FILE": str(log), "LEVEL": "TRACE"})
    assert http(host, actor, "/x", method="PUT").body == b"logged 5 lines\n"
    lines = log.read_text().splitlines()
    assert [line.split()[1] for line in lines] == ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]
    assert all(actor in line and line.endswith("PUT /x") for line in lines)


def test_logger_lines_are_filtered_by_the_bindings_level(
    host: Host, examples: BuiltExamples, tmp_path: Path
) -> None:
    actor = host.add_actor(examples.signed("logger"))
    host.add_provider(load_native_provider(library("logging")))
    log = tmp_path / "logger.log"
    host.set_binding(actor, "wascc:logging", values={"FILE": str(log), "LEVEL": "WARN"})
    http(host, actor, "/y")
    assert [line.split()[1] for line in log.read_text().splitlines()] == ["ERROR", "WARN"]


# ---- chat over real sockets ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client:
    """A telnet-ish line client."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def expect(self, text: str) -> str:
        """Read until ``text`` shows up; returns everything read so far."""
        deadline = time.monotonic() + 10
        while text.encode() not in self.buffer:
            assert time.monotonic() < deadline, f"never got {text!r}; got {self.buffer!r}"
            chunk = self.sock.recv(4096)
            assert chunk, f"connection closed before {text!r}; got {self.buffer!r}"
            self.buffer += chunk
        seen, _, self.buffer = self.buffer.partition(text.encode())
        return (seen + text.encode()).decode()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def chat(host: Host, examples: BuiltExamples) -> Iterator[int]:
    actor = host.add_actor(examples.signed("chat"), max_instances=4)
    host.add_provider(load_native_provider(library("keyvalue")))
    host.add_provider(load_native_provider(library("telnet")))
    port = free_port()
    host.set_binding(actor, "wascc:keyvalue")
    host.set_binding(actor, "wascc:telnet", values={"PORT": str(port)})
    yield port


def test_chat_relays_lines_between_sessions(chat: int) -> None:
    alice = Client(chat)
    alice.expect("Welcome to the wascc chat")  # alice is in the room before bob arrives
    bob = Client(chat)
    try:
        bob.expect("Welcome to the wascc chat")
        alice.expect("joined")  # bob's arrival
        alice.send("/nick alice")
        alice.expect("you are now alice")
        bob.expect("is now alice")
        bob.send("/nick bob")
        bob.expect("you are now bob")
        alice.send("hello bob")
        bob.expect("alice: hello bob")
        bob.send("/who")
        bob.expect("* here:")
        who = bob.expect("\r\n")
        assert "alice" in who and "bob" in who
        bob.send("/quit")
        bob.expect("bye")
        alice.expect("bob left")
    finally:
        alice.close()
        bob.close()


def test_chat_forgets_sessions_that_disconnect(chat: int) -> None:
    alice = Client(chat)
    alice.expect("Welcome")
    ghost = Client(chat)
    try:
        ghost.expect("Welcome")
        ghost.close()
        deadline = time.monotonic() + 10
        while True:  # the provider notices the hang-up; the next relay to it fails
            alice.send("anyone?")
            alice.send("/who")
            alice.expect("* here:")
            who = alice.expect("\r\n")
            if who.count("guest-") == 1:
                break
            assert time.monotonic() < deadline, f"the closed session never left: {who}"
            time.sleep(0.05)
    finally:
        alice.close()


def test_chat_unbound_from_telnet_cannot_answer(host: Host, examples: BuiltExamples) -> None:
    actor = host.add_actor(examples.signed("chat"))
    with pytest.raises((GuestError, NotBound)):
        host.call_actor(actor, "SessionStarted", b"\x81\xa7session\xa1x")


def test_example_actors_are_small(examples: BuiltExamples) -> None:
    sizes = {name: len(examples.signed(name)) for name in ("echo", "kvcounter", "logger", "chat")}
    print("signed example sizes:", sizes)
    assert all(size < 64 * 1024 for size in sizes.values())
