"""Tooling commands: ``wascc keys``, ``wascc claims``, ``wascc inspect``, ``wascc call``.

They parse arguments and delegate to :mod:`wascc.wire.keys`, :mod:`wascc.wire.claims`,
:mod:`wascc.engine.runtime`, :mod:`wascc.providers.native` and :class:`wascc.host.Host`;
errors are one line on stderr and exit code 1.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click
import msgpack

from wascc._providers import NATIVE_SUFFIXES
from wascc.cli.main import ask, fail, main, seed_option
from wascc.errors import (
    ActorLoadError,
    ClaimsError,
    CodecError,
    KeyFormatError,
    MalformedToken,
    ModuleError,
    WasccError,
)
from wascc.standalone.control import b64, unb64
from wascc.wire import codec, wasm
from wascc.wire.capability import CONTRACTS, canonical_capability
from wascc.wire.claims import (
    Claims,
    extract_claims,
    format_time,
    module_hash,
    sign_module,
    verify_module,
)
from wascc.wire.keys import (
    KeyPair,
    KeyType,
    decode_public_key,
    is_actor_key,
    stored_key,
    write_seed,
)
from wascc.wire.par import binary_hash, host_target, read_archive, verify_archive

__all__ = ["archive_info", "describe_type", "print_archive", "render_manifest"]

# ---- shared helpers ------------------------------------------------------------

DAY = 86400


def _die(message: str) -> NoReturn:
    """:func:`fail` with whatever ``message`` holds folded onto one line."""
    fail(" ".join(part.strip() for part in str(message).splitlines() if part.strip()))


def _read(path: Path, what: str = "file") -> bytes:
    """The bytes of ``path``, or a one-line error saying why they cannot be read."""
    if not path.exists():
        _die(f"{path}: no such {what}")
    if path.is_dir():
        _die(f"{path} is a directory, not a {what}")
    try:
        return path.read_bytes()
    except OSError as exc:
        _die(f"{path}: cannot read it ({exc.strerror or exc})")


def load_key(path: Path, kind: KeyType) -> KeyPair:
    """The key whose seed is in ``path``, which must be a seed of type ``kind``."""
    _read(path, "seed file")  # one-line errors for a missing or unreadable file
    try:
        return stored_key(path, kind)
    except KeyFormatError as exc:
        _die(str(exc))


def load_or_create_key(path: Path, kind: KeyType) -> KeyPair:
    """The key whose seed is in ``path``; a new one is generated there if absent."""
    if path.exists():
        return load_key(path, kind)
    try:
        key = stored_key(path, kind)
    except OSError as exc:
        _die(f"cannot write a new {kind.name.lower()} seed to {path} ({exc.strerror or exc})")
    click.echo(f"generated {kind.name.lower()} key {key.public_key} in {path}", err=True)
    return key


# ---- keys ----------------------------------------------------------------------


@main.group(short_help="Generate nkeys (typed ed25519 key pairs).")
def keys() -> None:
    """Generate nkeys (ed25519 key pairs with typed, checksummed encodings).

    \b
    Example:
      wascc keys gen account -o ~/.wascc/keys/acme_account.nk
    """


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

    Prints the public key and the seed; with -o, writes the seed to a new file
    (never overwriting one) and prints only the public key.

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
        write_seed(output, key)
    except FileExistsError:
        _die(f"{output} exists; refusing to overwrite a seed")
    except OSError as exc:
        _die(f"cannot write {output} ({exc.strerror or exc})")
    click.echo(key.public_key)


# ---- claims --------------------------------------------------------------------


@main.group()
def claims() -> None:
    """Sign modules and inspect the claims they carry.

    \b
    Example:
      wascc claims sign echo.wasm -n echo -c wascc:http_server -o echo_s.wasm
      wascc claims inspect echo_s.wasm
    """


def _default_keys_dir() -> Path:
    return Path(os.environ.get("WASCC_KEYS", Path.home() / ".wascc" / "keys"))


@claims.command("sign")
@click.argument("module", type=click.Path(path_type=Path))
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
@seed_option("--issuer", "Account")
@seed_option("--subject", "Module")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Signed module (default: <MODULE stem>_s.wasm beside MODULE).",
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
    data = _read(module, "module")
    _warn_unknown_caps(caps)
    try:
        module_hash(data)  # refuse what is not wasm before generating any key
    except WasccError as exc:
        _die(f"{module}: {exc}")
    keys_dir = _default_keys_dir()
    seeds = [
        (issuer or keys_dir / f"{name}_account.nk", KeyType.ACCOUNT),
        (subject or keys_dir / f"{name}_module.nk", KeyType.MODULE),
    ]
    for path, kind in seeds:  # check every existing seed before generating any
        if path.exists():
            load_key(path, kind)
    account, module_key = (load_or_create_key(path, kind) for path, kind in seeds)
    now = int(time.time())
    try:
        signed = sign_module(
            data,
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
        _die(f"{module}: {exc}")
    target = output or module.with_name(f"{module.stem}_s.wasm")
    try:
        target.write_bytes(signed)
    except OSError as exc:
        _die(f"cannot write {target} ({exc.strerror or exc})")
    click.echo(f"signed {target} as {module_key.public_key} (issuer {account.public_key})")


def _warn_unknown_caps(caps: tuple[str, ...]) -> None:
    """Warn on a capability id no installed provider and no known contract offers (a typo?)."""
    from wascc.plugins import Plugins  # noqa: PLC0415 - loads the installed providers' plugins

    plugins = Plugins()
    plugins.load_entry_points()
    known = set(CONTRACTS) | set(plugins.provider_factories())
    for cap in caps:
        if is_actor_key(cap) or canonical_capability(cap) in known:
            continue
        close = difflib.get_close_matches(canonical_capability(cap), sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        click.echo(
            f"warning: no installed provider and no known contract offers {cap!r}{hint}",
            err=True,
        )


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


def _claims_json(found: Claims, status: str) -> dict[str, Any]:
    return {**found.to_json(), "status": status}


def _claims_status(data: bytes, label: str) -> str:
    """``valid``, or ``INVALID: <why>`` (signature, hash, time window)."""
    try:
        verify_module(data, label=label)
    except ClaimsError as exc:
        return f"INVALID: {exc}"
    return "valid"


def _claims_rows(found: Claims, status: str) -> list[tuple[str, str]]:
    rev = "-" if found.rev is None else str(found.rev)
    return [
        ("Name", found.name),
        ("Module", found.subject),
        ("Account", found.issuer),
        ("Capabilities", ", ".join(found.caps) or "(none)"),
        ("Tags", ", ".join(found.tags) or "(none)"),
        ("Version", f"{found.ver or '-'} (rev {rev})"),
        ("Provider", "yes" if found.provider else "no"),
        ("Issued", format_time(found.issued_at)),
        ("Expires", format_time(found.expires)),
        ("Not before", format_time(found.not_before) if found.not_before else "-"),
        ("Hash", found.module_hash),
        ("Status", status),
    ]


def _echo_rows(rows: list[tuple[str, str]], indent: str = "  ") -> None:
    width = max((len(k) for k, _ in rows), default=0)
    for key, value in rows:
        click.echo(f"{indent}{key.ljust(width)}  {value}".rstrip())


@claims.command("inspect")
@click.argument("module", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the claims as JSON.")
def claims_inspect(module: Path, as_json: bool) -> None:
    """Show the claims embedded in MODULE and whether they verify.

    \b
    Example:
      wascc claims inspect echo_s.wasm --json
    """
    data = _read(module, "module")
    try:
        found = extract_claims(data)
    except WasccError as exc:
        _die(f"{module}: {exc}")
    if found is None:
        _die(f"{module} is not signed (it has no `jwt` section)")
    claims_found, _ = found
    status = _claims_status(data, module.name)
    if as_json:
        click.echo(json.dumps(_claims_json(claims_found, status), indent=2))
    else:
        click.echo(f"{module}")
        _echo_rows(_claims_rows(claims_found, status))
    if status != "valid":
        sys.exit(1)  # printed, but not a module anyone should run


# ---- inspect -------------------------------------------------------------------

WASM_MAGIC = b"\0asm"
NATIVE_MAGICS = (
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",  # Mach-O, 32 and 64 bit, both byte orders, fat
    b"\xce\xfa\xed\xfe",
    b"\xfe\xed\xfa\xcf",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
)


def _is_tar(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b" or data[257:262] == b"ustar"


def _is_native(path: Path, head: bytes) -> bool:
    return (
        path.suffix in NATIVE_SUFFIXES
        or ".so." in path.name  # libfoo.so.1
        or head.startswith(NATIVE_MAGICS)
    )


def _types(types: list[str]) -> str:
    """``i32 x8`` for a run of one type, runs joined with commas."""
    runs: list[tuple[str, int]] = []
    for ty in types:
        if runs and runs[-1][0] == ty:
            runs[-1] = (ty, runs[-1][1] + 1)
        else:
            runs.append((ty, 1))
    return ", ".join(ty if n == 1 else f"{ty} x{n}" for ty, n in runs)


def _limits(limits: wasm.Limits) -> str:
    text = f"min={limits.min}"
    return text if limits.max is None else f"{text} max={limits.max}"


def describe_type(ty: wasm.ExternType) -> tuple[str, str]:
    """(kind, text) of an import's or export's type: ``("func", "(i32 x8) -> i32")``.

    Types are read from the binary (:func:`wascc.wire.wasm.interface`): asking
    wasmtime's C API about a v128 would abort the process.
    """
    if ty.func is not None:
        params = f"({_types(list(ty.func.params))})"
        results = list(ty.func.results)
        if ty.kind == "tag":
            return "tag", f"tag {params}"
        if not results:
            return "func", params
        shown = results[0] if len(results) == 1 else f"({_types(results)})"
        return "func", f"{params} -> {shown}"
    if ty.kind == "memory" and ty.limits is not None:
        flags = "".join([" i64" if ty.limits.is_64 else "", " shared" if ty.limits.shared else ""])
        return "memory", f"memory{flags} {_limits(ty.limits)} (pages)"
    if ty.kind == "table" and ty.limits is not None:
        return "table", f"table {ty.value} {_limits(ty.limits)}"
    if ty.kind == "global":
        return "global", f"global {'mut ' if ty.mutable else ''}{ty.value}"
    return "unknown", ty.kind


def _inspect_wasm(path: Path, data: bytes) -> dict[str, Any]:
    from wascc.engine.runtime import Runtime  # noqa: PLC0415 - starts wasmtime's engine on first use

    label = path.name
    claims_obj: dict[str, Any] | None = None
    provider = False
    try:
        found = extract_claims(data)
    except ModuleError as exc:
        _die(f"{path} is not a valid WebAssembly module: {exc}")
    except MalformedToken as exc:
        status = f"INVALID: {exc}"
    else:
        if found is None:
            status = "unsigned"
        else:
            status = _claims_status(data, label)
            claims_obj = _claims_json(found[0], status)
            provider = found[0].provider
    runtime = Runtime.default()
    if wasm.is_component(data):
        return _inspect_component(path, data, status, claims_obj, runtime)
    role = "portable provider" if provider else "actor"
    error: str | None = None
    try:
        runtime.load(data, label, allow_wasi=provider)
    except ActorLoadError as exc:
        error = str(exc)
    except ModuleError as exc:
        _die(str(exc))
    try:
        iface = wasm.interface(data)
    except ModuleError as exc:
        _die(f"{path} is not a valid WebAssembly module: {exc}")
    imports = []
    for imp in iface.imports:
        kind, text = describe_type(imp.type)
        imports.append({"module": imp.module, "name": imp.name, "kind": kind, "type": text})
    exports = []
    for exp in iface.exports.values():
        kind, text = describe_type(exp.type)
        exports.append({"name": exp.name, "kind": kind, "type": text})
    return {
        "file": str(path),
        "format": "wasm",
        "size": len(data),
        "claims_status": status,
        "claims": claims_obj,
        "imports": imports,
        "exports": exports,
        "wapc": {"valid": error is None, "role": role, "error": error},
    }


def _inspect_component(
    path: Path, data: bytes, status: str, claims_obj: dict[str, Any] | None, runtime: Any
) -> dict[str, Any]:
    """A component's claims and its imports and exports by WIT name, and whether wascc runs it."""
    from wascc.engine import wit  # noqa: PLC0415 - wasmtime
    from wascc.engine.component import describe_component  # noqa: PLC0415

    try:
        iface = describe_component(data, runtime)
    except ModuleError as exc:
        _die(str(exc))
    unserved = [n for n in iface.imports if wit.interface_name(n) not in wit.IMPORTS]
    called = [n for n in iface.exports if wit.interface_name(n) in wit.EXPORTS]
    error = None
    if unserved:
        error = f"this host does not serve {', '.join(unserved)}"
    elif not called:
        error = f"it exports none of {', '.join(wit.EXPORTS)}, so nothing can call it"
    return {
        "file": str(path),
        "format": "component",
        "size": len(data),
        "claims_status": status,
        "claims": claims_obj,
        "imports": [
            {"name": n, "kind": "instance", "served": n not in unserved} for n in iface.imports
        ],
        "exports": [{"name": n, "kind": "instance", "called": n in called} for n in iface.exports],
        "component": {"valid": error is None, "error": error},
    }


