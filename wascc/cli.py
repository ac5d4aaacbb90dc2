"""The ``wascc`` command line (click).  It parses arguments and delegates.

``wascc up`` runs a host until SIGINT or SIGTERM.  With no actor files it
runs the built-in demo: an echo actor signed at start-up with keys made on
the spot (nothing secret is stored or committed).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click
import wasmtime

from wascc import __version__
from wascc.claims import Claims, extract_claims, sign_module, verify_module
from wascc.errors import ClaimsError, WasccError
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


# ---- keys and claims -----------------------------------------------------------

DAY = 86400


def fail(message: str) -> NoReturn:
    """One line on stderr, exit code 1: how every command reports an error."""
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def write_secret(path: Path, text: str) -> None:
    """Write a seed readable by its owner only (0600), refusing to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


def load_or_create_key(path: Path, kind: KeyType) -> KeyPair:
    """The key whose seed is in ``path``; a new one is generated there if absent."""
    if path.exists():
        key = KeyPair.from_seed(path.read_text().strip())
        if key.kind is not kind:
            fail(f"{path} holds a {key.kind.name.lower()} seed, not a {kind.name.lower()} seed")
        return key
    key = KeyPair.generate(kind)
    write_secret(path, key.seed)
    click.echo(f"generated {kind.name.lower()} key {key.public_key} in {path}", err=True)
    return key


@main.group()
def keys() -> None:
    """Generate nkeys (ed25519 key pairs with typed, checksummed encodings)."""


@keys.command("gen")
@click.argument(
    "kind",
    metavar="TYPE",
    type=click.Choice([k.name.lower() for k in KeyType], case_sensitive=False),
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the seed to this file (mode 0600) instead of printing it.",
)
def keys_gen(kind: str, output: Path | None) -> None:
    """Generate a key pair of TYPE (account, module, server, ...).

    \b
    Example:
      wascc keys gen account -o ~/.wascc/keys/acme_account.nk
    """
    key = KeyPair.generate(KeyType.parse(kind))
    if output is None:
        click.echo(f"public key: {key.public_key}")
        click.echo(f"seed:       {key.seed}")
        return
    try:
        write_secret(output, key.seed)
    except FileExistsError:
        fail(f"{output} exists; refusing to overwrite a seed")
    click.echo(key.public_key)


@main.group()
def claims() -> None:
    """Sign modules and inspect the claims they carry."""


def _default_keys_dir() -> Path:
    return Path(os.environ.get("WASCC_KEYS", Path.home() / ".wascc" / "keys"))


@claims.command("sign")
@click.argument("module", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-n", "--name", required=True, help="The actor's friendly name.")
@click.option(
    "-c",
    "--cap",
    "caps",
    multiple=True,
    metavar="CAPABILITY",
    help="A capability id (or actor key) the module may call; repeatable.",
)
@click.option("-t", "--tag", "tags", multiple=True, help="A tag; repeatable.")
@click.option("--rev", type=int, help="Revision number.")
@click.option("--ver", help="Human-readable version, e.g. 1.0.2.")
@click.option("--expires-in-days", type=float, help="Expire this many days from now.")
@click.option("--not-before-days", type=float, help="Not valid until this many days from now.")
@click.option("--provider", is_flag=True, help="Mark it a portable capability provider.")
@click.option(
    "--issuer",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Account seed file (created if missing).",
)
@click.option(
    "--subject",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Module seed file (created if missing).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Signed module (default: NAME_s.wasm beside MODULE).",
)
def claims_sign(
    module: Path,
    name: str,
    caps: tuple[str, ...],
    tags: tuple[str, ...],
    rev: int | None,
    ver: str | None,
    expires_in_days: float | None,
    not_before_days: float | None,
    provider: bool,
    issuer: Path | None,
    subject: Path | None,
    output: Path | None,
) -> None:
    """Embed signed claims in MODULE (any earlier claims are replaced).

    Seeds not given are generated into $WASCC_KEYS (default ~/.wascc/keys) as
    NAME_account.nk and NAME_module.nk, and reused on the next signing.

    \b
    Example:
      wascc claims sign echo.wasm -n echo -c wascc:http_server --ver 1.0 \\
          --issuer keys/account.nk --subject keys/echo_module.nk -o echo_s.wasm
    """
    keys_dir = _default_keys_dir()
    account = load_or_create_key(issuer or keys_dir / f"{name}_account.nk", KeyType.ACCOUNT)
    module_key = load_or_create_key(subject or keys_dir / f"{name}_module.nk", KeyType.MODULE)
    now = int(time.time())
    try:
        signed = sign_module(
            module.read_bytes(),
            issuer=account,
            subject=module_key,
            name=name,
            caps=caps,
            tags=tags,
            rev=rev,
            ver=ver,
            provider=provider,
            now=now,
            expires=None if expires_in_days is None else now + int(expires_in_days * DAY),
            not_before=None if not_before_days is None else now + int(not_before_days * DAY),
        )
    except WasccError as exc:
        fail(f"{module}: {exc}")
    target = output or module.with_name(f"{module.stem}_s.wasm")
    target.write_bytes(signed)
    click.echo(f"signed {target} as {module_key.public_key} (issuer {account.public_key})")


def render_manifest(template: str, signed: str, output: str) -> None:
    """Write ``template`` with ``@ACTOR@`` replaced by the signed module's key.

    Used by examples/Makefile so an example's manifest names the actor that
    was just built and signed with keys made on this machine.
    """
    found = extract_claims(Path(signed).read_bytes())
    if found is None:
        fail(f"{signed} is not signed")
    text = Path(template).read_text().replace("@ACTOR@", found[0].subject)
    Path(output).write_text(text)


def _when(epoch: int | None) -> str:
    if epoch is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _claims_json(found: Claims, status: str) -> dict[str, Any]:
    return {**found.to_json(), "status": status}


@claims.command("inspect")
@click.argument("module", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the claims as JSON.")
def claims_inspect(module: Path, as_json: bool) -> None:
    """Show the claims embedded in MODULE and whether they verify.

    \b
    Example:
      wascc claims inspect echo_s.wasm --json
    """
    data = module.read_bytes()
    try:
        found = extract_claims(data)
    except WasccError as exc:
        fail(f"{module}: {exc}")
    if found is None:
        fail(f"{module} is not signed (it has no `jwt` section)")
    claims_found, _ = found
    try:
        verify_module(data, label=module.name)
        status = "valid"
    except ClaimsError as exc:
        status = f"INVALID: {exc}"
    if as_json:
        click.echo(json.dumps(_claims_json(claims_found, status), indent=2))
        return
    rev = "-" if claims_found.rev is None else str(claims_found.rev)
    rows = [
        ("Name", claims_found.name),
        ("Module", claims_found.subject),
        ("Account", claims_found.issuer),
        ("Capabilities", ", ".join(claims_found.caps) or "(none)"),
        ("Tags", ", ".join(claims_found.tags) or "(none)"),
        (
            "Version",
            f"{claims_found.ver or '-'} (rev {rev})",
        ),
        ("Provider", "yes" if claims_found.provider else "no"),
        ("Issued", _when(claims_found.issued_at)),
        ("Expires", _when(claims_found.expires)),
        ("Not before", _when(claims_found.not_before) if claims_found.not_before else "-"),
        ("Hash", claims_found.module_hash),
        ("Status", status),
    ]
    width = max(len(k) for k, _ in rows)
    click.echo(f"{module}")
    for key, value in rows:
        click.echo(f"  {key.ljust(width)}  {value}")
