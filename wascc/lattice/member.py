"""A host's membership in a lattice: the remote router, the subjects it serves, its events.

:class:`Lattice` implements :class:`wascc.host.RemoteRouter`: the Host asks
it only for calls whose target is not local, so local calls never touch
NATS.  What it does (CONTRACTS section 5):

* **Serving**: every local actor is a queue-group member of
  ``P.actor.{pk}`` (so an actor on three hosts shares the load); every local
  provider listens on ``P.provider.{capid'}.{binding}`` (BindActor,
  RemoveActor, GetCapabilityDescriptor for the whole lattice) and, per bound
  actor, queue-subscribes ``P.provider.{capid'}.{binding}.{actor}``.  Each
  arriving invocation is checked (:func:`wascc.wire.lattice.check_invocation`,
  the trusted host list when one is configured) before anything runs.
* **Calling out**: each invocation is signed with the host's server key and
  carries its deadline (wascc); the caller waits at most that long, so a host
  that dies mid-call costs an :class:`~wascc.errors.InvocationTimeout`, never
  a hang.  A call made while serving a lattice invocation inherits what is
  left of that invocation's deadline.
* **Shared state** (wascc): the claims of every actor that ran and every
  binding live in a JetStream key-value bucket, so ``set_binding`` on any host
  binds wherever the provider runs, now (a BindActor request every instance
  receives) or later (a provider that starts reads the bucket), and bindings
  survive every host that made them.  Bindings an operator sets while both
  ends are on one host are recorded there too (except ``wascc:extras``, which
  every host binds for itself).
* **Presence**: ``HostStarted`` on joining and again after a reconnect,
  ``HostHeartbeat`` every ``heartbeat`` seconds, ``HostStopped`` on a clean
  exit; a peer silent for ``lost_after`` of its own periods is dropped from
  the peer table and reported ``HostLost`` by the surviving host with the
  smallest id.  Inventory queries (``P.inventory.*``) are answered as the
  protocol says.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import functools
import json
import logging
import platform
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import nats.errors
from nats.aio.subscription import Subscription
from nats.js.errors import KeyNotFoundError, NoKeysError

from wascc.errors import (
    AntiforgeryError,
    BindingError,
    InvocationError,
    InvocationTimeout,
    LatticeError,
    NotBound,
    NotFound,
    RemoteInvocationError,
    Unauthorized,
    WasccError,
)
from wascc.host import Host
from wascc.lattice.bus import Bus
from wascc.lattice.config import LatticeConfig
from wascc.lattice.control import Control
from wascc.lattice.events import BusEvent, cloud_event, read_event
from wascc.providers.extras import CAPABILITY_ID as EXTRAS
from wascc.wire.capability import canonical_capability, normalize_binding
from wascc.wire.claims import Claims
from wascc.wire.codec import (
    OP_BIND_ACTOR,
    OP_GET_DESCRIPTOR,
    OP_REMOVE_ACTOR,
    SYSTEM_ACTOR,
    CapabilityConfiguration,
    CapabilityDescriptor,
)
from wascc.wire.keys import is_actor_key
from wascc.wire.lattice import BusInvocation, BusResponse, Entity, check_invocation

__all__ = ["Lattice", "binding_record_key", "builtin_labels", "descriptor_json"]

log = logging.getLogger(__name__)

#: The deadline (time.time()) of the lattice invocation this thread is serving.
_serving = threading.local()

UNBOUND = "Attempted to invoke binding-required operation on unbound provider"


def builtin_labels() -> dict[str, str]:
    """``hostcore.arch``, ``hostcore.os``, ``hostcore.osfamily`` (the manifest cannot override)."""
    system = platform.system().lower()
    family = "windows" if system == "windows" else "unix"
    return {
        "hostcore.arch": platform.machine().lower() or "unknown",
        "hostcore.os": system or "unknown",
        "hostcore.osfamily": family,
    }


def binding_record_key(actor: str, capability_id: str, binding: str) -> str:
    """A binding's key in the bucket (base64url of its three parts: any binding name fits)."""
    raw = json.dumps([actor, capability_id, binding], separators=(",", ":")).encode()
    return "binding." + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def descriptor_json(d: CapabilityDescriptor) -> dict[str, Any]:
    """A descriptor as the original's inventory wrote it (snake_case, direction as text)."""
    return {
        "id": d.id,
        "name": d.name,
        "version": d.version,
        "revision": d.revision,
        "long_description": d.long_description,
        "supported_operations": [
            {"name": o.name, "direction": o.direction.value, "doctext": o.doctext}
            for o in d.supported_operations
        ],
    }