def _print_wasm(info: dict[str, Any]) -> None:
    if info["format"] == "component":
        _print_component(info)
        return
    click.echo(f"{info['file']}: WebAssembly module, {info['size']} bytes")
    click.echo("Claims")
    if info["claims"] is not None:
        _echo_rows(_claims_rows(Claims.from_json(info["claims"]), info["claims_status"]))
    elif info["claims_status"] == "unsigned":
        click.echo("  (none: the module is not signed)")
    else:
        click.echo(f"  {info['claims_status']}")
    for title, rows in (
        ("Imports", [(f"{i['module']}::{i['name']}", i["type"]) for i in info["imports"]]),
        ("Exports", [(e["name"], e["type"]) for e in info["exports"]]),
    ):
        click.echo(f"{title} ({len(rows)})")
        _echo_rows(rows)
    wapc = info["wapc"]
    verdict = "valid" if wapc["valid"] else f"NOT VALID: {wapc['error']}"
    click.echo(f"waPC {wapc['role']}: {verdict}")


def _print_component(info: dict[str, Any]) -> None:
    click.echo(f"{info['file']}: WebAssembly component (WASI 0.2), {info['size']} bytes")
    click.echo("Claims")
    if info["claims"] is not None:
        _echo_rows(_claims_rows(Claims.from_json(info["claims"]), info["claims_status"]))
    elif info["claims_status"] == "unsigned":
        click.echo("  (none: the component is not signed)")
    else:
        click.echo(f"  {info['claims_status']}")
    imports = [(i["name"], "served" if i["served"] else "NOT SERVED") for i in info["imports"]]
    exports = [(e["name"], "called by the host" if e["called"] else "-") for e in info["exports"]]
    for title, rows in (("Imports", imports), ("Exports", exports)):
        click.echo(f"{title} ({len(rows)})")
        _echo_rows(rows)
    verdict = info["component"]
    text = "valid" if verdict["valid"] else f"NOT VALID: {verdict['error']}"
    click.echo(f"component: {text}")


