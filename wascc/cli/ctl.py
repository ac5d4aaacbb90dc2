"""``wascc ctl``: manage a running host through its control socket."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from wascc.cli.main import fail, main
from wascc.cli.tools import call_cmd
from wascc.control import ControlError, request
from wascc.daemon import default_control_path

__all__ = ["ctl"]


def _send(ctx: click.Context, command: str, **args: Any) -> dict[str, Any]:
    path = ctx.obj["control"]
    try:
        answer = request(path, command, **args)
    except ControlError as exc:
        fail(str(exc))
    if not answer.get("ok"):
        fail(str(answer.get("error", "the host refused the request")))
    answer.pop("ok", None)
    return answer


def _print(answer: dict[str, Any]) -> None:
    if answer:
        click.echo(json.dumps(answer, indent=2))


@main.group()
@click.option(
    "--control",
    type=click.Path(dir_okay=False, path_type=Path),
    default=lambda: os.environ.get("WASCC_CONTROL") or str(default_control_path()),
    show_default="$WASCC_CONTROL or $XDG_RUNTIME_DIR/wascc.sock",
    help="The host's control socket (wascc up --control PATH).",
)
@click.pass_context
def ctl(ctx: click.Context, control: Path) -> None:
    """Manage a running host through its control socket.

    \b
    Example:
      wascc ctl --control /run/wascc.sock inventory
    """
    ctx.obj = {"control": control}


@ctl.command()
@click.pass_context
def inventory(ctx: click.Context) -> None:
    """Actors (with claims), providers (with descriptors), bindings, health, call counts.

    \b
    Example:
      wascc ctl inventory | jq '.actors[].name'
    """
    _print(_send(ctx, "inventory"))


@ctl.command("start-actor")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def start_actor(ctx: click.Context, path: Path) -> None:
    """Start the actor in PATH; prints its public key.

    \b
    Example:
      wascc ctl start-actor ./echo_s.wasm
    """
    click.echo(_send(ctx, "start-actor", path=str(path.resolve()))["actor"])


@ctl.command("stop-actor")
@click.argument("actor")
@click.pass_context
def stop_actor(ctx: click.Context, actor: str) -> None:
    """Stop ACTOR (a public key), unbinding it everywhere.

    \b
    Example:
      wascc ctl stop-actor MB4OLDIC...
    """
    _send(ctx, "stop-actor", actor=actor)


@ctl.command("replace-actor")
@click.argument("actor")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def replace_actor(ctx: click.Context, actor: str, path: Path) -> None:
    """Hot-swap ACTOR for the module in PATH (same public key); no call is lost.

    \b
    Example:
      wascc ctl replace-actor MB4OLDIC... ./echo_v2_s.wasm
    """
    _send(ctx, "replace-actor", actor=actor, path=str(path.resolve()))


@ctl.command("add-provider")
@click.argument("spec")
@click.option("-b", "--binding", default="default", show_default=True)
@click.pass_context
def add_provider(ctx: click.Context, spec: str, binding: str) -> None:
    """Add a provider: a .so/.dylib/.wasm file, a capability id, or module:Class.

    \b
    Example:
      wascc ctl add-provider wascc:keyvalue --binding cache
    """
    if "/" in spec or os.path.exists(spec):
        spec = str(Path(spec).resolve())
    _print(_send(ctx, "add-provider", path=spec, binding=binding))


@ctl.command("remove-provider")
@click.argument("capability")
@click.option("-b", "--binding", default="default", show_default=True)
@click.pass_context
def remove_provider(ctx: click.Context, capability: str, binding: str) -> None:
    """Remove the provider of CAPABILITY on a binding (its actors are unbound).

    \b
    Example:
      wascc ctl remove-provider wascc:keyvalue --binding cache
    """
    _send(ctx, "remove-provider", capability=capability, binding=binding)


@ctl.command()
@click.argument("actor")
@click.argument("capability")
@click.option("-b", "--binding", default="default", show_default=True)
@click.option("-v", "--value", "values", multiple=True, metavar="K=V")
@click.pass_context
def bind(
    ctx: click.Context, actor: str, capability: str, binding: str, values: tuple[str, ...]
) -> None:
    """Bind ACTOR to CAPABILITY with configuration values.

    \b
    Example:
      wascc ctl bind MB4OLDIC... wascc:http_server -v PORT=8082
    """
    pairs = dict(v.partition("=")[::2] for v in values)
    _send(ctx, "bind", actor=actor, capability=capability, binding=binding, values=pairs)


@ctl.command()
@click.argument("actor")
@click.argument("capability")
@click.option("-b", "--binding", default="default", show_default=True)
@click.pass_context
def unbind(ctx: click.Context, actor: str, capability: str, binding: str) -> None:
    """Unbind ACTOR from CAPABILITY.

    \b
    Example:
      wascc ctl unbind MB4OLDIC... wascc:http_server
    """
    if not _send(ctx, "unbind", actor=actor, capability=capability, binding=binding)["removed"]:
        fail(f"{actor} is not bound to {capability} ({binding})")


@ctl.command()
@click.argument("actor")
@click.argument("operation")
@click.option("-d", "--data", default=None, help="JSON (sent as msgpack), @FILE or @-.")
@click.option("--raw", is_flag=True, help="Send the data as bytes; print the reply as bytes.")
@click.pass_context
def call(ctx: click.Context, actor: str, operation: str, data: str | None, raw: bool) -> None:
    """Call OPERATION on ACTOR in the running host (as `wascc call --control`).

    \b
    Example:
      wascc ctl call MB4OLDIC... HandleRequest -d '{"method":"GET","path":"/"}'
    """
    ctx.invoke(
        call_cmd,
        target=actor,
        operation=operation,
        data=data,
        raw=raw,
        trusted=(),
        allow_unsigned=False,
        control=str(ctx.obj["control"]),
    )
