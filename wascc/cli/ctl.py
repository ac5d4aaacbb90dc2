"""``wascc ctl``: manage a running host through its control socket.

Every command prints one line saying what it did (``--json`` where there is
data to print for machines).  Actors are named by public key or by their
unique name; the answer says which key a name resolved to.  ``--control``
may be given before or after the subcommand (or as ``$WASCC_CONTROL``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from wascc.cli.main import ask, control_option, fail, main, pairs
from wascc.cli.tools import call_cmd
from wascc.observe.top import frame

__all__ = ["ctl"]


def _send(ctx: click.Context, control: Path | None, command: str, **args: Any) -> dict[str, Any]:
    """Send ``command`` to the socket given after the subcommand, else the group's."""
    return ask(control or ctx.obj["control"], command, **args)


def _who(answer: dict[str, Any], ref: str) -> str:
    """``name (KEY)`` for the actor an answer names, saying when a name was resolved."""
    key = answer.get("actor", ref)
    name = answer.get("name") or ""
    if ref != key:
        return f"{ref} ({key})"
    return f"{name} ({key})" if name else key


@main.group()
@control_option()
@click.pass_context
def ctl(ctx: click.Context, control: Path) -> None:
    """Manage a running host through its control socket.

    \b
    Example:
      wascc ctl inventory
      wascc ctl --control /run/wascc.sock stop-actor echo
    """
    ctx.obj = {"control": control}


def _settings(
    deadline: float | None,
    memory_limit: int | None,
    min_instances: int | None,
    max_instances: int | None,
) -> dict[str, Any]:
    given = {
        "deadline": deadline,
        "memory_limit": memory_limit,
        "min_instances": min_instances,
        "max_instances": max_instances,
    }
    return {k: v for k, v in given.items() if v is not None}


def _health(actor: dict[str, Any]) -> str:
    health = actor.get("health")
    if health is None:
        return "-"
    return "healthy" if health["healthy"] else f"UNHEALTHY: {health['message']}"


def print_inventory(data: dict[str, Any], console: Console | None = None) -> None:
    """The inventory as three tables: actors, providers, bindings."""
    # piped output keeps whole rows (keys are 56 characters); a terminal gets its width
    out = console or Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    names = {a["public_key"]: a["name"] for a in data["actors"]}
    actors = Table(title="actors", title_justify="left")
    numbers = ("instances", "calls", "errors")
    for column in ("name", "public key", *numbers, "health"):
        actors.add_column(
            column,
            justify="right" if column in numbers else "left",
            no_wrap=column == "public key",
        )
    for a in data["actors"]:
        kind = a.get("kind", "actor")
        actors.add_row(
            a["name"] if kind == "actor" else f"{a['name']} ({kind})",
            a["public_key"],
            str(a["instances"]),
            str(a["calls"]),
            str(a.get("errors", 0)),
            _health(a),
        )
    providers = Table(title="providers", title_justify="left")
    for column in ("capability", "binding", "name", "version", "actors", "state"):
        providers.add_column(column, justify="right" if column == "actors" else "left")
    for p in data["providers"]:
        state = p.get("state", "running")
        if p.get("pid"):
            state += f" (isolated, pid {p['pid']})"
        providers.add_row(
            p["capability_id"],
            p["binding"],
            p["name"],
            p["version"],
            str(len(p["actors"])),
            state,
        )
    bindings = Table(title="bindings", title_justify="left")
    for column in ("actor", "capability", "binding", "values"):
        bindings.add_column(column)
    for b in data["bindings"]:
        values = ", ".join(f"{k}={v}" for k, v in sorted(b["values"].items()))
        bindings.add_row(
            names.get(b["actor"], b["actor"]), b["capability"], b["binding"], values or "-"
        )
    labels = ", ".join(f"{k}={v}" for k, v in sorted(data.get("labels", {}).items()))
    out.print(f"host labels: {labels or '(none)'}")
    for table in (actors, providers, bindings):
        out.print(table)


@ctl.command()
@click.option("--json", "as_json", is_flag=True, help="Print the whole inventory as JSON.")
@control_option(default=False)
@click.pass_context
def inventory(ctx: click.Context, as_json: bool, control: Path | None) -> None:
    """Actors (calls, errors, health), providers and bindings of the running host.

    \b
    Example:
      wascc ctl inventory
      wascc ctl inventory --json | jq '.actors[].name'
    """
    data = _send(ctx, control, "inventory")
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        print_inventory(data)


