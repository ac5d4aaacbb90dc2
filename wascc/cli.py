"""The ``wascc`` command line (click).  It parses arguments and delegates.

``wascc up`` runs a host until SIGINT or SIGTERM.  With no actor files it
runs the built-in demo: an echo actor signed at start-up with keys made on
the spot (nothing secret is stored or committed).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from importlib import resources
from pathlib import Path
from types import FrameType

import click
import wasmtime

from wascc import __version__
from wascc.claims import sign_module
from wascc.errors import WasccError
from wascc.host import Host
from wascc.keys import KeyPair, KeyType

__all__ = ["main"]

log = logging.getLogger("wascc.cli")


def _demo_actor() -> tuple[bytes, str]:
    """The demo echo actor, signed now by a fresh account; (module, issuer key)."""
    wat = resources.files("wascc.demo").joinpath("echo.wat").read_text()
    account = KeyPair.generate(KeyType.ACCOUNT)
    module = KeyPair.generate(KeyType.MODULE)
    signed = sign_module(
        wasmtime.wat2wasm(wat), issuer=account, subject=module, name="echo", caps=["wascc:extras"]
    )
    return signed, account.public_key


def _wait_for_signal() -> None:
    done = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        done.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not done.wait(3600):
        pass


@click.group()
@click.version_option(__version__, prog_name="wascc")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def main(log_level: str) -> None:
    """wascc: a WebAssembly actor host."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@main.command()
@click.argument("actors", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--trusted-issuer",
    "trusted",
    multiple=True,
    metavar="KEY",
    help="Account key whose signatures are accepted (repeatable).",
)
@click.option("--allow-unsigned", is_flag=True, help="Also run unsigned actors (no capabilities).")
def up(actors: tuple[Path, ...], trusted: tuple[str, ...], allow_unsigned: bool) -> None:
    """Run a host until SIGINT/SIGTERM.

    \b
    Example:
      wascc up                       # the built-in demo echo actor
      wascc up echo.wasm --trusted-issuer ADX...
    """
    if allow_unsigned:
        log.warning("--allow-unsigned: UNSIGNED ACTORS WILL RUN (they hold no capabilities)")
    sources: list[Path | bytes] = list(actors)
    issuers = list(trusted) or None
    if not sources:
        demo, issuer = _demo_actor()
        sources = [demo]
        issuers = [*(issuers or []), issuer]
    try:
        with Host(trusted_issuers=issuers, allow_unsigned=allow_unsigned) as host:
            for source in sources:
                key = host.add_actor(source)
                reply = host.call_actor(key, "Echo", b"hello from wascc")
                click.echo(f"running {host.actor(key).name} {key}; Echo -> {reply.decode()!r}")
            click.echo("host is up; press Ctrl-C to stop")
            _wait_for_signal()
    except WasccError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