def _inspect_native(path: Path) -> dict[str, Any]:
    from wascc.providers.native import load_native_provider  # noqa: PLC0415 - loads cffi

    try:
        provider = load_native_provider(path)
    except WasccError as exc:
        _die(str(exc))
    try:
        desc = provider.descriptor()
    finally:
        provider.stop()
    return {"file": str(path), "format": "native", **desc.to_json()}


def _print_native(info: dict[str, Any]) -> None:
    click.echo(f"{info['file']}: native capability provider")
    _echo_rows(
        [
            ("Id", info["id"]),
            ("Name", info["name"]),
            ("Version", f"{info['version'] or '-'} (rev {info['revision']})"),
            ("Description", info["description"] or "-"),
        ]
    )
    ops = info["operations"]
    click.echo(f"Operations ({len(ops)})")
    name_w = max((len(op["name"]) for op in ops), default=0)
    dir_w = max((len(op["direction"]) for op in ops), default=0)
    for op in ops:
        line = f"  {op['name'].ljust(name_w)}  {op['direction'].ljust(dir_w)}  {op['doctext']}"
        click.echo(line.rstrip())


# ---- provider archives ---------------------------------------------------------


def archive_info(path: Path, data: bytes) -> dict[str, Any]:
    """An archive's claims, targets (size, hash, whether it matches) and verification status."""
    try:
        archive = read_archive(data, path.name)
        claims = archive.claims()
    except WasccError as exc:
        _die(f"{path}: {exc}")
    try:
        verify_archive(data, target=next(iter(sorted(archive.binaries)), None), label=path.name)
        status = "valid"
    except ClaimsError as exc:
        status = f"INVALID: {exc}"
    except WasccError as exc:
        status = f"INVALID: {exc}"
    targets = {
        t: {
            "bytes": len(b),
            "hash": binary_hash(b),
            "signed": claims.target_hashes.get(t) == binary_hash(b),
        }
        for t, b in sorted(archive.binaries.items())
    }
    return {
        "file": str(path),
        "format": "provider archive",
        **claims.to_json(),
        "targets": targets,
        "host_target": host_target(),
        "status": status,
    }


