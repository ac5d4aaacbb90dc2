"""What does the lattice cost?  Cross-host calls beside bare NATS, local calls with and without.

Two processes on one nats-server (JetStream on, started here on a free port):

* **process B** (``--serve``, a child of this script): a Host in the lattice
  running the callee actor (``tests/actors/testactor.wat``, ``Echo``), and on
  a NATS connection of its own a bare nats-py responder that echoes.
* **process A** (this one): a Host in the lattice running the caller actor,
  which calls the callee with one ``__host_call`` (``Call`` -> ``Echo``).

Measured in A, each path ``--samples`` sequential calls (p50, p99) and
``--seconds`` of calls from ``--threads`` threads (calls/s):

1. cross-host actor -> actor: ``host.call_actor(caller, "Call", ...)``: the
   local call into the caller, its host call leaving over NATS (signed
   invocation, queue group), the callee run in B, the answer back;
2. bare nats-py request/reply between the same two processes, made the way
   the lattice makes it (a caller thread handing the request to the asyncio
   loop thread and waiting), and from inside the loop (no thread hop);
3. both actors local, with a lattice configured and without one (two hosts
   in this process, measured alternately in ABBA order, medians of ``--rounds``).

Ratios printed: (1)/(2) p50 (target <= 1.5), local with/without p50 (target <= 1.05).

Run: ``.venv/bin/python benchmarks/bench_lattice.py [--samples N] [--seconds S] [--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import nats
import wasmtime

from wascc import Host, KeyPair, KeyType, sign_module
from wascc.actor import ActorSettings
from wascc.lattice import Lattice, LatticeConfig

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from servers import start_nats  # noqa: E402

WAT = (ROOT / "tests" / "actors" / "testactor.wat").read_text()
BODY = b"0123456789abcdef" * 4
BARE_SUBJECT = "bench.bare.echo"


@dataclass
class Result:
    path: str
    p50_us: float
    p99_us: float
    calls_per_second: float


def call_payload(namespace: str, operation: str, payload: bytes) -> bytes:
    parts = b""
    for text in ("", namespace, operation):
        raw = text.encode()
        parts += bytes([len(raw)]) + raw
    return parts + payload


def signed(account: KeyPair, module: KeyPair, caps: list[str], name: str) -> bytes:
    return sign_module(wasmtime.wat2wasm(WAT), issuer=account, subject=module, name=name, caps=caps)


def measure(
    name: str, call: Callable[[], object], samples: int, seconds: float, threads: int
) -> Result:
    for _ in range(min(200, samples)):
        call()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    times.sort()
    stop = time.monotonic() + seconds
    counts = [0] * threads

    def worker(i: int) -> None:
        while time.monotonic() < stop:
            call()
            counts[i] += 1

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    elapsed = time.monotonic() - started
    return Result(
        name,
        statistics.median(times) * 1e6,
        times[int(len(times) * 0.99) - 1] * 1e6,
        sum(counts) / elapsed,
    )


# ---- process B ------------------------------------------------------------------------


def serve(url: str, namespace: str, callee_seed: str, account_seed: str) -> None:
    """The callee's host and a bare responder; prints READY, runs until SIGTERM."""
    account = KeyPair.from_seed(account_seed)
    host = Host(trusted_issuers=[account.public_key], health_interval=0)
    member = Lattice(host, LatticeConfig(url, namespace, ephemeral_key=True))
    member.start()
    host.add_actor(signed(account, KeyPair.from_seed(callee_seed), [], "callee"))
    loop = asyncio.new_event_loop()

    async def responder() -> None:
        nc = await nats.connect(url)

        async def echo(msg: nats.aio.msg.Msg) -> None:
            await msg.respond(msg.data)

        await nc.subscribe(BARE_SUBJECT, cb=echo)
        await nc.flush()

    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(responder(), loop).result(10)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print("READY", flush=True)
    done.wait()
    member.leave()
    host.stop()
    member.close()


