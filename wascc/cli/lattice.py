"""``wascc lattice``: what a lattice runs, asked over NATS (no host needed).

``hosts | actors | providers | bindings`` ask every host through the
protocol's inventory subjects (answers collected for ``--window`` seconds);
``bindings --recorded`` reads the lattice's JetStream bucket instead (also
bindings whose provider runs nowhere right now); ``events`` prints the
lattice's events as they happen, like a spy; ``launch`` / ``terminate`` start
and stop an actor or provider on a named host, ``auction`` asks which hosts
qualify by their labels (and ``--launch`` starts it on the first bidder).  To
bind, use ``wascc ctl bind`` on any host of the lattice.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import click

from wascc.cli.main import fail, main, pairs
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


@lattice.command()
@click.argument("host")
@click.argument("ref")
@click.option("--provider", is_flag=True, help="REF is a provider (capability id or file).")
@click.option("-b", "--binding", default="default", show_default=True, help="Provider binding.")
@click.pass_context
def launch(ctx: click.Context, host: str, ref: str, provider: bool, binding: str) -> None:
    """Start an actor (a path on HOST) or a provider on the host HOST (its N... key).

    \b
    Example:
      wascc lattice launch NBX3... /srv/actors/kvcounter_s.wasm
      wascc lattice launch NBX3... wascc:keyvalue --provider -b cache
    """
    with _client(ctx) as client:
        try:
            if provider:
                answer = client.control(
                    host, "provider.launch", {"provider_ref": ref, "binding_name": binding}
                )
            else:
                answer = client.control(host, "actor.launch", {"actor_id": ref})
        except WasccError as exc:
            fail(str(exc))
    _emit(ctx, answer, [f"started {answer.get('actor_id') or answer.get('provider_ref')} "
                        f"on {answer.get('host')}"])  # fmt: skip


@lattice.command()
@click.argument("host")
@click.argument("ref")
@click.option("--provider", is_flag=True, help="REF is a provider's capability id.")
@click.option("-b", "--binding", default="default", show_default=True, help="Provider binding.")
@click.pass_context
def terminate(ctx: click.Context, host: str, ref: str, provider: bool, binding: str) -> None:
    """Stop an actor (key or name) or a provider (capability id) on the host HOST."""
    with _client(ctx) as client:
        try:
            if provider:
                answer = client.control(
                    host, "provider.terminate", {"provider_ref": ref, "binding_name": binding}
                )
            else:
                answer = client.control(host, "actor.terminate", {"actor_id": ref})
        except WasccError as exc:
            fail(str(exc))
    _emit(ctx, answer, [f"stopped {ref} on {answer.get('host')}"])


@lattice.command()
@click.argument("ref")
@click.option("--provider", is_flag=True, help="REF is a provider (capability id or file).")
@click.option("-b", "--binding", default="default", show_default=True, help="Provider binding.")
@click.option(
    "-c",
    "--constraint",
    "constraints",
    multiple=True,
    metavar="K=V",
    help="A label the host must have (repeatable; hostcore.os=linux ...).",
)
@click.option("--launch", "and_launch", is_flag=True, help="Start it on the first bidder.")
@click.pass_context
def auction(
    ctx: click.Context, ref: str, provider: bool, binding: str,
    constraints: tuple[str, ...], and_launch: bool,
) -> None:  # fmt: skip
    """Which hosts can take an actor or provider: their labels match every constraint
    and they do not run it already.

    \b
    Example:
      wascc lattice auction ./kvcounter_s.wasm -c zone=east --launch
    """
    wanted = pairs(constraints, "--constraint")
    with _client(ctx) as client:
        if provider:
            bidders = client.auction(wanted, provider=ref, binding=binding)
        else:
            bidders = client.auction(wanted, actor=ref)
        if not bidders:
            fail(f"no host in the lattice qualifies for {ref} ({wanted or 'no constraints'})")
        launched: dict[str, Any] = {}
        if and_launch:
            try:
                if provider:
                    launched = client.control(
                        bidders[0],
                        "provider.launch",
                        {"provider_ref": ref, "binding_name": binding},
                    )
                else:
                    launched = client.control(bidders[0], "actor.launch", {"actor_id": ref})
            except WasccError as exc:
                fail(str(exc))
    lines = list(bidders)
    if launched:
        lines.append(f"started on {launched.get('host')}")
    _emit(ctx, {"bidders": bidders, "launched": launched}, lines)
