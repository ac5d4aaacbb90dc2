"""wascc:telnet, the native C provider (native/providers/telnet), with real sockets.

The actor is tests/actors/telnet_echo.wat: it echoes every ReceiveText back with
SendText; its "greeter" build also sends each new session its own id from
SessionStarted, which is how these tests see session ids.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import wasmtime

from wascc import BindingError, GuestError, Host
from wascc._providers import library
from wascc.errors import ProviderCallError
from wascc.providers.native import NativeProvider, load_native_provider
from wascc.wire.codec import CapabilityConfiguration, HealthResponse, pack

from conftest import ACTORS, Signer, call_payload

TELNET = "wascc:telnet"
ECHO_WAT = (ACTORS / "telnet_echo.wat").read_text()
MOTD_TEXT = "Welcome to wascc\nsecond line\n"
MOTD_WIRE = b"Welcome to wascc\r\nsecond line\r\n"
TIMEOUT = 5.0


def build_echo(*, greet: bool = False) -> bytes:
    marker = "(i32.const 0)) ;; GREET"
    assert marker in ECHO_WAT
    return wasmtime.wat2wasm(ECHO_WAT.replace(marker, f"(i32.const {int(greet)})) ;; GREET"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client:
    """A telnet client on a real socket; every read has a timeout."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, n: int) -> bytes:
        """Exactly n bytes."""
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"closed after {self.buf!r}")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until_closed(self) -> bytes:
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                out, self.buf = self.buf, b""
                return out
            self.buf += chunk

    def nothing_pending(self, wait: float = 0.2) -> bool:
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(1)
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(TIMEOUT)
        self.buf += chunk
        return False

    def echo(self, line: bytes, end: bytes = b"\r\n") -> bytes:
        self.send(line + end)
        return self.read(len(line))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def connect(port: int) -> Client:
        c = Client(port)
        made.append(c)
        return c

    yield connect
    for c in made:
        c.close()


@pytest.fixture
def provider(host: Host) -> NativeProvider:
    p = load_native_provider(library("telnet"))
    host.add_provider(p)
    return p


@pytest.fixture
def motd(tmp_path: Path) -> Path:
    path = tmp_path / "motd.txt"
    path.write_text(MOTD_TEXT)
    return path


EchoActor = Callable[..., tuple[str, int]]


@pytest.fixture
def echo_actor(host: Host, sign: Signer, provider: NativeProvider, motd: Path) -> EchoActor:
    """echo_actor(greet=False, **values) -> (actor key, port it listens on)."""

    def start(*, greet: bool = False, name: str = "echo", **values: str) -> tuple[str, int]:
        signed, _ = sign(build_echo(greet=greet), caps=[TELNET], name=name)
        key = host.add_actor(signed)
        port = free_port()
        host.set_binding(key, TELNET, values={"PORT": str(port), "MOTD": str(motd), **values})
        return key, port

    return start


def greeted(client: Client) -> str:
    """The greeter's first words: the MOTD, then the session id."""
    assert client.read(len(MOTD_WIRE)) == MOTD_WIRE
    return client.read(36).decode()


def send(host: Host, key: str, session: str, text: str | bytes) -> bytes:
    return host.call_actor(key, "Send", pack({"session": session, "text": text}))


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    except ConnectionRefusedError:
        return True
    return False


# ---- sessions -----------------------------------------------------------------------


def test_motd_greets_each_session(echo_actor: EchoActor, clients: Callable[..., Client]) -> None:
    _, port = echo_actor()
    for _ in range(2):
        c = clients(port)
        assert c.read(len(MOTD_WIRE)) == MOTD_WIRE  # LF sent as CR LF
        assert c.nothing_pending()


def test_without_motd_nothing_is_written_first(
    echo_actor: EchoActor, clients: Callable[..., Client]
) -> None:
    _, port = echo_actor(MOTD="")
    c = clients(port)
    assert c.nothing_pending()
    assert c.echo(b"hi") == b"hi"


def test_lines_echo_back_as_sent_without_a_newline_added(
    echo_actor: EchoActor, clients: Callable[..., Client]
) -> None:
    _, port = echo_actor()
    c = clients(port)
    c.read(len(MOTD_WIRE))
    assert c.echo(b"hello") == b"hello"  # CR LF
    assert c.echo(b"world", b"\n") == b"world"  # LF
    assert c.echo(b"bare", b"\r") == b"bare"  # a bare CR ends the line too
    assert c.echo(b"cr-nul", b"\r\0") == b"cr-nul"  # telnet's CR NUL
    assert c.echo("héllo wörld ✓".encode()) == "héllo wörld ✓".encode()
    # two lines in one packet, then a line split over two packets
    c.send(b"one\r\ntwo\r\nthr")
    assert c.read(6) == b"onetwo"
    c.send(b"ee\r\n")
    assert c.read(5) == b"three"
    assert c.nothing_pending()


