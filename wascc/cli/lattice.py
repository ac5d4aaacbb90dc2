"""``wascc lattice``: what a lattice runs, asked over NATS (no host needed).

``hosts | actors | providers | bindings`` ask every host through the
protocol's inventory subjects (answers collected for ``--window`` seconds);
``bindings --recorded`` reads the lattice's JetStream bucket instead (also
bindings whose provider runs nowhere right now); ``events`` prints the
lattice's events as they happen, like a spy.  To bind, use ``wascc ctl bind``
on any host of the lattice.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import click

from wascc.cli.main import fail, main
from wascc.errors import WasccError
from wascc.lattice.client import LatticeClient

__all__ = ["lattice"]


def _client(ctx: click.Context) -> LatticeClient:
    o = ctx.obj
    if not o["url"]:
        fail("no lattice: give --lattice nats://HOST:PORT (or set $WASCC_LATTICE)")
    try:
        return LatticeClient(
            o["url"], o["namespace"] or "", creds=o["creds"], inventory_window=o["window"]
        )
    except WasccError as exc:
        fail(str(exc))


def _emit(ctx: click.Context, data: Any, lines: list[str]) -> None:
    if ctx.obj["json"]:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        for line in lines:
            click.echo(line)


@main.group()
@click.option("--lattice", "url", metavar="URL", envvar="WASCC_LATTICE", help="NATS URL.")
@click.option("--namespace", envvar="WASCC_LATTICE_NAMESPACE", help="The lattice namespace.")
@click.option("--creds", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--window", type=float, default=0.5, show_default=True, help="Seconds to collect answers."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def lattice(
    ctx: click.Context,
    url: str | None,
    namespace: str | None,
    creds: Path | None,
    window: float,
    as_json: bool,
) -> None:
    """Ask a lattice what runs where, and follow its events.

    \b
    Example:
      wascc lattice --lattice nats://127.0.0.1:4222 --namespace prod hosts
      wascc lattice actors --json
      wascc lattice events
    """
    ctx.obj = {"url": url, "namespace": namespace, "creds": creds, "window": window,
               "json": as_json}  # fmt: skip


@lattice.command()
@click.pass_context
def hosts(ctx: click.Context) -> None:
    """Every host that answers: id, uptime, labels."""
    with _client(ctx) as client:
        found = [a["Host"] for a in client.inventory("hosts") if "Host" in a]
    found.sort(key=lambda h: h["id"])
    _emit(
        ctx,
        found,
        [
            f"{h['id']}  up {h['uptime_ms'] / 1000:.0f}s  "
            + " ".join(f"{k}={v}" for k, v in sorted(h["labels"].items()))
            for h in found
        ],
    )


@lattice.command()
@click.pass_context
def actors(ctx: click.Context) -> None:
    """Every running actor, by host."""
    with _client(ctx) as client:
        found = [a["Actors"] for a in client.inventory("actors") if "Actors" in a]
    lines = [
        f"{c['sub']}  {c['wascap'].get('name', '')}  on {h['host']}"
        for h in found
        for c in h["actors"]
    ]
    _emit(ctx, found, sorted(lines))


@lattice.command()
@click.pass_context
def providers(ctx: click.Context) -> None:
    """Every provider (capability id and binding name), by host."""
    with _client(ctx) as client:
        found = [a["Capabilities"] for a in client.inventory("capabilities") if "Capabilities" in a]
    lines = [
        f"{c['descriptor']['id']} ({c['binding_name']})  on {h['host']}"
        for h in found
        for c in h["capabilities"]
    ]
    _emit(ctx, found, sorted(lines))


@lattice.command()
@click.option(
    "--recorded", is_flag=True, help="The bucket's bindings (those of no running host too)."
)
@click.pass_context
def bindings(ctx: click.Context, recorded: bool) -> None:
    """Every binding: where a provider holds it, or (--recorded) as the lattice keeps it."""
    with _client(ctx) as client:
        if recorded:
            rows = client.recorded_bindings()
            lines = [
                f"{b['actor']} -> {b['capability_id']} ({b['binding_name']})"
                + "".join(f" {k}={v}" for k, v in sorted(b["configuration"].items()))
                for b in rows
            ]
            _emit(ctx, rows, sorted(lines))
            return
        found = [a["Bindings"] for a in client.inventory("bindings") if "Bindings" in a]
    lines = [
        f"{b['actor']} -> {b['capability_id']} ({b['binding_name']})  on {h['host']}"
        for h in found
        for b in h["bindings"]
    ]
    _emit(ctx, found, sorted(lines))


@lattice.command()
@click.option("--count", type=int, default=0, help="Stop after this many events (0: never).")
@click.option("--timeout", type=float, default=None, help="Stop after this many seconds.")
@click.option("--heartbeats/--no-heartbeats", default=True, help="Show HostHeartbeat events.")
@click.pass_context
def events(ctx: click.Context, count: int, timeout: float | None, heartbeats: bool) -> None:
    """Print the lattice's events as they happen (Ctrl-C stops)."""
    stop = threading.Event()
    seen = 0
    lock = threading.Lock()
    as_json = ctx.obj["json"]

    def show(name: str, body: Any, envelope: dict[str, Any]) -> None:
        nonlocal seen
        if name == "HostHeartbeat" and not heartbeats:
            return
        with lock:
            if stop.is_set():
                return
            if as_json:
                click.echo(json.dumps(envelope, sort_keys=True))
            else:
                click.echo(
                    f"{envelope.get('time', '')}  {name}  {json.dumps(body, sort_keys=True)}"
                )
            seen += 1
            if count and seen >= count:
                stop.set()

    with _client(ctx) as client:
        try:
            client.follow(show, stop, timeout)
        except KeyboardInterrupt:
            stop.set()
