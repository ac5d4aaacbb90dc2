"""``wascc par``: create, inspect and extend signed provider archives.

They parse arguments and delegate to :mod:`wascc.wire.par`; errors are one
line on stderr and exit code 1.  ``wascc inspect`` shows archives too
(through :func:`wascc.cli.tools.archive_info`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from wascc.cli.main import main, seed_option
from wascc.cli.tools import (
    DAY,
    _default_keys_dir,
    _die,
    _read,
    archive_info,
    load_key,
    load_or_create_key,
    print_archive,
)
from wascc.errors import WasccError
from wascc.wire.keys import KeyType
from wascc.wire.par import create_archive, host_target, insert_target

__all__ = ["par"]


@main.group()
def par() -> None:
    """Signed provider archives: one native binary per target, signed claims.

    \b
    Example:
      wascc par create -n cache --capid acme:cache --vendor Acme --ver 1.0 \\
          --binary libcache.so -o cache.par.gz
      wascc par insert cache.par.gz --binary libcache-arm.so --target aarch64-linux
      wascc par inspect cache.par.gz
    """


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        _die(f"cannot write {path} ({exc.strerror or exc})")


@par.command("create")
@click.option("-n", "--name", required=True, help="The provider's friendly name.")
@click.option("--capid", required=True, help="The capability id it provides (acme:cache).")
@click.option("--vendor", default="", help="Who makes it.")
@click.option("--ver", help="Human-readable version, e.g. 1.0.2.")
@click.option("--rev", type=click.IntRange(0), help="Revision number.")
@click.option(
    "--binary",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The shared object (.so / .dylib) for --target.",
)
@click.option("--target", help="<arch>-<os> of --binary [default: this machine's].")
@click.option("--expires-in-days", type=float, help="Expire this many days from now.")
@seed_option("--issuer", "Account")
@seed_option("--subject", "The provider's service (V...)")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The archive to write; a name ending in .gz is gzip-compressed.",
)
def par_create(
    name: str,
    capid: str,
    vendor: str,
    ver: str | None,
    rev: int | None,
    binary: Path,
    target: str | None,
    expires_in_days: float | None,
    issuer: Path | None,
    subject: Path | None,
    output: Path,
) -> None:
    """Package a native provider as a signed archive.

    Seeds not given are generated into $WASCC_KEYS (default ~/.wascc/keys)
    as NAME_account.nk and NAME_service.nk, and reused next time.
    """
    data = _read(binary, "binary")
    keys_dir = _default_keys_dir()
    seeds = [
        (issuer or keys_dir / f"{name}_account.nk", KeyType.ACCOUNT),
        (subject or keys_dir / f"{name}_service.nk", KeyType.SERVICE),
    ]
    for path, kind in seeds:
        if path.exists():
            load_key(path, kind)
    account, service = (load_or_create_key(path, kind) for path, kind in seeds)
    now = int(time.time())
    try:
        archive = create_archive(
            {target or host_target(): data},
            issuer=account,
            subject=service,
            name=name,
            capability_id=capid,
            vendor=vendor,
            version=ver,
            revision=rev,
            expires=None if expires_in_days is None else now + int(expires_in_days * DAY),
            compress=output.name.endswith(".gz"),
            now=now,
        )
    except WasccError as exc:
        _die(str(exc))
    _write(output, archive)
    click.echo(f"wrote {output} ({capid}) as {service.public_key} (issuer {account.public_key})")


@par.command("insert")
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--binary", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Binary."
)
@click.option("--target", required=True, help="<arch>-<os> of --binary (aarch64-linux...).")
@seed_option("--issuer", "", required=True, help="The account seed the archive was signed with.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the result [default: ARCHIVE, in place].",
)
def par_insert(archive: Path, binary: Path, target: str, issuer: Path, output: Path | None) -> None:
    """Add (or replace) one target's binary and sign the claims again."""
    data = _read(archive, "archive")
    account = load_key(issuer, KeyType.ACCOUNT)
    try:
        updated = insert_target(data, target, _read(binary, "binary"), issuer=account)
    except WasccError as exc:
        _die(f"{archive}: {exc}")
    _write(output or archive, updated)
    click.echo(f"added {target} to {output or archive}")


@par.command("inspect")
@click.argument("archive", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def par_inspect(archive: Path, as_json: bool) -> None:
    """Show an archive's claims, its targets and whether it verifies."""
    info = archive_info(archive, _read(archive, "archive"))
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        print_archive(info)
    if info["status"] != "valid" or not all(t["signed"] for t in info["targets"].values()):
        sys.exit(1)