def test_line_editing_control_characters_and_telnet_commands(
    echo_actor: EchoActor, clients: Callable[..., Client]
) -> None:
    _, port = echo_actor()
    c = clients(port)
    c.read(len(MOTD_WIRE))
    c.send(b"helo\x08lo\x07 w\x7f\x7f world\r\n")  # BS/DEL erase, BEL is dropped
    assert c.read(11) == b"hello world"
    c.send("naï\x08ive\r\n".encode())  # BS erases a whole UTF-8 character
    assert c.read(5) == b"naive"
    # IAC DO ECHO and IAC WILL NAWS are refused; IAC SB ... IAC SE and IAC NOP vanish
    c.send(b"\xff\xfd\x01\xff\xfb\x1fa\xff\xfa\x18\x01\xff\xf0b\xff\xf1c\r\n")
    assert c.read(6) == b"\xff\xfc\x01\xff\xfe\x1f"
    assert c.read(3) == b"abc"


def test_an_empty_line_is_dispatched_and_tabs_are_kept(
    echo_actor: EchoActor, clients: Callable[..., Client]
) -> None:
    _, port = echo_actor()
    c = clients(port)
    c.read(len(MOTD_WIRE))
    c.send(b"\r\n\r\n")
    assert c.echo(b"a\tb") == b"a\tb"


def test_session_started_is_dispatched_after_the_motd_with_distinct_uuid4s(
    echo_actor: EchoActor, clients: Callable[..., Client]
) -> None:
    _, port = echo_actor(greet=True)
    a, b = clients(port), clients(port)
    id_a, id_b = greeted(a), greeted(b)
    assert uuid.UUID(id_a).version == 4 and str(uuid.UUID(id_a)) == id_a
    assert uuid.UUID(id_b).version == 4
    assert id_a != id_b
    # each session's echo reaches its own client only
    assert a.echo(b"for a") == b"for a"
    assert b.echo(b"for b") == b"for b"
    assert a.nothing_pending() and b.nothing_pending()


def test_many_concurrent_sessions(
    echo_actor: EchoActor, provider: NativeProvider, clients: Callable[..., Client]
) -> None:
    _, port = echo_actor(greet=True)
    conns = [clients(port) for _ in range(32)]
    ids = {greeted(c) for c in conns}
    assert len(ids) == 32
    health = HealthResponse.decode(provider.handle_call("system", "HealthRequest", b"\x80"))
    assert health.healthy and "1 listeners, 32 sessions" in health.message
    errors: list[BaseException] = []

    def talk(n: int, c: Client) -> None:
        try:
            for i in range(10):
                line = f"client {n} line {i}".encode()
                assert c.echo(line) == line
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=talk, args=(n, c)) for n, c in enumerate(conns)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []


def test_a_client_disconnect_does_not_disturb_the_others(
    host: Host,
    echo_actor: EchoActor,
    provider: NativeProvider,
    clients: Callable[..., Client],
) -> None:
    key, port = echo_actor(greet=True)
    a, b = clients(port), clients(port)
    id_a, _ = greeted(a), greeted(b)
    a.send(b"half a line")
    a.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    a.close()  # a reset, mid-line
    assert b.echo(b"still here") == b"still here"
    c = clients(port)
    greeted(c)
    assert c.echo(b"newcomer") == b"newcomer"

    def gone() -> bool:
        health = provider.handle_call("system", "HealthRequest", b"\x80")
        return "2 sessions" in HealthResponse.decode(health).message

    wait_for(gone, "the closed session to be reaped")
    with pytest.raises(GuestError, match=f"no session {id_a}"):
        send(host, key, id_a, "anyone?")


def test_a_client_that_half_closes_still_gets_its_echo(
    echo_actor: EchoActor, clients: Callable[..., Client]
) -> None:
    _, port = echo_actor()
    c = clients(port)
    c.read(len(MOTD_WIRE))
    c.send(b"last words\n")
    c.sock.shutdown(socket.SHUT_WR)
    assert c.read_until_closed() == b"last words"


# ---- SendText -----------------------------------------------------------------------


