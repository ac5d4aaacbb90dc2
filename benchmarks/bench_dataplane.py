"""The data plane (issue 14): each figure beside its C floor and its target, in one run.

Figures, all on the echo actor of ``echo_actor.wat`` (signed at run time):

* ``call_actor`` 16 B echo: ``Host.call_actor(pk, "Echo", 16 bytes)`` from
  Python, microseconds per call.  Floor: the same echo from C with no Python
  (``floor/floor.c``).  Target <= 1.0 us.
* provider-thread dispatch, 1 and 2 threads: the native provider
  ``native/dispatch_bench.c`` dispatches ``Echo`` (16 B) to the actor from
  its own threads through the C ABI's dispatcher, dispatches per second.
  Floor: the C floor's echo rate on one core (twice that for two threads).
  Targets >= 2M/s on one thread, >= 1.7x that on two (and two threads
  >= 1.7x the measured one-thread rate).
* actor -> native keyvalue -> actor: the same provider thread dispatches
  ``KvGet`` (one ``__host_call`` to the first-party native ``wascc:keyvalue``
  provider's ``Get``), microseconds per dispatch.  Floor: the C floor's
  ``HostEcho`` (one ``__host_call`` answered by a C function).  Target
  <= 0.5 us.
* 1,000 signed copies of one actor (distinct subjects, same code) loaded
  into a fresh host and runtime, seconds (signing is not timed).  Target
  <= 1 s; no floor.

Two more C figures are printed for reference: the C floor of every row, and
``wascc-c``, wascc's own C waPC host (``native/host/wascc_host.c``'s
``wh_call``) driven from C with its ``__host_call`` answered in C: what the
data plane costs once no Python runs on the path.

Every path is checked (the answer must be the expected one) before it is
timed.  Times are the best of several repetitions; rates are
calls / elapsed between all threads ready and all done.  Ratios are wascc
over its anchor in the row's unit.

``floor.c`` and ``dispatch_bench.c`` are compiled with gcc (or ``cc``) into
a temporary directory at each run.  Run with ``make bench`` or::

    .venv/bin/python benchmarks/bench_dataplane.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import wasmtime

import wascc
from wascc import Host, KeyPair, KeyType, sign_module
from wascc._providers import library
from wascc.engine.runtime import Runtime
from wascc.providers.native import NativeProvider, load_native_provider
from wascc.wire.codec import GetRequest, GetResponse, SetRequest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ECHO_WAT = HERE / "echo_actor.wat"
FLOOR_C = HERE / "floor" / "floor.c"
DISPATCH_C = HERE / "native" / "dispatch_bench.c"
BENCH_CAPABILITY = "wascc:dispatchbench"
KEYVALUE = "wascc:keyvalue"
KEY, VALUE = "bench-key", "a value"

CALL_ACTOR_US = 1.0
DISPATCH_PER_S = 2_000_000.0
TWO_THREAD_SCALING = 1.7
KV_ROUND_TRIP_US = 0.5
COPIES = 1_000
COPIES_S = 1.0


@dataclass(frozen=True)
class Plan:
    calls: int  # call_actor calls per repetition
    repeats: int
    dispatches: int  # dispatches per thread per Run
    floor_calls: int  # floor.c calls per repetition
    copies: int


def make_plan(quick: bool) -> Plan:
    if quick:
        return Plan(calls=5_000, repeats=3, dispatches=5_000, floor_calls=50_000, copies=COPIES)
    return Plan(calls=50_000, repeats=5, dispatches=100_000, floor_calls=500_000, copies=COPIES)


# ---- building the C parts ------------------------------------------------------


def compiler() -> str:
    found = shutil.which("gcc") or shutil.which("cc")
    if found is None:
        raise SystemExit(
            "bench_dataplane needs a C compiler (gcc) for floor.c and dispatch_bench.c"
        )
    return found


def build_floor(directory: Path) -> Path:
    """floor.c, which includes wascc_host.c whole (its wasmtime mirror and waPC host)."""
    target = directory / "floor"
    subprocess.run(
        [
            compiler(),
            "-O2",
            "-std=gnu11",
            f"-I{ROOT / 'native' / 'host'}",
            f"-I{ROOT / 'native' / 'include'}",
            "-o",
            str(target),
            str(FLOOR_C),
            "-ldl",
            "-lpthread",
        ],
        check=True,
    )
    return target


def build_dispatch_bench(directory: Path) -> Path:
    target = directory / "libdispatch_bench.so"
    subprocess.run(
        [
            compiler(),
            "-shared",
            "-fPIC",
            "-O2",
            "-std=gnu11",
            "-pthread",
            "-fvisibility=hidden",
            f"-I{ROOT / 'native' / 'include'}",
            f"-I{ROOT / 'native' / 'providers' / 'common'}",
            "-o",
            str(target),
            str(DISPATCH_C),
        ],
        check=True,
    )
    return target


def libwasmtime() -> str:
    """The libwasmtime wasmtime-py loaded: the one wascc's C host resolves too."""
    return str(wasmtime._ffi.dll._name)


