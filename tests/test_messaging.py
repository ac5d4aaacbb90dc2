"""wascc:messaging: the contract over the in-process broker, NATS and MQTT.

Real parts only: the actor is C (tests/guests/c/messaging_actor.c) built with
clang for wasm32; nats-server and mosquitto run once per session
(tests/servers.py); the "plain clients" are nats-py, paho-mqtt and the
in-process broker's own Python API.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import nats
import paho.mqtt.client as mqtt
import pytest
import wascc_capabilities.messaging
from nats.aio.msg import Msg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from wascc_capabilities.messaging import MessagingProvider, Settings, to_subject, to_topic
from wascc_capabilities.messaging.broker import Broker
from wascc_capabilities.messaging.provider import decode_broker_message
from wascc_capabilities.messaging.subjects import check_subject, matches

from wascc import BindingError, GuestError, Host, ProviderError, WasccError
from wascc.observe import Recorder, registry
from wascc.wire.codec import BrokerMessage, RequestMessage

from conftest import Signer
from servers import ServerProcess, free_port, start_nats_operator

ROOT = Path(__file__).parent.parent
GUEST = Path(__file__).parent / "guests" / "c" / "messaging_actor.c"
MESSAGING = "wascc:messaging"
WAIT = 10.0  # seconds any one expected message may take (generous for a loaded machine)


# ---- collecting what arrives ---------------------------------------------------------------


class Inbox:
    """Messages a plain client received: (subject, body), in order, thread-safe."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()

    def put(self, subject: str, body: bytes) -> None:
        with self._cond:
            self.items.append((subject, body))
            self._cond.notify_all()

    def wait(self, n: int = 1, timeout: float = WAIT) -> list[tuple[str, bytes]]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.items) >= n, timeout)
            assert len(self.items) >= n, f"got {len(self.items)} of {n} messages in {timeout}s"
            return list(self.items)

    def bodies(self) -> list[bytes]:
        with self._cond:
            return [b for _, b in self.items]


class Plain(Protocol):
    """A client that is not an actor: what a user's other systems speak."""

    def publish(self, subject: str, body: bytes, reply: str = "") -> None: ...
    def subscribe(self, subject: str) -> Inbox: ...
    def request(self, subject: str, body: bytes, timeout: float) -> bytes: ...
    def respond(self, subject: str, answer: Callable[[bytes], bytes]) -> None: ...
    def close(self) -> None: ...