def test_send_text_from_the_actor_reaches_the_session(
    host: Host, echo_actor: EchoActor, clients: Callable[..., Client]
) -> None:
    key, port = echo_actor(greet=True)
    c = clients(port)
    session = greeted(c)
    assert send(host, key, session, "pushed\r\n") == b""
    assert c.read(8) == b"pushed\r\n"
    assert send(host, key, session, b"\xffbin") == b""  # a 0xFF byte is sent as IAC IAC
    assert c.read(5) == b"\xff\xffbin"


def test_send_text_to_an_unknown_session_is_an_error(
    host: Host, echo_actor: EchoActor, clients: Callable[..., Client]
) -> None:
    key, port = echo_actor()
    unknown = str(uuid.uuid4())
    with pytest.raises(GuestError, match=f"SendText: no session {unknown}"):
        send(host, key, unknown, "hello?")
    for payload, message in [
        (b"\xc1", "not a msgpack map"),
        (pack({"text": "no session"}), "has no session"),
        (pack({"session": 7, "text": "x"}), "not valid msgpack"),
    ]:
        with pytest.raises(GuestError, match=message):
            host.call_actor(key, "Send", payload)
    # the provider goes on
    c = clients(port)
    c.read(len(MOTD_WIRE))
    assert c.echo(b"fine") == b"fine"


def test_send_text_to_a_closed_session_is_an_error(
    host: Host, echo_actor: EchoActor, clients: Callable[..., Client]
) -> None:
    key, port = echo_actor(greet=True)
    c = clients(port)
    session = greeted(c)
    c.close()

    def refused_now() -> bool:
        try:
            send(host, key, session, "x")
        except GuestError as exc:
            assert session in str(exc)
            return True
        return False

    wait_for(refused_now, "SendText to the closed session to fail")


def test_an_actor_cannot_write_to_another_actors_session(
    host: Host, echo_actor: EchoActor, clients: Callable[..., Client]
) -> None:
    _, port_a = echo_actor(greet=True, name="a")
    key_b, _ = echo_actor(name="b")
    c = clients(port_a)
    session = greeted(c)
    with pytest.raises(GuestError, match="not this actor's"):
        send(host, key_b, session, "intruder")
    assert c.nothing_pending()


def test_a_slow_client_blocks_neither_the_host_nor_other_sessions(
    host: Host, echo_actor: EchoActor, clients: Callable[..., Client]
) -> None:
    key, port = echo_actor(greet=True)
    slow, fast = clients(port), clients(port)
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    session = greeted(slow)  # ... and then it reads no more
    greeted(fast)
    chunk = "x" * (256 * 1024)
    with pytest.raises(GuestError, match="not reading"):
        for _ in range(400):  # 100 MiB: far more than the socket buffers hold
            started = time.monotonic()
            send(host, key, session, chunk)
            assert time.monotonic() - started < 2.0
            assert fast.echo(b"ping") == b"ping"
    assert fast.echo(b"still served") == b"still served"
    with pytest.raises(GuestError, match=session):  # closed, or already reaped
        send(host, key, session, "x")


# ---- bindings -----------------------------------------------------------------------


def test_remove_binding_closes_the_listener_and_its_sessions(
    host: Host, echo_actor: EchoActor, clients: Callable[..., Client]
) -> None:
    key, port = echo_actor()
    a, b = clients(port), clients(port)
    a.read(len(MOTD_WIRE))
    b.read(len(MOTD_WIRE))
    b.send(b"partial")
    assert host.remove_binding(key, TELNET)
    assert a.read_until_closed() == b""
    assert b.read_until_closed() == b""
    assert refused(port)
    # bound again on the same port at once (SO_REUSEADDR), it serves again
    host.set_binding(key, TELNET, values={"PORT": str(port)})
    c = clients(port)
    assert c.echo(b"again") == b"again"


def test_binding_twice_is_idempotent(
    host: Host,
    echo_actor: EchoActor,
    provider: NativeProvider,
    clients: Callable[..., Client],
    motd: Path,
) -> None:
    key, port = echo_actor()
    config = CapabilityConfiguration(key, {"PORT": str(port), "MOTD": str(motd)}).encode()
    assert provider.handle_call("system", "BindActor", config) == b""
    assert provider.handle_call("system", "BindActor", config) == b""
    c = clients(port)
    c.read(len(MOTD_WIRE))
    assert c.echo(b"one listener") == b"one listener"
    remove = CapabilityConfiguration(key, {}).encode()
    assert provider.handle_call("system", "RemoveActor", remove) == b""
    assert provider.handle_call("system", "RemoveActor", remove) == b""
    assert refused(port)


