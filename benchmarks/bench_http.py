"""What does the actor cost behind wascc:http_server?  wrk against wascc, a bare handler and nginx.

In one run, with the same wrk settings (keep-alive ``GET /``):

* (a) echo actor: the ``examples/echo`` actor bound to a ``wascc:http_server``
  provider through a real Host: the Python one
  (``wascc_capabilities.http_server``, ``--server python``, the default), or a
  native C one (``--server native``: its ``.so`` from ``--native-http PATH``
  or ``$WASCC_NATIVE_HTTP_SERVER``, bound with ``PORT`` set to a free port);
* (b) bare handler (Python server only): a second ``HttpServerProvider``
  whose dispatch step is a Python function returning the precomputed msgpack
  response the echo actor gives for that exact request (same listener,
  poller, workers, parser, request encoding, response decoding and writer:
  only the host and the wasm call are missing);
* (n) nginx, the anchor: Debian's nginx (``nginx-light``; ``benchmarks/deps``
  installs it for ``make bench``), one process (``master_process off``, one
  worker) serving the echo actor's own answer as a fixed body from a file,
  pinned to the same CPU as the host's server, access log off;
* (c) the echo actor again with the host on both CPUs (and wrk unpinned, as
  it must share them): how the server scales past one core;
* (k) the HTTP echo as a WASI 0.2 component (``tests/components/http_echo.wat``,
  exporting ``wasi:http/incoming-handler``) bound to the same server beside
  the actor: its requests/second over the actor's is printed (no target:
  components run on the Python path).

Each of (a), (b), (n), (k) runs twice, in the order a b n k k n b a (half the duration
per leg) after a one-second warm-up each; requests/second is the mean of the
two legs, p50 and p99 (parsed from ``wrk --latency``) the worse of the two.
Unless ``--no-pin``, wrk and this process get separate CPUs (the server the
first half, wrk the rest), so the load generator does not steal the server's
core mid-request; with ``--no-pin`` nginx is not pinned and (c) is skipped.
wrk runs one thread per CPU it is given (``--threads`` to change it): two
threads time-slicing one CPU delay responses that arrive while their thread
waits, which inflated nginx's p99 about threefold (27 ms instead of 10 ms).

Targets: (a)/(b) >= 0.7 in requests/second (the Python server); (a)/(n) >=
0.6 in requests/second and <= 2 in p99, and (c)/(a) >= 1.7 (issue 14's
targets for the native http_server).

Run: ``.venv/bin/python benchmarks/bench_http.py [--quick] [--duration S]
[--connections N] [--threads N] [--no-pin] [--server python|native]
[--native-http PATH] [--nginx PATH] [--json]`` (needs ``wrk``, ``taskset`` and
nginx, which ``bash benchmarks/deps`` installs as root, and the examples
built; ``make examples`` or this script builds them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import wasmtime
from wascc_capabilities.http_server import HttpServerProvider

from wascc import Host, KeyPair, KeyType, sign_module
from wascc.providers.native import load_native_provider
from wascc.wire.codec import CapabilityConfiguration, HttpResponse

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
HTTP_COMPONENT = ROOT / "tests" / "components" / "http_echo.wat"
TARGET_RATIO = 0.7
NGINX_RPS_TARGET = 0.6  # (a)/(n) requests/s, at least
NGINX_P99_TARGET = 2.0  # (a)/(n) p99, at most
TWO_CPU_TARGET = 1.7  # (c)/(a) requests/s, at least
NATIVE_HTTP_ENV = "WASCC_NATIVE_HTTP_SERVER"
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


# The ``taskset`` prefixes that keep wrk off the server's CPUs and nginx on
# them (see pin_cpus); empty when not pinned.
_wrk_prefix: list[str] = []
_server_prefix: list[str] = []
_all_cpus: list[int] = []  # this process's CPUs before pinning
_wrk_cpus = 0  # how many CPUs wrk is pinned to (0: not pinned)


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
    _all_cpus[:] = available
    os.sched_setaffinity(0, server)
    _wrk_prefix[:] = [taskset, "-c", ",".join(map(str, load))]
    global _wrk_cpus
    _wrk_cpus = len(load)
    _server_prefix[:] = [taskset, "-c", ",".join(map(str, server))]
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


def spread_cpus() -> list[int]:
    """Let every thread of this process (and wrk) run on every CPU again: the two-CPU run."""
    every = _all_cpus or sorted(os.sched_getaffinity(0))
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task), every)
    _wrk_prefix.clear()
    return every


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(port: int, what: str, alive: Callable[[], str | None], timeout: float = 10) -> None:
    """Until ``GET /`` on ``port`` answers; ``alive`` says why the server is gone, if it is."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            raw_get(port)
            return
        except OSError:
            gone = alive()
            if gone is not None:
                raise SystemExit(f"{what} did not start: {gone}") from None
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"{what} did not answer on port {port} within {timeout:g} s"
                ) from None
            time.sleep(0.05)


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    open_file_cache max=16;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {tmp};
        location = / {{
            default_type application/octet-stream;
            try_files /body =404;
        }}
    }}
}}
"""


def find_nginx(explicit: str | None) -> str:
    found = explicit or shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(found, os.X_OK):
        raise SystemExit(
            f"nginx is not installed at {found} (as root: bash benchmarks/deps, or --nginx PATH)"
        )
    return found


@contextmanager
def nginx_serving(nginx: str, body: bytes) -> Iterator[int]:
    """Debian's nginx, one process on the server's CPUs, answering ``GET /`` with ``body``."""
    with tempfile.TemporaryDirectory(prefix="wascc-nginx-") as tmp:
        port = free_port()
        (Path(tmp) / "body").write_bytes(body)
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, port=port))
        log = Path(tmp) / "error.log"
        command = [*_server_prefix, nginx, "-p", tmp, "-c", str(conf)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def gone() -> str | None:
            if process.poll() is None:
                return None
            errors = process.stderr.read().decode(errors="replace") if process.stderr else ""
            text = log.read_text(errors="replace") if log.exists() else ""
            return f"exit {process.returncode}: {(errors + text).strip()}"

        try:
            wait_for(port, "nginx", gone)
            yield port
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def native_http_path(explicit: str | None) -> Path:
    value = explicit or os.environ.get(NATIVE_HTTP_ENV)
    if not value:
        raise SystemExit(
            f"--server native needs the native http_server's .so: --native-http PATH or "
            f"${NATIVE_HTTP_ENV}"
        )
    path = Path(value)
    if not path.is_file():
        raise SystemExit(f"the native http_server {path} does not exist or is not a file")
    return path


def serve_component(host: Host) -> int:
    """Sign and add the HTTP echo component, bind it to the server already added; its port."""
    account = KeyPair.from_seed((EXAMPLES / ".keys" / "account.nk").read_text().strip())
    signed = sign_module(
        wasmtime.wat2wasm(HTTP_COMPONENT.read_text()),
        issuer=account,
        subject=KeyPair.generate(KeyType.MODULE),
        name="http_echo",
        caps=[HTTP],
    )
    component = host.add_actor(signed)
    port = free_port()
    host.set_binding(component, HTTP, values={"PORT": str(port)})
    wait_for(port, "the HTTP echo component", lambda: None)
    return port


def serve_echo(host: Host, echo: str, server: str, native_http: Path | None) -> int:
    """Bind the echo actor to an http_server provider; its port, once it answers."""
    if server == "native":
        assert native_http is not None
        provider = load_native_provider(native_http)
        if provider.descriptor().id not in (HTTP, "wasmcloud:httpserver"):
            raise SystemExit(f"{native_http} provides {provider.descriptor().id}, not {HTTP}")
        host.add_provider(provider)
        port = free_port()
        host.set_binding(echo, HTTP, values={"PORT": str(port)})
        wait_for(port, f"the native http_server ({native_http})", lambda: None)
        return port
    python_server = HttpServerProvider()
    host.add_provider(python_server)
    host.set_binding(echo, HTTP, values={"PORT": "0"})
    return int(python_server.address(echo)[1])


@dataclass(frozen=True)
class Settings:
    duration: float
    connections: int
    threads: int
    server: str
    native_http: Path | None
    nginx: str
    pinned: bool


def two_legs(port: int, settings: Settings) -> tuple[WrkResult, WrkResult]:
    half = settings.duration / 2
    return (
        wrk(port, half, settings.connections, settings.threads),
        wrk(port, half, settings.connections, settings.threads),
    )


def run(settings: Settings) -> dict[str, object]:
    account = build_examples()
    c, conns, threads = settings, settings.connections, settings.threads
    half = settings.duration / 2
    results: dict[str, WrkResult | None] = {"bare_handler": None, "two_cpus": None}
    misses_while_timed = 0
    with Host(trusted_issuers=[account], health_interval=0, load_entry_points=False) as host:
        echo = host.add_actor((EXAMPLES / "echo" / "build" / "echo_s.wasm").read_bytes())
        port_a = serve_echo(host, echo, c.server, c.native_http)
        body_a = raw_get(port_a)
        port_k = serve_component(host)
        assert raw_get(port_k) == b"GET /\n", "the HTTP echo component answers differently"
        answers: dict[bytes, bytes] = {}
        misses = 0

        def precomputed(actor: str, payload: bytes) -> bytes:
            nonlocal misses
            answer = answers.get(payload)
            if answer is None:  # filled by the warm-up request below, before timing
                misses += 1
                answer = answers[payload] = host.call_actor(echo, "HandleRequest", payload)
            return answer

        bare = HttpServerProvider(handler=precomputed) if c.server == "python" else None
        port_b = None
        if bare is not None:
            bare.handle_call(
                "system", "BindActor", CapabilityConfiguration(echo, {"PORT": "0"}).encode()
            )
        try:
            if bare is not None:
                port_b = bare.address(echo)[1]
                body_b = raw_get(port_b)
                same = body_a.replace(str(port_a).encode(), b"PORT") == body_b.replace(
                    str(port_b).encode(), b"PORT"
                )
                assert same, f"the two servers answer differently:\n{body_a!r}\n{body_b!r}"
                assert HttpResponse.decode(next(iter(answers.values()))).status_code == 200
            warm_misses = misses
            with nginx_serving(c.nginx, body_a) as port_n:
                assert raw_get(port_n) == body_a, "nginx does not answer the echo actor's body"
                ports = [p for p in (port_a, port_b, port_n, port_k) if p is not None]
                for port in ports:
                    wrk(port, 1, conns, threads)
                legs: dict[int, list[WrkResult]] = {port: [] for port in ports}
                for port in [*ports, *reversed(ports)]:
                    legs[port].append(wrk(port, half, conns, threads))
            misses_while_timed = misses - warm_misses
            if c.pinned:
                spread_cpus()
                wrk(port_a, 1, conns, threads)
                results["two_cpus"] = combine(*two_legs(port_a, c))
        finally:
            if bare is not None:
                bare.stop()
    results["echo_actor"] = combine(*legs[port_a])
    results["nginx"] = combine(*legs[port_n])
    results["echo_component"] = combine(*legs[port_k])
    if port_b is not None:
        results["bare_handler"] = combine(*legs[port_b])
    return report(settings, results, misses_while_timed)


def report(
    settings: Settings, results: dict[str, WrkResult | None], misses: int
) -> dict[str, object]:
    a, b, nginx, two = (results[k] for k in ("echo_actor", "bare_handler", "nginx", "two_cpus"))
    assert a is not None and nginx is not None
    ratios: dict[str, dict[str, object]] = {}

    def judge(name: str, value: float, target: float, at_least: bool) -> None:
        met = value >= target if at_least else value <= target
        ratios[name] = {"ratio": value, "target": target, "at_least": at_least, "met": met}

    if b is not None:
        judge(
            "echo/bare requests/s",
            a.requests_per_second / b.requests_per_second,
            TARGET_RATIO,
            True,
        )
    judge(
        "echo/nginx requests/s",
        a.requests_per_second / nginx.requests_per_second,
        NGINX_RPS_TARGET,
        True,
    )
    judge("echo/nginx p99", a.p99_ms / nginx.p99_ms, NGINX_P99_TARGET, False)
    if two is not None:
        judge(
            "two CPUs/one CPU requests/s",
            two.requests_per_second / a.requests_per_second,
            TWO_CPU_TARGET,
            True,
        )
    return {
        "settings": {
            "duration_s": settings.duration,
            "connections": settings.connections,
            "threads": settings.threads,
            "server": settings.server,
            "native_http": str(settings.native_http) if settings.native_http else None,
            "nginx": settings.nginx,
        },
        "echo_actor": asdict(a),
        "bare_handler": asdict(b) if b else None,
        "nginx": asdict(nginx),
        "echo_actor_two_cpus": asdict(two) if two else None,
        "ratios": ratios,
        "handler_misses_while_timed": misses,
        **component_report(a, results.get("echo_component")),
    }


def component_report(actor: WrkResult, component: WrkResult | None) -> dict[str, object]:
    """(k): the HTTP echo component's row and its requests/s over the echo actor's."""
    if component is None:
        return {}
    ratio = component.requests_per_second / actor.requests_per_second
    return {"echo_component": asdict(component), "component/actor requests/s": ratio}


def print_report(result: dict[str, object], settings: Settings, pinning: str) -> None:
    print(
        f"wrk -t{settings.threads} -c{settings.connections}, GET / with keep-alive, "
        f"{settings.duration:g} s per server (a b n k k n b a); {pinning}\n"
    )
    print(f"{'':34s}{'requests/s':>12s}{'p50 ms':>10s}{'p99 ms':>10s}{'errors':>8s}")
    rows = (
        (f"(a) echo actor ({settings.server} server)", "echo_actor"),
        ("(b) bare handler", "bare_handler"),
        ("(n) nginx, one worker", "nginx"),
        ("(c) echo actor, both CPUs", "echo_actor_two_cpus"),
        ("(k) HTTP echo component", "echo_component"),
    )
    for name, key in rows:
        row = result[key]
        if not isinstance(row, dict):
            continue
        print(
            f"{name:34s}{row['requests_per_second']:12,.0f}{row['p50_ms']:10.2f}"
            f"{row['p99_ms']:10.2f}{row['errors']:8d}"
        )
    print()
    ratios = result["ratios"]
    assert isinstance(ratios, dict)
    for name, r in ratios.items():
        sign = ">=" if r["at_least"] else "<="
        met = "met" if r["met"] else "MISSED"
        print(f"{name:34s}{r['ratio']:8.2f}   [{met}] target {sign} {r['target']}")
    component = result.get("component/actor requests/s")
    if isinstance(component, float):
        print(f"{'component/actor requests/s':34s}{component:8.3f}   (no target)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="4 s per server instead of 10")
    parser.add_argument("--duration", type=float, help="seconds per server (default 10)")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c (default 64)")
    parser.add_argument(
        "--threads",
        type=int,
        help="wrk -t (default: one per CPU wrk is pinned to, 2 when not pinned)",
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="let wrk and the server share every CPU"
    )
    parser.add_argument(
        "--server",
        choices=("python", "native"),
        default="python",
        help="the http_server provider in front of the actor (default python)",
    )
    parser.add_argument(
        "--native-http",
        metavar="PATH",
        help=f"the native http_server's .so for --server native (default ${NATIVE_HTTP_ENV})",
    )
    parser.add_argument("--nginx", metavar="PATH", help="the nginx binary (default: on PATH)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (as root: bash benchmarks/deps)")
    native_http = native_http_path(args.native_http) if args.server == "native" else None
    nginx = find_nginx(args.nginx)
    duration = args.duration or (4.0 if args.quick else 10.0)
    pinning = "not pinned (--no-pin)" if args.no_pin else pin_cpus()
    settings = Settings(
        duration,
        args.connections,
        args.threads or _wrk_cpus or 2,
        args.server,
        native_http,
        nginx,
        pinned=bool(_wrk_prefix),
    )
    result = run(settings)
    result["cpus"] = pinning
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result, settings, pinning)
    return 0


if __name__ == "__main__":
    sys.exit(main())
