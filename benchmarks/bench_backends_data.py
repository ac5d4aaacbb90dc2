"""Blob and graph backends beside their bare peers (the data part of bench_backends).

Blob (``wascc:blobstore`` on the filesystem), MB/s for one blob of ``--blob-mib``
MiB in 1 MiB chunks, best of ``--repeat``:

* provider upload:   StartUpload + UploadChunk straight into the provider
  (msgpack decode, ordered write, fsync and rename at the end);
* actor upload:      the same chunks sent by an actor through ``__host_call``
  (the test actor's ``Call``), so the host's path is included;
* provider download: StartDownload, the ReceiveChunk dispatches counted by a
  dispatcher that drops them (the provider's read + msgpack encode);
* plain write+fsync: the same chunks written to a file and fsynced;
* plain read:        the file read back in 1 MiB chunks;
* file copy:         ``shutil.copyfile`` of the blob.

Graph (``wascc:graphdb`` on the embedded FalkorDB), microseconds per query
round trip (median of ``--calls``) for ``RETURN 1`` and a one-hop MATCH:

* bare redis-py:  ``GRAPH.QUERY ... --compact`` on the same Unix socket;
* provider:       ``QueryGraph`` into the provider (query + ResultSet encode);
* actor:          an actor's ``__host_call`` to the provider and back.

Run: ``.venv/bin/python benchmarks/bench_backends_data.py [--only blob|graph]
[--quick] [--json]``.  The functions :func:`bench_blob` and :func:`bench_graph`
return the rows, for ``bench_backends.py`` to fold in.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import wasmtime
from wascc_capabilities.blobstore import FsBlobstoreProvider
from wascc_capabilities.graphdb import GraphProvider

from wascc import Host, KeyPair, KeyType, sign_module
from wascc.wire.codec import CapabilityConfiguration, FileChunk, QueryGraphRequest, StreamRequest

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
BLOB = "wascc:blobstore"
GRAPH = "wascc:graphdb"


def call_payload(namespace: str, operation: str, payload: bytes) -> bytes:
    """The test actor's `Call` payload: length-prefixed binding, namespace, operation."""
    fields = [text.encode() for text in ("", namespace, operation)]
    return b"".join(bytes([len(f)]) + f for f in fields) + payload


def test_actor(host: Host, caps: list[str]) -> str:
    account = KeyPair.generate(KeyType.ACCOUNT)
    signed = sign_module(
        wasmtime.wat2wasm((ROOT / "tests" / "actors" / "testactor.wat").read_text()),
        issuer=account,
        subject=KeyPair.generate(KeyType.MODULE),
        name="bench",
        caps=caps,
    )
    return host.add_actor(signed)


class Counter:
    """A dispatcher that counts ReceiveChunk bytes and drops them."""

    def __init__(self) -> None:
        self.chunks = 0
        self.done = threading.Event()
        self.expect = 0

    def dispatch(self, actor: str, operation: str, payload: bytes) -> bytes:
        self.chunks += 1
        if self.chunks == self.expect:
            self.done.set()
        return b""


