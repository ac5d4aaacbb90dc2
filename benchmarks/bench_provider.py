"""What does a provider call cost?  Native keyvalue against Python and the floor.

In one run, microseconds per call (best of several interleaved repetitions):

* native:  an actor -> provider -> actor round trip through ``__host_call`` to
  the first-party native ``wascc:keyvalue`` provider's ``Get`` (loaded from
  ``wascc/_providers``, the C ABI of ``native/include/wascc/provider.h``);
* python:  the same round trip to a Python provider doing the same ``Get``
  (a dict behind a lock, msgpack through ``wascc.wire.codec``);
* bare cffi: one ``handle_call`` into the same native library straight
  through cffi, with no actor and no host around it;
* floor host call: ``bench_invoke``'s floor, a waPC host over wasmtime's
  unchecked C API driven by ctypes, doing one ``__host_call`` round trip.

* isolated: the same round trip to the same native keyvalue library running
  in a child process of its own (:mod:`wascc.providers.isolated`, frames over
  a socketpair).

Targets: native within 1.5x of (floor host call + one bare cffi call);
isolated within 3x of native.

Then dispatches per second from provider threads into one actor (1, 2 and 8
threads), through the dispatcher of the C ABI: ``tests/native/testprovider.c``
(compiled here with the C compiler) runs its ``Flood`` operation, in-process
and isolated (each dispatch then crosses the socketpair both ways).

Run with ``make bench`` or ``.venv/bin/python benchmarks/bench_provider.py
[--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import wasmtime

from wascc import CapabilityProvider, Host, KeyPair, KeyType, sign_module
from wascc._providers import library
from wascc.engine.ffi import _ffi, _lib
from wascc.providers.base import CapabilityProvider as AnyProvider
from wascc.providers.isolated import load_isolated_provider
from wascc.providers.native import NativeProvider, load_native_provider
from wascc.wire.codec import CapabilityDescriptor, GetRequest, GetResponse, SetRequest, SetResponse

from bench_invoke import (
    FloorHost,
    echo_handler,
    no_gc,
    payload_of,
    us_per_call,
    wasm_from,
)

ROOT = Path(__file__).resolve().parent.parent
KEYVALUE = "wascc:keyvalue"
TARGET_RATIO = 1.5
ISOLATED_TARGET = 3.0
KEY = "bench-key"


class PythonKeyValue(CapabilityProvider):
    """The Python peer: Get and Set over a dict, as a Python provider would."""

    def __init__(self) -> None:
        super().__init__()
        self._data: dict[str, str] = {}
        self._lock = threading.Lock()

    def descriptor(self) -> CapabilityDescriptor:
        return CapabilityDescriptor(id=KEYVALUE, name="python keyvalue")

    def handle(self, actor: str, operation: str, msg: bytes) -> bytes:
        if operation == "Get":
            key = GetRequest.decode(msg).key
            with self._lock:
                value = self._data.get(key)
            return GetResponse(value=value or "", exists=value is not None).encode()
        if operation == "Set":
            request = SetRequest.decode(msg)
            with self._lock:
                self._data[request.key] = request.value
            return SetResponse(value=request.value).encode()
        raise ValueError(f"no operation {operation}")


def call_payload(namespace: str, operation: str, payload: bytes, binding: str) -> bytes:
    """The test actor's `Call` payload: length-prefixed binding, namespace, operation."""
    fields = [text.encode() for text in (binding, namespace, operation)]
    return b"".join(bytes([len(f)]) + f for f in fields) + payload


def bare_cffi_call(provider: NativeProvider, actor: str, payload: bytes) -> Any:
    """handle_call straight through cffi, the way the C ABI is called, and free."""
    ptr = provider._lib._ptr
    actor_b, op = actor.encode(), b"Get"
    reply = _ffi.new("wh_reply *")
    call, free, buffer = _lib.wh_provider_call, _lib.wh_provider_free, _ffi.buffer

    def run(_: bytes) -> bytes:
        call(ptr, actor_b, op, payload, len(payload), reply)
        data = buffer(reply.data, reply.len)[:]
        free(ptr, reply.data)
        return data

    return run


def round_trips(host: Host, account: KeyPair) -> tuple[dict[str, Any], NativeProvider]:
    """The four peers, each a one-argument call, checked to answer the same value."""
    native = load_native_provider(library("keyvalue"))
    host.add_provider(native, binding="native")
    host.add_provider(PythonKeyValue(), binding="python")
    host.add_provider(load_isolated_provider(library("keyvalue")), binding="isolated")
    actor = sign_module(
        wasmtime.wat2wasm((ROOT / "tests" / "actors" / "testactor.wat").read_text()),
        issuer=account,
        subject=KeyPair.generate(KeyType.MODULE),
        name="bench",
        caps=[KEYVALUE],
    )
    key = host.add_actor(actor)
    peers: dict[str, Any] = {}
    get = GetRequest(key=KEY).encode()
    for binding in ("native", "python", "isolated"):
        host.set_binding(key, KEYVALUE, binding)
        set_request = call_payload(KEYVALUE, "Set", SetRequest(KEY, "a value").encode(), binding)
        host.call_actor(key, "Call", set_request)
        request = call_payload(KEYVALUE, "Get", get, binding)
        peers[binding] = lambda _, request=request: host.call_actor(key, "Call", request)
    peers["bare cffi"] = bare_cffi_call(native, key, get)
    engine = wasmtime.Engine()
    floor = FloorHost(engine, wasmtime.Module(engine, wasm_from("echo_actor.wat")), echo_handler)
    peers["floor host call"] = lambda payload: floor.call(b"HostEcho", payload)
    expected = GetResponse(value="a value", exists=True)
    for name in ("native", "python", "isolated", "bare cffi"):
        answer = GetResponse.decode(peers[name](b""))
        assert answer == expected, f"{name} answered {answer}"
    assert peers["floor host call"](payload_of(16)) == payload_of(16)
    return peers, native


