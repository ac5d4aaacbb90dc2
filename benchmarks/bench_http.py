"""What does the actor cost behind wascc:http_server?  wrk against two servers.

In one run, with the same wrk settings (keep-alive ``GET /``):

* (a) echo actor: the ``examples/echo`` actor bound to
  ``wascc_capabilities.http_server.HttpServerProvider`` through a real Host;
* (b) bare handler: a second ``HttpServerProvider`` whose dispatch step is a
  Python function returning the precomputed msgpack response the echo actor
  gives for that exact request (same listener, poller, workers, parser,
  request encoding, response decoding and writer: only the host and the wasm
  call are missing).

Each runs ABBA (half the duration per leg) after a one-second warm-up;
requests/second is the mean of the two legs, p50 and p99 (parsed from
``wrk --latency``) the worse of the two.  Unless ``--no-pin``, wrk and this
process get separate CPUs (the server the first half, wrk the rest), so the
load generator does not steal the server's core mid-request.  Target:
(a)/(b) >= 0.7 in requests/second.

Run: ``.venv/bin/python benchmarks/bench_http.py [--quick] [--duration S]
[--connections N] [--threads N] [--no-pin] [--json]`` (needs ``wrk`` on PATH and the
examples built; ``make examples`` or this script builds them).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from wascc_capabilities.http_server import HttpServerProvider

from wascc import Host, KeyPair
from wascc.wire.codec import CapabilityConfiguration, HttpResponse

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TARGET_RATIO = 0.7
HTTP = "wascc:http_server"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors plus non-2xx/3xx responses


def build_examples() -> str:
    """Build and sign the example actors (incrementally); the signing account's key."""
    bindir = Path(sys.executable).parent
    tools = [f"WASCC={bindir / 'wascc'}", f"PYTHON={sys.executable}"]
    subprocess.run(["make", "-s", "-C", str(EXAMPLES), *tools], check=True)
    seed = (EXAMPLES / ".keys" / "account.nk").read_text().strip()
    return KeyPair.from_seed(seed).public_key


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """Requests/second, p50, p99, requests and errors from ``wrk --latency`` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    total = re.search(r"(\d+) requests in", output)
    if not (rps and p50 and p99 and total):
        raise ValueError(f"unexpected wrk output:\n{output}")
    errors = 0
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    return WrkResult(
        float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), int(total.group(1)), errors
    )


# The ``taskset`` prefix that keeps wrk off the server's CPUs (see pin_cpus).
_wrk_prefix: list[str] = []


def pin_cpus() -> str:
    """Keep wrk and this process on different CPUs, so they do not preempt each other.

    The server runs its requests on one thread at a time (the GIL), so it gets
    the first CPU, or the first half of them; wrk gets the rest (via taskset).
    """
    taskset = shutil.which("taskset")
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(available) < 2 or taskset is None:
        return "not pinned (needs 2 CPUs and taskset)"
    half = max(1, len(available) // 2)
    server, load = available[:half], available[half:]
    os.sched_setaffinity(0, server)
    _wrk_prefix[:] = [taskset, "-c", ",".join(map(str, load))]
    return f"server on CPU {server}, wrk on CPU {load}"


def wrk(port: int, duration: float, connections: int, threads: int) -> WrkResult:
    command = [
        *_wrk_prefix,
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        f"http://127.0.0.1:{port}/",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return parse_wrk(done.stdout)


def raw_get(port: int) -> bytes:
    """The body of ``GET /`` sent exactly as wrk sends it (so the handler sees wrk's payload)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        file = sock.makefile("rb")
        headers: dict[str, str] = {}
        status = file.readline()
        while (line := file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        assert b" 200 " in status, status
        return file.read(int(headers["content-length"]))


def combine(first: WrkResult, second: WrkResult) -> WrkResult:
    return WrkResult(
        (first.requests_per_second + second.requests_per_second) / 2,
        max(first.p50_ms, second.p50_ms),
        max(first.p99_ms, second.p99_ms),
        first.requests + second.requests,
        first.errors + second.errors,
    )


def run(duration: float, connections: int, threads: int) -> dict[str, object]:
    account = build_examples()
    with Host(trusted_issuers=[account], health_interval=0, load_entry_points=False) as host:
        echo = host.add_actor((EXAMPLES / "echo" / "build" / "echo_s.wasm").read_bytes())
        through_actor = HttpServerProvider()
        host.add_provider(through_actor)
        host.set_binding(echo, HTTP, values={"PORT": "0"})
        port_a = through_actor.address(echo)[1]

        answers: dict[bytes, bytes] = {}
        misses = 0

        def precomputed(actor: str, payload: bytes) -> bytes:
            nonlocal misses
            answer = answers.get(payload)
            if answer is None:  # filled by the warm-up request below, before timing
                misses += 1
                answer = answers[payload] = host.call_actor(echo, "HandleRequest", payload)
            return answer

        bare = HttpServerProvider(handler=precomputed)
        config = CapabilityConfiguration(echo, {"PORT": "0"})
        bare.handle_call("system", "BindActor", config.encode())
        try:
            port_b = bare.address(echo)[1]
            body_a, body_b = raw_get(port_a), raw_get(port_b)
            same = body_a.replace(str(port_a).encode(), b"PORT") == body_b.replace(
                str(port_b).encode(), b"PORT"
            )
            assert same, f"the two servers answer differently:\n{body_a!r}\n{body_b!r}"
            assert HttpResponse.decode(next(iter(answers.values()))).status_code == 200
            warm_misses = misses
            for port in (port_a, port_b):
                wrk(port, 1, connections, threads)
            half = duration / 2
            a1 = wrk(port_a, half, connections, threads)
            b1 = wrk(port_b, half, connections, threads)
            b2 = wrk(port_b, half, connections, threads)
            a2 = wrk(port_a, half, connections, threads)
        finally:
            bare.stop()
    a, b = combine(a1, a2), combine(b1, b2)
    ratio = a.requests_per_second / b.requests_per_second
    return {
        "settings": {"duration_s": duration, "connections": connections, "threads": threads},
        "echo_actor": asdict(a),
        "bare_handler": asdict(b),
        "ratio": ratio,
        "target": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
        "handler_misses_while_timed": misses - warm_misses,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="4 s per server instead of 10")
    parser.add_argument("--duration", type=float, help="seconds per server (default 10)")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    parser.add_argument(
        "--no-pin", action="store_true", help="let wrk and the server share every CPU"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (apt-get install wrk)")
    duration = args.duration or (4.0 if args.quick else 10.0)
    pinning = "not pinned (--no-pin)" if args.no_pin else pin_cpus()
    report = run(duration, args.connections, args.threads)
    report["cpus"] = pinning
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    a, b = report["echo_actor"], report["bare_handler"]
    assert isinstance(a, dict) and isinstance(b, dict)
    print(
        f"wrk -t{args.threads} -c{args.connections}, GET / with keep-alive, "
        f"{duration:g} s per server (ABBA); {pinning}\n"
    )
    print(f"{'':28s}{'requests/s':>12s}{'p50 ms':>10s}{'p99 ms':>10s}{'errors':>8s}")
    for name, row in (("(a) echo actor", a), ("(b) bare handler", b)):
        print(
            f"{name:28s}{row['requests_per_second']:12,.0f}{row['p50_ms']:10.2f}"
            f"{row['p99_ms']:10.2f}{row['errors']:8d}"
        )
    ratio = report["ratio"]
    assert isinstance(ratio, float)
    met = "met" if report["target_met"] else "MISSED"
    print(f"\n(a)/(b) requests/s = {ratio:.2f}   [{met}] target >= {TARGET_RATIO}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
