"""``wascc sdk``: where the C headers are and the flags that build an actor
(see :mod:`wascc.sdk`)."""

from __future__ import annotations

import click

from wascc.cli.main import fail, main
from wascc.sdk import ACTOR_CFLAGS, ACTOR_LDFLAGS, include_dir

__all__ = ["sdk"]


@main.command()
@click.option("--cflags", "what", flag_value="cflags", help="Compiler flags for an actor.")
@click.option("--ldflags", "what", flag_value="ldflags", help="Linker flags for an actor.")
@click.option("--include-dir", "what", flag_value="include", help="The include directory.")
def sdk(what: str | None) -> None:
    """Print where the SDK headers are, or the flags that build an actor with them.

    \b
    Example:
      clang $(wascc sdk --cflags) $(wascc sdk --ldflags) -o hello.wasm hello.c
    """
    directory = include_dir()
    if directory is None:
        fail("the SDK headers are not installed (reinstall wascc: `pip install wascc`)")
    if what == "cflags":
        click.echo(" ".join((*ACTOR_CFLAGS, f"-I{directory}")))
    elif what == "ldflags":
        click.echo(" ".join(ACTOR_LDFLAGS))
    elif what == "include":
        click.echo(str(directory))
    else:
        headers = sorted(p.name for p in (directory / "wascc").glob("*.h"))
        click.echo(f"headers: {directory / 'wascc'} ({', '.join(headers)})")
        click.echo(
            f"build an actor: clang {' '.join(ACTOR_CFLAGS)} -I{directory} "
            f"{' '.join(ACTOR_LDFLAGS)} -o actor.wasm actor.c"
        )
