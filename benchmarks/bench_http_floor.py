"""The native wascc:http_server with no Python at all, against nginx: the HTTP data plane's floor.

``benchmarks/http_floor.c`` loads ``libwascc_http_server.so`` and answers every
request from a dispatcher written in C (a fixed 45-byte JSON body, as small
as the echo actor's), so wrk measures the server itself: accept, epoll,
parse, the HandleRequest payload, the response decoding and rendering.
nginx (if installed) serves the same body with ``return 200``, and
libmicrohttpd (if ``libmicrohttpd-dev`` is installed; ``benchmarks/mhd_hello.c``)
with a response made once and queued for every request.

Two setups, ABBA each (half the duration per leg, after a 1 s warm-up; wrk
runs one thread per CPU it may use: two threads time-slicing one CPU
inflate the p99 of every server):

* one core: each server pinned to CPU 0 (the native server with one worker
  thread, nginx with one worker), wrk pinned to the other CPUs;
* all cores: nothing pinned, the native server with its default threads,
  nginx with one worker per CPU; wrk shares the CPUs (on a 2-CPU machine
  this understates both servers: the load generator takes half).

Targets (issue 14): native >= 0.6x nginx's requests/s on one core, p99 <=
2x nginx's; with all cores >= 1.7x its own one-core rate.

Run: ``.venv/bin/python benchmarks/bench_http_floor.py [--duration S]
[--connections N] [--threads N] [--json]`` (needs gcc, wrk; nginx optional).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from bench_http import WrkResult, combine, parse_wrk

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "native" / "build" / "libwascc_http_server.so"

NGINX_CONF = """worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      default_type application/json;
      return 200 '{{"method":"GET","path":"/","query_string":""}}';
    }}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def running(command: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[None]:
    process = subprocess.Popen(
        command, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL
    )
    try:
        wait_listening(port)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)


def wrk(prefix: list[str], port: int, seconds: float, connections: int, threads: int) -> WrkResult:
    command = [
        *prefix,
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        f"http://127.0.0.1:{port}/",
    ]
    return parse_wrk(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def measure(
    servers: dict[str, tuple[list[str], int, dict[str, str]]],
    wrk_prefix: list[str],
    duration: float,
    connections: int,
    threads: int,
) -> dict[str, WrkResult]:
    """ABBA over the servers (each started once per leg)."""
    names = list(servers)
    order = names + names[::-1]
    legs: dict[str, list[WrkResult]] = {name: [] for name in names}
    for name in order:
        command, port, env = servers[name]
        with running(command, port, env):
            wrk(wrk_prefix, port, 1, connections, threads)
            legs[name].append(wrk(wrk_prefix, port, duration / 2, connections, threads))
    return {name: combine(*legs[name]) for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per server")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c (default 64)")
    parser.add_argument("--threads", type=int, help="wrk -t (default: one per CPU wrk may use)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    for tool in ("wrk", "gcc", "taskset"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed")
    subprocess.run(["make", "-s", "-C", str(ROOT / "native")], check=True)
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    cpus = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        floor = Path(tmp) / "http_floor"
        subprocess.run(
            ["gcc", "-O2", f"-I{ROOT / 'native' / 'include'}", "-o", str(floor),
             str(ROOT / "benchmarks" / "http_floor.c"), "-ldl"],
            check=True,
        )  # fmt: skip
        mhd: Path | None = None
        if Path("/usr/include/microhttpd.h").exists():
            mhd = Path(tmp) / "mhd_hello"
            subprocess.run(
                ["gcc", "-O2", "-o", str(mhd), str(ROOT / "benchmarks" / "mhd_hello.c"),
                 "-lmicrohttpd"],
                check=True,
            )  # fmt: skip
        report: dict[str, object] = {"cpus": len(cpus)}
        for setup in ("one_core", "all_cores"):
            one = setup == "one_core"
            pin = ["taskset", "-c", str(cpus[0])] if one else []
            wrk_prefix = ["taskset", "-c", ",".join(map(str, cpus[1:]))] if one else []
            native_port, nginx_port = free_port(), free_port()
            threads_env = {"WASCC_HTTP_THREADS": "1"} if one else {}
            servers = {
                "native": (
                    [*pin, str(floor), str(LIBRARY), str(native_port)],
                    native_port,
                    threads_env,
                )
            }
            if mhd is not None:
                mhd_port = free_port()
                workers = "1" if one else str(len(cpus))
                servers["libmicrohttpd"] = ([*pin, str(mhd), str(mhd_port), workers], mhd_port, {})
            if nginx:
                conf = Path(tmp) / f"nginx-{setup}.conf"
                workers = 1 if one else len(cpus)
                conf.write_text(NGINX_CONF.format(workers=workers, dir=tmp, port=nginx_port))
                servers["nginx"] = ([*pin, nginx, "-c", str(conf), "-p", tmp], nginx_port, {})
            wrk_threads = args.threads or (max(1, len(cpus) - 1) if one else len(cpus))
            results = measure(servers, wrk_prefix, args.duration, args.connections, wrk_threads)
            report[setup] = {name: asdict(r) for name, r in results.items()}
    one_core = report["one_core"]
    all_cores = report["all_cores"]
    assert isinstance(one_core, dict) and isinstance(all_cores, dict)
    native1 = one_core["native"]
    report["scaling"] = all_cores["native"]["requests_per_second"] / native1["requests_per_second"]
    if "nginx" in one_core:
        report["vs_nginx_rps"] = (
            native1["requests_per_second"] / one_core["nginx"]["requests_per_second"]
        )
        report["vs_nginx_p99"] = native1["p99_ms"] / max(one_core["nginx"]["p99_ms"], 1e-9)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"wrk -c{args.connections} (one thread per CPU it may use), GET / keep-alive, "
        f"{args.duration:g} s ABBA"
    )
    print(f"{'':28s}{'requests/s':>12s}{'p50 ms':>10s}{'p99 ms':>10s}{'errors':>8s}")
    for setup in ("one_core", "all_cores"):
        rows = report[setup]
        assert isinstance(rows, dict)
        for name, row in rows.items():
            print(
                f"{setup + ' ' + name:28s}{row['requests_per_second']:12,.0f}"
                f"{row['p50_ms']:10.2f}{row['p99_ms']:10.2f}{row['errors']:8d}"
            )
    if "vs_nginx_rps" in report:
        print(
            f"\none core: native/nginx requests/s = {report['vs_nginx_rps']:.2f} (target >= 0.6), "
            f"p99 = {report['vs_nginx_p99']:.2f}x (target <= 2)"
        )
    print(f"native all cores / one core = {report['scaling']:.2f} (target >= 1.7)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
