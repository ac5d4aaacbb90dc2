"""The standalone host behind ``wascc up``: the signal loop around one Host.

A :class:`Daemon` starts one :class:`~wascc.host.Host` and what drives it,
from three sources:

* the manifest (actors, capabilities, bindings, labels), applied by the
  :class:`~wascc.standalone.reconciler.Reconciler`;
* an actors directory (:mod:`wascc.standalone.actor_directory`);
* a providers directory (:mod:`wascc.standalone.provider_directory`);

and the control socket (:mod:`wascc.standalone.control`).  With a lattice
(``--lattice`` or the manifest's ``lattice:`` section, the command line
winning key by key) the host joins it before the manifest is applied, so
bindings whose actor or provider runs elsewhere are made through the
lattice; on a stop it leaves the lattice first (no new invocations arrive,
``HostStopped`` is published), lets its calls finish, then disconnects.  SIGHUP re-reads
the manifest (a manifest that cannot be read or checked is refused whole and
the running configuration kept) and rescans the directories.  SIGINT /
SIGTERM stop it gracefully: new work is refused, calls in flight get
``grace`` seconds, then every actor is unbound (RemoveActor) and every
provider stopped.  Under systemd it reports READY, RELOADING and STOPPING.
"""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from wascc.actor import ActorSettings
from wascc.errors import ControlError, WasccError
from wascc.host import Host
from wascc.lattice import Lattice, LatticeConfig
from wascc.observe import ObserveServer, Recorder, metrics_route, registry
from wascc.observe.dashboard import ACTIONS, Dashboard, new_token
from wascc.observe.logtail import LogTail
from wascc.observe.metrics import wascc_version
from wascc.observe.tracing import Tracing
from wascc.standalone.actor_directory import ActorDirectory
from wascc.standalone.control import ControlServer, handle_line, handlers
from wascc.standalone.manifest import Manifest, load_manifest
from wascc.standalone.notify import notify
from wascc.standalone.provider_directory import ProviderDirectory
from wascc.standalone.reconciler import Reconciler, check_capabilities
from wascc.standalone.resolve import resolve_provider
from wascc.standalone.watcher import WatchedDirectory

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
    #: ``control`` is the default path (not asked for): if another host holds
    #: it, this one runs without a control socket instead of refusing to start.
    control_is_default: bool = False
    grace: float = 10.0
    poll_interval: float = 1.0
    health_interval: float = 30.0
    actor_settings: ActorSettings | None = None
    #: Lattice settings given on the command line (LatticeConfig's fields by name).
    lattice: Mapping[str, Any] = field(default_factory=dict)
    #: Serve Prometheus metrics at this (host, port) (``--metrics``).
    metrics: tuple[str, int] | None = None
    #: Serve the dashboard (and metrics) at this (host, port) (``--dashboard``).
    dashboard: tuple[str, int] | None = None
    #: The dashboard's action token (a fresh random one when None).
    dashboard_token: str | None = None
    #: Export OpenTelemetry traces over OTLP/HTTP to this URL (``--otlp-endpoint``).
    otlp_endpoint: str | None = None
    #: Run every native provider in a child process of its own (unless its
    #: manifest entry or sidecar says ``isolate: false``).
    isolate_providers: bool = False
    #: Refuse native providers that are not signed provider archives (.par).
    require_signed_providers: bool = False


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A Python-level handler must exist for the wakeup fd to be written."""


class Daemon:
    """One standalone host, the reconciler and directories that drive it, its control socket."""

    def __init__(self, options: Options, *, manifest: Manifest | None = None) -> None:
        self.options = options
        # A bad manifest is refused here, before anything starts.
        self.manifest = manifest or self._read_manifest()
        self.host: Host | None = None
        self.lattice: Lattice | None = None
        self.reconciler: Reconciler | None = None
        self._directories: list[WatchedDirectory[Any]] = []
        self._control: ControlServer | None = None
        self._pending: list[int] = []
        #: Counts every call (for ``wascc ctl top``, metrics and the dashboard).
        self.recorder: Recorder | None = None
        self.metrics: ObserveServer | None = None
        self.dashboard: ObserveServer | None = None
        #: The token the dashboard's actions need (set when it is served).
        self.dashboard_token: str | None = None
        self._logs: LogTail | None = None
        self.tracing: Tracing | None = None

    # ---- lifecycle -------------------------------------------------------------

    def _read_manifest(self) -> Manifest | None:
        """Read and check the manifest file (None without one); a refusal is a ManifestError."""
        if self.options.manifest is None:
            return None
        return load_manifest(self.options.manifest, expand=self.options.expand_env)

    @property
    def labels(self) -> dict[str, str]:
        return {**(self.manifest.labels if self.manifest else {}), **self.options.labels}

    def lattice_config(self) -> LatticeConfig | None:
        """The lattice to join: the manifest's section under the command line's settings."""
        merged = {**(self.manifest.lattice if self.manifest else {}), **self.options.lattice}
        if not merged.get("url"):
            return None
        return LatticeConfig(**merged)

    def start(self) -> Host:
        """Start the host and everything asked for; on any failure nothing is left running."""
        opts = self.options
        if self.manifest is not None:
            check_capabilities(self.manifest)
        if not opts.trusted_issuers:
            log.warning("no --trusted-issuer given: actors signed by any account are accepted")
        if opts.allow_unsigned:
            log.warning("--allow-unsigned: UNSIGNED ACTORS WILL RUN (they hold no capabilities)")
        self.host = host = Host(
            trusted_issuers=opts.trusted_issuers or None,
            allow_unsigned=opts.allow_unsigned,
            health_interval=opts.health_interval,
            actor_settings=opts.actor_settings,
            require_signed_providers=opts.require_signed_providers
            or (self.manifest is not None and self.manifest.require_signed_providers),
        )
        self.reconciler = reconciler = Reconciler(host, isolate_providers=opts.isolate_providers)
        self.recorder = recorder = Recorder(host).attach()
        try:
            config = self.lattice_config()
            if config is not None:
                self.lattice = Lattice(host, config, self.labels)
                self.lattice.control.load_provider = lambda ref: resolve_provider(ref, host)
                self.lattice.start()
            if opts.metrics is not None:
                self.metrics = ObserveServer(
                    opts.metrics, {"/metrics": metrics_route(registry(host, recorder))}
                )
                log.info("serving metrics at %s/metrics", self.metrics.url)
            if opts.dashboard is not None:
                self.dashboard = self._serve_dashboard(host, recorder, opts.dashboard)
            if opts.otlp_endpoint is not None:
                self.tracing = Tracing(host, endpoint=opts.otlp_endpoint, labels=self.labels)
                log.info("exporting traces to %s", opts.otlp_endpoint)
            if self.manifest is not None:
                reconciler.apply(self.manifest, strict=True)
            if opts.providers_dir is not None:
                self._watch(
                    ProviderDirectory(
                        host,
                        opts.providers_dir,
                        interval=opts.poll_interval,
                        isolate_providers=opts.isolate_providers,
                    )
                )
            if opts.actors_dir is not None:
                self._watch(ActorDirectory(host, opts.actors_dir, interval=opts.poll_interval))
            if opts.control is not None:
                self._control = self._serve_control(opts.control, opts.control_is_default)
            if self._control is not None:
                self._control.start()
        except BaseException:
            self._stop_directories()
            if self.lattice is not None:
                self.lattice.leave()
            self._stop_observing()
            host.stop()
            if self.lattice is not None:
                self.lattice.close()
            raise
        notify("READY=1", f"STATUS=running {len(host.actors())} actor(s)")
        return host

    def _watch(self, directory: WatchedDirectory[Any]) -> None:
        assert self.reconciler is not None
        directory.lock = self.reconciler.lock
        directory.on_change = self.reconciler.reconcile_bindings
        self._directories.append(directory)
        directory.start()
        self.reconciler.reconcile_bindings()

    def _serve_control(self, path: Path, is_default: bool) -> ControlServer | None:
        assert self.host is not None and self.reconciler is not None
        try:
            return ControlServer(
                path,
                handlers(self.host, self.reconciler, lambda: self.labels, self.recorder),
            )
        except ControlError as exc:
            if not is_default:
                raise
            log.warning("no control socket: %s (serve one elsewhere with --control PATH)", exc)
            return None

    def reload(self) -> None:
        """SIGHUP: re-read the manifest, apply what changed, rescan the directories.

        A manifest that cannot be read or checked (any WasccError) is refused
        as a whole: the running configuration stays, the directories are
        still rescanned, and no "reloaded" line is logged.
        """
        assert self.reconciler is not None
        notify("RELOADING=1")
        refused: WasccError | None = None
        try:
            manifest = self._read_manifest()
            if manifest is not None:
                check_capabilities(manifest)
        except WasccError as exc:
            refused = exc
            log.error("reload refused, keeping the running configuration: %s", exc)
        else:
            if manifest is not None:
                with self.reconciler.lock:
                    self.reconciler.apply(manifest, strict=False)
                    self.manifest = manifest
        # not under the reconcile lock: a watcher holds its scan lock while it reconciles
        for directory in self._directories:
            directory.scan()
        self.reconciler.reconcile_bindings()
        if refused is None:
            log.info("reloaded")
            notify("READY=1")
        else:
            notify("READY=1", f"STATUS=reload refused: {str(refused)[:200]}")

    def _serve_dashboard(
        self, host: Host, recorder: Recorder, address: tuple[str, int]
    ) -> ObserveServer:
        """The dashboard's server; its actions go through the control socket's handlers."""
        assert self.reconciler is not None
        token = self.options.dashboard_token or new_token()
        self._logs = LogTail().attach()
        control = handlers(host, self.reconciler, lambda: self.labels, recorder)
        actions = {name: control[name] for name in ACTIONS}
        dashboard = Dashboard(
            host,
            recorder,
            labels=lambda: self.labels,
            act=lambda line: handle_line(actions, line),
            token=token,
            logs=self._logs,
            version=wascc_version(),
        )
        server = ObserveServer(address, dashboard.routes())
        dashboard.serve_at(*server.address)
        self.dashboard_token = token
        log.info("serving the dashboard at %s/", server.url)
        return server

    def _stop_observing(self) -> None:
        for server in (self.metrics, self.dashboard):
            if server is not None:
                server.close()
        self.metrics = self.dashboard = None
        if self._logs is not None:
            self._logs.detach()
            self._logs = None
        if self.tracing is not None:
            self.tracing.close()  # flushes the spans still queued
            self.tracing = None
        if self.recorder is not None:
            self.recorder.close()

    def _stop_directories(self) -> None:
        for directory in self._directories:
            directory.stop()

    def stop(self) -> None:
        """Graceful stop: refuse new work, let calls finish, unbind, stop providers."""
        notify("STOPPING=1")
        if self._control is not None:
            self._control.close()
        self._stop_directories()
        if self.lattice is not None:
            self.lattice.leave()
        if self.host is not None:
            self.host.stop(grace=self.options.grace)
        if self.lattice is not None:
            self.lattice.close()
        self._stop_observing()
        if self._control is not None:
            self._control.wait(5.0)  # answers to requests that were in flight

    def reconcile_bindings(self) -> None:
        """Set every wanted binding whose actor and provider are both there (any thread)."""
        if self.reconciler is not None:
            self.reconciler.reconcile_bindings()

    def run(self, *, on_ready: Callable[[], None] | None = None) -> int:
        """Run until SIGINT or SIGTERM; SIGHUP reloads.  Returns the exit status.

        ``on_ready`` runs once everything asked for has started.

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
            if on_ready is not None:
                on_ready()
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
