"""What do the real backends cost?  Each part compares a wascc round trip with its bare client.

Part ``kv`` (keyvalue on Redis), microseconds per ``Get`` of a 16-byte value,
best of several interleaved repetitions, one run:

* native redis:  actor -> ``__host_call`` -> the native keyvalue provider with
  ``URL=redis://...`` (hiredis, in C) -> Redis -> back to the actor;
* native memory: the same round trip to the same provider without ``URL``;
* redis-py (hiredis parser) / redis-py (Python parser): a bare ``GET`` with
  redis-py on one connection, the floor any client pays;
* python provider on redis-py: the alternative design, a Python provider
  doing the ``Get`` with redis-py (hiredis parser) behind the same host.

Target: native redis within 1.5x of (bare redis-py GET + native memory).

A private ``redis-server`` (Debian package) is started on a free loopback port
and stopped by pid.  Other parts (blob, graph) are functions beside ``kv``;
``--only kv`` runs one.  Run with ``.venv/bin/python benchmarks/bench_backends.py
[--only kv] [--quick] [--json]`` (``make bench`` installs redis-py and hiredis).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import wasmtime
from redis._parsers import _HiredisParser, _RESP2Parser

from wascc import CapabilityProvider, Host, KeyPair, KeyType, sign_module
from wascc._providers import library
from wascc.providers.native import load_native_provider
from wascc.wire.codec import CapabilityDescriptor, GetRequest, GetResponse, SetRequest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from servers import start_redis  # noqa: E402  (the tests' server helper)

KEYVALUE = "wascc:keyvalue"
KV_TARGET_RATIO = 1.5
KEY = "bench-key"
VALUE = "sixteen byte val"


def call_payload(namespace: str, operation: str, payload: bytes, binding: str) -> bytes:
    """The test actor's `Call` payload: length-prefixed binding, namespace, operation."""
    fields = [text.encode() for text in (binding, namespace, operation)]
    return b"".join(bytes([len(f)]) + f for f in fields) + payload


def us_per_call(call: Callable[[bytes], Any], payload: bytes, calls: int) -> float:
    """Microseconds per call over `calls` calls, with the garbage collector off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in itertools.repeat(None, calls):
            call(payload)
        elapsed = time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()
    return elapsed / calls * 1e6


class RedisPyKeyValue(CapabilityProvider):
    """The alternative: a Python provider serving Get with redis-py (hiredis parser)."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self._redis = redis.Redis(port=port, max_connections=4)

    def descriptor(self) -> CapabilityDescriptor:
        return CapabilityDescriptor(id=KEYVALUE, name="redis-py keyvalue")

    def handle(self, actor: str, operation: str, msg: bytes) -> bytes:
        if operation != "Get":
            raise ValueError(f"no operation {operation}")
        raw = self._redis.get(GetRequest.decode(msg).key)
        value = raw.decode() if isinstance(raw, bytes) else ""
        return GetResponse(value=value, exists=raw is not None).encode()


def bare_client(port: int, parser: type[Any]) -> Callable[[bytes], Any]:
    """A bare redis-py GET on one connection with the given parser."""
    client = redis.Redis(connection_pool=redis.ConnectionPool(port=port, parser_class=parser))
    assert client.get(KEY) == VALUE.encode()
    return lambda _: client.get(KEY)


def kv(quick: bool) -> dict[str, Any]:
    """The keyvalue part: native Redis Get against redis-py and the in-memory round trip."""
    calls, repeats = (2_000, 3) if quick else (20_000, 7)
    with tempfile.TemporaryDirectory() as tmp:
        server = start_redis(Path(tmp))
        try:
            return time_kv(server.port, calls, repeats)
        finally:
            server.stop()


