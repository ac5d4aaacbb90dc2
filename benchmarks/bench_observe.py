"""What does observing cost?  ``bench_invoke``'s wascc rows with and without a Recorder.

Three columns on one host, in one run:

* anchor: the engine as it was before per-operation counting (``Guest.invoke``
  patched back to the version that kept one call counter per instance),
  no observer;
* counted: today's engine (calls counted by operation per module, one in 64
  timed: ``wascc.engine.stats``), no observer;
* observed: today's engine with a :class:`wascc.observe.Recorder` attached
  (failures by kind, provider calls counted and sampled; its
  once-a-second sampler thread running): what ``wascc up`` runs.
  Rows: ``Echo`` at
16 B and 1 KiB, and ``HostEcho`` (one ``__host_call`` to a Python provider,
so both the actor and the provider call are counted).  Repetitions of N
calls alternate between the two so machine noise hits them alike; each
figure is the best repetition in microseconds per call.  The target: the
observed column within 1.05x of the anchor.  The machine's noise (other
processes on the cores) moves single figures by several percent; run it on
a quiet machine.

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
from wascc.engine import ffi
from wascc.engine.guest import Guest
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


def _invoke_before(self: Guest, operation: str, payload: bytes) -> bytes:
    """``Guest.invoke`` before per-operation counting (one counter per instance)."""
    pool = self._pool
    inst = pool.acquire(self.settings.deadline)
    try:
        status, data = inst.call(operation.encode(), payload, self._ticks)
    except BaseException:
        pool.discard(inst)
        raise
    self.anchor_calls += 1  # type: ignore[attr-defined]  # the old per-instance counter
    if status == ffi.OK:
        if inst.memory_size > self._cap_floor:
            pool.discard(inst)
        else:
            pool.release(inst)
        return data
    raise self._failure(inst, status, operation, data)


@contextmanager
def mode(name: str, host: Host, recorder: Recorder) -> Iterator[None]:
    """Run the body in one of the three columns."""
    if name == ANCHOR:
        Guest.anchor_calls = 0  # type: ignore[attr-defined]
        Guest.invoke = _invoke_before  # type: ignore[method-assign]
    elif name == OBSERVED:
        recorder.attach()
    try:
        yield
    finally:
        Guest.invoke = TODAY  # type: ignore[method-assign]
        recorder.close()


ANCHOR, COUNTED, OBSERVED = "anchor us", "counted us", "observed us"
TODAY = Guest.invoke


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
        columns = (ANCHOR, COUNTED, OBSERVED)
        print(f"{'row':16s}" + "".join(f"{c:>13s}" for c in columns) + "   counted  observed")
        worst = 0.0
        for label, operation, payload in rows:
            call = functools.partial(host.call_actor, key, operation)
            assert call(payload) == payload
            best = dict.fromkeys(columns, float("inf"))
            best_of(call, payload, n // 4)  # warm up
            for _ in range(repeats):
                for column in columns:
                    with mode(column, host, recorder):
                        best[column] = min(best[column], best_of(call, payload, n))
            counted = best[COUNTED] / best[ANCHOR]
            observed = best[OBSERVED] / best[ANCHOR]
            worst = max(worst, observed)
            print(
                f"{label:16s}"
                + "".join(f"{best[c]:13.2f}" for c in columns)
                + f"   {counted:6.3f}x  {observed:6.3f}x"
            )
        verdict = "within" if worst <= TARGET else "OVER"
        print(f"worst ratio {worst:.3f}x: {verdict} the {TARGET:.2f}x target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