class Lattice:
    """One host's membership in a lattice (the Host's remote router)."""

    def __init__(
        self, host: Host, config: LatticeConfig, labels: Mapping[str, str] | None = None
    ) -> None:
        self.host = host
        self.config = config
        self.subjects = config.subjects
        self.key = config.host_key()
        self.id = self.key.public_key
        self.labels = {**dict(labels or {}), **builtin_labels()}
        # a host always trusts itself (its own bindings reach its own providers that way)
        self.trusted = frozenset({*config.trusted_hosts, self.id}) if config.trusted_hosts else None
        self.bus = Bus("wascc-lattice")
        self._subs: dict[str, Subscription] = {}  # touched on the loop only
        self._peers: dict[str, tuple[float, float]] = {}  # host -> (last seen, its period)
        self._peers_lock = threading.Lock()
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._left = False
        self._beat: threading.Thread | None = None
        self.on_event: Callable[[str, Any], None] | None = None
        self.control = Control(self)

    # ---- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Connect, open the bucket, serve what the host runs, announce; LatticeError on failure."""
        cfg = self.config
        self.bus.connect(
            cfg.url, creds=cfg.creds, timeout=cfg.connect_timeout, client_name=f"wascc {self.id}"
        )
        try:
            self.bus.open_bucket(self.subjects.bucket, cfg.rpc_timeout)
            self.bus.run(self._serve_fixed(), cfg.connect_timeout)
            self.host.set_remote(self)
            for info in self.host.actors():
                self.changed("actor_started", {"actor": info.public_key})
            for p in self.host.providers():
                self.changed(
                    "provider_added", {"capability_id": p.capability_id, "binding": p.binding}
                )
            for b in self.host.bindings():
                self.changed(
                    "bound",
                    {"actor": b.actor, "capability_id": b.capability_id, "binding": b.binding},
                )
        except BaseException:
            self.host.set_remote(None)
            self.bus.close()
            raise
        self.bus.on_reconnect = self._announce
        self._publish(BusEvent.host_started(self.id))
        self._beat = threading.Thread(target=self._heartbeats, name="wascc-heartbeat", daemon=True)
        self._beat.start()
        log.info(
            "joined the lattice at %s as host %s (namespace %r)",
            cfg.url,
            self.id,
            cfg.namespace,
        )

    def leave(self) -> None:
        """Stop serving lattice invocations and say so (``HostStopped``); calls out still work."""
        if self._left:
            return
        self._left = True
        self._stop.set()

        async def go() -> None:
            for subject in [
                s for s in self._subs if ".inventory." not in s and ".control." not in s
            ]:
                await self._unsub(subject)
            nc = self.bus.nc
            assert nc is not None
            for info in self.host.actors():
                event = BusEvent.actor("ActorStopped", info.public_key, self.id)
                await nc.publish(self.subjects.events, cloud_event(event))
            await nc.publish(self.subjects.events, cloud_event(BusEvent.host_stopped(self.id)))
            await nc.flush(timeout=2)

        try:
            self.bus.run(go(), 3.0)
        except Exception as exc:
            log.warning("lattice: leaving: %s", exc)

    def close(self) -> None:
        """Detach from the host and disconnect."""
        self.leave()
        if self.host.remote is self:
            self.host.set_remote(None)
        self.bus.close()

    # ---- subscriptions (on the loop) ------------------------------------------------

    async def _serve_fixed(self) -> None:
        s = self.subjects
        for kind, answer in (
            ("hosts", self._inventory_hosts),
            ("actors", self._inventory_actors),
            ("bindings", self._inventory_bindings),
            ("capabilities", self._inventory_capabilities),
        ):
            await self._sub(s.inventory(kind), _json_handler(answer))
        await self._sub(s.events, self._on_event)
        for subject, handler in self.control.handlers().items():
            await self._sub(subject, handler)

    async def _sub(
        self, subject: str, handler: Callable[[bytes], bytes | None], queue: str = ""
    ) -> None:
        if subject in self._subs or self.bus.nc is None:
            return
        self._subs[subject] = await self.bus.subscribe(subject, handler, queue=queue)

    async def _unsub(self, subject: str) -> None:
        sub = self._subs.pop(subject, None)
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception as exc:
                log.debug("lattice: unsubscribe %s: %s", subject, exc)

    # ---- what the host tells us ------------------------------------------------------

    def changed(self, event: str, detail: dict[str, str]) -> None:
        """A change on this host: serve it, record it, publish it (never blocks)."""
        if self._left:
            return
        s = self.subjects
        actor = detail.get("actor", "")
        capid = detail.get("capability_id", "")
        binding = detail.get("binding", "")
        if capid == EXTRAS:
            return
        if event == "actor_started":
            try:
                claims = self.host.actor(actor).claims
            except NotFound:
                return
            self._now(self._sub(s.actor(actor), self._on_actor, queue=s.actor(actor)))
            self.bus.spawn(self._kv_put(f"claims.{actor}", claims.to_json()))
            self._publish(BusEvent.actor("ActorStarted", actor, self.id))
        elif event == "actor_stopped":
            self.bus.spawn(self._unsub(s.actor(actor)))
            self._publish(BusEvent.actor("ActorStopped", actor, self.id))
        elif event == "provider_added":
            self._now(self._sub(s.provider(capid, binding), self._on_provider))
            self._publish(BusEvent.provider("ProviderLoaded", capid, binding, self.id))
            self.bus.submit(lambda: self._bind_recorded(capid, binding))
        elif event == "provider_removed":
            self.bus.spawn(self._unsub(s.provider(capid, binding)))
            self._publish(BusEvent.provider("ProviderRemoved", capid, binding, self.id))
        elif event == "bound":
            subject = s.provider_actor(capid, binding, actor)
            self._now(self._sub(subject, self._on_provider_actor, queue=subject))
            local = self._local_claims(actor)
            if local is not None:  # bound on this host by its operator: record it for all
                values = next(
                    (b.values for b in self.host.bindings()
                     if (b.actor, b.capability_id, b.binding) == (actor, capid, binding)),
                    {},
                )  # fmt: skip
                self.bus.spawn(self._record(actor, capid, binding, dict(values), local))
            self._publish(BusEvent.binding("ActorBindingCreated", actor, capid, binding, self.id))
        elif event == "unbound":
            self.bus.spawn(self._unsub(s.provider_actor(capid, binding, actor)))

    def _now(self, coro: Coroutine[Any, Any, None]) -> None:
        """Subscribe before the host's change returns (so it is reachable lattice-wide at
        once); while disconnected, in the background (nats-py sends it on reconnecting)."""
        if not self.bus.connected.is_set():
            self.bus.spawn(coro)
            return
        try:
            self.bus.run(coro, self.config.rpc_timeout)
        except Exception as exc:
            log.warning("lattice: could not subscribe in time: %s", exc)

    def _local_claims(self, actor: str) -> Claims | None:
        try:
            return self.host.actor(actor).claims
        except NotFound:
            return None

    # ---- the bucket ---------------------------------------------------------------

    async def _kv_put(self, key: str, value: Any) -> None:
        assert self.bus.kv is not None
        await self.bus.kv.put(key, json.dumps(value, separators=(",", ":")).encode())

    async def _record(
        self, actor: str, capid: str, binding: str, values: dict[str, str], claims: Claims
    ) -> None:
        await self._kv_put(
            binding_record_key(actor, capid, binding),
            {
                "actor": actor,
                "capability_id": capid,
                "binding_name": binding,
                "configuration": values,
                "wascc": claims.binding_values(),
            },
        )

    async def _kv_get(self, key: str) -> Any:
        assert self.bus.kv is not None
        try:
            entry = await self.bus.kv.get(key)
        except KeyNotFoundError:
            return None
        return json.loads(entry.value) if entry.value else None

    async def _kv_values(self, prefix: str) -> list[Any]:
        assert self.bus.kv is not None
        try:
            keys = await self.bus.kv.keys()
        except NoKeysError:
            return []
        found = []
        for key in keys:
            if key.startswith(prefix):
                value = await self._kv_get(key)
                if value is not None:
                    found.append(value)
        return found

    def recorded_bindings(self) -> list[dict[str, Any]]:
        """Every binding of the lattice, as the bucket holds it."""
        return list(self.bus.run(self._kv_values("binding."), self.config.rpc_timeout * 2))

    def _bind_recorded(self, capid: str, binding: str) -> None:
        """A provider started here: bind every actor the lattice bound at (capid, binding)."""
        try:
            records = self.recorded_bindings()
        except Exception as exc:
            log.error("lattice: cannot read the bindings of %s (%s): %s", capid, binding, exc)
            return
        for r in records:
            if (r.get("capability_id"), r.get("binding_name")) != (capid, binding):
                continue
            try:
                self.host.bind_remote(
                    r["actor"], capid, binding, {**r.get("configuration", {}), **r.get("wascc", {})}
                )
            except (WasccError, KeyError, TypeError) as exc:
                log.error(
                    "lattice: could not bind %s to %s (%s): %s", r.get("actor"), capid, binding, exc
                )

    def claims_of(self, actor: str) -> Claims | None:
        """The claims of an actor running here or recorded in the bucket."""
        local = self._local_claims(actor)
        if local is not None:
            return local
        try:
            body = self.bus.run(self._kv_get(f"claims.{actor}"), self.config.rpc_timeout)
        except Exception as exc:
            raise LatticeError(
                f"cannot read the claims of {actor} from the lattice: {exc}"
            ) from exc
        if body is None:
            return None
        return Claims.from_json(body)

    # ---- RemoteRouter -------------------------------------------------------------

    def knows_actor(self, actor: str) -> bool:
        return self.claims_of(actor) is not None

    def _budget(self) -> float:
        """Seconds the next call may take: the call timeout, or what the served call has left."""
        timeout = self.config.call_timeout
        deadline = getattr(_serving, "deadline", 0.0)
        if deadline:
            timeout = min(timeout, deadline - time.time())
        return timeout

    def call_actor(
        self, origin: str, target: str, operation: str, payload: bytes, binding: str
    ) -> bytes:
        if origin == SYSTEM_ACTOR or is_actor_key(origin):
            source = Entity.of_actor(origin)
        else:
            source = Entity.of_capability(origin, binding)
        return self._invoke(
            self.subjects.actor(target), source, Entity.of_actor(target), operation, payload,
            f"actor {target}",
        )  # fmt: skip

    def call_provider(
        self, actor: str, capability_id: str, binding: str, operation: str, payload: bytes
    ) -> bytes:
        return self._invoke(
            self.subjects.provider_actor(capability_id, binding, actor),
            Entity.of_actor(actor),
            Entity.of_capability(capability_id, binding),
            operation,
            payload,
            f"{capability_id} ({binding}) for actor {actor}",
        )

    def _invoke(
        self,
        subject: str,
        origin: Entity,
        target: Entity,
        operation: str,
        payload: bytes,
        what: str,
    ) -> bytes:
        timeout = self._budget()
        if timeout <= 0:
            raise InvocationTimeout(f"{operation} to {what}: the caller's deadline has passed")
        inv = BusInvocation.signed(
            self.key, origin, target, operation, payload,
            deadline=int((time.time() + timeout) * 1000), host_id=self.id,
        )  # fmt: skip
        reply = self._request(subject, inv.encode(), timeout, f"{operation} to {what}", NotBound)
        response = BusResponse.decode(reply)
        if response.error is not None:
            if response.error.startswith("Antiforgery check failure"):
                raise AntiforgeryError(f"Invocation failure: {response.error}")
            raise RemoteInvocationError(f"Invocation failure: {response.error}")
        return response.msg

    def _request(
        self, subject: str, data: bytes, timeout: float, what: str, missing: type[WasccError]
    ) -> bytes:
        nc = self.bus.nc
        if nc is None:
            raise InvocationError(f"{what}: the host is not in a lattice")
        try:
            msg = self.bus.run(nc.request(subject, data, timeout=timeout), timeout + 1.0)
        except nats.errors.NoRespondersError as exc:
            raise missing(f"{what}: nothing in the lattice serves {subject}") from exc
        except (nats.errors.TimeoutError, TimeoutError, concurrent.futures.TimeoutError) as exc:
            raise InvocationTimeout(
                f"{what}: no answer within {timeout:.3g}s over the lattice "
                "(the host that took it may have stopped)"
            ) from exc
        except Exception as exc:
            raise RemoteInvocationError(f"{what}: the lattice failed: {exc}") from exc
        return bytes(msg.data)

    def set_binding(
        self, actor: str, capability_id: str, binding: str, values: dict[str, str]
    ) -> None:
        capability_id = canonical_capability(capability_id)
        binding = normalize_binding(binding)
        claims = self.claims_of(actor)
        what = f"{actor} to {capability_id} ({binding})"
        if claims is None:
            raise BindingError(f"cannot bind {what}: no actor with that key ran in the lattice")
        if capability_id not in {canonical_capability(c) for c in claims.caps}:
            raise BindingError(
                f"cannot bind {what}: the actor's claims do not list {capability_id}"
            )
        try:
            self.host.plugins.authorize_binding(claims, capability_id, binding)
        except Unauthorized as exc:
            raise BindingError(f"cannot bind {what}: {exc}") from exc
        try:
            self.bus.run(
                self._record(actor, capability_id, binding, dict(values), claims),
                self.config.rpc_timeout,
            )
        except Exception as exc:
            raise BindingError(f"cannot bind {what}: the lattice's bucket failed: {exc}") from exc
        config = CapabilityConfiguration(actor, {**values, **claims.binding_values()})
        try:
            self._control(capability_id, binding, OP_BIND_ACTOR, config.encode())
        except NotFound:
            log.info("recorded the binding of %s; it binds when a provider starts there", what)
        except WasccError as exc:
            raise BindingError(f"cannot bind {what}: {exc}") from exc

    def remove_binding(self, actor: str, capability_id: str, binding: str) -> bool:
        capability_id = canonical_capability(capability_id)
        binding = normalize_binding(binding)
        if capability_id == EXTRAS:  # every host binds its own extras
            return False
        key = binding_record_key(actor, capability_id, binding)

        async def forget() -> bool:
            assert self.bus.kv is not None
            existed = await self._kv_get(key) is not None
            if existed:
                await self.bus.kv.delete(key)
            return existed

        existed = bool(self.bus.run(forget(), self.config.rpc_timeout))
        config = CapabilityConfiguration(actor, {})
        with contextlib.suppress(NotFound):
            self._control(capability_id, binding, OP_REMOVE_ACTOR, config.encode())
        self._publish(
            BusEvent.binding("ActorBindingRemoved", actor, capability_id, binding, self.id)
        )
        return existed

    def _control(self, capid: str, binding: str, operation: str, msg: bytes) -> bytes:
        inv = BusInvocation.signed(
            self.key, Entity.of_actor(SYSTEM_ACTOR), Entity.of_capability(capid, binding),
            operation, msg, host_id=self.id,
        )  # fmt: skip
        reply = self._request(
            self.subjects.provider(capid, binding), inv.encode(), self.config.rpc_timeout,
            f"{operation} to {capid} ({binding})", NotFound,
        )  # fmt: skip
        response = BusResponse.decode(reply)
        if response.error is not None:
            raise RemoteInvocationError(f"Invocation failure: {response.error}")
        return response.msg

    # ---- serving invocations (worker threads) ---------------------------------------

    def _arrive(self, data: bytes) -> BusInvocation:
        inv = BusInvocation.decode(data)
        check_invocation(inv, self.trusted)
        return inv

    def _serve(self, data: bytes, run: Callable[[BusInvocation], bytes]) -> bytes:
        ident = ""
        try:
            inv = self._arrive(data)
            ident = inv.id
            previous = getattr(_serving, "deadline", 0.0)
            _serving.deadline = inv.deadline / 1000.0 if inv.deadline else 0.0
            try:
                if inv.deadline and time.time() * 1000 > inv.deadline:
                    raise InvocationTimeout(f"{inv.operation} arrived after its deadline")
                return BusResponse(ident, run(inv)).encode()
            finally:
                _serving.deadline = previous
        except WasccError as exc:
            return BusResponse(ident, b"", str(exc)).encode()
        except Exception as exc:  # never let one bad message kill the worker
            log.exception("lattice: invocation failed unexpectedly")
            return BusResponse(ident, b"", f"{type(exc).__name__}: {exc}").encode()

    def _on_actor(self, data: bytes) -> bytes:
        def run(inv: BusInvocation) -> bytes:
            if not inv.target.is_actor:
                raise NotFound(f"{inv.target.describe()} is no actor")
            origin = inv.origin
            source = origin.actor if origin.is_actor else origin.capid
            budget = inv.deadline / 1000.0 - time.time() if inv.deadline else None
            return self.host.serve_actor_call(
                source, inv.target.actor, inv.operation, inv.msg, origin.binding, budget
            )

        return self._serve(data, run)

    def _on_provider_actor(self, data: bytes) -> bytes:
        def run(inv: BusInvocation) -> bytes:
            if inv.target.is_actor or not inv.origin.is_actor:
                raise NotBound("a provider's subject carries actor -> capability invocations only")
            return self.host.serve_provider_call(
                inv.origin.actor, canonical_capability(inv.target.capid),
                normalize_binding(inv.target.binding), inv.operation, inv.msg,
            )  # fmt: skip

        return self._serve(data, run)

    def _on_provider(self, data: bytes) -> bytes:
        def run(inv: BusInvocation) -> bytes:
            if inv.target.is_actor:
                raise NotBound("a provider's subject carries capability invocations only")
            capid = canonical_capability(inv.target.capid)
            binding = normalize_binding(inv.target.binding)
            if inv.operation == OP_BIND_ACTOR:
                config = CapabilityConfiguration.decode(inv.msg)
                self.host.bind_remote(config.module, capid, binding, dict(config.values))
                return b""
            if inv.operation == OP_REMOVE_ACTOR:
                config = CapabilityConfiguration.decode(inv.msg)
                self.host.remove_local_binding(config.module, capid, binding)
                return b""
            if inv.operation == OP_GET_DESCRIPTOR:
                for p in self.host.providers():
                    if (p.capability_id, p.binding) == (capid, binding):
                        return p.descriptor.encode()
                raise NotFound(f"no provider of {capid} ({binding}) on host {self.id}")
            raise NotBound(UNBOUND)

        return self._serve(data, run)

    # ---- inventory -----------------------------------------------------------------

    def uptime_ms(self) -> int:
        return int((time.monotonic() - self._started) * 1000)

    def _inventory_hosts(self) -> dict[str, Any]:
        return {"Host": {"id": self.id, "labels": self.labels, "uptime_ms": self.uptime_ms()}}

    def _inventory_actors(self) -> dict[str, Any]:
        return {
            "Actors": {"host": self.id, "actors": [a.claims.to_json() for a in self.host.actors()]}
        }

    def _inventory_bindings(self) -> dict[str, Any]:
        return {
            "Bindings": {
                "host": self.id,
                "bindings": [
                    {
                        "actor": b.actor,
                        "capability_id": b.capability_id,
                        "binding_name": b.binding,
                        "configuration": b.values,
                    }
                    for b in self.host.bindings()
                    if b.capability_id != EXTRAS
                ],
            }
        }

    def _inventory_capabilities(self) -> dict[str, Any]:
        return {
            "Capabilities": {
                "host": self.id,
                "capabilities": [
                    {"binding_name": p.binding, "descriptor": descriptor_json(p.descriptor)}
                    for p in self.host.providers()
                    if p.capability_id != EXTRAS
                ],
            }
        }

    # ---- presence ------------------------------------------------------------------

    def _publish(self, event: dict[str, Any]) -> None:
        nc = self.bus.nc
        if nc is None:
            return
        self.bus.spawn(nc.publish(self.subjects.events, cloud_event(event)))

    async def _announce(self) -> None:
        """After a reconnect: say we are here again (nats-py re-sent every SUB)."""
        if self._left or self.bus.nc is None:
            return
        await self.bus.nc.publish(self.subjects.events, cloud_event(BusEvent.host_started(self.id)))
        await self.bus.nc.publish(self.subjects.events, cloud_event(self._heartbeat()))
        log.info("lattice: re-announced host %s after reconnecting", self.id)
        # bindings made elsewhere while this host was cut off: bind what the bucket holds
        for p in self.host.providers():
            if p.capability_id != EXTRAS:
                self.bus.submit(functools.partial(self._bind_recorded, p.capability_id, p.binding))

    def _heartbeat(self) -> dict[str, Any]:
        return BusEvent.heartbeat(
            self.id,
            self.labels,
            self.uptime_ms(),
            interval_ms=int(self.config.heartbeat * 1000),
            actors=len(self.host.actors()),
            providers=len([p for p in self.host.providers() if p.capability_id != EXTRAS]),
        )

    def _heartbeats(self) -> None:
        while not self._stop.wait(self.config.heartbeat):
            if self.bus.connected.is_set():
                self._publish(self._heartbeat())
            self._check_peers()

    def peers(self) -> dict[str, float]:
        """Other hosts heard from, with the seconds since their last heartbeat."""
        now = time.monotonic()
        with self._peers_lock:
            return {h: now - seen for h, (seen, _) in self._peers.items()}

    def _check_peers(self) -> None:
        now = time.monotonic()
        with self._peers_lock:
            lost = [
                h for h, (seen, period) in self._peers.items()
                if now - seen > period * self.config.lost_after
            ]  # fmt: skip
            for h in lost:
                del self._peers[h]
            alive = sorted([*self._peers, self.id])
        for h in lost:
            log.warning("lattice: host %s stopped heartbeating; dropped from the lattice", h)
            if alive[0] == self.id:  # one reporter: the survivor with the smallest id
                self._publish(BusEvent.host_lost(h, self.id))

    def _on_event(self, data: bytes) -> None:
        try:
            name, body, _ = read_event(data)
        except LatticeError:
            return None
        if name == "HostHeartbeat" and isinstance(body, dict):
            host = body.get("host")
            period = body.get("interval_ms")
            if isinstance(host, str) and host != self.id:
                seconds = period / 1000 if isinstance(period, int) and period > 0 else 5.0
                with self._peers_lock:
                    self._peers[host] = (time.monotonic(), seconds)
        elif name in ("HostStopped", "HostLost"):
            host = (
                body
                if isinstance(body, str)
                else body.get("host")
                if isinstance(body, dict)
                else None
            )
            with self._peers_lock:
                self._peers.pop(str(host), None)
        if self.on_event is not None:
            self.on_event(name, body)
        return None


def _json_handler(answer: Callable[[], dict[str, Any]]) -> Callable[[bytes], bytes]:
    def handle(_: bytes) -> bytes:
        return json.dumps(answer(), separators=(",", ":")).encode()

    return handle
