"""The ``wascc`` click group and what every command shares.

Shared here so each is declared once: :func:`fail` (how every command reports
an error), :func:`pairs` (``K=V`` options), :func:`control_option` (the
``--control`` socket option), :func:`seed_option` (``--issuer``/``--subject``
seed files) and :func:`ask` (the one control-socket client of the command
line).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from wascc import __version__
from wascc.errors import ControlError
from wascc.standalone.control import default_path, request

__all__ = ["ask", "control_option", "fail", "main", "pairs", "seed_option"]

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> NoReturn:
    """One line on stderr, exit code 1: how every command reports an error."""
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def pairs(items: tuple[str, ...], option: str) -> dict[str, str]:
    """``K=V`` option values as a dict; an item without ``=`` or with an empty key is refused."""
    found: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not K=V", param_hint=option)
        found[key.strip()] = value
    return found


def seed_option(flag: str, what: str, **kwargs: Any) -> Callable[[F], F]:
    """``--issuer`` / ``--subject``: a seed file (``what`` says whose), created 0600 if missing."""
    return click.option(
        flag,
        type=click.Path(dir_okay=False, path_type=Path),
        help=kwargs.pop("help", f"{what} seed file (created if missing)."),
        **kwargs,
    )


def default_control() -> str:
    return os.environ.get("WASCC_CONTROL") or str(default_path())


def control_option(*, default: bool = True) -> Callable[[F], F]:
    """``--control PATH``: a running host's control socket.

    ``default=False`` declares it without a default (``None`` unless given),
    for a subcommand whose group already resolved one.
    """
    return click.option(
        "--control",
        type=click.Path(dir_okay=False, path_type=Path),
        default=default_control if default else None,
        show_default="$WASCC_CONTROL or $XDG_RUNTIME_DIR/wascc.sock" if default else False,
        help="The running host's control socket (wascc up serves one by default).",
    )


def ask(control: str | os.PathLike[str], command: str, **args: Any) -> dict[str, Any]:
    """Send one command to the host at ``control``; its answer, or a one-line error."""
    try:
        answer = request(control, command, **args)
    except ControlError as exc:
        fail(str(exc))
    if not answer.get("ok"):
        fail(str(answer.get("error") or "the host refused the request without saying why"))
    answer.pop("ok", None)
    return answer


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wascc")
def main() -> None:
    """wascc: a WebAssembly actor host.

    \b
    Example:
      wascc up                          # the built-in demo on 127.0.0.1
      wascc claims inspect actor.wasm
    """