# ---- process A ------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="ABBA rounds of the local pair")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", nargs=4, metavar=("URL", "NS", "CALLEE", "ACCOUNT"))
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    account = KeyPair.generate(KeyType.ACCOUNT)
    callee = KeyPair.generate(KeyType.MODULE)
    caller = KeyPair.generate(KeyType.MODULE)
    caller_wasm = signed(account, caller, [callee.public_key], "caller")
    callee_wasm = signed(account, callee, [], "callee")
    payload = call_payload(callee.public_key, "Echo", BODY)
    namespace = "bench" + secrets.token_hex(3)
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = start_nats(Path(tmp), jetstream=True)
        url = f"nats://127.0.0.1:{server.port}"
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", url, namespace, callee.seed, account.seed],
            stdout=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == b"READY", "process B did not start"
            settings = ActorSettings(deadline=10, max_instances=args.threads)
            host = Host(trusted_issuers=[account.public_key], health_interval=0,
                        actor_settings=settings)  # fmt: skip
            member = Lattice(host, LatticeConfig(url, namespace, ephemeral_key=True))
            member.start()
            host.add_actor(caller_wasm)
            assert host.call_actor(caller.public_key, "Call", payload) == BODY
            results.append(
                measure("cross-host actor -> actor", lambda: host.call_actor(caller.public_key, "Call", payload),
                        args.samples, args.seconds, args.threads)
            )  # fmt: skip
            nc = member.bus.nc
            assert nc is not None
            results.append(
                measure("bare nats-py request/reply (thread -> loop)",
                        lambda: member.bus.run(nc.request(BARE_SUBJECT, BODY, timeout=5), 5),
                        args.samples, args.seconds, args.threads)
            )  # fmt: skip
            results.append(_in_loop(member, nc, args.samples))
            # both actors local: with this lattice configured, and on a host without one,
            # alternated ABBA over --rounds rounds (the machine's drift hits both sides)
            host.add_actor(callee_wasm)
            plain = Host(trusted_issuers=[account.public_key], health_interval=0,
                         actor_settings=settings)  # fmt: skip
            plain.add_actor(caller_wasm)
            plain.add_actor(callee_wasm)
            rounds: dict[str, list[Result]] = {"with": [], "without": []}
            order = ["with", "without", "without", "with"] * ((args.rounds + 1) // 2)
            for which in order[: args.rounds * 2]:
                target = host if which == "with" else plain
                rounds[which].append(
                    measure(which, lambda t=target: t.call_actor(caller.public_key, "Call", payload),
                            args.samples, args.seconds / 2, args.threads)
                )  # fmt: skip
            for which, name in (("with", "local actor -> actor, lattice configured"),
                                ("without", "local actor -> actor, no lattice")):  # fmt: skip
                rs = rounds[which]
                results.append(Result(
                    name,
                    statistics.median(r.p50_us for r in rs),
                    statistics.median(r.p99_us for r in rs),
                    statistics.median(r.calls_per_second for r in rs),
                ))  # fmt: skip
            member.leave()
            host.stop()
            member.close()
            plain.stop()
        finally:
            child.send_signal(signal.SIGTERM)
            child.wait(30)
            server.stop()
    by = {r.path: r for r in results}
    cross = by["cross-host actor -> actor"]
    bare = by["bare nats-py request/reply (thread -> loop)"]
    local_with = by["local actor -> actor, lattice configured"]
    local_without = by["local actor -> actor, no lattice"]
    ratios = {
        "cross-host p50 / bare (thread) p50 (target <= 1.5)": cross.p50_us / bare.p50_us,
        "cross-host p50 / bare (in loop) p50": cross.p50_us / by["bare nats-py request/reply (in loop)"].p50_us,
        "cross-host calls/s / bare (thread) calls/s": cross.calls_per_second / bare.calls_per_second,
        "local p50 with lattice / without (target <= 1.05)": local_with.p50_us / local_without.p50_us,
        "local calls/s with lattice / without": local_with.calls_per_second / local_without.calls_per_second,
    }  # fmt: skip
    if args.json:
        print(json.dumps({"results": [asdict(r) for r in results], "ratios": ratios}, indent=2))
        return
    print(f"{'path':48s} {'p50 us':>9s} {'p99 us':>9s} {'calls/s':>10s}")
    for r in results:
        print(f"{r.path:48s} {r.p50_us:9.1f} {r.p99_us:9.1f} {r.calls_per_second:10.0f}")
    print()
    for name, value in ratios.items():
        print(f"{name:58s} {value:6.2f}")


def _in_loop(member: Lattice, nc: nats.aio.client.Client, samples: int) -> Result:
    """Bare request/reply from inside the loop (no thread hop): the floor of NATS itself."""

    async def run() -> tuple[list[float], float]:
        times = []
        for _ in range(samples):
            start = time.perf_counter()
            await nc.request(BARE_SUBJECT, BODY, timeout=5)
            times.append(time.perf_counter() - start)
        # throughput: 8 concurrent requesters for a fixed count
        count = samples * 2
        started = time.perf_counter()

        async def one(n: int) -> None:
            for _ in range(n):
                await nc.request(BARE_SUBJECT, BODY, timeout=5)

        await asyncio.gather(*(one(count // 8) for _ in range(8)))
        return sorted(times), count / (time.perf_counter() - started)

    times, rate = member.bus.run(run(), 120)
    return Result(
        "bare nats-py request/reply (in loop)",
        statistics.median(times) * 1e6,
        times[int(len(times) * 0.99) - 1] * 1e6,
        rate,
    )


if __name__ == "__main__":
    main()
