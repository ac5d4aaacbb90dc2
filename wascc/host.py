"""The Host: actors, providers, bindings, and the routing of every call.

Calls flow three ways, each through one method:

* into an actor, from the host API (:meth:`Host.call_actor`), from another
  actor, or from a provider's dispatcher: :meth:`Host._call_actor`;
* from an actor out through ``__host_call``: :meth:`Host._from_actor`,
  which routes to a provider by (capability id, binding) or to an actor by
  public key;
* from a provider into an actor: :meth:`Host._from_provider`.

The claims check is the floor on every path: an actor reaches a capability
only if its signed claims list it and the operator bound it, and another
actor only if its claims list that actor's key.  Plugins may deny more
(``wascc_authorize``) and wrap every invocation in middleware.

Tables are written under one lock and read without one (see
:mod:`wascc.bindings`), so the hot path takes no host-wide lock.

Requests from providers (and the host's health checks) reach an actor
through :meth:`Host._deliver`, which writes them in the codec form of the
actor's era (see :mod:`wascc.wire.codec`): the binding value ``WASCC_CODEC``
when the operator set one, else camelCase maps.  If an actor's first
request of a known struct fails with a de-serialization error naming a field
or a type, the same request is re-encoded in the older forms (positional
array, snake_case map) and retried once per form; the form that works is
remembered for that actor module and logged at INFO.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from wascc.actor import Actor, ActorSettings, load_actor
from wascc.bindings import Binding, RouteTable
from wascc.engine.guest import Guest
from wascc.engine.library import NativeLibrary
from wascc.engine.pool import CallResult
from wascc.engine.router import CODEC_MAP, CODEC_NONE, CODEC_OTHER, Router, request_structs
from wascc.engine.runtime import Runtime
from wascc.engine.stats import SAMPLE_EVERY, OperationStats
from wascc.errors import (
    ActorRetired,
    BindingError,
    GuestError,
    HostStopped,
    InvocationError,
    NotBound,
    NotFound,
    ProviderArchiveError,
    ProviderCallError,
    ProviderError,
    Unauthorized,
    WasccError,
)
from wascc.health import HealthMonitor, HealthReport, check
from wascc.logs import fields
from wascc.plugins import Plugins
from wascc.providers.base import CapabilityProvider
from wascc.providers.extras import CAPABILITY_ID as EXTRAS
from wascc.providers.extras import ExtrasProvider
from wascc.wire.capability import DEFAULT_BINDING, canonical_capability, normalize_binding
from wascc.wire.claims import Claims
from wascc.wire.codec import (
    CODEC_VALUE,
    FORM_ARRAY,
    FORM_MAP,
    FORM_SNAKE,
    FORMS,
    OP_BIND_ACTOR,
    OP_GET_DESCRIPTOR,
    OP_HEALTH_REQUEST,
    OP_REMOVE_ACTOR,
    REQUEST_STRUCTS,
    SYSTEM_ACTOR,
    CapabilityConfiguration,
    CapabilityDescriptor,
    HealthRequest,
    HealthResponse,
    transcode,
    unpack,
)
from wascc.wire.invocation import SYSTEM, Invocation
from wascc.wire.keys import is_actor_key

request_structs(REQUEST_STRUCTS)  # the data plane sends these through Python until it may not

__all__ = ["ActorInfo", "CallObserver", "Host", "ProviderInfo", "RemoteRouter"]

log = logging.getLogger(__name__)
actor_log = logging.getLogger("wascc.actor")

_SAMPLE_MASK = SAMPLE_EVERY - 1

# How many host calls this thread is inside: work started from within a call
# in flight is not "new work" when the host drains.
_calls = threading.local()

Source = str | os.PathLike[str] | bytes

# rmp-serde's (serde's) words for a payload it cannot read as the struct it
# wants: they name a field or a type.  Other guest errors are the actor's own.
_DESERIALIZE_ERROR = re.compile(
    r"missing field `|unknown field `|invalid type: .+, expected |invalid length \d+, expected "
)
_OLDER_FORMS = {FORM_ARRAY: "positional arrays (codec 0.5.x)", FORM_SNAKE: "snake_case maps"}


class CallObserver(Protocol):
    """Told about the calls the host routes, when set as :attr:`Host.observer`.

    Calls into actors are counted by the engine itself (by operation, one in
    SAMPLE_EVERY timed: :mod:`wascc.engine.stats`, read through
    :attr:`ActorInfo.operations`); the observer hears of their failures, and
    counts and times the calls actors make to providers.  The host calls
    these on the calling thread; they must be cheap and must not raise.
    ``wascc.observe`` implements it (metrics, ``wascc ctl top``, the
    dashboard); without an observer the hot path pays one attribute check.
    """

    def actor_failed(self, actor: str, operation: str, error: BaseException) -> None:
        """A call into a running actor failed (in the guest, or refused before it)."""

    #: (capability id, binding, operation) -> the counter of its calls: the host
    #: takes ``next()`` of it for each call (one C call, atomic under the GIL)
    #: and times the calls numbered 1, 1 + SAMPLE_EVERY, ...
    provider_counters: dict[tuple[str, str, str], Iterator[int]]

    def provider_counter(self, capability_id: str, binding: str, operation: str) -> Iterator[int]:
        """The counter of a provider operation not in ``provider_counters`` yet (made now)."""

    def provider_timed(
        self, capability_id: str, binding: str, operation: str, seconds: float
    ) -> None:
        """How long a sampled provider call took (successful or not)."""

    def provider_failed(
        self, capability_id: str, binding: str, operation: str, error: BaseException
    ) -> None:
        """A provider call failed."""


@dataclass(frozen=True)
class ActorInfo:
    """One running actor, as the inventory shows it."""

    public_key: str
    name: str
    claims: Claims
    signed: bool
    module_hash: str
    instances: int
    calls: int
    errors: int
    health: HealthReport | None
    settings: ActorSettings
    #: Instances in a call right now, and calls that had to wait for one.
    busy: int = 0
    waits: int = 0
    #: Calls by operation with their sampled latency (this module's instances).
    operations: dict[str, OperationStats] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderInfo:
    """One provider under one binding name."""

    capability_id: str
    binding: str
    descriptor: CapabilityDescriptor
    actors: tuple[str, ...]
    #: The last health check's report (None before the first check).
    health: HealthReport | None = None

    #: running; an isolated provider may also be restarting or given up.
    state: str = "running"
    #: the provider's child process while it runs isolated, else None.
    pid: int | None = None


class RemoteRouter(Protocol):
    """What a Host consults when a call's target is not on this host.

    A lattice implements it (:mod:`wascc.lattice`); the Host never imports
    one.  Local calls never reach it: it is asked only where the Host's own
    tables have no answer, so a host with a router is as fast locally as one
    without.  ``changed`` hears what the Host started, stopped, bound and
    unbound (``event`` is ``actor_started``, ``actor_stopped``,
    ``provider_added``, ``provider_removed``, ``bound`` or ``unbound``;
    ``detail`` holds ``actor``, ``capability_id``, ``binding`` as they apply).
    It is called outside the Host's lock and must not block for long.
    """

    def call_actor(
        self, origin: str, target: str, operation: str, payload: bytes, binding: str
    ) -> bytes:
        """Invoke an actor that does not run here (``origin``: an actor key,
        a capability id with ``binding``, or ``system``)."""
        ...

    def call_provider(
        self, actor: str, capability_id: str, binding: str, operation: str, payload: bytes
    ) -> bytes:
        """Invoke a capability that no provider on this host serves for ``actor``."""
        ...

    def set_binding(
        self, actor: str, capability_id: str, binding: str, values: dict[str, str]
    ) -> None:
        """Bind where the actor or the provider is not on this host."""
        ...

    def remove_binding(self, actor: str, capability_id: str, binding: str) -> bool:
        """Remove a binding elsewhere in the lattice; False when there was none."""
        ...

    def knows_actor(self, actor: str) -> bool:
        """True when ``actor`` runs somewhere else (for resolving references)."""
        ...

    def changed(self, event: str, detail: dict[str, str]) -> None:
        """A change on this host, for the rest of the lattice."""
        ...


class _ActorPort:
    """What one actor module's instances call back into."""

    __slots__ = ("caps", "claims", "host", "key", "name")

    def __init__(self, host: Host, claims: Claims, caps: frozenset[str]) -> None:
        self.host = host
        self.claims = claims
        self.key = claims.subject
        self.name = claims.name
        self.caps = caps

    def host_call(self, binding: str, namespace: str, operation: str, payload: bytes) -> bytes:
        return self.host._from_actor(self, binding, namespace, operation, payload)

    def console_log(self, line: str) -> None:
        actor_log.info(
            "%s (%s): %s",
            self.name,
            self.key,
            line,
            extra={"actor": self.key, "actor_name": self.name},
        )


