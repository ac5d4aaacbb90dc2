"""Lattice control: launch and terminate on a named host, and auctions (CONTRACTS section 5).

Subjects (JSON in, JSON out), served by every host for itself:

* ``P.control.{host}.actor.launch {actor_id}`` -> ``{actor_id, host}``: the
  actor is a path on that host (the original took OCI references; wascc
  takes a path, and answers with the started actor's public key);
* ``P.control.{host}.actor.terminate {actor_id}`` (a public key or a name);
* ``P.control.{host}.provider.launch {provider_ref, binding_name}`` ->
  ``{provider_ref, host}``: a capability id of an installed provider, or a
  file / module spec when the host was given a loader (``wascc up`` resolves
  specs as a manifest does);
* ``P.control.{host}.provider.terminate {provider_ref, binding_name}``;
* ``P.control.auction.request {actor_id, constraints}`` -> ``{host_id}`` from
  every host whose labels equal all constraints and that does not run the
  actor; ``P.control.provauction.request {provider_ref, binding_name,
  constraints}`` -> ``{host_id, provider_ref}`` likewise.

A refusal answers ``{"error": "..."}``.  Control messages are plain JSON, as
the original's: who may send them is decided by the NATS account's
permissions on ``P.control.>``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wascc.errors import LatticeError, NotFound, WasccError
from wascc.providers.base import CapabilityProvider
from wascc.wire import boundedjson
from wascc.wire.capability import canonical_capability, normalize_binding
from wascc.wire.claims import extract_claims

if TYPE_CHECKING:
    from wascc.lattice.member import Lattice

__all__ = ["Control", "ProviderLoader", "labels_match"]

log = logging.getLogger(__name__)

#: Turns a provider reference into a provider (``wascc up``: the manifest's resolver).
ProviderLoader = Callable[[str], CapabilityProvider]


def labels_match(labels: dict[str, str], constraints: dict[str, str]) -> bool:
    """True when every constraint names a label with exactly that value."""
    return all(labels.get(k) == v for k, v in constraints.items())


def _request(data: bytes, fields: tuple[str, ...]) -> dict[str, Any]:
    body = boundedjson.loads(
        data or b"{}", what="a control request", error=LatticeError,
        max_bytes=64 * 1024, max_depth=8,
    )  # fmt: skip
    if not isinstance(body, dict):
        raise LatticeError("a control request is a JSON object")
    for name in fields:
        if not isinstance(body.get(name), str) or not body[name]:
            raise LatticeError(f"a control request needs the text field `{name}`")
    constraints = body.get("constraints", {})
    if not isinstance(constraints, dict) or not all(
        isinstance(v, str) for v in constraints.values()
    ):
        raise LatticeError("`constraints` must map label names to text")
    return body


class Control:
    """A host's answers on the control subjects."""

    def __init__(self, member: Lattice) -> None:
        self.member = member
        self.host = member.host
        self.load_provider: ProviderLoader | None = None

    def handlers(self) -> dict[str, Callable[[bytes], bytes | None]]:
        """Subject -> handler, for the member to subscribe."""
        s, me = self.member.subjects, self.member.id
        return {
            s.control(me, "actor.launch"): self._answer(self._launch_actor, ("actor_id",)),
            s.control(me, "actor.terminate"): self._answer(self._terminate_actor, ("actor_id",)),
            s.control(me, "provider.launch"): self._answer(
                self._launch_provider, ("provider_ref",)
            ),
            s.control(me, "provider.terminate"): self._answer(
                self._terminate_provider, ("provider_ref",)
            ),
            f"{s.prefix}.control.auction.request": self._auction(self._actor_auction),
            f"{s.prefix}.control.provauction.request": self._auction(self._provider_auction),
        }

    def _answer(
        self, act: Callable[[dict[str, Any]], dict[str, Any]], fields: tuple[str, ...]
    ) -> Callable[[bytes], bytes]:
        def handle(data: bytes) -> bytes:
            try:
                reply = act(_request(data, fields))
            except WasccError as exc:
                log.warning("lattice control refused: %s", exc)
                reply = {"error": str(exc)}
            return json.dumps(reply).encode()

        return handle

    def _auction(
        self, bid: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> Callable[[bytes], bytes | None]:
        def handle(data: bytes) -> bytes | None:
            try:
                reply = bid(_request(data, ()))
            except WasccError:
                return None
            return None if reply is None else json.dumps(reply).encode()

        return handle

    # ---- actors ---------------------------------------------------------------------

    def _launch_actor(self, m: dict[str, Any]) -> dict[str, Any]:
        path = Path(m["actor_id"])
        if not path.is_file():
            raise NotFound(f"no actor module at {path} on host {self.member.id}")
        key = self.host.add_actor(path)
        return {"actor_id": key, "host": self.member.id}

    def _terminate_actor(self, m: dict[str, Any]) -> dict[str, Any]:
        key = self.host.resolve_actor(m["actor_id"])
        if key not in {a.public_key for a in self.host.actors()}:
            raise NotFound(f"actor {key} does not run on host {self.member.id}")
        self.host.remove_actor(key)
        return {"actor_id": key, "host": self.member.id}

    def _actor_auction(self, m: dict[str, Any]) -> dict[str, Any] | None:
        if not labels_match(self.member.labels, m.get("constraints", {})):
            return None
        wanted = m.get("actor_id", "")
        running = {a.public_key for a in self.host.actors()}
        key = _module_key(wanted) if wanted and not wanted.startswith("M") else wanted
        if key and key in running:
            return None
        return {"host_id": self.member.id}

    # ---- providers ------------------------------------------------------------------

    def _launch_provider(self, m: dict[str, Any]) -> dict[str, Any]:
        ref = m["provider_ref"]
        binding = normalize_binding(m.get("binding_name"))
        if self.load_provider is not None:
            provider = self.load_provider(ref)
            try:
                self.host.add_provider(provider, binding)
            except BaseException:
                provider.stop()
                raise
        else:
            self.host.add_provider(ref, binding)
        return {"provider_ref": ref, "host": self.member.id}

    def _terminate_provider(self, m: dict[str, Any]) -> dict[str, Any]:
        ref = m["provider_ref"]
        self.host.remove_provider(
            canonical_capability(ref), normalize_binding(m.get("binding_name"))
        )
        return {"provider_ref": ref, "host": self.member.id}

    def _provider_auction(self, m: dict[str, Any]) -> dict[str, Any] | None:
        if not labels_match(self.member.labels, m.get("constraints", {})):
            return None
        ref = m.get("provider_ref", "")
        binding = normalize_binding(m.get("binding_name"))
        here = {(p.capability_id, p.binding) for p in self.host.providers()}
        if (canonical_capability(ref), binding) in here:
            return None
        return {"host_id": self.member.id, "provider_ref": ref}


def _module_key(path: str) -> str:
    """The public key of the actor module at ``path`` ("" when it cannot be read here)."""
    try:
        found = extract_claims(Path(path).read_bytes())
    except (OSError, WasccError):
        return ""
    return found[0].subject if found else ""