def test_a_failed_rebind_keeps_the_listener_and_its_sessions(
    host: Host, echo_actor: EchoActor, clients: Callable[..., Client], motd: Path
) -> None:
    key, port = echo_actor()
    c = clients(port)
    c.read(len(MOTD_WIRE))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        for values in (
            {"PORT": "notaport"},
            {"PORT": str(busy)},
            {"PORT": str(port), "MOTD": "/nonexistent"},
        ):
            with pytest.raises(BindingError):
                host.set_binding(key, TELNET, values=values)
    assert c.echo(b"still here") == b"still here"  # the old session goes on
    again = clients(port)
    assert again.read(len(MOTD_WIRE)) == MOTD_WIRE  # the old listener, old MOTD


def test_a_good_rebind_moves_the_listener(
    host: Host, echo_actor: EchoActor, clients: Callable[..., Client], motd: Path
) -> None:
    key, port = echo_actor()
    moved = free_port()
    host.set_binding(key, TELNET, values={"PORT": str(moved), "MOTD": str(motd)})
    c = clients(moved)
    assert c.read(len(MOTD_WIRE)) == MOTD_WIRE
    assert c.echo(b"moved") == b"moved"
    assert refused(port)
    host.set_binding(key, TELNET, values={"PORT": str(moved)})  # same port, no MOTD
    assert clients(moved).echo(b"same port") == b"same port"


def test_a_port_in_use_fails_the_binding_naming_the_port(
    host: Host, sign: Signer, provider: NativeProvider
) -> None:
    signed, _ = sign(build_echo(), caps=[TELNET])
    key = host.add_actor(signed)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BindingError, match=rf"127\.0\.0\.1:{port}.*in use"):
            host.set_binding(key, TELNET, values={"PORT": str(port)})
    assert [b for b in host.bindings() if b.actor == key] == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "PORT is required"),
        ({"PORT": "telnet"}, "PORT telnet is not a port number"),
        ({"PORT": "0"}, "PORT 0 is not a port number"),
        ({"PORT": "70000"}, "PORT 70000 is not a port number"),
        ({"PORT": "{port}", "ADDR": "example.com"}, "ADDR example.com is not an IP address"),
        ({"PORT": "{port}", "MOTD": "/no/such/motd"}, "cannot open MOTD /no/such/motd"),
        ({"PORT": "{port}", "MOTD": "/"}, "MOTD / is not a regular file"),
        ({"PORT": "{port}", "MAX_SESSIONS": "-3"}, "MAX_SESSIONS -3 is not a positive"),
    ],
)
def test_invalid_configuration_fails_the_binding(
    host: Host, sign: Signer, provider: NativeProvider, values: dict[str, str], message: str
) -> None:
    signed, _ = sign(build_echo(), caps=[TELNET])
    key = host.add_actor(signed)
    port = str(free_port())
    values = {k: v.replace("{port}", port) for k, v in values.items()}
    with pytest.raises(BindingError, match=message):
        host.set_binding(key, TELNET, values=values)


def test_a_huge_motd_fails_the_binding(
    host: Host, sign: Signer, provider: NativeProvider, tmp_path: Path
) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * (64 * 1024 + 1))
    signed, _ = sign(build_echo(), caps=[TELNET])
    key = host.add_actor(signed)
    with pytest.raises(BindingError, match="larger than 65536 bytes"):
        host.set_binding(key, TELNET, values={"PORT": str(free_port()), "MOTD": str(big)})


def test_max_sessions_turns_away_extra_connections(
    echo_actor: EchoActor, clients: Callable[..., Client]
) -> None:
    _, port = echo_actor(MAX_SESSIONS="1")
    first = clients(port)
    first.read(len(MOTD_WIRE))
    extra = clients(port)
    assert b"too many sessions" in extra.read_until_closed()
    assert first.echo(b"unaffected") == b"unaffected"


def test_the_listener_is_on_loopback_by_default(
    echo_actor: EchoActor, clients: Callable[..., Client]
) -> None:
    _, port = echo_actor()
    c = clients(port)
    assert c.sock.getpeername() == ("127.0.0.1", port)


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_addr_may_be_ipv6(host: Host, echo_actor: EchoActor) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    _, port = echo_actor(ADDR="::1")
    with socket.create_connection(("::1", port), timeout=TIMEOUT) as s:
        assert s.recv(len(MOTD_WIRE), socket.MSG_WAITALL) == MOTD_WIRE
    assert refused(port)  # not on 127.0.0.1