class LocalPlain:
    """Python code on the in-process broker."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def publish(self, subject: str, body: bytes, reply: str = "") -> None:
        self.broker.publish(subject, body, reply)

    def subscribe(self, subject: str) -> Inbox:
        inbox = Inbox()
        self.broker.subscribe(subject, lambda s, _r, b: inbox.put(s, b))
        return inbox

    def request(self, subject: str, body: bytes, timeout: float) -> bytes:
        return self.broker.request(subject, body, timeout)

    def respond(self, subject: str, answer: Callable[[bytes], bytes]) -> None:
        self.broker.subscribe(subject, lambda _s, r, b: self.broker.publish(r, answer(b)))

    def close(self) -> None:
        pass


class NatsPlain:
    """nats-py on an event loop of its own."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.nc = self.run(
            nats.connect(url, reconnect_time_wait=0.05, max_reconnect_attempts=-1, name="plain")
        )

    def run(self, coro: Any, timeout: float = WAIT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def publish(self, subject: str, body: bytes, reply: str = "") -> None:
        self.run(self.nc.publish(subject, body, reply=reply))
        self.run(self.nc.flush())

    def subscribe(self, subject: str) -> Inbox:
        inbox = Inbox()

        async def on_msg(msg: Msg) -> None:
            inbox.put(msg.subject, msg.data)

        self.run(self.nc.subscribe(subject, cb=on_msg))
        self.settle()
        return inbox

    def request(self, subject: str, body: bytes, timeout: float) -> bytes:
        msg = self.run(self.nc.request(subject, body, timeout=timeout))
        return bytes(msg.data)

    def respond(self, subject: str, answer: Callable[[bytes], bytes]) -> None:
        async def on_msg(msg: Msg) -> None:
            await self.nc.publish(msg.reply, answer(msg.data))

        self.run(self.nc.subscribe(subject, cb=on_msg))
        self.settle()

    def settle(self) -> None:
        """The server has our SUBs (twice: nats-py's PING may overtake a pending SUB)."""
        self.run(self.nc.flush())
        self.run(self.nc.flush())

    def close(self) -> None:
        self.run(self.nc.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class MqttPlain:
    """paho-mqtt 2 (MQTT 5), QoS 1."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.inboxes: list[tuple[str, Inbox]] = []
        self.responders: list[tuple[str, Callable[[bytes], bytes]]] = []
        self.connected = threading.Event()
        self.acks: dict[int, threading.Event] = {}
        self.lock = threading.Lock()
        self.client.on_connect = lambda *_: self.connected.set()
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.connected.wait(WAIT)

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, *_: Any) -> None:
        with self.lock:
            event = self.acks.pop(mid, None)
        if event:
            event.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        subject = to_subject(msg.topic)
        for pattern, inbox in list(self.inboxes):
            if matches(pattern, subject):
                inbox.put(subject, bytes(msg.payload))
        for pattern, answer in list(self.responders):
            if matches(pattern, subject):
                reply = getattr(msg.properties, "ResponseTopic", "")
                self.client.publish(reply, answer(bytes(msg.payload)), qos=1)

    def _subscribe(self, subject: str) -> None:
        event = threading.Event()
        with self.lock:
            _, mid = self.client.subscribe(to_topic(subject), qos=1)
            assert mid is not None
            self.acks[mid] = event
        assert event.wait(WAIT)

    def publish(self, subject: str, body: bytes, reply: str = "") -> None:
        props = None
        if reply:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ResponseTopic = to_topic(reply)
        self.client.publish(to_topic(subject), body, qos=1, properties=props).wait_for_publish(WAIT)

    def subscribe(self, subject: str) -> Inbox:
        inbox = Inbox()
        self.inboxes.append((subject, inbox))
        self._subscribe(subject)
        return inbox

    def request(self, subject: str, body: bytes, timeout: float) -> bytes:
        reply = f"_INBOX.plain.{secrets.token_hex(6)}"
        inbox = self.subscribe(reply)
        self.publish(subject, body, reply)
        return inbox.wait(1, timeout)[0][1]

    def respond(self, subject: str, answer: Callable[[bytes], bytes]) -> None:
        self.responders.append((subject, answer))
        self._subscribe(subject)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---- the actor and the rig -------------------------------------------------------------------


@pytest.fixture(scope="session")
def messaging_wasm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    clang = shutil.which("clang")
    if clang is None or shutil.which("wasm-ld") is None:
        pytest.fail("clang and wasm-ld (lld) are needed to build tests/guests/c/messaging_actor.c")
    out = tmp_path_factory.mktemp("messaging_actor") / "messaging_actor.wasm"
    command = [clang, "--target=wasm32", "-nostdlib", "-Oz", "-Wall", "-Wextra", "-Werror"]
    command += [f"-I{ROOT / 'native' / 'include'}", "-Wl,--no-entry", "-Wl,--strip-all"]
    done = subprocess.run(
        [*command, "-o", str(out), str(GUEST)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"clang could not build {GUEST.name}:\n{done.stderr}"
    return out.read_bytes()


@dataclass
class Rig:
    """A host with the messaging provider, one backend, and a plain client on it."""

    kind: str
    host: Host
    provider: MessagingProvider
    plain: Plain
    url: str
    sign: Signer
    wasm: bytes
    actors: list[str] = field(default_factory=list)

    def actor(self, subscription: str = "", **values: str) -> str:
        """A running messaging actor bound with SUBSCRIPTION and ``values`` (URL added)."""
        signed, _ = self.sign(self.wasm, caps=[MESSAGING], name=f"msg{len(self.actors)}")
        key = self.host.add_actor(signed, max_instances=1)
        binding = {"SUBSCRIPTION": subscription, **values}
        if self.url:
            binding.setdefault("URL", self.url)
        if self.kind == "mqtt":
            binding.setdefault("QOS", "1")
        self.host.set_binding(key, MESSAGING, values=binding)
        self.actors.append(key)
        return key

    def count(self, actor: str) -> int:
        return int(self.host.call_actor(actor, "Count"))

    def request(self, actor: str, subject: str, body: bytes, timeout_ms: int) -> bytes:
        payload = RequestMessage(subject=subject, body=body, timeout=timeout_ms).encode()
        return self.host.call_actor(actor, "Request", payload)

    def publish(self, actor: str, subject: str, body: bytes, reply_to: str = "") -> None:
        payload = BrokerMessage(subject=subject, reply_to=reply_to, body=body).encode()
        self.host.call_actor(actor, "Publish", payload)


def _make_plain(kind: str, provider: MessagingProvider, nats_url: str, mqtt_port: int) -> Plain:
    if kind == "local":
        return LocalPlain(provider.broker)
    if kind == "nats":
        return NatsPlain(nats_url)
    return MqttPlain(mqtt_port)


@pytest.fixture(params=["local", "nats", "mqtt"])
def rig(
    request: pytest.FixtureRequest,
    host: Host,
    sign: Signer,
    messaging_wasm: bytes,
) -> Iterator[Rig]:
    kind = str(request.param)
    url = ""
    nats_url, mqtt_port = "", 0
    if kind == "nats":
        server: ServerProcess = request.getfixturevalue("nats_server")
        nats_url = url = f"nats://127.0.0.1:{server.port}"
    elif kind == "mqtt":
        server = request.getfixturevalue("mqtt_server")
        mqtt_port = server.port
        url = f"mqtt://127.0.0.1:{server.port}"
    provider = MessagingProvider()
    host.add_provider(provider)
    plain = _make_plain(kind, provider, nats_url, mqtt_port)
    yield Rig(kind, host, provider, plain, url, sign, messaging_wasm)
    plain.close()


def unique(prefix: str) -> str:
    """A subject no other test uses (the servers live for the whole session)."""
    return f"{prefix}{secrets.token_hex(4)}"


# ---- the contract, on every backend ----------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1024, 1024 * 1024], ids=["0B", "1KiB", "1MiB"])
def test_actor_receives_what_a_plain_client_publishes_body_intact(rig: Rig, size: int) -> None:
    base = unique("data")
    seen = rig.plain.subscribe(f"seen.{base}.>")
    actor = rig.actor(f"{base}.>")
    body = secrets.token_bytes(size)
    rig.plain.publish(f"{base}.x", body)
    [(subject, got)] = seen.wait(1)
    assert subject == f"seen.{base}.x"
    assert got == body
    assert rig.count(actor) == 1


def test_a_plain_clients_request_is_answered_by_the_actor_publishing_to_reply_to(
    rig: Rig,
) -> None:
    subject = unique("svc.echo")
    rig.actor(subject)
    assert rig.plain.request(subject, b"ping", WAIT) == b"ping"


def test_the_actors_request_returns_a_plain_responders_body(rig: Rig) -> None:
    subject = unique("svc.plain")
    rig.plain.respond(subject, lambda body: b"pong:" + body)
    actor = rig.actor()
    assert rig.request(actor, subject, b"hi", 5000) == b"pong:hi"


def test_the_actors_request_times_out_with_an_error_naming_subject_and_ms(rig: Rig) -> None:
    silent = unique("svc.silent")
    rig.plain.subscribe(silent)  # someone listens, nobody answers
    actor = rig.actor()
    started = time.monotonic()
    with pytest.raises(GuestError) as caught:
        rig.request(actor, silent, b"?", 300)
    assert time.monotonic() - started >= 0.25
    assert silent in str(caught.value) and "300 ms" in str(caught.value)
    nobody = unique("svc.nobody")
    with pytest.raises(GuestError, match=rf"{nobody}.*300 ms"):
        rig.request(actor, nobody, b"?", 300)


def test_two_actors_in_one_queue_group_share_1000_messages(rig: Rig) -> None:
    subject = unique("work")
    seen = rig.plain.subscribe(f"seen.{subject}")
    first = rig.actor(subject, QUEUEGROUP_NAME="workers")
    second = rig.actor(subject, QUEUEGROUP_NAME="workers")
    sent = [str(i).encode() for i in range(1000)]
    for body in sent:
        rig.plain.publish(subject, body)
    got = [b for _, b in seen.wait(1000)]
    time.sleep(0.2)  # a duplicate would arrive now
    got = seen.bodies()
    assert len(got) == 1000 and set(got) == set(sent)
    counts = (rig.count(first), rig.count(second))
    assert sum(counts) == 1000 and min(counts) > 0, counts


def test_remove_actor_stops_delivery(rig: Rig) -> None:
    subject = unique("gone")
    seen = rig.plain.subscribe(f"seen.{subject}")
    actor = rig.actor(subject)
    rig.plain.publish(subject, b"before")
    seen.wait(1)
    assert rig.host.remove_binding(actor, MESSAGING)
    rig.plain.publish(subject, b"after")
    time.sleep(0.3)
    assert seen.bodies() == [b"before"]
    assert rig.count(actor) == 1


def test_rebinding_with_other_values_replaces_the_subscriptions(rig: Rig) -> None:
    old, new = unique("old"), unique("new")
    seen = rig.plain.subscribe("seen.>")
    actor = rig.actor(old)
    rig.host.set_binding(actor, MESSAGING, values={"SUBSCRIPTION": new, "URL": rig.url, "QOS": "1"})
    rig.host.set_binding(actor, MESSAGING, values={"SUBSCRIPTION": new, "URL": rig.url, "QOS": "1"})
    rig.plain.publish(old, b"old")
    rig.plain.publish(new, b"new")
    seen.wait(1)
    time.sleep(0.3)
    assert [b for s, b in seen.items if s.endswith((old, new))] == [b"new"]
    assert len(rig.provider.stats().subscriptions) == 1


def test_an_actor_error_on_deliver_message_is_logged_and_the_subscription_goes_on(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    subject = unique("flaky")
    seen = rig.plain.subscribe(f"seen.{subject}")
    actor = rig.actor(subject)
    with caplog.at_level(logging.ERROR, logger="wascc_capabilities.messaging"):
        rig.plain.publish(subject, b"fail now")
        rig.plain.publish(subject, b"fine")
        assert seen.wait(1) == [(f"seen.{subject}", b"fine")]
    assert rig.count(actor) == 2
    logged = [r.getMessage() for r in caplog.records if "DeliverMessage" in r.getMessage()]
    assert any(subject in line and actor in line and "asked to fail" in line for line in logged)
    assert rig.provider.stats().failed == 1


def test_bad_config_is_refused_at_bind_and_the_host_goes_on(rig: Rig) -> None:
    closed = free_port()
    scheme = "mqtt" if rig.kind == "mqtt" else "nats"
    bad = [
        ({"URL": f"{scheme}://127.0.0.1:notaport"}, "cannot be parsed"),
        ({"URL": "ftp://127.0.0.1"}, "no scheme this provider knows"),
        ({"URL": f"{scheme}://127.0.0.1:{closed}", "CONNECT_TIMEOUT": "1"}, "cannot connect"),
        ({"URL": rig.url or "nats://127.0.0.1:1", "CLIENT_JWT": "a.b.c"}, "without CLIENT_SEED"),
        ({"SUBSCRIPTION": "a.>.b"}, "must be the last token"),
        ({"MAX_PENDING": "lots"}, "not an integer"),
    ]
    signed, _ = rig.sign(rig.wasm, caps=[MESSAGING], name="bad")
    victim = rig.host.add_actor(signed)
    for values, why in bad:
        with pytest.raises(BindingError, match=why):
            rig.host.set_binding(victim, MESSAGING, values=values)
        assert not any(b.actor == victim for b in rig.host.bindings())
    # the rest of the host goes on: a good binding still delivers
    subject = unique("after")
    seen = rig.plain.subscribe(f"seen.{subject}")
    rig.actor(subject)
    rig.plain.publish(subject, b"still here")
    assert seen.wait(1)[0][1] == b"still here"


def test_what_is_published_right_after_the_binding_reaches_the_actor(rig: Rig) -> None:
    """BindActor returns once the server has the subscription (NATS: a PING/PONG after SUB)."""
    base = unique("race")
    seen = rig.plain.subscribe(f"seen.{base}.>")
    for i in range(30):
        rig.actor(f"{base}.{i}")
        rig.plain.publish(f"{base}.{i}", b"%d" % i)
    got = sorted(int(b) for b in dict(seen.wait(30)).values())
    assert got == list(range(30))


# ---- NATS: the server killed and restarted mid-stream ---------------------------------------


def test_nats_killed_and_restarted_the_provider_reconnects_and_counts_what_was_lost(
    host: Host, sign: Signer, messaging_wasm: bytes, nats_server: ServerProcess
) -> None:
    url = f"nats://127.0.0.1:{nats_server.port}"
    provider = MessagingProvider()
    host.add_provider(provider)
    rig = Rig("nats", host, provider, NatsPlain(url), url, sign, messaging_wasm)
    subject = unique("stream")
    actor = rig.actor(
        subject, RECONNECT_WAIT="0.05", RECONNECT_MAX_WAIT="0.2", PUBLISH_BUFFER="4096"
    )
    seen = rig.plain.subscribe(f"seen.{subject}")
    for i in range(100):
        rig.plain.publish(subject, b"%d" % i)
    seen.wait(100)
    assert provider.health().healthy

    nats_server.kill()
    deadline = time.monotonic() + WAIT
    while provider.health().healthy and time.monotonic() < deadline:
        time.sleep(0.01)
    health = provider.health()
    assert not health.healthy and "disconnected" in health.message
    # while disconnected: the actor's publishes fill PUBLISH_BUFFER, then are refused (counted)
    refused = 0
    for i in range(20):
        try:
            rig.publish(actor, f"seen.{subject}", b"x" * 1000 + b"%d" % i)
        except GuestError as exc:
            assert "PUBLISH_BUFFER" in str(exc)
            refused += 1
    assert 0 < refused < 20
    assert provider.stats().publish_refused == refused

    nats_server.start()  # the same port
    deadline = time.monotonic() + WAIT
    while not provider.health().healthy and time.monotonic() < deadline:
        time.sleep(0.02)
    assert provider.health().healthy
    stats = provider.stats()
    assert stats.disconnects == 1 and stats.reconnects >= 1
    # the buffered publishes went out after the reconnect; the subscription is back
    rig.plain.close()
    plain = NatsPlain(url)
    try:
        seen_after = plain.subscribe(f"seen.{subject}")
        for i in range(100, 200):
            plain.publish(subject, b"%d" % i)
        got = seen_after.wait(100)
        assert [b for _, b in got][-100:] == [b"%d" % i for i in range(100, 200)]
    finally:
        plain.close()
    assert rig.count(actor) == 200
    assert host.call_actor(actor, "Count")  # the host never crashed


def test_a_publish_larger_than_the_servers_max_payload_is_an_error(
    host: Host, sign: Signer, messaging_wasm: bytes, nats_server: ServerProcess
) -> None:
    url = f"nats://127.0.0.1:{nats_server.port}"
    provider = MessagingProvider()
    host.add_provider(provider)
    rig = Rig("nats", host, provider, LocalPlain(provider.broker), url, sign, messaging_wasm)
    actor = rig.actor()
    with pytest.raises(GuestError, match="max_payload"):
        rig.publish(actor, unique("huge"), b"x" * (9 * 1024 * 1024))  # the server takes 8 MB
    rig.publish(actor, unique("small"), b"x")


def test_nats_credentials_jwt_and_seed_or_creds_file_authenticate(
    host: Host, sign: Signer, messaging_wasm: bytes, tmp_path: Path
) -> None:
    server, user = start_nats_operator(tmp_path)
    try:
        url = f"nats://127.0.0.1:{server.port}"
        provider = MessagingProvider()
        host.add_provider(provider)
        rig = Rig("nats", host, provider, LocalPlain(provider.broker), url, sign, messaging_wasm)
        subject = unique("secure")
        rig.actor(subject, CLIENT_JWT=user.jwt, CLIENT_SEED=user.seed)
        asker = rig.actor(CREDSFILE=str(user.creds))
        assert rig.request(asker, subject, b"hi", 5000) == b"hi"
        # the server answers -ERR and closes: the client may read either first
        with pytest.raises(BindingError, match=r"Authorization Violation|Connection reset by peer"):
            rig.actor(CONNECT_TIMEOUT="1")  # no credentials
    finally:
        server.stop()


# ---- MQTT: retain, and a broker restart -------------------------------------------------------


@pytest.fixture
def mqtt_rig(
    host: Host, sign: Signer, messaging_wasm: bytes, mqtt_server: ServerProcess
) -> Iterator[Rig]:
    provider = MessagingProvider()
    host.add_provider(provider)
    url = f"mqtt://127.0.0.1:{mqtt_server.port}"
    rig = Rig("mqtt", host, provider, MqttPlain(mqtt_server.port), url, sign, messaging_wasm)
    yield rig
    rig.plain.close()


def test_mqtt_retain_set_per_binding_reaches_a_later_subscriber(mqtt_rig: Rig) -> None:
    subject = unique("retained")
    actor = mqtt_rig.actor(RETAIN="true", QOS="1")
    mqtt_rig.publish(actor, subject, b"last known value")
    time.sleep(0.2)
    late = mqtt_rig.plain.subscribe(subject)  # subscribes after the publish
    assert late.wait(1) == [(subject, b"last known value")]


def test_mqtt_broker_restarted_the_provider_resubscribes(
    mqtt_rig: Rig, mqtt_server: ServerProcess
) -> None:
    subject = unique("mq")
    actor = mqtt_rig.actor(subject, RECONNECT_WAIT="0.1", RECONNECT_MAX_WAIT="1")
    mqtt_rig.plain.close()
    mqtt_server.kill()
    deadline = time.monotonic() + WAIT
    while mqtt_rig.provider.health().healthy and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not mqtt_rig.provider.health().healthy
    mqtt_server.start()
    deadline = time.monotonic() + WAIT
    while not mqtt_rig.provider.health().healthy and time.monotonic() < deadline:
        time.sleep(0.02)
    stats = mqtt_rig.provider.stats()
    assert stats.disconnects == 1 and stats.reconnects == 1
    plain = mqtt_rig.plain = MqttPlain(mqtt_server.port)
    seen = plain.subscribe(f"seen.{subject}")
    plain.publish(subject, b"after the restart")
    assert seen.wait(1) == [(f"seen.{subject}", b"after the restart")]
    assert mqtt_rig.count(actor) == 1


# ---- delivery: back-pressure, replacement ----------------------------------------------------


def test_a_slow_actor_fills_its_queue_and_the_drops_are_counted_and_reported(
    host: Host, sign: Signer, messaging_wasm: bytes
) -> None:
    provider = MessagingProvider()
    host.add_provider(provider)
    rig = Rig("local", host, provider, LocalPlain(provider.broker), "", sign, messaging_wasm)
    subject = unique("slow")
    actor = rig.actor(subject, MAX_PENDING="3")
    for _ in range(20):
        provider.broker.publish(subject, b"spin")
    deadline = time.monotonic() + WAIT * 3
    while time.monotonic() < deadline:
        stats = provider.stats()
        if stats.delivered + stats.dropped >= 20 and not stats.subscriptions[0].pending:
            break
        time.sleep(0.02)
    stats = provider.stats()
    assert stats.dropped >= 10 and stats.delivered >= 3
    assert stats.delivered + stats.dropped == 20
    assert provider.dropped() == stats.dropped
    assert f"{stats.dropped} dropped" in provider.health().message
    assert rig.count(actor) == stats.delivered


def test_delivered_and_dropped_messages_are_in_the_metrics(
    host: Host, sign: Signer, messaging_wasm: bytes
) -> None:
    provider = MessagingProvider()
    host.add_provider(provider)
    rig = Rig("local", host, provider, LocalPlain(provider.broker), "", sign, messaging_wasm)
    subject = unique("metered")
    rig.actor(subject, MAX_PENDING="3")
    with Recorder(host) as recorder:
        metrics = registry(host, recorder)
        for _ in range(20):
            provider.broker.publish(subject, b"spin")
        deadline = time.monotonic() + WAIT * 3
        while time.monotonic() < deadline:
            stats = provider.stats()
            if stats.delivered + stats.dropped >= 20 and not stats.subscriptions[0].pending:
                break
            time.sleep(0.02)
        stats = provider.stats()
        default = {"binding": "default"}
        assert metrics.get_sample_value("wascc_messaging_delivered_total", default) == (
            stats.delivered
        )
        assert metrics.get_sample_value("wascc_messaging_dropped_total", default) == stats.dropped
        assert stats.dropped > 0 and stats.delivered + stats.dropped == 20


def test_an_actor_may_publish_from_its_first_message_while_later_subscriptions_are_made(
    host: Host, sign: Signer, messaging_wasm: bytes
) -> None:
    provider = MessagingProvider()
    host.add_provider(provider)
    signed, _ = sign(messaging_wasm, caps=[MESSAGING], name="early")
    actor = host.add_actor(signed, max_instances=1)
    subject = unique("early")
    answers = LocalPlain(provider.broker).subscribe(f"{subject}.answer")
    stop = threading.Event()

    def publish() -> None:
        while not stop.is_set():  # every message asks the actor to Publish an answer
            provider.broker.publish(subject, b"q", f"{subject}.answer")
            time.sleep(0.0001)

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        later = ",".join(f"{subject}.later{i}" for i in range(40))
        host.set_binding(actor, MESSAGING, values={"SUBSCRIPTION": f"{subject},{later}"})
        answers.wait(1)
    finally:
        stop.set()
        publisher.join()
    assert provider.stats().failed == 0


def test_messages_for_an_actor_being_replaced_wait_for_the_new_module(
    host: Host, sign: Signer, messaging_wasm: bytes
) -> None:
    provider = MessagingProvider()
    host.add_provider(provider)
    plain = LocalPlain(provider.broker)
    signed, module = sign(messaging_wasm, caps=[MESSAGING], name="replaced")
    actor = host.add_actor(signed, max_instances=1)
    subject = unique("swap")
    host.set_binding(actor, MESSAGING, values={"SUBSCRIPTION": subject})
    seen = plain.subscribe(f"seen.{subject}")
    again, _ = sign(messaging_wasm + b"", caps=[MESSAGING], name="replaced", module=module)

    def publish() -> None:
        for i in range(1000):
            provider.broker.publish(subject, b"%d" % i)

    publisher = threading.Thread(target=publish)
    publisher.start()
    time.sleep(0.005)
    host.replace_actor(actor, again)
    host.replace_actor(actor, signed)
    publisher.join()
    got = [b for _, b in seen.wait(1000)]
    assert got == [b"%d" % i for i in range(1000)]
    assert provider.stats().dropped == 0


# ---- the in-process broker, subjects and topics ----------------------------------------------


def test_broker_wildcards_and_queue_groups_follow_nats() -> None:
    broker = Broker()
    got: dict[str, list[str]] = {"star": [], "tail": [], "exact": [], "g1": [], "g2": []}

    def sink(name: str) -> Callable[[str, str, bytes], None]:
        return lambda subject, _reply, _body: got[name].append(subject)

    broker.subscribe("a.*.c", sink("star"))
    broker.subscribe("a.>", sink("tail"))
    broker.subscribe("a.b.c", sink("exact"))
    broker.subscribe("a.b.c", sink("g1"), "group")
    broker.subscribe("a.*.c", sink("g2"), "group")
    for subject in ["a.b.c", "a.x.c", "a.b", "a", "a.b.c.d", "b.b.c"]:
        broker.publish(subject, b"")
    assert got["star"] == ["a.b.c", "a.x.c"]
    assert got["tail"] == ["a.b.c", "a.x.c", "a.b", "a.b.c.d"]
    assert got["exact"] == ["a.b.c"]
    assert sorted(got["g1"] + got["g2"]) == ["a.b.c", "a.x.c"]  # one copy per group


def test_subjects_map_to_mqtt_topics_and_back() -> None:
    assert to_topic("sensors.*.temperature") == "sensors/+/temperature"
    assert to_topic("alerts.>") == "alerts/#"
    assert to_subject("sensors/+/temperature") == "sensors.*.temperature"
    assert to_subject(to_topic("a.b.>")) == "a.b.>"
    assert matches("a.*", "a.b") and not matches("a.*", "a.b.c") and matches(">", "x")


@pytest.mark.parametrize(
    ("subject", "wildcards"),
    [("", True), ("a..b", True), ("a b", True), ("a.>.b", True), ("a.b*", True), ("a.*", False)],
)
def test_bad_subjects_are_refused(subject: str, wildcards: bool) -> None:
    with pytest.raises(WasccError):
        check_subject(subject, wildcards=wildcards)


def test_publish_reads_reply_to_as_well_as_reply_to_camel_case_and_nil() -> None:
    import msgpack

    snake = msgpack.packb({"subject": "s", "reply_to": "r", "body": b"x"}) + b"\x00pad"
    assert decode_broker_message(snake) == BrokerMessage("s", "r", b"x")
    nil = msgpack.packb({"subject": "s", "replyTo": None, "body": b"x"})
    assert decode_broker_message(nil) == BrokerMessage("s", "", b"x")


def test_a_c_actor_reads_reply_to_in_snake_case_too(
    host: Host, sign: Signer, messaging_wasm: bytes
) -> None:
    """The C SDK's BrokerMessage decoder reads ``reply_to`` as well as ``replyTo``."""
    import msgpack

    provider = MessagingProvider()
    host.add_provider(provider)
    signed, _ = sign(messaging_wasm, caps=[MESSAGING], name="snake")
    actor = host.add_actor(signed)
    host.set_binding(actor, MESSAGING)
    answers = LocalPlain(provider.broker).subscribe("answers.>")
    message = {"subject": "ask.x", "reply_to": "answers.snake", "body": b"hi"}
    host.call_actor(actor, "DeliverMessage", msgpack.packb(message))
    assert answers.wait(1) == [("answers.snake", b"hi")]


def test_the_actors_publish_with_reply_to_reaches_a_plain_client(rig: Rig) -> None:
    subject = unique("ask")
    inbox = rig.plain.subscribe(subject)
    actor = rig.actor()
    rig.publish(actor, subject, b"q", reply_to=unique("answers"))
    assert inbox.wait(1)[0] == (subject, b"q")


def test_settings_refuse_jwt_without_seed_and_read_credsfile(tmp_path: Path) -> None:
    from wascc import KeyPair, KeyType

    with pytest.raises(ProviderError, match="CLIENT_JWT is set without CLIENT_SEED"):
        Settings.from_values({"URL": "nats://x:4222", "CLIENT_JWT": "a.b.c"})
    user = KeyPair.generate(KeyType.USER)
    creds = tmp_path / "user.creds"
    creds.write_text(
        "-----BEGIN NATS USER JWT-----\neyJ0.eyJ1.sig\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{user.seed}\n------END USER NKEY SEED------\n"
    )
    settings = Settings.from_values({"URL": "nats://x:4222", "CREDSFILE": str(creds)})
    assert settings.credentials is not None and settings.credentials.jwt == "eyJ0.eyJ1.sig"
    assert user.seed not in repr(settings)
    with pytest.raises(ProviderError, match="NATS credentials"):
        Settings.from_values({"URL": "mqtt://x", "CREDSFILE": str(creds)})


@pytest.mark.parametrize("path", ["/dev/zero", "/", "big"])
def test_a_credsfile_that_is_not_a_small_regular_file_is_refused(path: str, tmp_path: Path) -> None:
    """Found by fuzz/fuzz_messaging.py: CREDSFILE=/dev/zero read until memory ran out."""
    if path == "big":
        big = tmp_path / "big.creds"
        big.write_bytes(b"x" * (1 << 20))
        path = str(big)
    with pytest.raises(ProviderError, match="CREDSFILE"):
        Settings.from_values({"URL": "nats://x:4222", "CREDSFILE": path})


def test_the_provider_is_found_through_its_entry_point() -> None:
    assert wascc_capabilities.messaging.wascc_providers() == [MessagingProvider]
    descriptor = MessagingProvider().descriptor()
    assert descriptor.id == MESSAGING
    assert {op.name for op in descriptor.supported_operations} == {
        "Publish",
        "Request",
        "DeliverMessage",
    }
