"""What does an actor cost on wascc:messaging?  Four paths, one run.

* (a) actor -> NATS -> actor: a publisher actor (``benchmarks/messaging_actor.c``,
  ``PublishMany``) publishes through ``MessagingProvider`` to nats-server; a
  subscriber actor bound to its own connection receives ``DeliverMessage``.
* (b) bare nats-py: one connection publishes, another subscribes (asyncio).
* (c) the in-process broker: Python ``broker.publish`` into one actor, and
  actor -> broker -> actor.
* (d) MQTT: (a) over mosquitto (QoS 1) beside bare paho-mqtt (QoS 1).

Each path runs ``--rounds`` times in ABBA order (the machine's drift hits
both sides); the medians are printed.  Messages/s: ``--messages`` bodies of 16 bytes published as fast as the
publisher goes, timed until the subscriber has them all.  p99 latency: one
message at a time (publish, wait until the subscriber has handled it),
``--samples`` times; for an actor "handled" means its ``DeliverMessage``
returned.  Targets: (a)/(b) >= 0.5 in messages/s; (c) >= 100,000 messages/s
into one actor.  nats-server and mosquitto are started on free ports
(tests/servers.py) and stopped at the end.

Run: ``.venv/bin/python benchmarks/bench_messaging.py [--messages N] [--samples N] [--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import nats
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from wascc_capabilities.messaging import MessagingProvider

from wascc import Host, KeyPair, KeyType, sign_module
from wascc.wire.codec import BrokerMessage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from servers import ServerProcess, start_mosquitto, start_nats  # noqa: E402

ACTOR_SOURCE = Path(__file__).resolve().parent / "messaging_actor.c"
MESSAGING = "wascc:messaging"
BODY = b"0123456789abcdef"
TARGET_RATIO = 0.5
TARGET_IN_PROCESS = 100_000
WAIT = 60.0


@dataclass
class Result:
    path: str
    messages_per_second: float
    p99_us: float
    p50_us: float


def build_actor(out: Path) -> bytes:
    clang = shutil.which("clang")
    if clang is None:
        raise SystemExit("clang (wasm32) is needed to build benchmarks/messaging_actor.c")
    wasm = out / "messaging_actor.wasm"
    subprocess.run(
        [clang, "--target=wasm32", "-nostdlib", "-O2", f"-I{ROOT / 'native' / 'include'}",
         "-Wl,--no-entry", "-Wl,--strip-all", "-o", str(wasm), str(ACTOR_SOURCE)],
        check=True,
    )  # fmt: skip
    return wasm.read_bytes()


class TimedProvider(MessagingProvider):
    """The real provider; notes when each DeliverMessage returned (the latency's end)."""

    def __init__(self) -> None:
        super().__init__()
        self.handled = 0
        self.last_ns = 0
        self.cond = threading.Condition()

    def _dispatch(self, actor: str, operation: str, payload: bytes) -> bytes:
        reply = super()._dispatch(actor, operation, payload)
        now = time.perf_counter_ns()
        with self.cond:
            self.handled += 1
            self.last_ns = now
            self.cond.notify_all()
        return reply

    def wait_for(self, n: int) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.handled >= n, WAIT):
                raise RuntimeError(f"only {self.handled} of {n} messages arrived in {WAIT}s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---- through actors -----------------------------------------------------------------


def actor_path(name: str, wasm: bytes, url: str, messages: int, samples: int) -> Result:
    """Publisher actor -> provider (URL) -> subscriber actor."""
    account = KeyPair.generate(KeyType.ACCOUNT)
    host = Host(trusted_issuers=[account.public_key], health_interval=0, load_entry_points=False)
    provider = TimedProvider()
    host.add_provider(provider)

    def start(name: str, **values: str) -> str:
        signed = sign_module(
            wasm,
            issuer=account,
            subject=KeyPair.generate(KeyType.MODULE),
            name=name,
            caps=[MESSAGING],
        )
        key = host.add_actor(signed, max_instances=1)
        if url:
            values["URL"] = url
        if url.startswith("mqtt"):
            values["QOS"] = "1"
        host.set_binding(key, MESSAGING, values=values)
        return key

    subject = "bench." + "".join(c for c in name.split(maxsplit=1)[0] if c.isalnum())
    big = {"MAX_PENDING": str(10 * messages), "MAX_PENDING_BYTES": str(1 << 30)}
    start("subscriber", SUBSCRIPTION=subject, **big)
    publisher = start("publisher", PUBLISH_BUFFER=str(1 << 30))
    message = BrokerMessage(subject=subject, body=BODY).encode()
    try:
        # warm-up, then throughput
        host.call_actor(publisher, "PublishMany", struct.pack("<I", 1000) + message)
        provider.wait_for(1000)
        base = provider.handled
        started = time.perf_counter_ns()
        batch = 1000
        for done in range(0, messages, batch):
            count = min(batch, messages - done)
            host.call_actor(publisher, "PublishMany", struct.pack("<I", count) + message)
        provider.wait_for(base + messages)
        rate = messages / ((provider.last_ns - started) / 1e9)
        # latency: one at a time
        latencies = []
        one = struct.pack("<I", 1) + message
        for _ in range(samples):
            expected = provider.handled + 1
            t0 = time.perf_counter_ns()
            host.call_actor(publisher, "PublishMany", one)
            provider.wait_for(expected)
            latencies.append((provider.last_ns - t0) / 1000)
        return Result(name, rate, percentile(latencies, 0.99), statistics.median(latencies))
    finally:
        host.stop()


def in_process_python(wasm: bytes, messages: int, samples: int) -> Result:
    """Python publishes on the in-process broker into one actor."""
    account = KeyPair.generate(KeyType.ACCOUNT)
    host = Host(trusted_issuers=[account.public_key], health_interval=0, load_entry_points=False)
    provider = TimedProvider()
    host.add_provider(provider)
    signed = sign_module(
        wasm, issuer=account, subject=KeyPair.generate(KeyType.MODULE), name="s", caps=[MESSAGING]
    )
    key = host.add_actor(signed, max_instances=1)
    host.set_binding(
        key,
        MESSAGING,
        values={"SUBSCRIPTION": "bench.py", "MAX_PENDING": str(10 * messages)},
    )
    publish = provider.broker.publish
    try:
        for _ in range(1000):
            publish("bench.py", BODY)
        provider.wait_for(1000)
        started = time.perf_counter_ns()
        for _ in range(messages):
            publish("bench.py", BODY)
        provider.wait_for(1000 + messages)
        rate = messages / ((provider.last_ns - started) / 1e9)
        latencies = []
        for _ in range(samples):
            expected = provider.handled + 1
            t0 = time.perf_counter_ns()
            publish("bench.py", BODY)
            provider.wait_for(expected)
            latencies.append((provider.last_ns - t0) / 1000)
        return Result(
            "(c) python -> in-process -> actor",
            rate,
            percentile(latencies, 0.99),
            statistics.median(latencies),
        )
    finally:
        host.stop()


# ---- bare clients -----------------------------------------------------------------------


def bare_nats(url: str, messages: int, samples: int) -> Result:
    async def run() -> Result:
        pub = await nats.connect(url)
        sub = await nats.connect(url)
        state = {"n": 0, "last": 0}
        arrived = asyncio.Event()
        target = [0]

        async def on_msg(_msg: Any) -> None:
            state["n"] += 1
            state["last"] = time.perf_counter_ns()
            if state["n"] >= target[0]:
                arrived.set()

        await sub.subscribe("bare.nats", cb=on_msg, pending_msgs_limit=10 * messages)
        await sub.flush()

        async def send(count: int) -> None:
            target[0] = state["n"] + count
            arrived.clear()
            for _ in range(count):
                await pub.publish("bare.nats", BODY)
            await pub.flush()
            await asyncio.wait_for(arrived.wait(), WAIT)

        await send(1000)
        started = time.perf_counter_ns()
        await send(messages)
        rate = messages / ((state["last"] - started) / 1e9)
        latencies = []
        for _ in range(samples):
            t0 = time.perf_counter_ns()
            await send(1)
            latencies.append((state["last"] - t0) / 1000)
        await pub.close()
        await sub.close()
        return Result(
            "(b) bare nats-py", rate, percentile(latencies, 0.99), statistics.median(latencies)
        )

    return asyncio.run(run())


def bare_paho(port: int, messages: int, samples: int) -> Result:
    def client(on_message: Callable[..., None] | None = None) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        ready = threading.Event()
        c.on_connect = lambda *_: ready.set()
        if on_message:
            c.on_message = on_message
        c.max_inflight_messages_set(1000)
        c.connect("127.0.0.1", port)
        c.loop_start()
        assert ready.wait(WAIT)
        return c

    cond = threading.Condition()
    state = {"n": 0, "last": 0}

    def on_message(*_: Any) -> None:
        now = time.perf_counter_ns()
        with cond:
            state["n"] += 1
            state["last"] = now
            cond.notify_all()

    sub = client(on_message)
    acked = threading.Event()
    sub.on_subscribe = lambda *_: acked.set()
    sub.subscribe("bare/paho", qos=1)
    assert acked.wait(WAIT)
    pub = client()

    def send(count: int) -> None:
        target = state["n"] + count
        for _ in range(count):
            pub.publish("bare/paho", BODY, qos=1)
        with cond:
            if not cond.wait_for(lambda: state["n"] >= target, WAIT):
                raise RuntimeError(f"paho: {state['n']} of {target} arrived")

    try:
        send(1000)
        started = time.perf_counter_ns()
        send(messages)
        rate = messages / ((state["last"] - started) / 1e9)
        latencies = []
        for _ in range(samples):
            t0 = time.perf_counter_ns()
            send(1)
            latencies.append((state["last"] - t0) / 1000)
        return Result(
            "(d) bare paho (QoS 1)", rate, percentile(latencies, 0.99), statistics.median(latencies)
        )
    finally:
        for c in (pub, sub):
            c.disconnect()
            c.loop_stop()


# ---- the run ----------------------------------------------------------------------------


def combine(runs: list[Result]) -> Result:
    """One path's rounds: the median of each number."""
    return Result(
        runs[0].path,
        statistics.median(r.messages_per_second for r in runs),
        statistics.median(r.p99_us for r in runs),
        statistics.median(r.p50_us for r in runs),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--samples", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3, help="ABBA... rounds; medians")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wasm = build_actor(work)
        servers: list[ServerProcess] = []
        try:
            nats_server = start_nats(work)
            servers.append(nats_server)
            mosquitto = start_mosquitto(work)
            servers.append(mosquitto)
            nats_url = f"nats://127.0.0.1:{nats_server.port}"
            mqtt_url = f"mqtt://127.0.0.1:{mosquitto.port}"
            n, s = args.messages, args.samples
            legs: list[Callable[[], Result]] = [
                lambda: actor_path("(a) actor -> NATS -> actor", wasm, nats_url, n, s),
                lambda: bare_nats(nats_url, n, s),
                lambda: in_process_python(wasm, n, s),
                lambda: actor_path("(c) actor -> in-process -> actor", wasm, "", n, s),
                lambda: actor_path("(d) actor -> MQTT -> actor (QoS 1)", wasm, mqtt_url, n, s),
                lambda: bare_paho(mosquitto.port, n, s),
            ]
            runs: list[list[Result]] = [[] for _ in legs]
            for round_ in range(args.rounds):  # A B ... then ... B A: drift hits both sides
                order = list(range(len(legs)))
                for i in order if round_ % 2 == 0 else reversed(order):
                    runs[i].append(legs[i]())
            results = [combine(r) for r in runs]
        finally:
            for server in servers:
                server.stop()
    a, b = results[0], results[1]
    d, bare_d = results[4], results[5]
    ratios = {
        "(a)/(b) messages/s": a.messages_per_second / b.messages_per_second,
        "(d) actor/bare paho messages/s": d.messages_per_second / bare_d.messages_per_second,
        "(c) python -> actor messages/s": results[2].messages_per_second,
    }
    if args.json:
        print(json.dumps({"results": [asdict(r) for r in results], "ratios": ratios}, indent=2))
        return
    print(f"medians of {args.rounds} rounds, {args.messages} messages, {args.samples} samples")
    print(f"{'path':40} {'msgs/s':>10} {'p50 us':>9} {'p99 us':>9}")
    for r in results:
        print(f"{r.path:40} {r.messages_per_second:10.0f} {r.p50_us:9.0f} {r.p99_us:9.0f}")
    ok_a = ratios["(a)/(b) messages/s"] >= TARGET_RATIO
    ok_c = results[2].messages_per_second >= TARGET_IN_PROCESS
    print(
        f"(a)/(b) = {ratios['(a)/(b) messages/s']:.2f} (target >= {TARGET_RATIO}: "
        f"{'met' if ok_a else 'NOT met'})"
    )
    print(f"(d) actor/bare paho = {ratios['(d) actor/bare paho messages/s']:.2f}")
    print(
        f"(c) in-process into one actor = {results[2].messages_per_second:,.0f} messages/s "
        f"(target >= {TARGET_IN_PROCESS:,}: {'met' if ok_c else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