def _chunks(size: int) -> list[bytes]:
    piece = os.urandom(MIB)
    return [piece] * (size // MIB)


def bench_blob(mib: int = 64, repeat: int = 3) -> dict[str, float]:
    """MB/s of each blob peer (see the module doc)."""
    size = mib * MIB
    chunks = _chunks(size)
    rates: dict[str, list[float]] = {}

    def rate(name: str, seconds: float) -> None:
        rates.setdefault(name, []).append(size / seconds / 1e6)

    with tempfile.TemporaryDirectory(prefix="wascc-bench-blob-") as tmp:
        root = Path(tmp)
        counter = Counter()
        provider = FsBlobstoreProvider()
        provider.configure_dispatch(counter)
        actor_key = "M" + "B" * 55
        values = {"ROOT": str(root / "blobs"), "MAX_BYTES": str(size)}
        provider.handle_call(
            "system", "BindActor", CapabilityConfiguration(actor_key, values).encode()
        )
        provider.handle(actor_key, "CreateContainer", b"\x81\xa2id\xa1c")
        host = Host(health_interval=0, load_entry_points=False)
        host_provider = FsBlobstoreProvider()
        host.add_provider(host_provider)
        actor = test_actor(host, [BLOB])
        host.set_binding(actor, BLOB, values={"ROOT": str(root / "actor"), "MAX_BYTES": str(size)})
        host.call_actor(actor, "Call", call_payload(BLOB, "CreateContainer", b"\x81\xa2id\xa1c"))
        try:
            for _ in range(repeat):
                head = FileChunk(container="c", id="b", total_bytes=size).encode()
                msgs = [
                    FileChunk(
                        sequence_no=i, container="c", id="b", total_bytes=size, chunk_bytes=c
                    ).encode()
                    for i, c in enumerate(chunks)
                ]
                start = time.perf_counter()
                provider.handle(actor_key, "StartUpload", head)
                for msg in msgs:
                    provider.handle(actor_key, "UploadChunk", msg)
                rate("provider upload", time.perf_counter() - start)

                calls = [call_payload(BLOB, "UploadChunk", m) for m in msgs]
                start = time.perf_counter()
                host.call_actor(actor, "Call", call_payload(BLOB, "StartUpload", head))
                for c in calls:
                    host.call_actor(actor, "Call", c)
                rate("actor upload", time.perf_counter() - start)

                counter.chunks, counter.expect = 0, len(chunks)
                counter.done.clear()
                request = StreamRequest(id="b", container="c", chunk_size=MIB).encode()
                start = time.perf_counter()
                provider.handle(actor_key, "StartDownload", request)
                counter.done.wait(120)
                rate("provider download", time.perf_counter() - start)

                plain = root / "plain"
                start = time.perf_counter()
                with plain.open("wb") as f:
                    for c in chunks:
                        f.write(c)
                    f.flush()
                    os.fsync(f.fileno())
                rate("plain write+fsync", time.perf_counter() - start)
                start = time.perf_counter()
                with plain.open("rb") as f:
                    while f.read(MIB):
                        pass
                rate("plain read", time.perf_counter() - start)
                start = time.perf_counter()
                shutil.copyfile(plain, root / "copy")
                rate("file copy", time.perf_counter() - start)
        finally:
            provider.stop()
            host.stop()
    return {name: max(values) for name, values in rates.items()}


def _median_us(call: Callable[[], object], calls: int) -> float:
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def bench_graph(calls: int = 2000) -> dict[str, dict[str, float]]:
    """Median microseconds per query round trip of each graph peer (see the module doc)."""
    queries = {
        "RETURN 1": "RETURN 1",
        "one-hop MATCH": "MATCH (:Person {name: 'Ann'})-[:FOLLOWS]->(b) RETURN b.name",
    }
    host = Host(health_interval=0, load_entry_points=False)
    provider = GraphProvider()
    host.add_provider(provider)
    actor = test_actor(host, [GRAPH])
    host.set_binding(actor, GRAPH)
    client = provider.embedded.client()
    graph = "bench"
    client.execute_command(
        "GRAPH.QUERY",
        graph,
        "CREATE (a:Person {name: 'Ann'}), (b:Person {name: 'Bob'}), (c:Person {name: 'Cid'}),"
        " (a)-[:FOLLOWS]->(b), (a)-[:FOLLOWS]->(c)",
    )
    rows: dict[str, dict[str, float]] = {}
    try:
        for label, query in queries.items():
            request = QueryGraphRequest(query=query, graph_name=graph).encode()
            payload = call_payload(GRAPH, "QueryGraph", request)

            def bare(q: str = query) -> object:
                return client.execute_command("GRAPH.QUERY", graph, q, "--compact")

            def direct(r: bytes = request) -> object:
                return provider.handle_call(actor, "QueryGraph", r)

            def through_actor(p: bytes = payload) -> object:
                return host.call_actor(actor, "Call", p)

            for peer in (bare, direct, through_actor):  # warm up the caches
                for _ in range(50):
                    peer()
            rows[label] = {
                "bare redis-py": _median_us(bare, calls),
                "provider": _median_us(direct, calls),
                "actor": _median_us(through_actor, calls),
            }
    finally:
        host.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("blob", "graph"))
    parser.add_argument("--quick", action="store_true", help="smaller blob, fewer calls")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    if args.only in (None, "blob"):
        mib = 16 if args.quick else 64
        out["blob_mb_per_s"] = bench_blob(mib, 1 if args.quick else 3)
        if not args.json:
            print(f"blob: {mib} MiB in 1 MiB chunks, MB/s (best of runs)")
            for name, value in out["blob_mb_per_s"].items():
                print(f"  {name:<20} {value:8.0f}")
    if args.only in (None, "graph"):
        out["graph_us"] = bench_graph(200 if args.quick else 2000)
        if not args.json:
            print("graph: embedded FalkorDB, median us per round trip")
            print(
                f"  {'query':<16} {'bare redis-py':>14} {'provider':>10} {'actor':>10} {'actor/bare':>11}"
            )
            for label, row in out["graph_us"].items():
                ratio = row["actor"] / row["bare redis-py"]
                print(
                    f"  {label:<16} {row['bare redis-py']:14.1f} {row['provider']:10.1f}"
                    f" {row['actor']:10.1f} {ratio:10.2f}x"
                )
    if args.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
