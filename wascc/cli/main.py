"""The ``wascc`` click group and what every command shares."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from wascc import __version__

__all__ = ["fail", "main"]


def fail(message: str) -> NoReturn:
    """One line on stderr, exit code 1: how every command reports an error."""
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wascc")
def main() -> None:
    """wascc: a WebAssembly actor host.

    \b
    Example:
      wascc up                          # the built-in demo on 127.0.0.1
      wascc claims inspect actor.wasm
    """
