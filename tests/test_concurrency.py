"""Many threads, one actor: every answer reaches its own caller, and hot swaps lose nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from wascc import Host, KeyPair, KeyType

from conftest import Signer, build_test_actor, call_payload
from providers import TESTING, RecordingProvider

THREADS = 8
CALLS = 2000


def run_threads(worker: Callable[[int], None], count: int = THREADS) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def wrapped(index: int) -> None:
        barrier.wait()
        try:
            worker(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_eight_threads_two_thousand_calls_each_all_matched(host: Host, sign: Signer) -> None:
    signed, _ = sign(name="busy")
    key = host.add_actor(signed, max_instances=THREADS)
    mismatches: list[tuple[bytes, bytes]] = []

    def worker(index: int) -> None:
        for n in range(CALLS):
            payload = f"thread {index} call {n} ".encode() * (1 + n % 5)
            reply = host.call_actor(key, "Echo", payload)
            if reply != payload:
                mismatches.append((payload, reply))

    assert run_threads(worker) == []
    assert mismatches == []
    info = host.actor(key)
    assert info.calls == THREADS * CALLS
    assert 1 <= info.instances <= THREADS


def test_concurrent_host_calls_through_a_provider_are_matched(host: Host, sign: Signer) -> None:
    provider = RecordingProvider()
    host.add_provider(provider)
    signed, _ = sign(name="caller", caps=[TESTING])
    key = host.add_actor(signed, max_instances=4)
    host.set_binding(key, TESTING)

    def worker(index: int) -> None:
        for n in range(500):
            body = f"{index}:{n}".encode()
            assert host.call_actor(key, "Call", call_payload(TESTING, "Echo", body)) == body

    assert run_threads(worker) == []
    assert len(provider.calls) == THREADS * 500


def test_pool_of_one_serializes_callers_without_losing_any(host: Host, sign: Signer) -> None:
    signed, _ = sign(name="single")
    key = host.add_actor(signed, max_instances=1)

    def worker(index: int) -> None:
        for n in range(300):
            payload = f"{index}-{n}".encode()
            assert host.call_actor(key, "Echo", payload) == payload

    assert run_threads(worker) == []
    assert host.actor(key).instances == 1


@pytest.mark.slow
def test_hot_swap_under_load_fails_no_call(host: Host, sign: Signer) -> None:
    module = KeyPair.generate(KeyType.MODULE)
    versions = [f"VERSION{i}" for i in range(1, 6)]
    builds = [sign(build_test_actor(v), module=module, name="swapped")[0] for v in versions]
    key = host.add_actor(builds[0], max_instances=THREADS)
    stop = threading.Event()
    seen: list[set[bytes]] = [set() for _ in range(THREADS)]
    progress = [0] * THREADS

    def worker(index: int) -> None:
        while not stop.is_set() or progress[index] < 200:
            payload = f"{index}/{progress[index]}".encode()
            assert host.call_actor(key, "Echo", payload) == payload
            seen[index].add(host.call_actor(key, "Version"))
            progress[index] += 1

    def swapper() -> None:
        try:
            for build in builds[1:]:
                # swap only while every worker is calling, after real progress
                mark = sum(progress)
                while sum(progress) < mark + 50 * THREADS or min(progress) == 0:
                    time.sleep(0.001)
                host.replace_actor(key, build)
        finally:
            stop.set()

    swap_thread = threading.Thread(target=swapper)
    swap_thread.start()
    errors = run_threads(worker)
    swap_thread.join()
    assert errors == []
    assert host.call_actor(key, "Version") == b"VERSION5"
    everything = set().union(*seen)
    assert everything <= {v.encode() for v in versions}
    assert len(everything) >= 3  # calls ran on several versions during the swaps
    assert b"VERSION5" in everything
