"""``wascc dev DIR``: rebuild, sign and hot-swap an actor on every change
(see :mod:`wascc.standalone.dev`)."""

from __future__ import annotations

from pathlib import Path

import click

from wascc.cli.main import control_option, fail, main, pairs
from wascc.errors import WasccError
from wascc.standalone.dev import BindRequest, DevLoop

__all__ = ["dev"]


def _binds(specs: tuple[str, ...], values: tuple[str, ...]) -> list[BindRequest]:
    config = pairs(values, "--value")
    out = []
    for spec in specs:
        capability, _, binding = spec.partition("@")
        out.append(BindRequest(capability, binding or "default", dict(config)))
    return out


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@control_option()
@click.option("-c", "--cap", "caps", multiple=True, help="A capability the actor may use.")
@click.option("--name", help="The actor's name (default: the directory's name).")
@click.option("--build", metavar="CMD", help="Build command (default: make, or clang).")
@click.option(
    "--wasm",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The module the build produces (default: the newest .wasm it wrote).",
)
@click.option(
    "--bind",
    "binds",
    multiple=True,
    metavar="CAP[@BINDING]",
    help="Bind the actor to this provider when it first starts (repeatable).",
)
@click.option("-v", "--value", "values", multiple=True, metavar="K=V", help="Binding values.")
@click.option("--interval", type=float, default=0.5, show_default=True, help="Poll seconds.")
def dev(
    directory: Path,
    control: Path,
    caps: tuple[str, ...],
    name: str | None,
    build: str | None,
    wasm: Path | None,
    binds: tuple[str, ...],
    values: tuple[str, ...],
    interval: float,
) -> None:
    """Watch DIRECTORY; on every change rebuild, sign with dev keys and hot-swap.

    The first build starts the actor in the host (and sets the --bind
    bindings); each later one replaces it with no failed call.  Ctrl-C stops.

    \b
    Example:
      wascc up --control /tmp/dev.sock &
      wascc dev examples/echo --control /tmp/dev.sock -c wascc:http_server \\
                --bind wascc:http_server -v PORT=8090
    """
    try:
        loop = DevLoop(
            directory,
            control=control,
            caps=caps,
            name=name,
            build=build,
            wasm=wasm,
            binds=_binds(binds, values),
            say=click.echo,
        )
        loop.run(interval=interval)
    except KeyboardInterrupt:
        click.echo("wascc dev: stopped")
    except WasccError as exc:
        fail(str(exc))
