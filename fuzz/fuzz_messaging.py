"""wascc:messaging: what actors send the provider, and binding values.

The first byte picks the path, the rest is the untrusted payload:
``P`` Publish and ``R`` Request through ``MessagingProvider.handle_call`` on
the in-process broker (a responder on ``>`` answers every request at once, so
a fuzzed timeout never makes a case wait), ``B`` a CapabilityConfiguration
read into binding Settings (URL, SUBSCRIPTION, credentials, numbers,
CREDSFILE paths), anything else a subject (and a wildcard pattern) checked
and matched.
"""

from __future__ import annotations

import random

import msgpack
from wascc_capabilities.messaging import MessagingProvider, Settings
from wascc_capabilities.messaging.subjects import check_subject, matches

from wascc.wire.codec import BrokerMessage, CapabilityConfiguration, RequestMessage

from fuzz.engine import Target

ACTOR = "MBCFOPM6JW2APJLXJD3Z5O4CN7CPYJ2B4FTKLJUR5YR5MITIU7HD3WD5"
_provider: MessagingProvider | None = None


def setup() -> None:
    global _provider
    _provider = MessagingProvider()
    _provider.bind_actor(CapabilityConfiguration(ACTOR, {}))
    broker = _provider.broker

    def responder(_subject: str, reply_to: str, body: bytes) -> None:
        if reply_to:
            broker.publish(reply_to, body[:16])

    broker.subscribe(">", responder)


def teardown() -> None:
    if _provider is not None:
        _provider.stop()


def run(data: bytes) -> None:
    assert _provider is not None
    op, payload = data[:1], data[1:]
    if op == b"P":
        _provider.handle_call(ACTOR, "Publish", payload)
    elif op == b"R":
        _provider.handle_call(ACTOR, "Request", payload)
    elif op == b"B":
        config = CapabilityConfiguration.decode(payload)
        Settings.from_values(config.values, "fuzz")
    else:
        text = payload.decode("utf-8", "replace")
        pattern, _, subject = text.partition("|")
        check_subject(pattern, wildcards=True)
        check_subject(subject, wildcards=False)
        matches(pattern, subject)


_SUBJECTS = ["a", "a.b", "sensors.*.temperature", "x.>", "_INBOX.1", "a..b", "é.ß", "a b"]
_KEYS = ["URL", "SUBSCRIPTION", "QUEUEGROUP_NAME", "CLIENT_JWT", "CLIENT_SEED", "CREDSFILE",
         "QOS", "RETAIN", "MAX_PENDING", "MAX_PENDING_BYTES", "CONNECT_TIMEOUT",
         "RECONNECT_WAIT", "PUBLISH_BUFFER", "REQUEST_TIMEOUT"]  # fmt: skip
_VALUES = ["", "nats://127.0.0.1:1", "mqtt://u:p@h:99999", "nats://[::1", "a.b,c.*", "1e309",
           "nan", "-1", "0", "3", "true", "/dev/zero", "/proc/self/mem", "/", "a.b.c",
           "SUAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]  # fmt: skip


def generate(rng: random.Random) -> bytes:
    kind = rng.choice("PRBS")
    if kind == "P":
        fields: dict[object, object] = {
            "subject": rng.choice(_SUBJECTS),
            rng.choice(["replyTo", "reply_to", "body", 1]): rng.choice(
                [None, "", "r.s", b"x" * rng.randint(0, 64), 7, [1, 2]]
            ),
        }
        return b"P" + msgpack.packb(fields) + rng.choice([b"", b"\x00\xff"])
    if kind == "R":
        fields = {
            "subject": rng.choice(_SUBJECTS),
            "body": rng.choice([b"", b"q", "str", None]),
            "timeout": rng.choice([0, 1, -1, 2**63 - 1, -(2**63), 1.5, "10"]),
        }
        return b"R" + msgpack.packb(fields)
    if kind == "B":
        values = {rng.choice(_KEYS): rng.choice(_VALUES) for _ in range(rng.randint(0, 6))}
        return b"B" + msgpack.packb({"module": ACTOR, "values": values})
    return ("S" + rng.choice(_SUBJECTS) + "|" + rng.choice(_SUBJECTS)).encode()


TARGET = Target(
    name="messaging",
    run=run,
    seeds=[
        b"P" + BrokerMessage("a.b", "r.s", b"body").encode(),
        b"R" + RequestMessage("svc.x", b"q", 100).encode(),
        b"B" + CapabilityConfiguration(ACTOR, {"SUBSCRIPTION": "a.*,b.>"}).encode(),
        b"Sa.*|a.b",
    ],
    generate=generate,
    deadline=5.0,
    setup=setup,
    teardown=teardown,
)
