"""The built-in demo that ``wascc up`` (and ``make run``) starts with no arguments.

The example ``echo`` and ``kvcounter`` actors (built from ``examples/`` when
wascc is installed, shipped unsigned in ``wascc/_demo``) behind the
``wascc:http_server`` provider, kvcounter with the native in-memory
``wascc:keyvalue``, all on 127.0.0.1.  The demo's keys are generated on the
first run into ``$WASCC_DEMO_DIR`` (default ``~/.local/share/wascc/demo``),
readable by their owner only, and the actors are signed with them at every
start; nothing secret ships with wascc.

``WASCC_DEMO_PORT`` (default 8080; kvcounter gets the next port) and
``WASCC_DEMO_ADDRESS`` (default 127.0.0.1) move it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from wascc.errors import WasccError
from wascc.standalone.manifest import BindingSpec, CapabilitySpec, Manifest
from wascc.wire.claims import sign_module
from wascc.wire.keys import KeyType, stored_key

__all__ = ["Demo", "demo"]

BUNDLE = Path(__file__).resolve().parent.parent / "_demo"
ACTORS = {
    "echo": ("wascc:http_server",),
    "kvcounter": ("wascc:http_server", "wascc:keyvalue"),
}


@dataclass(frozen=True)
class Demo:
    manifest: Manifest
    account: str
    urls: dict[str, str]
    keys: Path  # the directory holding the demo's keys and signed actors


def _demo_port() -> int:
    text = os.environ.get("WASCC_DEMO_PORT", "8080")
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 < port < 65535:
        raise WasccError(f"WASCC_DEMO_PORT={text!r} is not a port number (1-65534)")
    return port


def _check_free(address: str, port: int) -> None:
    """Refuse at once, with the way out, when a demo port is taken."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((address, port))
    except OSError as exc:
        raise WasccError(
            f"the demo cannot listen on {address}:{port} ({exc.strerror or exc}): another "
            f"program holds it; move the demo with WASCC_DEMO_PORT=<port> (it uses that port "
            "and the next one)"
        ) from None


def data_dir() -> Path:
    explicit = os.environ.get("WASCC_DEMO_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "wascc" / "demo"


def demo() -> Demo:
    """Sign the bundled demo actors with this machine's demo keys; the manifest to run."""
    missing = [n for n in ACTORS if not (BUNDLE / f"{n}.wasm").is_file()]
    if missing:
        raise WasccError(
            "the demo actors were not built when wascc was installed (it needs clang and "
            "wasm-ld: run `make run`, or `bash .ci/system-deps` as root and reinstall)"
        )
    directory = data_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    account = stored_key(directory / "account.nk", KeyType.ACCOUNT)
    address = os.environ.get("WASCC_DEMO_ADDRESS", "127.0.0.1")
    port = _demo_port()
    for offset in range(len(ACTORS)):
        _check_free(address, port + offset)
    actors: list[Path] = []
    bindings: list[BindingSpec] = []
    urls: dict[str, str] = {}
    for offset, (name, caps) in enumerate(ACTORS.items()):
        module = stored_key(directory / f"{name}_module.nk", KeyType.MODULE)
        signed = directory / f"{name}_s.wasm"
        signed.write_bytes(
            sign_module(
                (BUNDLE / f"{name}.wasm").read_bytes(),
                issuer=account,
                subject=module,
                name=name,
                caps=caps,
                ver="demo",
            )
        )
        actors.append(signed)
        values = {"PORT": str(port + offset), "ADDRESS": address}
        bindings.append(BindingSpec(module.public_key, "wascc:http_server", values=values))
        bindings += [BindingSpec(module.public_key, cap) for cap in caps[1:]]
        urls[name] = f"http://{address}:{port + offset}/"
    manifest = Manifest(
        source="built-in demo",
        base_dir=directory,
        labels={"demo": "true"},
        actors=tuple(actors),
        capabilities=(CapabilitySpec("wascc:http_server"), CapabilitySpec("wascc:keyvalue")),
        bindings=tuple(bindings),
    )
    return Demo(manifest, account.public_key, urls, directory)