def time_round_trips(peers: dict[str, Any], calls: int, repeats: int) -> dict[str, float]:
    payload = payload_of(16)
    for call in peers.values():
        us_per_call(call, payload, calls // 10)
    best = dict.fromkeys(peers, float("inf"))
    for _ in range(repeats):
        for name, call in peers.items():
            best[name] = min(best[name], us_per_call(call, payload, calls))
    return best


def build_flood_provider(directory: Path) -> Path:
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise SystemExit("bench_provider needs a C compiler to build tests/native/testprovider.c")
    target = directory / "libtestprovider.so"
    subprocess.run(
        [
            compiler,
            "-shared",
            "-fPIC",
            "-O2",
            "-pthread",
            "-fvisibility=hidden",
            f"-I{ROOT / 'native' / 'include'}",
            f"-I{ROOT / 'native' / 'providers' / 'common'}",
            "-o",
            str(target),
            str(ROOT / "tests" / "native" / "testprovider.c"),
        ],
        check=True,
    )
    return target


def dispatch_rates(host: Host, account: KeyPair, total: int, *, isolated: bool) -> dict[int, float]:
    """Dispatches per second from 1, 2 and 8 provider threads into one actor."""
    with tempfile.TemporaryDirectory() as tmp:
        library_path = build_flood_provider(Path(tmp))
        provider: AnyProvider = (
            load_isolated_provider(library_path) if isolated else load_native_provider(library_path)
        )
        host.add_provider(provider, binding="isolated" if isolated else "default")
        actor = sign_module(
            wasm_from("echo_actor.wat"),
            issuer=account,
            subject=KeyPair.generate(KeyType.MODULE),
            name="flooded",
            caps=["wascc:nativetest"],
        )
        key = host.add_actor(actor, max_instances=8)
        host.set_binding(key, "wascc:nativetest", "isolated" if isolated else "default")
        rates: dict[int, float] = {}
        for threads in (1, 2, 8):
            count = total // threads
            provider.handle_call("system", "Flood", f"{threads} {count // 10}".encode())
            with no_gc():
                start = time.perf_counter()
                result = provider.handle_call("system", "Flood", f"{threads} {count}".encode())
                elapsed = time.perf_counter() - start
            expected = f"ok={threads * count} bad=0 err=0".encode()
            assert result == expected, f"flood with {threads} threads: {result!r}"
            rates[threads] = threads * count / elapsed
        return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and repetitions")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    calls, repeats, total = (2_000, 3, 8_000) if args.quick else (20_000, 7, 80_000)
    account = KeyPair.generate(KeyType.ACCOUNT)
    with Host(
        trusted_issuers=[account.public_key], health_interval=0, load_entry_points=False
    ) as host:
        peers, _ = round_trips(host, account)
        us = time_round_trips(peers, calls, repeats)
        rates = dispatch_rates(host, account, total, isolated=False)
        isolated_rates = dispatch_rates(host, account, total, isolated=True)
    isolated_ratio = us["isolated"] / us["native"]
    floor = us["floor host call"] + us["bare cffi"]
    ratio = us["native"] / floor
    report = {
        "us_per_call": us,
        "floor_plus_bare_cffi_us": floor,
        "native_over_floor": ratio,
        "python_over_native": us["python"] / us["native"],
        "target_met": ratio <= TARGET_RATIO,
        "isolated_over_native": isolated_ratio,
        "isolated_target_met": isolated_ratio <= ISOLATED_TARGET,
        "dispatches_per_second": rates,
        "isolated_dispatches_per_second": isolated_rates,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"microseconds per call, best of {repeats} x {calls}\n")
    for name, value in us.items():
        print(f"{name:36s} {value:8.2f}")
    print(f"{'floor host call + bare cffi call':36s} {floor:8.2f}\n")
    print(f"native / (floor host call + bare cffi) = {ratio:.2f}")
    print(f"python / native                          = {us['python'] / us['native']:.2f}")
    print(
        f"[{'met' if ratio <= TARGET_RATIO else 'MISSED'}] native round trip within "
        f"{TARGET_RATIO}x of the floor's host-call round trip plus one bare cffi call\n"
    )
    print(f"isolated / native                        = {isolated_ratio:.2f}")
    print(
        f"[{'met' if isolated_ratio <= ISOLATED_TARGET else 'MISSED'}] isolated round trip "
        f"within {ISOLATED_TARGET}x of the in-process native one\n"
    )
    print("dispatches per second from provider threads into one actor")
    print(f"{'':10s} {'in-process':>14s} {'isolated':>14s} {'ratio':>7s}")
    for threads, rate in rates.items():
        other = isolated_rates[threads]
        label = f"{threads} thread{'s' if threads > 1 else ''}"
        print(f"{label:10s} {rate:12,.0f}/s {other:12,.0f}/s {rate / other:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