class _ProviderDispatcher:
    """The dispatcher handed to one provider registration."""

    def __init__(self, host: Host, capability_id: str, binding: str) -> None:
        self.host = host
        self.capability_id = capability_id
        self.binding = binding
        self.active = True

    def deactivate(self, provider: CapabilityProvider) -> None:
        """The provider was removed or replaced: refuse what it dispatches from now on."""
        self.active = False
        library = _native_library(provider)
        if library is not None:
            library.set_active(False)

    def dispatch(self, actor: str, operation: str, payload: bytes) -> bytes:
        if not self.active:
            raise ProviderError(
                f"{self.capability_id} ({self.binding}) was removed from the host; "
                f"it can no longer dispatch {operation} to {actor}"
            )
        if self.host._draining and not getattr(_calls, "depth", 0):
            raise HostStopped(
                f"the host is shutting down; {self.capability_id} ({self.binding}) may not "
                f"start new work ({operation} to {actor})"
            )
        return self.host._from_provider(self, actor, operation, payload)


@dataclass
class _ProviderEntry:
    provider: CapabilityProvider
    descriptor: CapabilityDescriptor
    dispatcher: _ProviderDispatcher
    values: dict[str, str]  # defaults merged under every binding's values


class Host:
    """A single-node actor host.

    ``trusted_issuers``: account keys whose signatures this host accepts
    (``None`` accepts any valid signature).  ``allow_unsigned``: run modules
    without claims (they get no capabilities).  ``actor_settings``: default
    per-actor deadline, memory cap and pool size.  ``health_interval``:
    seconds between provider health checks (0 turns them off), each given
    ``health_timeout`` seconds to answer.  ``plugins`` are registered with
    pluggy; ``load_entry_points`` also loads the ``wascc.providers`` group.
    ``require_signed_providers``: refuse native providers that did not come
    from a signed provider archive (first-party libraries installed with
    wascc excepted: they are part of the host).
    """

    def __init__(
        self,
        *,
        trusted_issuers: Iterable[str] | None = None,
        allow_unsigned: bool = False,
        actor_settings: ActorSettings | None = None,
        health_interval: float = 30.0,
        health_timeout: float = 5.0,
        plugins: Iterable[object] = (),
        load_entry_points: bool = True,
        runtime: Runtime | None = None,
        require_signed_providers: bool = False,
    ) -> None:
        self.runtime = runtime or Runtime.default()
        self.require_signed_providers = require_signed_providers
        self.trusted_issuers = frozenset(trusted_issuers) if trusted_issuers is not None else None
        self.allow_unsigned = allow_unsigned
        self.actor_settings = actor_settings or ActorSettings()
        self.health_timeout = health_timeout
        self.plugins = Plugins()
        if load_entry_points:
            self.plugins.load_entry_points()
        for plugin in plugins:
            self.plugins.register(plugin)
        self._lock = threading.RLock()
        self._actors: dict[str, Actor] = {}
        self._routes: RouteTable[CapabilityProvider] = RouteTable()
        self._providers: dict[tuple[str, str], _ProviderEntry] = {}
        self._actor_health: dict[str, HealthReport] = {}
        self._provider_health: dict[tuple[str, str], HealthReport] = {}
        #: Told about every routed call when set (see :class:`CallObserver`).
        self.observer: CallObserver | None = None
        self._retired: list[Actor] = []  # replaced or removed, maybe still running calls
        self._closed = False
        self._draining = False
        self._remote: RemoteRouter | None = None
        #: When the host was made (seconds since the epoch): its uptime's start.
        self.started = time.time()
        #: The data plane's routing tables (DESIGN "Two planes"): what this
        #: control plane decided, written in C (see :meth:`_publish`).
        self._router = Router(self._data_plane_actor_failed, self._data_plane_provider_failed)
        self._refresh_flags()
        self.add_provider(ExtrasProvider())
        self._health = HealthMonitor(self.check_health, health_interval)
        self._health.start()

    # ---- lifecycle ---------------------------------------------------------

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def drain(self, grace: float) -> bool:
        """Stop taking new work and wait up to ``grace`` seconds for calls in flight.

        After this, :meth:`call_actor` and providers' dispatchers refuse new
        calls with :class:`HostStopped` (an HTTP provider answers 503); work
        started from inside a call in flight (host calls, nested dispatches)
        goes on.  True when nothing is running any more.
        """
        self._draining = True
        self._refresh_flags()
        deadline = time.monotonic() + grace
        while self.busy() and time.monotonic() < deadline:
            time.sleep(0.005)
        remaining = self.busy()
        if remaining:
            log.warning("%d call(s) still running after a %gs grace period", remaining, grace)
        return remaining == 0

    def busy(self) -> int:
        """Calls running in actors right now (including replaced modules)."""
        with self._lock:
            self._retired = [a for a in self._retired if not a.freed]
            actors = [*self._actors.values(), *self._retired]
        return sum(a.busy for a in actors)

    def stop(self, grace: float = 0.0) -> None:
        """Remove every actor (unbinding it everywhere) and stop every provider.

        With ``grace`` > 0 the host first drains: new work is refused and calls
        in flight get that long to finish.
        """
        if grace > 0 and not self._closed:
            self.drain(grace)
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._health.stop()
        for key in list(self._actors):
            self.remove_actor(key)
        for capability_id, binding in list(self._providers):
            self.remove_provider(capability_id, binding)
        log.info("host stopped")

    @property
    def remote(self) -> RemoteRouter | None:
        """The router asked about calls whose target is not on this host (a lattice)."""
        return self._remote

    def set_remote(self, router: RemoteRouter | None) -> None:
        """Attach (or with None detach) the router for calls that leave this host."""
        self._remote = router

    def _changed(self, event: str, **detail: str) -> None:
        remote = self._remote
        if remote is None:
            return
        try:
            remote.changed(event, detail)
        except Exception as exc:  # the lattice's trouble must not fail a local change
            log.error("the remote router failed on %s %s: %s", event, detail, exc)

    def _check_open(self) -> None:
        if self._closed:
            raise HostStopped("the host is stopped")

    def add_plugin(self, plugin: object, name: str | None = None) -> str:
        """Register a pluggy plugin (authorizer, middleware, provider factories)."""
        try:
            return self.plugins.register(plugin, name)
        finally:
            self._refresh_flags()

    def remove_plugin(self, plugin: object) -> None:
        try:
            self.plugins.unregister(plugin)
        finally:
            self._refresh_flags()

    # ---- the data plane's tables --------------------------------------------

    def _refresh_flags(self) -> None:
        """Every call goes through Python while a plugin authorizes or intercepts."""
        plugins = self.plugins
        self._router.flags(
            python_only=plugins.authorizing or plugins.intercepting, draining=self._draining
        )

    def _publish(self, actor: str, capability_id: str, binding: str) -> None:
        """Write the route (actor, capability, binding) as the tables here say it is.

        Call with ``self._lock`` held.  The provider may dispatch to the actor
        from C when they are bound; the actor's host calls reach the provider
        from C when it is native (in this process) and the claims list it.
        """
        b = self._routes.bindings.get((actor, capability_id, binding))
        native = None
        codec = CODEC_NONE
        if b is not None:
            found = self._actors.get(actor)
            provider = self._routes.routes.get((actor, capability_id, binding))
            if found is not None and capability_id in found.caps:
                native = _native_library(provider)
            form = b.values.get(CODEC_VALUE)
            if form is not None:
                codec = CODEC_MAP if form == FORM_MAP else CODEC_OTHER
        self._router.route(
            actor, capability_id, binding, bound=b is not None, native=native, codec=codec
        )

    def _publish_actor(self, key: str) -> None:
        """Publish the actor's current module and every route of it (``self._lock`` held)."""
        found = self._actors.get(key)
        self._router.actor(key, found.pool if found is not None else None)
        for b in self._routes.bindings_of(key):
            self._publish(key, b.capability_id, b.binding)

    def _data_plane_actor_failed(
        self, guest: Guest | None, operation: str, result: CallResult
    ) -> BaseException:
        """Word (and report) a call into an actor the data plane ran that failed."""
        if guest is None:
            return ActorRetired(f"the actor was removed before {operation} could run")
        exc = guest.failure(operation, result)
        observer = self.observer
        if observer is not None and isinstance(guest, Actor):
            observer.actor_failed(guest.public_key, operation, exc)
        return exc

    def _data_plane_provider_failed(
        self, port: _ActorPort, capability_id: str, binding: str, operation: str, text: str
    ) -> BaseException:
        """Word (and report) a native provider's refusal of an actor's call run in C."""
        exc = ProviderCallError(
            f"{capability_id} ({binding}) failed {operation} for actor {port.name} "
            f"({port.key}): {text or 'failed with no message'}"
        )
        observer = self.observer
        if observer is not None:
            observer.provider_failed(capability_id, binding, operation, exc)
        return exc

    # ---- actors ------------------------------------------------------------

    def _settings(self, overrides: dict[str, Any]) -> ActorSettings:
        if not overrides:
            return self.actor_settings
        base = self.actor_settings
        return ActorSettings(
            deadline=overrides.get("deadline") or base.deadline,
            memory_limit=overrides.get("memory_limit") or base.memory_limit,
            min_instances=overrides.get("min_instances", base.min_instances),
            max_instances=overrides.get("max_instances") or base.max_instances,
        )

    def _load(self, source: Source, settings: ActorSettings) -> Actor:
        actor = load_actor(
            source,
            runtime=self.runtime,
            port=lambda claims: _ActorPort(
                self, claims, frozenset(canonical_capability(c) for c in claims.caps)
            ),
            settings=settings,
            trusted_issuers=self.trusted_issuers,
            allow_unsigned=self.allow_unsigned,
        )
        self._router.identify(actor.pool, actor.public_key, actor.caps)
        return actor

    def add_actor(
        self,
        source: Source,
        *,
        deadline: float | None = None,
        memory_limit: int | None = None,
        min_instances: int | None = None,
        max_instances: int | None = None,
    ) -> str:
        """Load, verify and start an actor from a file or bytes; its public key.

        The keyword arguments override the host's :class:`ActorSettings`.
        An actor whose claims list ``wascc:extras`` is bound to it at once.
        """
        self._check_open()
        overrides = _drop_none(
            deadline=deadline,
            memory_limit=memory_limit,
            min_instances=min_instances,
            max_instances=max_instances,
        )
        actor = self._load(source, self._settings(overrides))
        with self._lock:
            if self._closed or actor.public_key in self._actors:
                actor.retire()
                self._check_open()
                raise WasccError(
                    f"{actor.who} is already running; replace it instead "
                    "(wascc ctl replace-actor, Host.replace_actor)"
                )
            self._actors[actor.public_key] = actor
            self._publish_actor(actor.public_key)
        log.info(
            "started %s (%s, %d bytes)",
            actor.who,
            actor.label,
            actor.size,
            extra=fields(actor.public_key, outcome="started"),
        )
        self._auto_bind(actor)
        self._changed("actor_started", actor=actor.public_key)
        return actor.public_key

    def replace_actor(self, actor: str, source: Source, **overrides: Any) -> str:
        """Hot-swap a running actor for a new module with the same public key.

        Calls in flight finish on the old module; calls that start after the
        swap run on the new one; none fails.  Bindings stay, except those the
        new claims no longer allow (they are removed).
        """
        self._check_open()
        with self._lock:
            old = self._actors.get(actor)
        if old is None:
            raise NotFound(f"no actor {actor} is running to replace")
        given = _drop_none(**overrides)
        new = self._load(source, self._settings(given) if given else old.settings)
        if new.public_key != actor:
            new.retire()
            raise WasccError(
                f"cannot replace {old.who} with {new.who}: the module's public key differs "
                "(sign the new module with the same module key)"
            )
        with self._lock:
            if self._actors.get(actor) is not old:
                new.retire()
                raise WasccError(f"{old.who} changed while it was being replaced; try again")
            self._actors[actor] = new
            self._publish_actor(actor)  # before the old module retires: no call falls between
            self._retired.append(old)
        self._retire(old)
        log.info(
            "replaced %s: %s -> %s",
            new.who,
            old.module_hash[:12],
            new.module_hash[:12],
            extra=fields(actor, outcome="replaced"),
        )
        for b in self._routes.bindings_of(actor):
            if b.capability_id not in new.caps:
                log.warning(
                    "%s no longer claims %s: removing its binding %s",
                    new.who,
                    b.capability_id,
                    b.binding,
                    extra=fields(actor, b.capability_id, b.binding, outcome="unclaimed"),
                )
                self.remove_binding(actor, b.capability_id, b.binding)
        self._auto_bind(new)
        return actor

    def remove_actor(self, actor: str) -> None:
        """Stop an actor: unbind it everywhere; calls in flight finish."""
        with self._lock:
            found = self._actors.pop(actor, None)
            self._actor_health.pop(actor, None)
            if found is not None:
                self._retired.append(found)
                self._publish_actor(actor)
        if found is None:
            raise NotFound(f"no actor {actor} is running")
        for b in self._routes.bindings_of(actor):
            if self._remote is not None and b.capability_id != EXTRAS:
                continue  # a lattice's binding outlives this host's instance of the actor
            self._unbind(actor, b.capability_id, b.binding)
        self._retire(found)
        log.info("stopped %s", found.who, extra=fields(actor, outcome="stopped"))
        self._changed("actor_stopped", actor=actor)

    def _retire(self, actor: Actor) -> None:
        """Retire a replaced or removed module; forget it once its last call ends."""

        def forget() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._retired.remove(actor)

        actor.retire(forget)

    def _auto_bind(self, actor: Actor) -> None:
        if (
            EXTRAS in actor.caps
            and (EXTRAS, DEFAULT_BINDING) in self._providers
            and (actor.public_key, EXTRAS, DEFAULT_BINDING) not in self._routes.bindings
        ):
            try:
                self.set_binding(actor.public_key, EXTRAS)
            except WasccError as exc:
                log.error(
                    "could not bind %s to %s: %s",
                    actor.who,
                    EXTRAS,
                    exc,
                    extra=fields(actor.public_key, EXTRAS, DEFAULT_BINDING, outcome="refused"),
                )

    def _actor(self, key: str) -> Actor:
        actor = self._actors.get(key)
        if actor is None:
            raise NotFound(f"no actor {key} is running")
        return actor

    def resolve_actor(self, ref: str) -> str:
        """The public key of the running actor ``ref`` names: its key, or its unique name.

        With a remote router, a key of an actor running elsewhere resolves too.
        """
        if ref in self._actors:
            return ref
        remote = self._remote
        if remote is not None and is_actor_key(ref) and remote.knows_actor(ref):
            return ref
        named = sorted(a.public_key for a in list(self._actors.values()) if a.name == ref)
        if len(named) == 1:
            return named[0]
        if named:
            raise NotFound(
                f"{len(named)} running actors are named {ref!r} ({', '.join(named)}): "
                "use a public key"
            )
        raise NotFound(f"no actor named {ref!r} or with that public key is running")

    # ---- providers ---------------------------------------------------------

    def provider_factories(self) -> dict[str, Callable[[], Any]]:
        """Provider factories offered by plugins, by capability id."""
        return self.plugins.provider_factories()

    def add_provider(
        self,
        provider: CapabilityProvider | str,
        binding: str = DEFAULT_BINDING,
        *,
        values: dict[str, str] | None = None,
    ) -> CapabilityDescriptor:
        """Register a provider under ``binding``; returns its descriptor.

        ``provider`` is a provider object, or a capability id offered by a
        plugin's ``wascc_providers`` hook.  ``values`` are defaults merged
        under the values of every binding to this provider.
        """
        self._check_open()
        binding = normalize_binding(binding)
        if isinstance(provider, str):
            provider = self._from_factory(provider)
        descriptor = self._describe(provider)
        capability_id = canonical_capability(descriptor.id)
        key = (capability_id, binding)
        dispatcher = _ProviderDispatcher(self, capability_id, binding)
        with self._lock:
            if key in self._providers:
                raise ProviderError(
                    f"a provider of {capability_id} is already registered on binding {binding!r}"
                )
            self._configure(provider, dispatcher, self._router)
            self._providers[key] = _ProviderEntry(
                provider, descriptor, dispatcher, dict(values or {})
            )
            self._routes.add_provider(capability_id, binding, provider)
            for b in self._routes.bindings_to(capability_id, binding):
                self._publish(b.actor, capability_id, binding)
        log.info(
            "added provider %s (%s) on binding %s",
            capability_id,
            descriptor.name or type(provider).__name__,
            binding,
            extra=fields(None, capability_id, binding, outcome="added"),
        )
        self._changed("provider_added", capability_id=capability_id, binding=binding)
        return descriptor

    def _from_factory(self, capability_id: str) -> CapabilityProvider:
        factories = self.provider_factories()
        factory = factories.get(canonical_capability(capability_id))
        if factory is None:
            raise NotFound(
                f"no installed plugin provides {capability_id!r} "
                f"(known: {', '.join(sorted(factories)) or 'none'})"
            )
        provider = factory()
        if not isinstance(provider, CapabilityProvider):
            raise ProviderError(
                f"the factory for {capability_id} made {provider!r}, not a CapabilityProvider"
            )
        return provider

    def _describe(self, provider: object) -> CapabilityDescriptor:
        """Ask a provider for its descriptor (over handle_call, as the contract says)."""
        if not isinstance(provider, CapabilityProvider):
            raise ProviderError(f"{provider!r} is not a CapabilityProvider")
        if (
            self.require_signed_providers
            and provider.native
            and provider.archive is None
            and not provider.bundled
        ):
            raise ProviderArchiveError(
                f"{provider!r} is a bare native library and this host requires signed "
                "provider archives (.par): sign it with `wascc par create`"
            )
        label = f"provider {provider!r}"
        try:
            reply = provider.handle_call(
                SYSTEM_ACTOR, OP_GET_DESCRIPTOR, provider.descriptor_request
            )
            descriptor = CapabilityDescriptor.decode(reply)
        except Exception as exc:
            raise ProviderError(f"{label} did not describe itself: {exc}") from exc
        if not canonical_capability(descriptor.id):
            raise ProviderError(f"{label} reported an empty capability id")
        return descriptor

    @staticmethod
    def _configure(
        provider: CapabilityProvider, dispatcher: _ProviderDispatcher, router: Router
    ) -> None:
        try:
            library = _native_library(provider)
            if library is not None:  # its dispatches are routed in C
                router.dispatcher(library, dispatcher.capability_id, dispatcher.binding)
            provider.configure_dispatch(dispatcher)
        except Exception as exc:
            raise ProviderError(
                f"{dispatcher.capability_id} ({dispatcher.binding}) failed "
                f"configure_dispatch: {exc}"
            ) from exc

    def replace_provider(
        self,
        provider: CapabilityProvider,
        binding: str = DEFAULT_BINDING,
        *,
        values: dict[str, str] | None = None,
    ) -> CapabilityDescriptor:
        """Swap the provider at (its capability id, ``binding``) for a new one.

        The new provider is registered first and every actor bound there is
        bound to it again (``BindActor`` with the same values); then the old
        one gets ``RemoveActor`` for each and is stopped.  Calls that already
        reached the old provider finish there.
        """
        self._check_open()
        binding = normalize_binding(binding)
        descriptor = self._describe(provider)
        capability_id = canonical_capability(descriptor.id)
        key = (capability_id, binding)
        dispatcher = _ProviderDispatcher(self, capability_id, binding)
        with self._lock:
            old = self._providers.get(key)
            if old is None:
                raise NotFound(f"no provider of {capability_id} on binding {binding!r} to replace")
            self._configure(provider, dispatcher, self._router)
            entry = _ProviderEntry(
                provider, descriptor, dispatcher, old.values if values is None else dict(values)
            )
            self._providers[key] = entry
            self._routes.add_provider(capability_id, binding, provider)
            bound = self._routes.bindings_to(capability_id, binding)
            for b in bound:
                actor = self._actors.get(b.actor)
                if actor is None:
                    continue
                config = self._bind_config(entry, b.values, actor.claims, b.actor)
                try:
                    provider.handle_call(SYSTEM_ACTOR, OP_BIND_ACTOR, config.encode())
                except Exception as exc:
                    log.error(
                        "new %s (%s) refused to bind %s: %s; binding dropped",
                        capability_id,
                        binding,
                        actor.who,
                        exc,
                        extra=fields(b.actor, capability_id, binding, outcome="refused"),
                    )
                    self._routes.unbind(b.actor, capability_id, binding)
            for b in bound:
                self._publish(b.actor, capability_id, binding)
        old.dispatcher.deactivate(old.provider)
        for b in bound:
            self._send_remove(old.provider, b)
        _stop_provider(old.provider, f"old {capability_id} ({binding})", self.health_timeout)
        log.info(
            "replaced provider %s (%s); %d binding(s) re-sent",
            capability_id,
            binding,
            len(bound),
            extra=fields(None, capability_id, binding, outcome="replaced"),
        )
        return descriptor

    def remove_provider(
        self,
        capability_id: str,
        binding: str = DEFAULT_BINDING,
        *,
        reason: str | None = None,
        expected: CapabilityProvider | None = None,
    ) -> bool:
        """Unbind every actor from the provider (RemoveActor), then stop it.

        With ``expected``, remove it only if the provider registered there is
        still that very object (a health check must not remove the healthy
        provider that replaced the one it found ill); False when it is not.
        """
        capability_id = canonical_capability(capability_id)
        binding = normalize_binding(binding)
        key = (capability_id, binding)
        with self._lock:
            entry = self._providers.get(key)
            if entry is None:
                raise NotFound(f"no provider of {capability_id} on binding {binding!r}")
            if expected is not None and entry.provider is not expected:
                log.info(
                    "not removing provider %s (%s)%s: it was replaced meanwhile",
                    capability_id,
                    binding,
                    f" ({reason})" if reason else "",
                )
                return False
            del self._providers[key]
            self._provider_health.pop(key, None)
            dropped = self._routes.remove_provider(capability_id, binding)
            for b in dropped:
                self._publish(b.actor, capability_id, binding)
        entry.dispatcher.deactivate(entry.provider)
        for b in dropped:
            self._send_remove(entry.provider, b)
            self._changed("unbound", actor=b.actor, capability_id=capability_id, binding=binding)
        _stop_provider(entry.provider, f"{capability_id} ({binding})", self.health_timeout)
        self._changed("provider_removed", capability_id=capability_id, binding=binding)
        if reason:
            log.error(
                "removed provider %s (%s): %s",
                capability_id,
                binding,
                reason,
                extra=fields(None, capability_id, binding, outcome="removed"),
            )
        else:
            log.info(
                "removed provider %s (%s)",
                capability_id,
                binding,
                extra=fields(None, capability_id, binding, outcome="removed"),
            )
        return True

    # ---- bindings ----------------------------------------------------------

    def set_binding(
        self,
        actor: str,
        capability_id: str,
        binding: str = DEFAULT_BINDING,
        values: dict[str, str] | None = None,
    ) -> None:
        """Bind an actor to the provider at (capability_id, binding).

        Sends ``BindActor`` with ``values`` plus the ``__wascc_*`` keys.  The
        actor's claims must list the capability; authorizer plugins may deny.
        """
        self._check_open()
        capability_id = canonical_capability(capability_id)
        binding = normalize_binding(binding)
        values = dict(values or {})
        remote = self._remote
        if remote is not None and (
            actor not in self._actors or (capability_id, binding) not in self._providers
        ):
            remote.set_binding(actor, capability_id, binding, values)
            return
        with self._lock:
            found = self._actor(actor)
            what = f"{found.who} to {capability_id} ({binding})"
            if values.get(CODEC_VALUE, FORM_MAP) not in FORMS:
                raise BindingError(
                    f"cannot bind {what}: {CODEC_VALUE}={values[CODEC_VALUE]!r} is not a codec "
                    f"form (one of {', '.join(FORMS)})"
                )
            if capability_id not in found.caps:
                raise BindingError(
                    f"cannot bind {what}: the actor's claims do not list {capability_id}"
                )
            try:
                self.plugins.authorize_binding(found.claims, capability_id, binding)
            except Unauthorized as exc:
                raise BindingError(f"cannot bind {what}: {exc}") from exc
            entry = self._providers.get((capability_id, binding))
            if entry is None:
                raise BindingError(f"cannot bind {what}: no provider is registered there")
            previous = self._routes.bindings.get((actor, capability_id, binding))
            config = self._bind_config(entry, values, found.claims, actor)
            new = Binding(actor, capability_id, binding, values)
            if previous is None:
                # Bound from the moment BindActor is sent: a provider may dispatch to
                # the actor from its own threads before BindActor returns.
                self._routes.bind(new)
                self._publish(actor, capability_id, binding)
            # A re-bind is a reconfiguration (provider.h, section 2): the provider
            # applies the new values and releases the old ones only once the new
            # ones work, so a refused re-bind leaves the working binding as it was.
            try:
                entry.provider.handle_call(SYSTEM_ACTOR, OP_BIND_ACTOR, config.encode())
            except Exception as exc:
                if previous is None:
                    self._routes.unbind(actor, capability_id, binding)
                    self._publish(actor, capability_id, binding)
                    log.warning(
                        "%s refused to bind %s: %s",
                        capability_id,
                        found.who,
                        exc,
                        extra=fields(actor, capability_id, binding, outcome="refused"),
                    )
                else:
                    log.warning(
                        "%s refused to re-bind %s; the previous binding stays: %s",
                        capability_id,
                        found.who,
                        exc,
                        extra=fields(actor, capability_id, binding, outcome="refused"),
                    )
                raise BindingError(
                    f"{capability_id} ({binding}) refused to bind {found.who}: {exc}"
                ) from exc
            if previous is not None:
                self._routes.bind(new)
                self._publish(actor, capability_id, binding)
        log.info("bound %s", what, extra=fields(actor, capability_id, binding, outcome="bound"))
        self._changed("bound", actor=actor, capability_id=capability_id, binding=binding)

    def bind_remote(
        self, actor: str, capability_id: str, binding: str, values: dict[str, str]
    ) -> None:
        """Bind the local provider at (capability_id, binding) to ``actor``, wherever it runs.

        For a lattice: ``values`` is the whole BindActor configuration the
        binding host made (its ``__wascc_*`` keys included; that host checked
        the actor's claims).  Calls from the actor arrive through
        :meth:`serve_provider_call`; the provider's calls to it leave through
        the remote router when the actor does not run here.
        """
        self._check_open()
        capability_id = canonical_capability(capability_id)
        binding = normalize_binding(binding)
        with self._lock:
            entry = self._providers.get((capability_id, binding))
            if entry is None:
                raise BindingError(
                    f"cannot bind {actor} to {capability_id} ({binding}): "
                    "no provider is registered there on this host"
                )
            previous = self._routes.bindings.get((actor, capability_id, binding))
            plain = {k: v for k, v in values.items() if not k.startswith("__wascc_")}
            if previous is None:
                self._routes.bind(Binding(actor, capability_id, binding, plain))
                self._publish(actor, capability_id, binding)
            config = CapabilityConfiguration(actor, {**entry.values, **values})
            try:
                entry.provider.handle_call(SYSTEM_ACTOR, OP_BIND_ACTOR, config.encode())
            except Exception as exc:
                if previous is None:
                    self._routes.unbind(actor, capability_id, binding)
                    self._publish(actor, capability_id, binding)
                raise BindingError(
                    f"{capability_id} ({binding}) refused to bind {actor}: {exc}"
                ) from exc
            if previous is not None:
                self._routes.bind(Binding(actor, capability_id, binding, plain))
                self._publish(actor, capability_id, binding)
        log.info(
            "bound %s to %s (%s) for the lattice",
            actor,
            capability_id,
            binding,
            extra=fields(actor, capability_id, binding, outcome="bound"),
        )
        self._changed("bound", actor=actor, capability_id=capability_id, binding=binding)

    @staticmethod
    def _bind_config(
        entry: _ProviderEntry, values: dict[str, str], claims: Claims, actor: str
    ) -> CapabilityConfiguration:
        """BindActor's payload: provider defaults < binding values < __wascc_* keys."""
        return CapabilityConfiguration(actor, {**entry.values, **values, **claims.binding_values()})

    def remove_binding(
        self, actor: str, capability_id: str, binding: str = DEFAULT_BINDING
    ) -> bool:
        """Unbind (sends ``RemoveActor``); False if there was no such binding.

        With a remote router the binding is also removed from the rest of the
        lattice.
        """
        capability_id = canonical_capability(capability_id)
        binding = normalize_binding(binding)
        removed = self._unbind(actor, capability_id, binding)
        remote = self._remote
        if remote is not None:
            return remote.remove_binding(actor, capability_id, binding) or removed
        return removed

    def remove_local_binding(self, actor: str, capability_id: str, binding: str) -> bool:
        """Remove the binding on this host only (sends ``RemoveActor``); False if none."""
        return self._unbind(actor, canonical_capability(capability_id), normalize_binding(binding))

    def _unbind(self, actor: str, capability_id: str, binding: str) -> bool:
        """Remove the binding on this host only."""
        with self._lock:
            removed = self._routes.unbind(actor, capability_id, binding)
            self._publish(actor, capability_id, binding)
            entry = self._providers.get((capability_id, binding))
        if removed is None:
            return False
        if entry is not None:
            self._send_remove(entry.provider, removed)
        log.info(
            "unbound %s from %s (%s)",
            actor,
            capability_id,
            binding,
            extra=fields(actor, capability_id, binding, outcome="unbound"),
        )
        self._changed("unbound", actor=actor, capability_id=capability_id, binding=binding)
        return True

    def _send_remove(self, provider: CapabilityProvider, b: Binding) -> None:
        config = CapabilityConfiguration(b.actor, {})
        try:
            provider.handle_call(SYSTEM_ACTOR, OP_REMOVE_ACTOR, config.encode())
        except Exception as exc:
            log.error(
                "%s (%s) failed RemoveActor for %s: %s",
                b.capability_id,
                b.binding,
                b.actor,
                exc,
                extra=fields(b.actor, b.capability_id, b.binding, "RemoveActor", "failed"),
            )

    # ---- calls -------------------------------------------------------------

    def call_actor(self, actor: str, operation: str, payload: bytes = b"") -> bytes:
        """Invoke ``operation`` on ``actor`` as the host (origin ``system``)."""
        if self._draining and not getattr(_calls, "depth", 0):
            raise HostStopped(f"the host is shutting down; {operation} to {actor} refused")
        return self._call_actor(actor, operation, payload, SYSTEM, None, "")

    def _call_actor(
        self,
        target: str,
        operation: str,
        payload: bytes,
        origin: str,
        origin_claims: Claims | None,
        binding: str,
        local_only: bool = False,
    ) -> bytes:
        actor = self._actors.get(target)
        if actor is None:
            if self._closed:
                raise HostStopped(f"the host is stopped; {operation} to {target} refused")
            remote = self._remote
            if remote is not None and not local_only:
                if type(payload) is not bytes:
                    payload = bytes(payload)
                return remote.call_actor(origin, target, operation, payload, binding)
            raise NotFound(f"no actor {target} is running (called {operation} from {origin})")
        if type(payload) is not bytes:
            payload = bytes(payload)
        try:  # free in CPython >= 3.11 unless something raises
            plugins = self.plugins
            if plugins.authorizing or plugins.intercepting:
                invocation = Invocation(origin, target, operation, payload, binding)
                if plugins.authorizing:
                    plugins.authorize(invocation, origin_claims, actor.claims)
                if plugins.intercepting:
                    return plugins.run(
                        invocation, lambda inv: self._invoke(actor, inv.operation, inv.msg)
                    )
            try:
                return actor.invoke(operation, payload)
            except ActorRetired:
                return self._invoke(actor, operation, payload)
        except BaseException as exc:
            observer = self.observer
            if observer is not None and not getattr(_calls, "health", False):
                observer.actor_failed(target, operation, exc)
            raise

    def _invoke(self, actor: Actor, operation: str, payload: bytes) -> bytes:
        """Run the call on ``actor``, or on the module that replaced it meanwhile."""
        while True:
            try:
                return actor.invoke(operation, payload)
            except ActorRetired:
                current = self._actors.get(actor.public_key)
                if current is None or current is actor:
                    raise
                actor = current

    def _from_actor(
        self, port: _ActorPort, binding: str, namespace: str, operation: str, payload: bytes
    ) -> bytes:
        """Route one ``__host_call``."""
        if is_actor_key(namespace):
            if namespace not in port.caps:
                raise Unauthorized(
                    f"actor {port.name} ({port.key}) may not call actor {namespace} "
                    f"({operation}): its claims do not list that actor's key"
                )
            return self._call_actor(namespace, operation, payload, port.key, port.claims, "")
        capability_id = canonical_capability(namespace)
        if binding != DEFAULT_BINDING:
            binding = normalize_binding(binding)
        provider = self._routes.routes.get((port.key, capability_id, binding))
        if provider is None or capability_id not in port.caps:
            remote = self._remote
            if remote is None or capability_id not in port.caps or capability_id == EXTRAS:
                raise self._unroutable(port, capability_id, binding, operation)
            return remote.call_provider(port.key, capability_id, binding, operation, payload)
        depth = getattr(_calls, "depth", 0)
        _calls.depth = depth + 1
        observer = self.observer
        try:
            if observer is None:
                return self._to_provider(port, provider, capability_id, binding, operation, payload)
            counter = observer.provider_counters.get((capability_id, binding, operation))
            if counter is None:
                counter = observer.provider_counter(capability_id, binding, operation)
            if next(counter) & _SAMPLE_MASK != 1:
                try:
                    return self._to_provider(
                        port, provider, capability_id, binding, operation, payload
                    )
                except BaseException as exc:
                    observer.provider_failed(capability_id, binding, operation, exc)
                    raise
            started = time.perf_counter()  # one call in SAMPLE_EVERY is timed
            try:
                return self._to_provider(port, provider, capability_id, binding, operation, payload)
            except BaseException as exc:
                observer.provider_failed(capability_id, binding, operation, exc)
                raise
            finally:
                observer.provider_timed(
                    capability_id, binding, operation, time.perf_counter() - started
                )
        finally:
            _calls.depth = depth

    def _to_provider(
        self,
        port: _ActorPort,
        provider: CapabilityProvider,
        capability_id: str,
        binding: str,
        operation: str,
        payload: bytes,
    ) -> bytes:
        plugins = self.plugins
        if plugins.authorizing or plugins.intercepting:
            invocation = Invocation(port.key, capability_id, operation, payload, binding)
            if plugins.authorizing:
                plugins.authorize(invocation, port.claims, None)
            if plugins.intercepting:
                return plugins.run(
                    invocation,
                    lambda inv: self._provider_call(
                        provider, port, capability_id, binding, inv.operation, inv.msg
                    ),
                )
        return self._provider_call(provider, port, capability_id, binding, operation, payload)

    @staticmethod
    def _provider_call(
        provider: CapabilityProvider,
        port: _ActorPort,
        capability_id: str,
        binding: str,
        operation: str,
        payload: bytes,
    ) -> bytes:
        try:
            return provider.handle_call(port.key, operation, payload)
        except Exception as exc:
            raise ProviderCallError(
                f"{capability_id} ({binding}) failed {operation} for actor {port.name} "
                f"({port.key}): {exc}"
            ) from exc

    def _unroutable(
        self, port: _ActorPort, capability_id: str, binding: str, operation: str
    ) -> InvocationError:
        who = f"actor {port.name} ({port.key})"
        if capability_id not in port.caps:
            return Unauthorized(
                f"{who} may not call {capability_id} ({operation}): its claims do not list it"
            )
        if (capability_id, binding) not in self._providers:
            return NotBound(
                f"{who} called {capability_id} {operation} on binding {binding!r}, "
                "but no provider is registered there"
            )
        return NotBound(
            f"{who} called {capability_id} {operation} but is not bound to it "
            f"on binding {binding!r}"
        )

    def _from_provider(
        self, dispatcher: _ProviderDispatcher, actor: str, operation: str, payload: bytes
    ) -> bytes:
        bound = self._routes.bindings.get((actor, dispatcher.capability_id, dispatcher.binding))
        if bound is None:
            raise NotBound(
                f"{dispatcher.capability_id} ({dispatcher.binding}) may not dispatch "
                f"{operation} to actor {actor}: the actor is not bound to it"
            )
        if operation in REQUEST_STRUCTS:  # a struct the actor's codec era may write otherwise
            found = self._actors.get(actor)
            if found is not None:
                form = bound.values.get(CODEC_VALUE) or found.request_forms.get(operation)
                if form is not FORM_MAP:
                    return self._deliver(
                        found,
                        operation,
                        payload,
                        dispatcher.capability_id,
                        dispatcher.binding,
                        form,
                    )
        return self._call_actor(
            actor, operation, payload, dispatcher.capability_id, None, dispatcher.binding
        )

    def _deliver(
        self,
        actor: Actor,
        operation: str,
        payload: bytes,
        origin: str,
        binding: str,
        form: str | None,
    ) -> bytes:
        """A request struct from the host side to an actor, in the actor's codec form.

        ``form`` is the operator's choice for the binding (``WASCC_CODEC``) or
        the form learned for this actor module; None when neither is known yet.
        """
        if form is None:
            return self._first_request(actor, operation, payload, origin, binding)
        if form != FORM_MAP:
            payload = transcode(operation, payload, form) or payload
        return self._call_actor(actor.public_key, operation, payload, origin, None, binding)

    def _first_request(
        self, actor: Actor, operation: str, payload: bytes, origin: str, binding: str
    ) -> bytes:
        """Send an actor its first ``operation`` as a camelCase map; if it cannot
        read it, retry once in each older form and remember the one it reads."""
        target = actor.public_key
        try:
            reply = self._call_actor(target, operation, payload, origin, None, binding)
        except GuestError as exc:
            if not _DESERIALIZE_ERROR.search(str(exc)):
                raise
            first = exc
        else:
            actor.request_forms[operation] = FORM_MAP
            self._router.reads_map(actor.pool, operation)  # from now on dispatched from C
            return reply
        for form, era in _OLDER_FORMS.items():
            older = transcode(operation, payload, form)
            if older is None:  # the payload is no request struct: nothing to re-write
                break
            try:
                reply = self._call_actor(target, operation, older, origin, None, binding)
            except GuestError as exc:
                if _DESERIALIZE_ERROR.search(str(exc)):
                    continue
                raise
            # one module speaks one codec era: every request struct goes that way
            for op in REQUEST_STRUCTS:
                if actor.request_forms.get(op) is None:
                    actor.request_forms[op] = form
            actor.request_forms[operation] = form
            log.info(
                "%s could not read %s as a camelCase map but reads %s: requests to it are "
                "written that way from now on",
                actor.who,
                operation,
                era,
            )
            return reply
        raise first

    # ---- calls that arrive from the lattice ----------------------------------

    def serve_actor_call(
        self,
        origin: str,
        target: str,
        operation: str,
        payload: bytes,
        binding: str = "",
        budget: float | None = None,
    ) -> bytes:
        """An invocation another host sent to an actor running here (never forwarded on).

        ``budget``: seconds its caller still waits; the actor's call gets no
        longer than that (nor than its own deadline).
        """
        if self._draining and not getattr(_calls, "depth", 0):
            raise HostStopped(f"the host is shutting down; {operation} to {target} refused")
        actor = self._actors.get(target)
        if budget is None or actor is None or self.plugins.authorizing or self.plugins.intercepting:
            return self._call_actor(target, operation, payload, origin, None, binding, True)
        while True:
            try:
                return actor.invoke(operation, payload, budget)
            except ActorRetired:
                current = self._actors.get(target)
                if current is None or current is actor:
                    raise
                actor = current

    def serve_provider_call(
        self, actor: str, capability_id: str, binding: str, operation: str, payload: bytes
    ) -> bytes:
        """An actor elsewhere calls the provider here at (capability_id, binding)."""
        if self._draining and not getattr(_calls, "depth", 0):
            raise HostStopped(
                f"the host is shutting down; {capability_id} {operation} from {actor} refused"
            )
        provider = self._routes.routes.get((actor, capability_id, binding))
        if provider is None:
            raise NotBound(
                f"actor {actor} called {capability_id} {operation} on binding {binding!r}, "
                "but it is not bound to the provider on this host"
            )
        try:
            return provider.handle_call(actor, operation, payload)
        except Exception as exc:
            raise ProviderCallError(
                f"{capability_id} ({binding}) failed {operation} for actor {actor}: {exc}"
            ) from exc

    # ---- health ------------------------------------------------------------

    def check_health(self) -> dict[tuple[str, str], HealthReport]:
        """Ask every provider and actor for its health now; remove unhealthy providers.

        A provider that restarts itself (an isolated one) is reported, not
        removed: it is restarting, or was given up and says so in the inventory.
        """
        reports: dict[tuple[str, str], HealthReport] = {}
        for key, entry in list(self._providers.items()):
            report = check(entry.provider.handle_call, self.health_timeout, f"{key[0]} ({key[1]})")
            reports[key] = report
            self._provider_health[key] = report
            if not report.healthy and entry.provider.restarts_itself:
                log.warning(
                    "provider %s (%s) is unhealthy: %s",
                    *key,
                    report.message,
                    extra=fields(None, key[0], key[1], OP_HEALTH_REQUEST, "unhealthy"),
                )
            elif not report.healthy:
                with contextlib.suppress(NotFound):
                    self.remove_provider(
                        *key, reason=f"unhealthy: {report.message}", expected=entry.provider
                    )
        for actor in list(self._actors):
            self._actor_health[actor] = self.actor_health(actor)
        return reports

    def actor_health(self, actor: str) -> HealthReport:
        """Send ``HealthRequest`` to an actor and read its ``HealthResponse``.

        A nil answer (Rust actors of the waSCC era) counts as healthy.  A
        failed check is reported here, not to the observer as a failed call.
        """
        checking = getattr(_calls, "health", False)
        _calls.health = True
        try:
            if self._draining and not getattr(_calls, "depth", 0):
                raise HostStopped(f"the host is shutting down; HealthRequest to {actor} refused")
            found = self._actor(actor)
            reply = self._deliver(
                found,
                OP_HEALTH_REQUEST,
                HealthRequest().encode(),
                SYSTEM,
                "",
                found.request_forms.get(OP_HEALTH_REQUEST),
            )
            if unpack(reply, "HealthResponse") is None:
                return HealthReport(True, "")
            response = HealthResponse.decode(reply)
        except WasccError as exc:
            return HealthReport(False, str(exc))
        finally:
            _calls.health = checking
        return HealthReport(response.healthy, response.message)

    # ---- inventory ---------------------------------------------------------

    def actors(self) -> list[ActorInfo]:
        """Every running actor with its claims."""
        return [self._info(a) for a in list(self._actors.values())]

    def _info(self, a: Actor) -> ActorInfo:
        return ActorInfo(
            public_key=a.public_key,
            name=a.name,
            claims=a.claims,
            signed=a.signed,
            module_hash=a.module_hash,
            instances=a.instances,
            calls=a.calls(),
            errors=a.errors,
            health=self._actor_health.get(a.public_key),
            settings=a.settings,
            busy=a.busy,
            waits=a.waits,
            operations=a.operations(),
        )

    def providers(self) -> list[ProviderInfo]:
        """Every registered provider with its descriptor and bound actors."""
        return [
            ProviderInfo(
                capability_id=cap,
                binding=name,
                descriptor=entry.descriptor,
                actors=tuple(b.actor for b in self._routes.bindings_to(cap, name)),
                health=self._provider_health.get((cap, name)),
                state=entry.provider.state,
                pid=getattr(entry.provider, "pid", None),
            )
            for (cap, name), entry in list(self._providers.items())
        ]

    def provider(self, capability_id: str, binding: str = DEFAULT_BINDING) -> CapabilityProvider:
        """The provider object registered at (capability id, binding), for its own counters."""
        key = (canonical_capability(capability_id), normalize_binding(binding))
        entry = self._providers.get(key)
        if entry is None:
            raise NotFound(f"no provider of {capability_id} on binding {binding!r}")
        return entry.provider

    def native_operations(self) -> dict[tuple[str, str, str], OperationStats]:
        """Calls the data plane ran on native providers, by (capability, binding, operation).

        (Calls that went through Python are told to :attr:`observer` instead.)
        """
        with self._lock:
            entries = list(self._providers.items())
        found: dict[tuple[str, str, str], OperationStats] = {}
        for (capability_id, binding), entry in entries:
            library = _native_library(entry.provider)
            if library is not None:
                for operation, stats in library.stats.read().items():
                    found[(capability_id, binding, operation)] = stats
        return found

    def bindings(self) -> list[Binding]:
        """Every binding of an actor to a provider."""
        return list(self._routes.bindings.values())

    def actor(self, key: str) -> ActorInfo:
        """One actor's inventory entry."""
        return self._info(self._actor(key))


def _native_library(provider: object) -> NativeLibrary | None:
    """The in-process native library behind a provider, if it is one."""
    library = getattr(provider, "library", None)
    return library if isinstance(library, NativeLibrary) else None


def _drop_none(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


def _stop_provider(provider: CapabilityProvider, what: str, timeout: float) -> None:
    """Call ``stop`` in a thread of its own so a provider that hangs cannot hang the host."""

    def run() -> None:
        try:
            provider.stop()
        except Exception as exc:
            log.error("%s failed to stop: %s", what, exc)

    worker = threading.Thread(target=run, name=f"wascc-stop {what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        log.error("%s did not stop within %gs; abandoning it", what, timeout)
