"""The standalone host behind ``wascc up``.

A :class:`Daemon` owns one :class:`~wascc.host.Host` and keeps it in step
with what the operator asked for, from three sources:

* the manifest (actors, capabilities, bindings, labels);
* an actors directory (actors dropped in start, removed ones stop, replaced
  ones are hot-swapped);
* a providers directory (see :mod:`wascc.providers.directory`).

It *reconciles*: it remembers what it started and applies only differences,
at start, on SIGHUP (manifest re-read, directories rescanned) and whenever a
directory changes.  Bindings whose actor or provider is not there yet wait
and are set as soon as both are.  Things changed through the control socket
are left alone.

SIGINT / SIGTERM stop it gracefully: new work is refused, calls in flight
get ``grace`` seconds, then every actor is unbound (RemoveActor) and every
provider stopped.  Under systemd it reports READY, RELOADING and STOPPING.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from wascc.actor import ActorSettings
from wascc.control import ControlServer, b64, inventory, unb64
from wascc.errors import NotFound, WasccError
from wascc.host import Host
from wascc.manifest import BindingSpec, CapabilitySpec, Manifest, ManifestError, load_manifest
from wascc.notify import notify
from wascc.plugins import Plugins
from wascc.providers.resolve import check_spec, resolve_provider
from wascc.routing import canonical_capability, normalize_binding
from wascc.watch import DirectoryWatcher

__all__ = ["Daemon", "Options"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """What ``wascc up`` was asked to run."""

    manifest: Path | None = None
    expand_env: bool = False
    providers_dir: Path | None = None
    actors_dir: Path | None = None
    trusted_issuers: tuple[str, ...] = ()
    allow_unsigned: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    control: Path | None = None
    grace: float = 10.0
    poll_interval: float = 1.0
    health_interval: float = 30.0
    actor_settings: ActorSettings | None = None


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A Python-level handler must exist for the wakeup fd to be written."""


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Daemon:
    """One standalone host and the reconciler that drives it."""

    def __init__(self, options: Options, *, manifest: Manifest | None = None) -> None:
        self.options = options
        # A bad manifest is refused here, before anything starts.
        self.manifest = manifest or self._read_manifest()
        self.host: Host | None = None
        self._providers: dict[CapabilitySpec, tuple[str, str]] = {}
        self._actors: dict[Path, tuple[str, str]] = {}  # manifest file -> (key, digest)
        self._dir_actors: dict[Path, str] = {}  # actors-dir file -> key
        self._desired: dict[tuple[str, str, str], BindingSpec] = {}
        # Directory watchers, control clients and SIGHUP all reconcile: one at a
        # time, so none acts on a stale view of the bindings (or sends twice).
        self._reconcile_lock = threading.RLock()
        self._control: ControlServer | None = None
        self._actor_watcher: DirectoryWatcher | None = None
        self._pending: list[int] = []

    # ---- lifecycle -------------------------------------------------------------

    def _read_manifest(self) -> Manifest | None:
        if self.options.manifest is None:
            return None
        return load_manifest(self.options.manifest, expand=self.options.expand_env)

    @property
    def labels(self) -> dict[str, str]:
        return {**(self.manifest.labels if self.manifest else {}), **self.options.labels}

    def start(self) -> Host:
        """Start the host and everything asked for; on any failure nothing is left running."""
        opts = self.options
        if self.manifest is not None:
            plugins = Plugins()
            plugins.load_entry_points()
            factories = plugins.provider_factories()
            for spec in self.manifest.capabilities:
                try:
                    check_spec(spec.path, factories)
                except WasccError as exc:
                    raise ManifestError(f"{self.manifest.source}: capabilities: {exc}") from exc
        if not opts.trusted_issuers:
            log.warning("no --trusted-issuer given: actors signed by any account are accepted")
        if opts.allow_unsigned:
            log.warning("--allow-unsigned: UNSIGNED ACTORS WILL RUN (they hold no capabilities)")
        self.host = Host(
            trusted_issuers=opts.trusted_issuers or None,
            allow_unsigned=opts.allow_unsigned,
            health_interval=opts.health_interval,
            actor_settings=opts.actor_settings,
        )
        try:
            if self.manifest is not None:
                self._apply(self.manifest, strict=True)
            if opts.providers_dir is not None:
                directory = self.host.watch_providers(
                    opts.providers_dir, interval=opts.poll_interval
                )
                directory.on_change = self.reconcile_bindings
                self.reconcile_bindings()
            if opts.actors_dir is not None:
                self._watch_actors(opts.actors_dir)
            if opts.control is not None:
                self._control = ControlServer(opts.control, self._control_handlers())
                self._control.start()
        except BaseException:
            self.host.stop()
            raise
        notify("READY=1", f"STATUS=running {len(self.host.actors())} actor(s)")
        return self.host

    def reload(self) -> None:
        """SIGHUP: re-read the manifest, apply what changed, rescan the directories."""
        notify("RELOADING=1")
        try:
            manifest = self._read_manifest()
        except ManifestError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
        else:
            if manifest is not None:
                self._apply(manifest, strict=False)
                self.manifest = manifest
        assert self.host is not None
        self.host.rescan_providers()
        if self._actor_watcher is not None:
            self._actor_watcher.scan()
        self.reconcile_bindings()
        log.info("reloaded")
        notify("READY=1")

    def stop(self) -> None:
        """Graceful stop: refuse new work, let calls finish, unbind, stop providers."""
        notify("STOPPING=1")
        if self._control is not None:
            self._control.close()
        if self._actor_watcher is not None:
            self._actor_watcher.stop()
        if self.host is not None:
            self.host.stop(grace=self.options.grace)
        if self._control is not None:
            self._control.wait(5.0)  # answers to requests that were in flight

    def run(self) -> int:
        """Run until SIGINT or SIGTERM; SIGHUP reloads.  Returns the exit status.

        Signals arrive through ``signal.set_wakeup_fd``: the interpreter's C
        handler writes each signal number to a socket the main thread reads,
        so nothing that takes a lock runs inside a signal handler (a handler
        putting into a queue can deadlock against the main thread's get).
        """
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {sig: signal.signal(sig, _ignore) for sig in watched}
        previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        try:
            self.start()
            while True:
                signum = self._next_signal(reader, watched)
                if signum == signal.SIGHUP:
                    self.reload()
                    continue
                log.info(
                    "received %s: stopping (grace %gs)",
                    signal.Signals(signum).name,
                    self.options.grace,
                )
                break
        finally:
            self.stop()
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            reader.close()
            writer.close()
        return 0

    def _next_signal(self, reader: socket.socket, watched: tuple[int, ...]) -> int:
        while not self._pending:
            self._pending.extend(b for b in reader.recv(64) if b in watched)
        return self._pending.pop(0)

    # ---- reconciling -----------------------------------------------------------

    def _apply(self, manifest: Manifest, *, strict: bool) -> None:
        """Make the host run ``manifest``: add what is new, remove what is gone."""
        host = self.host
        assert host is not None

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
                    f"capability {spec.path}", lambda spec=spec: self._add_provider(spec)
                )
                if added is not None:
                    self._providers[spec] = added
        wanted_actors = set(manifest.actors)
        for path in [p for p in self._actors if p not in wanted_actors]:
            key, _ = self._actors.pop(path)
            attempt(f"stopping {path.name}", lambda key=key: host.remove_actor(key))
        for path in manifest.actors:
            attempt(f"actor {path.name}", lambda path=path: self._run_actor(path))
        with self._reconcile_lock:
            self._desired = {b.key: b for b in manifest.bindings}
            self.reconcile_bindings(strict=strict, source=manifest.source)

    def _add_provider(self, spec: CapabilitySpec) -> tuple[str, str]:
        assert self.host is not None
        provider = resolve_provider(spec.path, self.host)
        try:
            descriptor = self.host.add_provider(provider, spec.binding)
        except BaseException:
            provider.stop()
            raise
        return canonical_capability(descriptor.id), spec.binding

    def _run_actor(self, path: Path) -> None:
        """Start a manifest actor, or hot-swap it if its file changed."""
        assert self.host is not None
        digest = _digest(path)
        known = self._actors.get(path)
        if known is None:
            self._actors[path] = (self.host.add_actor(path), digest)
        elif known[1] != digest:
            self.host.replace_actor(known[0], path)
            self._actors[path] = (known[0], digest)

    def reconcile_bindings(self, *, strict: bool = False, source: str = "bindings") -> None:
        """Set every wanted binding whose actor and provider are both there.

        Runs from several threads (watchers, control clients, SIGHUP); one at
        a time, each against the bindings as the previous one left them.
        """
        with self._reconcile_lock:
            self._reconcile_bindings(strict=strict, source=source)

    def _reconcile_bindings(self, *, strict: bool, source: str) -> None:
        host = self.host
        if host is None:
            return
        running = {a.public_key for a in host.actors()}
        providers = {(p.capability_id, p.binding) for p in host.providers()}
        current = {(b.actor, b.capability_id, b.binding): b for b in host.bindings()}
        for key, spec in self._desired.items():
            actor, capability, binding = key
            if actor not in running or (capability, binding) not in providers:
                log.debug(
                    "binding %s to %s (%s) waits for its actor or provider",
                    actor,
                    capability,
                    binding,
                )
                continue
            bound = current.get(key)
            if bound is not None and dict(bound.values) == dict(spec.values):
                continue
            try:
                host.set_binding(actor, capability, binding, dict(spec.values))
            except WasccError as exc:
                if strict:
                    raise WasccError(f"{source}: binding {actor} to {capability}: {exc}") from exc
                log.error("cannot bind %s to %s (%s): %s", actor, capability, binding, exc)

    # ---- the actors directory --------------------------------------------------

    def _watch_actors(self, directory: Path) -> None:
        if not directory.is_dir():
            raise WasccError(f"actors directory {directory} does not exist")
        self._actor_watcher = DirectoryWatcher(
            directory,
            lambda p: p.suffix == ".wasm" and p.is_file(),
            on_added=self._actor_added,
            on_changed=self._actor_changed,
            on_removed=self._actor_removed,
            interval=self.options.poll_interval,
            name=f"wascc-actors {directory}",
        )
        self._actor_watcher.start()

    def _actor_added(self, path: Path) -> None:
        assert self.host is not None
        try:
            self._dir_actors[path] = self.host.add_actor(path)
        except WasccError as exc:
            log.error("actors directory: cannot start %s: %s", path.name, exc)
            return
        self.reconcile_bindings()

    def _actor_changed(self, path: Path) -> None:
        assert self.host is not None
        key = self._dir_actors.get(path)
        if key is None:
            self._actor_added(path)
            return
        try:
            self.host.replace_actor(key, path)
            log.info("actors directory: hot-swapped %s", path.name)
        except WasccError as exc:
            log.error("actors directory: cannot replace %s: %s", path.name, exc)
        self.reconcile_bindings()

    def _actor_removed(self, path: Path) -> None:
        assert self.host is not None
        key = self._dir_actors.pop(path, None)
        if key is not None:
            with contextlib.suppress(NotFound):
                self.host.remove_actor(key)

    # ---- the control socket ----------------------------------------------------

    def _control_handlers(self) -> dict[str, Any]:
        host = self.host
        assert host is not None

        def start_actor(m: dict[str, Any]) -> dict[str, Any]:
            return {"actor": host.add_actor(Path(m["path"]))}

        def stop_actor(m: dict[str, Any]) -> dict[str, Any]:
            host.remove_actor(m["actor"])
            return {}

        def replace_actor(m: dict[str, Any]) -> dict[str, Any]:
            return {"actor": host.replace_actor(m["actor"], Path(m["path"]))}

        def add_provider(m: dict[str, Any]) -> dict[str, Any]:
            capability, binding = self._add_provider(
                CapabilitySpec(m["path"], normalize_binding(m.get("binding")))
            )
            self.reconcile_bindings()
            return {"capability": capability, "binding": binding}

        def remove_provider(m: dict[str, Any]) -> dict[str, Any]:
            host.remove_provider(m["capability"], m.get("binding") or "default")
            return {}

        def bind(m: dict[str, Any]) -> dict[str, Any]:
            values = m.get("values") or {}
            if not isinstance(values, dict):
                raise WasccError("bind: values must be an object of strings")
            host.set_binding(
                m["actor"],
                m["capability"],
                m.get("binding") or "default",
                {str(k): str(v) for k, v in values.items()},
            )
            return {}

        def unbind(m: dict[str, Any]) -> dict[str, Any]:
            removed = host.remove_binding(
                m["actor"], m["capability"], m.get("binding") or "default"
            )
            return {"removed": removed}

        def call(m: dict[str, Any]) -> dict[str, Any]:
            payload = unb64(m.get("payload_b64") or "")
            return {"reply_b64": b64(host.call_actor(m["actor"], m["operation"], payload))}

        return {
            "inventory": lambda m: inventory(host, self.labels),
            "start-actor": start_actor,
            "stop-actor": stop_actor,
            "replace-actor": replace_actor,
            "add-provider": add_provider,
            "remove-provider": remove_provider,
            "bind": bind,
            "unbind": unbind,
            "call": call,
        }


def default_control_path() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime else Path.home() / ".wascc"
    return base / "wascc.sock"