def print_archive(info: dict[str, Any]) -> None:
    """An archive as ``wascc inspect`` and ``wascc par inspect`` print it."""
    meta = info["wascap"]
    click.echo(f"{info['file']}: provider archive")
    _echo_rows(
        [
            ("Name", meta["name"]),
            ("Capability", meta["capid"]),
            ("Vendor", meta["vendor"] or "-"),
            ("Version", f"{meta.get('ver') or '-'} (rev {meta.get('rev', '-')})"),
            ("Service", info["sub"]),
            ("Account", info["iss"]),
            ("Issued", format_time(info["iat"])),
            ("Expires", format_time(info.get("exp"))),
            ("Status", info["status"]),
        ]
    )
    click.echo(f"Targets ({len(info['targets'])}; this host is {info['host_target']})")
    for target, t in info["targets"].items():
        mark = "signed" if t["signed"] else "NOT COVERED BY THE CLAIMS"
        click.echo(f"  {target:16s} {t['bytes']:>10,d} bytes  {t['hash'][:16]}...  {mark}")


@main.command("compile", short_help="Compile WebAssembly text (a module or a component).")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Default: SOURCE.wasm.")
def compile_cmd(source: Path, output: Path | None) -> None:
    """Compile SOURCE, in the WebAssembly text format (a core module or a
    component), to a binary with wasmtime's own parser.

    \b
    Example:
      wascc compile kvcounter.wat && wascc claims sign kvcounter.wasm -n kvc -c wascc:keyvalue
    """
    from wascc.engine.runtime import wat_to_wasm  # noqa: PLC0415 - wasmtime

    data = _read(source, "text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        _die(f"{source} is not UTF-8 text")
    try:
        binary = wat_to_wasm(text, str(source))
    except ModuleError as exc:
        _die(str(exc))
    target = output or source.with_suffix(".wasm")
    target.write_bytes(binary)
    kind = "component" if wasm.is_component(binary) else "module"
    click.echo(f"compiled {target} ({kind}, {len(binary)} bytes)")


@main.command("inspect", short_help="Describe an actor, a native provider or a provider archive.")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print everything as one JSON object.")
def inspect_cmd(file: Path, as_json: bool) -> None:
    """Describe FILE: an actor (.wasm), a native provider (.so/.dylib) or a
    signed provider archive (.par/.par.gz: its claims and targets, unloaded).

    For a wasm module: its claims and whether they verify, its imports and
    exports with their types, and whether it can run as a waPC actor (or, if
    its claims say so, as a portable provider). For a native provider: its
    capability descriptor (the library is loaded, asked, and stopped).

    \b
    Example:
      wascc inspect echo_s.wasm
      wascc inspect --json /usr/lib/wascc/libkeyvalue.so
    """
    data = _read(file)
    if file.name.endswith((".par", ".par.gz")) or _is_tar(data):
        info = archive_info(file, data)
        show = print_archive
    elif data.startswith(WASM_MAGIC):
        info = _inspect_wasm(file, data)
        show = _print_wasm
    elif _is_native(file, data[:4]):
        info = _inspect_native(file)
        show = _print_native
    else:
        hint = " (WebAssembly text? compile it to binary first)" if file.suffix == ".wat" else ""
        _die(
            f"{file} is neither a WebAssembly module (no \\0asm header) "
            f"nor a native provider library (.so/.dylib){hint}"
        )
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        show(info)


# ---- call ----------------------------------------------------------------------


def _payload(data: str | None, raw: bool) -> bytes:
    """The bytes ``--data`` stands for: msgpack of its JSON, or (``--raw``) as given."""
    if data is None:
        return b""
    if data.startswith("@"):
        source = data[1:]
        if source == "-":
            blob = sys.stdin.buffer.read()
            where = "stdin"
        else:
            blob = _read(Path(source), "data file")
            where = source
        if raw:
            return blob
        try:
            text = blob.decode("utf-8")
        except UnicodeDecodeError:
            _die(f"{where} is not UTF-8 JSON; use --raw to send its bytes as they are")
    else:
        if raw:
            return data.encode("utf-8")
        text, where = data, "--data"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        _die(f"{where} is not JSON ({exc}); use --raw to send it as it is")
    return codec.pack(value)


def _jsonable(value: Any) -> Any:
    """msgpack-decoded data as JSON: bytes as UTF-8 text when valid, else base64."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(raw).decode("ascii")}
    if isinstance(value, dict):
        return {_json_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, msgpack.ExtType):
        return {"ext": value.code, "base64": base64.b64encode(value.data).decode("ascii")}
    if isinstance(value, msgpack.Timestamp):
        return value.to_datetime().isoformat()
    return value


def _json_key(key: Any) -> Any:
    key = _jsonable(key)
    if isinstance(key, str | int | float | bool) or key is None:
        return key
    return json.dumps(key, sort_keys=True)


def _call_file(
    target: str, operation: str, payload: bytes, trusted: tuple[str, ...], allow_unsigned: bool
) -> bytes:
    from wascc.host import Host  # noqa: PLC0415 - starts wasmtime's engine on first use

    path = Path(target)
    _read(path, "actor file")  # one-line errors for a missing or unreadable file
    try:
        with Host(
            trusted_issuers=list(trusted) or None,
            allow_unsigned=allow_unsigned,
            health_interval=0,
        ) as host:
            key = host.add_actor(path)
            return host.call_actor(key, operation, payload)
    except WasccError as exc:
        _die(str(exc))


def _call_control(path: str, actor: str, operation: str, payload: bytes) -> bytes:
    answer = ask(path, "call", actor=actor, operation=operation, payload_b64=b64(payload))
    try:
        return unb64(str(answer.get("reply_b64") or ""))
    except (binascii.Error, ValueError) as exc:
        _die(f"{path}: the host's reply_b64 is not base64 ({exc})")


@main.command("call")
@click.argument("target")
@click.argument("operation")
@click.option(
    "-d",
    "--data",
    metavar="JSON|@FILE",
    help="The payload: JSON, sent msgpack-encoded; @FILE reads it from FILE (@- stdin).",
)
@click.option(
    "--raw",
    is_flag=True,
    help="Send --data as bytes as given (no msgpack) and write the reply's bytes as they are.",
)
@click.option(
    "--trusted-issuer",
    "trusted",
    multiple=True,
    metavar="KEY",
    help="Account key whose signatures are accepted (repeatable; default: any valid one).",
)
@click.option("--allow-unsigned", is_flag=True, help="Also run an unsigned actor.")
@click.option(
    "--control",
    metavar="PATH",
    help="Call an actor (TARGET = its public key or name) on a running host through its "
    "control socket.",
)
def call_cmd(
    target: str,
    operation: str,
    data: str | None,
    raw: bool,
    trusted: tuple[str, ...],
    allow_unsigned: bool,
    control: str | None,
) -> None:
    """Call OPERATION on an actor once and print its reply.

    TARGET is an actor file, run in a throwaway host; with --control it is the
    public key or the name of an actor on a running host. The reply is decoded as msgpack
    and printed as JSON (bytes as UTF-8 text, or {"base64": ...} when not
    text); with --raw its bytes are written as they are.

    \b
    Example:
      wascc call echo_s.wasm HandleRequest --data '{"method": "GET", "path": "/x"}'
      wascc call echo_s.wasm HandleRequest --raw --data @request.msgpack
      wascc call echo HandleRequest --data '{"method": "GET", "path": "/"}' \\
          --control /run/wascc.sock
    """
    payload = _payload(data, raw)
    if control is not None:
        if trusted or allow_unsigned:
            _die("--trusted-issuer and --allow-unsigned apply to an actor file, not to --control")
        reply = _call_control(control, target, operation, payload)
    else:
        for key in trusted:
            try:
                decode_public_key(key, KeyType.ACCOUNT)
            except KeyFormatError as exc:
                _die(f"--trusted-issuer {key}: {exc}")
        reply = _call_file(target, operation, payload, trusted, allow_unsigned)
    if raw:
        sys.stdout.flush()
        sys.stdout.buffer.write(reply)
        sys.stdout.buffer.flush()
        return
    if not reply:
        return
    try:
        value = codec.unpack(reply, "the reply")
    except CodecError as exc:
        _die(f"{exc}; use --raw to see its {len(reply)} bytes as they are")
    click.echo(json.dumps(_jsonable(value), indent=2, ensure_ascii=False))
