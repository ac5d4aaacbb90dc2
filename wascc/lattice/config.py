"""How a host joins a lattice: the NATS URL, the namespace, keys, timeouts, and the subjects.

CONTRACTS section 5: subjects start with ``P`` = ``wasmbus`` without a
namespace, ``{ns}.wasmbus`` with one (alphanumeric, lowercased).  The host's
server key (``N...``) is kept in its state directory (0600) so a restarted
host keeps its identity; ``ephemeral_key`` makes a fresh one per start, as
the original did.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from wascc.errors import LatticeError
from wascc.wire.keys import KeyPair, KeyType, stored_key
from wascc.wire.lattice import capability_subject

__all__ = ["LatticeConfig", "Subjects", "default_state_dir"]

_NAMESPACE = re.compile(r"[A-Za-z0-9]*")
_SCHEMES = {"nats", "tls", "ws", "wss"}


def default_state_dir() -> Path:
    """``$WASCC_STATE_DIR``, else ``$XDG_STATE_HOME/wascc``, else ``~/.local/state/wascc``."""
    given = os.environ.get("WASCC_STATE_DIR")
    if given:
        return Path(given)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "wascc"


@dataclass(frozen=True)
class LatticeConfig:
    """One host's lattice settings (``wascc up --lattice ...`` or a manifest's ``lattice:``).

    Times are seconds.  ``call_timeout`` bounds one invocation to another host
    (a host that dies mid-call fails the call after it); ``rpc_timeout`` bounds
    control requests (bindings); ``inventory_window`` is how long inventory
    queries collect answers; a peer that misses ``lost_after`` heartbeats is
    reported lost.
    """

    url: str
    namespace: str = ""
    creds: Path | None = None
    trusted_hosts: tuple[str, ...] = ()
    state_dir: Path = field(default_factory=default_state_dir)
    ephemeral_key: bool = False
    heartbeat: float = 5.0
    lost_after: int = 3
    call_timeout: float = 10.0
    rpc_timeout: float = 2.0
    inventory_window: float = 0.5
    connect_timeout: float = 5.0

    def __post_init__(self) -> None:
        for one in self.url.split(","):
            parts = urlsplit(one.strip())
            if parts.scheme not in _SCHEMES or not parts.hostname:
                raise LatticeError(
                    f"lattice URL {one.strip()!r} is not a NATS URL (nats://HOST:PORT)"
                )
        if not _NAMESPACE.fullmatch(self.namespace):
            raise LatticeError(
                f"lattice namespace {self.namespace!r} must be letters and digits only"
            )
        object.__setattr__(self, "namespace", self.namespace.lower())
        for key in self.trusted_hosts:
            if not (len(key) == 56 and key.startswith("N")):
                raise LatticeError(f"trusted host {key!r} is not a host's server key (N...)")
        if self.creds is not None and not self.creds.is_file():
            raise LatticeError(f"NATS credentials file {self.creds} does not exist")
        for name in ("heartbeat", "call_timeout", "rpc_timeout", "inventory_window"):
            if not getattr(self, name) > 0:
                raise LatticeError(f"lattice {name} must be more than 0 seconds")
        if self.lost_after < 1:
            raise LatticeError("lattice lost_after must be at least 1 heartbeat")

    @property
    def subjects(self) -> Subjects:
        return Subjects(self.namespace)

    def host_key(self) -> KeyPair:
        """The host's server key: kept in ``state_dir/host.nk`` (0600), or fresh."""
        if self.ephemeral_key:
            return KeyPair.generate(KeyType.SERVER)
        try:
            return stored_key(self.state_dir / "host.nk", KeyType.SERVER)
        except OSError as exc:
            raise LatticeError(
                f"cannot keep the host key in {self.state_dir}: {exc.strerror or exc} "
                "(choose --state-dir, or --ephemeral-key)"
            ) from exc


@dataclass(frozen=True)
class Subjects:
    """The protocol's subjects for one namespace."""

    namespace: str = ""

    @property
    def prefix(self) -> str:
        return f"{self.namespace}.wasmbus" if self.namespace else "wasmbus"

    @property
    def bucket(self) -> str:
        """The JetStream key-value bucket of the lattice's bindings and claims (wascc)."""
        return f"wascc_lattice_{self.namespace or 'default'}"

    def actor(self, key: str) -> str:
        return f"{self.prefix}.actor.{key}"

    def provider(self, capability_id: str, binding: str) -> str:
        return f"{self.prefix}.provider.{capability_subject(capability_id)}.{binding}"

    def provider_actor(self, capability_id: str, binding: str, actor: str) -> str:
        return f"{self.provider(capability_id, binding)}.{actor}"

    def inventory(self, kind: str) -> str:
        return f"{self.prefix}.inventory.{kind}"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    def control(self, host: str, what: str) -> str:
        return f"{self.prefix}.control.{host}.{what}"