# ---- line discipline limits ----------------------------------------------------------


def test_a_line_over_4096_bytes_closes_the_session_with_a_notice(
    echo_actor: EchoActor, clients: Callable[..., Client]
) -> None:
    _, port = echo_actor()
    ok = clients(port)
    ok.read(len(MOTD_WIRE))
    assert ok.echo(b"y" * 4096) == b"y" * 4096  # the limit itself is fine
    c = clients(port)
    c.read(len(MOTD_WIRE))
    c.send(b"z" * 5000)
    rest = c.read_until_closed()
    assert b"wascc:telnet: closing the session: line longer than 4096 bytes" in rest
    assert b"z" not in rest
    assert ok.echo(b"others go on") == b"others go on"


def test_binary_data_closes_the_session_with_a_notice(
    echo_actor: EchoActor, clients: Callable[..., Client]
) -> None:
    _, port = echo_actor()
    c = clients(port)
    c.read(len(MOTD_WIRE))
    assert c.echo(b"text first") == b"text first"
    c.send(b"\xc3\x28\x80\xfe junk\n")
    assert b"closing the session: binary data" in c.read_until_closed()


# ---- the host's side ----------------------------------------------------------------


def test_host_stop_with_open_sessions_returns_promptly_and_closes_them(
    host: Host, echo_actor: EchoActor, clients: Callable[..., Client]
) -> None:
    _, port = echo_actor()
    _, port2 = echo_actor(name="second")
    conns = [clients(port) for _ in range(3)] + [clients(port2)]
    for c in conns:
        c.read(len(MOTD_WIRE))
    conns[0].send(b"in the middle of a li")
    started = time.monotonic()
    host.stop()
    assert time.monotonic() - started < 2.0
    for c in conns:
        assert c.read_until_closed() == b""
    assert refused(port) and refused(port2)


def test_removing_the_provider_stops_everything(
    host: Host, echo_actor: EchoActor, clients: Callable[..., Client]
) -> None:
    _, port = echo_actor()
    c = clients(port)
    c.read(len(MOTD_WIRE))
    host.remove_provider(TELNET)
    assert c.read_until_closed() == b""
    assert refused(port)


def test_core_operations_are_for_the_host_only(
    host: Host, echo_actor: EchoActor, provider: NativeProvider
) -> None:
    key, port = echo_actor()
    config = CapabilityConfiguration(key, {"PORT": str(port)}).encode()
    for op in ("BindActor", "RemoveActor", "GetCapabilityDescriptor", "HealthRequest"):
        with pytest.raises(ProviderCallError, match=f"{op} is reserved for the host"):
            provider.handle_call(key, op, config)
    with pytest.raises(ProviderCallError, match="not bound to wascc:telnet"):
        provider.handle_call("system", "SendText", pack({"session": "x", "text": "y"}))
    assert not refused(port)


def test_the_test_actor_can_call_send_text_too(
    host: Host, start_actor: Callable[..., str], provider: NativeProvider
) -> None:
    key = start_actor(caps=[TELNET])
    host.set_binding(key, TELNET, values={"PORT": str(free_port())})
    payload = pack({"session": str(uuid.uuid4()), "text": "x"})
    with pytest.raises(GuestError, match="no session"):
        host.call_actor(key, "Call", call_payload(TELNET, "SendText", payload))
    with pytest.raises(GuestError, match="does not support the operation Shout"):
        host.call_actor(key, "Call", call_payload(TELNET, "Shout", b""))


def test_actor_errors_do_not_end_the_session(
    host: Host,
    start_actor: Callable[..., str],
    provider: NativeProvider,
    clients: Callable[..., Client],
    motd: Path,
) -> None:
    # the plain test actor answers SessionStarted and ReceiveText with an error
    key = start_actor(caps=[TELNET])
    port = free_port()
    host.set_binding(key, TELNET, values={"PORT": str(port), "MOTD": str(motd)})
    c = clients(port)
    assert c.read(len(MOTD_WIRE)) == MOTD_WIRE
    c.send(b"anyone there?\r\n")
    assert c.nothing_pending(0.3)
    health = HealthResponse.decode(provider.handle_call("system", "HealthRequest", b"\x80"))
    assert "1 sessions" in health.message


def test_descriptor(provider: NativeProvider) -> None:
    descriptor = provider.descriptor()
    assert descriptor.id == TELNET
    assert [op.name for op in descriptor.supported_operations] == [
        "SessionStarted",
        "ReceiveText",
        "SendText",
    ]
