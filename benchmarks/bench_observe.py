"""What does observing cost?  ``bench_invoke``'s wascc rows with and without a Recorder.

Two columns on one host, in one run:

* unobserved: today's engine, no observer.  Calls are counted by operation
  in C wherever they run (the data plane's ``wh_stats``: an atomic per call
  on the caller's own cache line, one call in 64 timed), so there is no
  engine without counting left to compare with;
* observed: the same with a :class:`wascc.observe.Recorder` attached
  (failures by kind, Python-path provider calls counted and sampled; its
  once-a-second sampler thread running): what ``wascc up`` runs.

Rows: ``Echo`` at 16 B and 1 KiB, and ``HostEcho`` (one ``__host_call`` to a
Python provider, so the provider call is counted by the recorder too).
Repetitions of N calls alternate between the columns so machine noise hits
them alike; each figure is the best repetition in microseconds per call.
The target: the observed column within 1.05x of the unobserved one.  Run it
on a quiet machine.

    .venv/bin/python benchmarks/bench_observe.py [--quick]
"""

from __future__ import annotations

import argparse
import functools
import gc
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import wasmtime

from wascc import CapabilityProvider, Host, KeyPair, KeyType, sign_module
from wascc.observe import Recorder
from wascc.wire.codec import CapabilityDescriptor

HERE = Path(__file__).resolve().parent
BENCH_CAPABILITY = "wascc:bench"
TARGET = 1.05


class BenchProvider(CapabilityProvider):
    """The ``wascc:bench`` capability: echoes whatever an actor sends."""

    def descriptor(self) -> CapabilityDescriptor:
        return CapabilityDescriptor(id=BENCH_CAPABILITY, name="bench")

    def handle(self, actor: str, operation: str, msg: bytes) -> bytes:
        return msg


def best_of(call: Callable[[bytes], bytes], payload: bytes, n: int) -> float:
    """Microseconds per call of one repetition of ``n`` calls."""
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(n):
            call(payload)
        return (time.perf_counter() - start) / n * 1e6
    finally:
        gc.enable()


@contextmanager
def mode(name: str, recorder: Recorder) -> Iterator[None]:
    """Run the body in one of the two columns."""
    if name == OBSERVED:
        recorder.attach()
    try:
        yield
    finally:
        recorder.close()


UNOBSERVED, OBSERVED = "unobserved us", "observed us"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    args = parser.parse_args()
    n, repeats = (3_000, 5) if args.quick else (20_000, 15)
    logging.disable(logging.INFO)
    account = KeyPair.generate(KeyType.ACCOUNT)
    wasm = bytes(wasmtime.wat2wasm((HERE / "echo_actor.wat").read_text()))
    signed = sign_module(
        wasm,
        issuer=account,
        subject=KeyPair.generate(KeyType.MODULE),
        name="echo",
        caps=[BENCH_CAPABILITY],
    )
    with Host(
        trusted_issuers=[account.public_key], health_interval=0, load_entry_points=False
    ) as host:
        key = host.add_actor(signed)
        host.add_provider(BenchProvider())
        host.set_binding(key, BENCH_CAPABILITY)
        recorder = Recorder(host)
        rows = [
            ("Echo 16 B", "Echo", b"x" * 16),
            ("Echo 1 KiB", "Echo", b"x" * 1024),
            ("HostEcho 16 B", "HostEcho", b"x" * 16),
        ]
        columns = (UNOBSERVED, OBSERVED)
        print(f"{'row':16s}" + "".join(f"{c:>15s}" for c in columns) + "   observed/unobserved")
        worst = 0.0
        for label, operation, payload in rows:
            call = functools.partial(host.call_actor, key, operation)
            assert call(payload) == payload
            best = dict.fromkeys(columns, float("inf"))
            best_of(call, payload, n // 4)  # warm up
            for _ in range(repeats):
                for column in columns:
                    with mode(column, recorder):
                        best[column] = min(best[column], best_of(call, payload, n))
            observed = best[OBSERVED] / best[UNOBSERVED]
            worst = max(worst, observed)
            print(
                f"{label:16s}"
                + "".join(f"{best[c]:15.2f}" for c in columns)
                + f"   {observed:6.3f}x"
            )
        verdict = "within" if worst <= TARGET else "OVER"
        print(f"worst ratio {worst:.3f}x: {verdict} the {TARGET:.2f}x target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