#: Nanoseconds per call by (peer, operation, payload bytes); peers "floor", "wascc-c".
FloorTable = dict[tuple[str, str, int], float]


def run_floor(binary: Path, calls: int, repeats: int) -> FloorTable:
    done = subprocess.run(
        [str(binary), libwasmtime(), str(ECHO_WAT), str(calls), str(repeats)],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"floor failed ({done.returncode}): {done.stderr.strip()}")
    table: FloorTable = {}
    for line in done.stdout.splitlines():
        peer, operation, size, ns = line.split()
        table[peer, operation, int(size)] = float(ns)
    return table


# ---- timing wascc ---------------------------------------------------------------


@contextmanager
def no_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def payload_of(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def best_us(call: Callable[[], object], calls: int, repeats: int) -> float:
    for _ in range(max(calls // 10, 10)):
        call()
    best = float("inf")
    with no_gc():
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in itertools.repeat(None, calls):
                call()
            best = min(best, (time.perf_counter() - start) / calls * 1e6)
    return best


def header(*fields: object) -> bytes:
    return " ".join(map(str, fields)).encode() + b"\n"


@dataclass(frozen=True)
class DispatchRun:
    threads: int
    calls: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds

    @property
    def us_per_call(self) -> float:
        """Per call on one thread (the latency of one dispatch when threads == 1)."""
        return self.seconds * self.threads / self.calls * 1e6


def parse_run(answer: bytes) -> dict[str, int]:
    fields = dict(part.split("=", 1) for part in answer.decode().split())
    return {name: int(value) for name, value in fields.items()}


def dispatch_run(
    provider: NativeProvider, actor: str, operation: str, payload: bytes, threads: int, count: int
) -> DispatchRun:
    """One ``Run`` of dispatch_bench: THREADS threads, COUNT dispatches each."""
    message = header(threads, count, operation, actor) + payload
    with no_gc():
        result = parse_run(provider.handle_call("system", "Run", message))
    if result["ok"] != threads * count:
        raise AssertionError(f"{operation} on {threads} threads: {result}")
    return DispatchRun(threads, threads * count, result["ns"] / 1e9)


def best_dispatch(
    provider: NativeProvider,
    actor: str,
    operation: str,
    payload: bytes,
    threads: int,
    plan: Plan,
) -> DispatchRun:
    dispatch_run(provider, actor, operation, payload, threads, max(plan.dispatches // 10, 10))
    runs = [
        dispatch_run(provider, actor, operation, payload, threads, plan.dispatches)
        for _ in range(plan.repeats)
    ]
    return min(runs, key=lambda run: run.seconds / run.calls)


def echo_wasm() -> bytes:
    return bytes(wasmtime.wat2wasm(ECHO_WAT.read_text()))


def sign(wasm: bytes, account: KeyPair, name: str) -> bytes:
    return sign_module(
        wasm,
        issuer=account,
        subject=KeyPair.generate(KeyType.MODULE),
        name=name,
        caps=[BENCH_CAPABILITY, KEYVALUE],
    )


@dataclass(frozen=True)
class WasccFigures:
    call_actor_us: float
    dispatch: dict[int, DispatchRun]
    kv: DispatchRun
    copies_s: float


def measure_host(
    plan: Plan, bench_library: Path
) -> tuple[float, dict[int, DispatchRun], DispatchRun]:
    """call_actor, provider-thread dispatch (1 and 2 threads) and actor -> kv -> actor."""
    account = KeyPair.generate(KeyType.ACCOUNT)
    with Host(
        trusted_issuers=[account.public_key], health_interval=0, load_entry_points=False
    ) as host:
        key = host.add_actor(sign(echo_wasm(), account, "echo"), max_instances=2)
        bench = load_native_provider(bench_library)
        keyvalue = load_native_provider(library("keyvalue"))
        host.add_provider(bench)
        host.add_provider(keyvalue)
        host.set_binding(key, BENCH_CAPABILITY)
        host.set_binding(key, KEYVALUE)
        keyvalue.handle_call(key, "Set", SetRequest(KEY, VALUE).encode())

        echo = payload_of(16)
        get = GetRequest(key=KEY).encode()
        assert host.call_actor(key, "Echo", echo) == echo
        assert bench.handle_call("system", "Once", header("Echo", key) + echo) == echo
        answer = GetResponse.decode(bench.handle_call("system", "Once", header("KvGet", key) + get))
        assert answer == GetResponse(value=VALUE, exists=True), answer

        call_actor = best_us(lambda: host.call_actor(key, "Echo", echo), plan.calls, plan.repeats)
        dispatch = {n: best_dispatch(bench, key, "Echo", echo, n, plan) for n in (1, 2)}
        kv = best_dispatch(bench, key, "KvGet", get, 1, plan)
    return call_actor, dispatch, kv


def load_copies(count: int) -> float:
    """Seconds to add ``count`` signed copies of the echo actor to a fresh host and runtime."""
    account = KeyPair.generate(KeyType.ACCOUNT)
    wasm = echo_wasm()
    copies = [sign(wasm, account, f"copy-{i}") for i in range(count)]
    runtime = Runtime()  # its own: nothing compiled yet
    host = Host(
        trusted_issuers=[account.public_key],
        health_interval=0,
        load_entry_points=False,
        runtime=runtime,
    )
    try:
        start = time.perf_counter()
        keys = [host.add_actor(copy) for copy in copies]
        elapsed = time.perf_counter() - start
        assert host.call_actor(keys[-1], "Echo", b"last") == b"last"
    finally:
        host.stop()
        runtime.close()
    return elapsed


# ---- the table --------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One row: wascc's figure beside its C floor and its target, in one unit."""

    name: str
    unit: str
    wascc: float
    floor: float | None
    target: float
    higher_is_better: bool

    @property
    def floor_ratio(self) -> float | None:
        return None if self.floor is None else self.wascc / self.floor

    @property
    def target_ratio(self) -> float:
        return self.wascc / self.target

    @property
    def met(self) -> bool:
        if self.higher_is_better:
            return self.wascc >= self.target
        return self.wascc <= self.target


def figures(floor: FloorTable, host: WasccFigures) -> list[Figure]:
    floor_echo_us = floor["floor", "Echo", 16] / 1e3
    floor_rate = 1e6 / floor_echo_us
    one, two = host.dispatch[1], host.dispatch[2]
    return [
        Figure(
            "call_actor 16 B echo", "us", host.call_actor_us, floor_echo_us, CALL_ACTOR_US, False
        ),
        Figure("dispatch, 1 thread", "calls/s", one.per_second, floor_rate, DISPATCH_PER_S, True),
        Figure(
            "dispatch, 2 threads",
            "calls/s",
            two.per_second,
            2 * floor_rate,
            TWO_THREAD_SCALING * DISPATCH_PER_S,
            True,
        ),
        Figure(
            "dispatch, 2 thr / 1 thr",
            "x",
            two.per_second / one.per_second,
            2.0,
            TWO_THREAD_SCALING,
            True,
        ),
        Figure(
            "actor -> kv -> actor",
            "us",
            host.kv.us_per_call,
            floor["floor", "HostEcho", 16] / 1e3,
            KV_ROUND_TRIP_US,
            False,
        ),
        Figure(f"{COPIES:,} signed copies load", "s", host.copies_s, None, COPIES_S, False),
    ]


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "calls/s":
        return f"{value / 1e6:,.3f}M/s"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.3f} {unit}"


def environment() -> dict[str, str]:
    return {
        "wascc": wascc.__version__,
        "wasmtime-py": version("wasmtime"),
        "python": sys.version.split()[0],
    }


def print_report(rows: list[Figure], floor: FloorTable, plan: Plan) -> None:
    print(", ".join(f"{k} {v}" for k, v in environment().items()))
    print(f"best of {plan.repeats} repetitions; ratios are wascc / anchor\n")
    cells = ("wascc", "C floor", "/floor", "target", "/target", "")
    widths = (14, 14, 9, 14, 9, 8)
    print(f"{'':26s}" + "".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
    for row in rows:
        values = (
            fmt(row.wascc, row.unit),
            fmt(row.floor, row.unit),
            "-" if row.floor_ratio is None else f"{row.floor_ratio:.3g}",
            ("<= " if not row.higher_is_better else ">= ") + fmt(row.target, row.unit),
            f"{row.target_ratio:.3g}",
            "met" if row.met else "MISSED",
        )
        print(f"{row.name:26s}" + "".join(c.rjust(w) for c, w in zip(values, widths, strict=True)))
    print("\nthe C figures (ns per call; wascc-c = wascc_host.c's wh_call with no Python):")
    print(f"{'':26s}{'floor':>12s}{'wascc-c':>12s}{'ratio':>9s}")
    for operation, size in sorted({(op, n) for _, op, n in floor}, key=lambda k: (k[0], k[1])):
        a, b = floor["floor", operation, size], floor["wascc-c", operation, size]
        print(f"{f'{operation} {size} B':26s}{a:12.1f}{b:12.1f}{b / a:9.2f}")


def report_json(rows: list[Figure], floor: FloorTable, plan: Plan) -> str:
    return json.dumps(
        {
            "environment": environment(),
            "plan": asdict(plan),
            "figures": [
                asdict(row)
                | {"floor_ratio": row.floor_ratio, "target_ratio": row.target_ratio, "met": row.met}
                for row in rows
            ],
            "c_ns_per_call": [
                {"peer": peer, "operation": op, "bytes": size, "ns": ns}
                for (peer, op, size), ns in floor.items()
            ],
        },
        indent=2,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and repetitions")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    plan = make_plan(args.quick)
    with tempfile.TemporaryDirectory(prefix="wascc-dataplane-") as tmp:
        floor_binary = build_floor(Path(tmp))
        bench_library = build_dispatch_bench(Path(tmp))
        floor = run_floor(floor_binary, plan.floor_calls, plan.repeats)
        call_actor, dispatch, kv = measure_host(plan, bench_library)
    host = WasccFigures(call_actor, dispatch, kv, load_copies(plan.copies))
    rows = figures(floor, host)
    if args.json:
        print(report_json(rows, floor, plan))
    else:
        print_report(rows, floor, plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