def time_kv(port: int, calls: int, repeats: int) -> dict[str, Any]:
    account = KeyPair.generate(KeyType.ACCOUNT)
    redis.Redis(port=port).set(KEY, VALUE)
    with Host(
        trusted_issuers=[account.public_key], health_interval=0, load_entry_points=False
    ) as host:
        host.add_provider(load_native_provider(library("keyvalue")), binding="native")
        host.add_provider(RedisPyKeyValue(port), binding="redispy")
        wasm = wasmtime.wat2wasm((ROOT / "tests" / "actors" / "testactor.wat").read_text())
        actors: dict[str, str] = {}
        peers: dict[str, Callable[[bytes], Any]] = {}
        get = GetRequest(key=KEY).encode()
        for name, binding, values in [
            ("native redis", "native", {"URL": f"redis://127.0.0.1:{port}"}),
            ("native memory", "native", {}),
            ("python provider on redis-py", "redispy", {}),
        ]:
            signed = sign_module(
                wasm,
                issuer=account,
                subject=KeyPair.generate(KeyType.MODULE),
                name=name.replace(" ", "-"),
                caps=[KEYVALUE],
            )
            actor = actors[name] = host.add_actor(signed)
            host.set_binding(actor, KEYVALUE, binding, values=values)
            if name == "native memory":
                request = SetRequest(key=KEY, value=VALUE).encode()
                host.call_actor(actor, "Call", call_payload(KEYVALUE, "Set", request, binding))
            request = call_payload(KEYVALUE, "Get", get, binding)
            peers[name] = lambda _, a=actor, r=request: host.call_actor(a, "Call", r)
            answer = GetResponse.decode(peers[name](b""))
            assert answer == GetResponse(value=VALUE, exists=True), f"{name}: {answer}"
        peers["redis-py (hiredis parser)"] = bare_client(port, _HiredisParser)
        peers["redis-py (Python parser)"] = bare_client(port, _RESP2Parser)
        for call in peers.values():
            us_per_call(call, b"", calls // 10)
        us = dict.fromkeys(peers, float("inf"))
        for _ in range(repeats):
            for name, call in peers.items():
                us[name] = min(us[name], us_per_call(call, b"", calls))
    floor = us["redis-py (hiredis parser)"] + us["native memory"]
    ratio = us["native redis"] / floor
    return {
        "us_per_call": us,
        "calls": calls,
        "repeats": repeats,
        "bare_redis_py_plus_memory_us": floor,
        "native_redis_over_floor": ratio,
        "python_provider_over_native_redis": us["python provider on redis-py"] / us["native redis"],
        "target_met": ratio <= KV_TARGET_RATIO,
    }


def print_kv(report: dict[str, Any]) -> None:
    us = report["us_per_call"]
    print(f"keyvalue Get: microseconds per call, best of {report['repeats']} x {report['calls']}\n")
    for name, value in us.items():
        print(f"{name:40s} {value:8.2f}")
    floor = report["bare_redis_py_plus_memory_us"]
    ratio = report["native_redis_over_floor"]
    print(f"{'bare redis-py (hiredis) + native memory':40s} {floor:8.2f}\n")
    print(f"native redis / (bare redis-py + native memory) = {ratio:.2f}")
    print(
        f"python provider on redis-py / native redis     = {report['python_provider_over_native_redis']:.2f}"
    )
    print(
        f"[{'met' if report['target_met'] else 'MISSED'}] native Redis round trip within "
        f"{KV_TARGET_RATIO}x of a bare redis-py GET plus the in-memory round trip\n"
    )


PARTS: dict[str, tuple[Callable[[bool], dict[str, Any]], Callable[[dict[str, Any]], None]]] = {
    "kv": (kv, print_kv),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--only", choices=sorted(PARTS), action="append", help="run these parts")
    parser.add_argument("--quick", action="store_true", help="fewer calls and repetitions")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    reports = {name: PARTS[name][0](args.quick) for name in args.only or PARTS}
    if args.json:
        print(json.dumps(reports, indent=2))
        return 0
    for name, report in reports.items():
        PARTS[name][1](report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