@ctl.command()
@click.option("--once", is_flag=True, help="Print one frame and exit (for scripts).")
@click.option("--json", "as_json", is_flag=True, help="Print one frame's numbers as JSON.")
@click.option(
    "--interval", type=float, default=1.0, show_default=True, help="Seconds between frames."
)
@control_option(default=False)
@click.pass_context
def top(
    ctx: click.Context, once: bool, as_json: bool, interval: float, control: Path | None
) -> None:
    """A live view of the host: actors (calls/s, p50/p99, errors), providers, bindings, errors.

    Redraws every second until Ctrl-C.

    \b
    Example:
      wascc ctl top
      wascc ctl top --once
    """
    data = _send(ctx, control, "top")
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    if once or not sys.stdout.isatty():
        Console(highlight=False, width=None if sys.stdout.isatty() else 160).print(frame(data))
        return
    if interval <= 0:
        fail("--interval must be above 0")
    with Live(frame(data), auto_refresh=False, screen=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(frame(_send(ctx, control, "top")), refresh=True)
        except KeyboardInterrupt:
            pass


@ctl.command("start-actor")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--deadline", type=float, help="Seconds a call may take.")
@click.option("--memory-limit", type=int, help="Bytes of linear memory per instance.")
@click.option("--min-instances", type=int, help="Instances kept ready.")
@click.option("--max-instances", type=int, help="Most instances under concurrent load.")
@control_option(default=False)
@click.pass_context
def start_actor(
    ctx: click.Context,
    path: Path,
    deadline: float | None,
    memory_limit: int | None,
    min_instances: int | None,
    max_instances: int | None,
    control: Path | None,
) -> None:
    """Start the actor in PATH (its own limits optional); prints its public key.

    \b
    Example:
      wascc ctl start-actor ./echo_s.wasm --deadline 2 --max-instances 4
    """
    settings = _settings(deadline, memory_limit, min_instances, max_instances)
    answer = _send(ctx, control, "start-actor", path=str(path.resolve()), **settings)
    click.echo(f"started {_who(answer, answer['actor'])}")


@ctl.command("stop-actor")
@click.argument("actor")
@control_option(default=False)
@click.pass_context
def stop_actor(ctx: click.Context, actor: str, control: Path | None) -> None:
    """Stop ACTOR (a public key or a unique name), unbinding it everywhere.

    \b
    Example:
      wascc ctl stop-actor echo
    """
    answer = _send(ctx, control, "stop-actor", actor=actor)
    click.echo(f"stopped {_who(answer, actor)}")


@ctl.command("replace-actor")
@click.argument("actor")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@control_option(default=False)
@click.pass_context
def replace_actor(ctx: click.Context, actor: str, path: Path, control: Path | None) -> None:
    """Hot-swap ACTOR for the module in PATH (same public key); no call is lost.

    \b
    Example:
      wascc ctl replace-actor echo ./echo_v2_s.wasm
    """
    answer = _send(ctx, control, "replace-actor", actor=actor, path=str(path.resolve()))
    click.echo(f"replaced {_who(answer, actor)} with {path.name}")


@ctl.command("add-provider")
@click.argument("spec")
@click.option("-b", "--binding", default="default", show_default=True)
@control_option(default=False)
@click.pass_context
def add_provider(ctx: click.Context, spec: str, binding: str, control: Path | None) -> None:
    """Add a provider: a .so/.dylib/.wasm file, a capability id, or module:Class.

    \b
    Example:
      wascc ctl add-provider wascc:keyvalue --binding cache
    """
    if "/" in spec or os.path.exists(spec):
        spec = str(Path(spec).resolve())
    answer = _send(ctx, control, "add-provider", path=spec, binding=binding)
    click.echo(f"added provider {answer['capability']} on binding {answer['binding']}")


@ctl.command("remove-provider")
@click.argument("capability")
@click.option("-b", "--binding", default="default", show_default=True)
@control_option(default=False)
@click.pass_context
def remove_provider(
    ctx: click.Context, capability: str, binding: str, control: Path | None
) -> None:
    """Remove the provider of CAPABILITY on a binding (its actors are unbound).

    \b
    Example:
      wascc ctl remove-provider wascc:keyvalue --binding cache
    """
    _send(ctx, control, "remove-provider", capability=capability, binding=binding)
    click.echo(f"removed provider {capability} from binding {binding}")


@ctl.command()
@click.argument("actor")
@click.argument("capability")
@click.option("-b", "--binding", default="default", show_default=True)
@click.option("-v", "--value", "values", multiple=True, metavar="K=V", help="A binding value.")
@control_option(default=False)
@click.pass_context
def bind(
    ctx: click.Context,
    actor: str,
    capability: str,
    binding: str,
    values: tuple[str, ...],
    control: Path | None,
) -> None:
    """Bind ACTOR (key or name) to CAPABILITY with configuration values.

    \b
    Example:
      wascc ctl bind echo wascc:http_server -v PORT=8082
    """
    config = pairs(values, "--value")
    answer = _send(
        ctx, control, "bind", actor=actor, capability=capability, binding=binding, values=config
    )
    click.echo(f"bound {_who(answer, actor)} to {capability} ({binding})")


@ctl.command()
@click.argument("actor")
@click.argument("capability")
@click.option("-b", "--binding", default="default", show_default=True)
@control_option(default=False)
@click.pass_context
def unbind(
    ctx: click.Context, actor: str, capability: str, binding: str, control: Path | None
) -> None:
    """Unbind ACTOR (key or name) from CAPABILITY.

    \b
    Example:
      wascc ctl unbind echo wascc:http_server
    """
    answer = _send(ctx, control, "unbind", actor=actor, capability=capability, binding=binding)
    if not answer["removed"]:
        fail(f"{_who(answer, actor)} is not bound to {capability} ({binding})")
    click.echo(f"unbound {_who(answer, actor)} from {capability} ({binding})")


@ctl.command()
@click.argument("actor")
@click.argument("operation")
@click.option("-d", "--data", default=None, help="JSON (sent as msgpack), @FILE or @-.")
@click.option("--raw", is_flag=True, help="Send the data as bytes; print the reply as bytes.")
@control_option(default=False)
@click.pass_context
def call(
    ctx: click.Context,
    actor: str,
    operation: str,
    data: str | None,
    raw: bool,
    control: Path | None,
) -> None:
    """Call OPERATION on ACTOR (key or name) in the running host.

    \b
    Example:
      wascc ctl call echo HandleRequest -d '{"method":"GET","path":"/"}'
    """
    ctx.invoke(
        call_cmd,
        target=actor,
        operation=operation,
        data=data,
        raw=raw,
        trusted=(),
        allow_unsigned=False,
        control=str(control or ctx.obj["control"]),
    )
