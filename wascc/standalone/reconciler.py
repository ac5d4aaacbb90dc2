"""The reconciler: keeps a Host in step with what a manifest asks for.

It remembers what it started from the manifest and applies only differences:
providers and actors that are new are added, those gone are removed, actor
files that changed are hot-swapped.  Bindings (from the manifest, naming an
actor by public key or by the name of a running actor) wait until both their
actor and their provider are there, from whatever source (manifest, watched
directories, the control socket), and are set as soon as both are; things
changed through the control socket are left alone.

Reconciling runs on several threads (the directory watchers, the signal
loop, control-socket handlers), so every reconcile and apply holds one
reentrant lock, :attr:`Reconciler.lock`: each sees the bindings the one
before it set, and no binding is sent twice or lost.  Lock order: a
directory watcher's scan lock, then this lock, then the host's own lock (the
host never calls back into the reconciler); so nothing scans a directory
while it holds this lock.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wascc._providers import NATIVE_SUFFIXES
from wascc.errors import ManifestError, NotFound, WasccError
from wascc.host import Host
from wascc.plugins import Plugins
from wascc.providers.archive import ARCHIVE_SUFFIXES
from wascc.providers.firstparty import NativeFactory
from wascc.standalone.manifest import BindingSpec, CapabilitySpec, Manifest
from wascc.standalone.resolve import check_spec, resolve_provider
from wascc.wire.capability import canonical_capability

__all__ = ["Reconciler", "check_capabilities"]

log = logging.getLogger(__name__)


def check_capabilities(manifest: Manifest) -> None:
    """Every capability names a provider that exists, before anything starts."""
    if not manifest.capabilities:
        return
    plugins = Plugins()
    plugins.load_entry_points()
    factories = plugins.provider_factories()
    for spec in manifest.capabilities:
        try:
            check_spec(spec.path, factories)
        except WasccError as exc:
            raise ManifestError(f"{manifest.source}: capabilities: {exc}") from exc


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read it: {exc.strerror or exc}") from exc


class Reconciler:
    """Applies manifests to one host and sets the bindings they want."""

    def __init__(self, host: Host, *, isolate_providers: bool = False) -> None:
        self.host = host
        #: Run native providers isolated unless their entry says ``isolate: false``.
        self.isolate_providers = isolate_providers
        #: Reentrant: apply reconciles, and the daemon applies at start.
        self.lock = threading.RLock()
        self._providers: dict[CapabilitySpec, tuple[str, str]] = {}
        self._actors: dict[Path, tuple[str, str]] = {}  # manifest file -> (key, digest)
        self._desired: dict[tuple[str, str, str], BindingSpec] = {}
        #: Bindings handed to the host's lattice (their provider runs elsewhere), with values.
        self._through_lattice: dict[tuple[str, str, str], dict[str, str]] = {}

    def apply(self, manifest: Manifest, *, strict: bool) -> None:
        """Make the host run ``manifest``: add what is new, remove what is gone.

        ``strict`` (at start) turns the first failure into an error; otherwise
        (on reload) each failure is logged and the rest is applied.
        """
        with self.lock:
            self._apply(manifest, strict=strict)

    def _apply(self, manifest: Manifest, *, strict: bool) -> None:
        host = self.host

        def attempt(what: str, action: Any) -> Any:
            try:
                return action()
            except WasccError as exc:
                if strict:
                    raise WasccError(f"{manifest.source}: {what}: {exc}") from exc
                log.error("%s: %s: %s", manifest.source, what, exc)
                return None

        wanted = set(manifest.capabilities)
        for spec in [s for s in self._providers if s not in wanted]:
            gone = self._providers.pop(spec)
            attempt(f"removing {spec.path}", lambda gone=gone: host.remove_provider(*gone))
        for spec in manifest.capabilities:
            if spec not in self._providers:
                added = attempt(
                    f"capability {spec.path}", lambda spec=spec: self.add_provider(spec)
                )
                if added is not None:
                    self._providers[spec] = added
        wanted_actors = set(manifest.actors)
        for path in [p for p in self._actors if p not in wanted_actors]:
            key, _ = self._actors.pop(path)
            attempt(f"stopping {path.name}", lambda key=key: host.remove_actor(key))
        for path in manifest.actors:
            settings = manifest.settings.get(path, {})
            attempt(
                f"actor {path.name}",
                lambda path=path, settings=settings: self._run_actor(path, settings),
            )
        self._desired = {b.key: b for b in manifest.bindings}
        self.reconcile_bindings(strict=strict, source=manifest.source)

    def add_provider(self, spec: CapabilitySpec) -> tuple[str, str]:
        """Resolve and register one provider; its (capability id, binding)."""
        isolate = self.isolate_providers if spec.isolate is None else spec.isolate
        if isolate and spec.isolate is None and not _native(spec.path, self.host):
            isolate = False  # --isolate-providers isolates what can be: native libraries
        provider = resolve_provider(spec.path, self.host, isolate=isolate, isolation=spec.isolation)
        try:
            descriptor = self.host.add_provider(provider, spec.binding)
        except BaseException:
            provider.stop()
            raise
        return canonical_capability(descriptor.id), spec.binding

    def _run_actor(self, path: Path, settings: Mapping[str, Any]) -> None:
        """Start a manifest actor, or hot-swap it if its file changed."""
        digest = _digest(path)
        known = self._actors.get(path)
        if known is None:
            self._actors[path] = (self.host.add_actor(path, **settings), digest)
        elif known[1] != digest:
            self.host.replace_actor(known[0], path, **settings)
            self._actors[path] = (known[0], digest)

    def reconcile_bindings(self, *, strict: bool = False, source: str = "bindings") -> None:
        """Set every wanted binding whose actor and provider are both there.

        Safe from any thread: one reconcile runs at a time (:attr:`lock`).
        """
        with self.lock:
            self._reconcile(strict=strict, source=source)

    def _reconcile(self, *, strict: bool, source: str) -> None:
        host = self.host
        providers = {(p.capability_id, p.binding) for p in host.providers()}
        current = {(b.actor, b.capability_id, b.binding): b for b in host.bindings()}
        for (ref, capability, binding), spec in self._desired.items():
            try:
                actor = host.resolve_actor(ref)  # a public key, or a running actor's name
            except NotFound:
                actor = ""
            elsewhere = host.remote is not None and (capability, binding) not in providers
            if actor and elsewhere:
                # a lattice binds where the provider runs, now or when it starts: once
                key = (actor, capability, binding)
                if self._through_lattice.get(key) == dict(spec.values):
                    continue
                try:
                    host.set_binding(actor, capability, binding, dict(spec.values))
                except WasccError as exc:
                    if strict:
                        raise WasccError(
                            f"{source}: binding {actor} to {capability}: {exc}"
                        ) from exc
                    log.error("cannot bind %s to %s (%s): %s", actor, capability, binding, exc)
                else:
                    self._through_lattice[key] = dict(spec.values)
                continue
            if not actor or (capability, binding) not in providers:
                log.debug(
                    "binding %s to %s (%s) waits for its actor or provider",
                    ref,
                    capability,
                    binding,
                )
                continue
            bound = current.get((actor, capability, binding))
            if bound is not None and dict(bound.values) == dict(spec.values):
                continue
            try:
                host.set_binding(actor, capability, binding, dict(spec.values))
            except WasccError as exc:
                if strict:
                    raise WasccError(f"{source}: binding {actor} to {capability}: {exc}") from exc
                log.error("cannot bind %s to %s (%s): %s", actor, capability, binding, exc)


def _native(spec: str, host: Host) -> bool:
    """Whether ``spec`` names a native library (a file, or a first-party one by id)."""
    if spec.endswith((*NATIVE_SUFFIXES, *ARCHIVE_SUFFIXES)):
        return True
    factory = host.provider_factories().get(canonical_capability(spec))
    return isinstance(factory, NativeFactory)
