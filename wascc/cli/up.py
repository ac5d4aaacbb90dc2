"""``wascc up`` (also installed as ``wascc-host``): run a standalone host.

It only parses options and hands them to :class:`wascc.standalone.daemon.Daemon`.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from wascc import logs
from wascc.actor import ActorSettings
from wascc.cli.main import default_control, fail, main, pairs
from wascc.errors import WasccError
from wascc.observe import parse_address
from wascc.standalone.daemon import Daemon, Options
from wascc.standalone.demo import demo

__all__ = ["host_main", "up"]

log = logging.getLogger("wascc.cli")

UNIT_EXAMPLE = """\
\b
systemd unit (Type=notify-reload; `systemctl reload` sends SIGHUP):
  [Service]
  Type=notify-reload
  ExecStart=/usr/local/bin/wascc-host --manifest /etc/wascc/host.yaml \\
      --providers-dir /etc/wascc/providers --trusted-issuer AC...
  KillSignal=SIGTERM
"""


@main.command(epilog=UNIT_EXAMPLE)
@click.option(
    "-m",
    "--manifest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A manifest (YAML, JSON or TOML) of actors, capabilities and bindings.",
)
@click.option(
    "--expand-env",
    is_flag=True,
    help="Replace ${VAR} and ${VAR:default} in the manifest from the environment.",
)
@click.option(
    "--providers-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Load every provider in this directory and follow its changes.",
)
@click.option(
    "--actors-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Run every actor (.wasm) in this directory and follow its changes.",
)
@click.option(
    "--trusted-issuer",
    "trusted",
    multiple=True,
    metavar="KEY",
    help="Account key whose signatures are accepted (repeatable; default: any).",
)
@click.option(
    "--allow-unsigned",
    is_flag=True,
    help="Also run unsigned actors (they hold no capabilities). Off by default.",
)
@click.option(
    "--isolate-providers",
    is_flag=True,
    help="Run every native provider in a child process of its own (restarted when it "
    "crashes) unless its manifest entry or sidecar says isolate: false.",
)
@click.option(
    "--require-signed-providers",
    is_flag=True,
    help="Refuse native providers that are not signed provider archives (.par / .par.gz) "
    "whose issuer is trusted; first-party providers installed with wascc are allowed.",
)
@click.option("--label", "labels", multiple=True, metavar="K=V", help="A host label (repeatable).")
@click.option(
    "--control",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Serve the control socket (for `wascc ctl`) here, mode 0600 "
    "[default: $WASCC_CONTROL or $XDG_RUNTIME_DIR/wascc.sock].",
)
@click.option("--no-control", is_flag=True, help="Serve no control socket.")
@click.option(
    "--grace",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds calls in flight get to finish on SIGINT/SIGTERM.",
)
@click.option(
    "--poll-interval",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds between scans of the watched directories.",
)
@click.option(
    "--health-interval",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds between provider health checks (0: off).",
)
@click.option(
    "--deadline",
    type=float,
    default=10.0,
    show_default=True,
    help="Default seconds an actor call may take.",
)
@click.option(
    "--lattice",
    "lattice_url",
    metavar="URL",
    envvar="WASCC_LATTICE",
    help="Join the lattice at this NATS URL (nats://HOST:PORT; JetStream on) [$WASCC_LATTICE].",
)
@click.option(
    "--namespace",
    envvar="WASCC_LATTICE_NAMESPACE",
    help="The lattice namespace (letters and digits) [$WASCC_LATTICE_NAMESPACE].",
)
@click.option(
    "--creds",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A NATS .creds file for the lattice connection.",
)
@click.option(
    "--trusted-host",
    "trusted_hosts",
    multiple=True,
    metavar="KEY",
    help="A host server key (N...) whose invocations are accepted (repeatable; default: any).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the host keeps its lattice key (host.nk, 0600) "
    "[default: $WASCC_STATE_DIR or ~/.local/state/wascc].",
)
@click.option("--ephemeral-key", is_flag=True, help="A fresh host key for this run only.")
@click.option(
    "--heartbeat",
    type=float,
    help="Seconds between the host's lattice heartbeats [default: 5].",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
@click.option(
    "--log-format", default="text", show_default=True, type=click.Choice(["text", "json"])
)
@click.option(
    "--metrics",
    "metrics_at",
    metavar="ADDR",
    help="Serve Prometheus metrics at http://ADDR/metrics (PORT alone: 127.0.0.1:PORT).",
)
@click.option(
    "--dashboard",
    "dashboard_at",
    metavar="ADDR",
    help="Serve the dashboard (and /metrics) at http://ADDR/ (PORT alone: 127.0.0.1:PORT); "
    "its actions need the token printed at start.",
)
@click.option(
    "--otlp-endpoint",
    metavar="URL",
    help="Export OpenTelemetry traces over OTLP/HTTP to URL (e.g. http://127.0.0.1:4318); "
    "no tracing without it.",
)
def up(
    manifest: Path | None,
    expand_env: bool,
    providers_dir: Path | None,
    actors_dir: Path | None,
    trusted: tuple[str, ...],
    allow_unsigned: bool,
    isolate_providers: bool,
    require_signed_providers: bool,
    labels: tuple[str, ...],
    control: Path | None,
    no_control: bool,
    grace: float,
    poll_interval: float,
    health_interval: float,
    deadline: float,
    lattice_url: str | None,
    namespace: str | None,
    creds: Path | None,
    trusted_hosts: tuple[str, ...],
    state_dir: Path | None,
    ephemeral_key: bool,
    heartbeat: float | None,
    log_level: str,
    log_format: str,
    metrics_at: str | None,
    dashboard_at: str | None,
    otlp_endpoint: str | None,
) -> None:
    """Run a host until SIGINT or SIGTERM; SIGHUP re-reads the manifest and rescans.

    With nothing to run (no manifest, no directories) it starts the built-in
    demo: the example echo and kvcounter actors behind the HTTP server on
    127.0.0.1, kvcounter with the native in-memory keyvalue.

    \b
    Example:
      wascc up
      wascc up --manifest host.yaml --providers-dir ./providers \\
               --trusted-issuer ACXYZ... --control /run/wascc.sock
      wascc up --manifest host.yaml --lattice nats://10.0.0.5:4222 --namespace prod
    """
    logs.configure(log_level, log_format)
    if no_control and control is not None:
        fail("--control and --no-control contradict each other")
    control_is_default = control is None and not no_control
    if control_is_default:
        control = Path(default_control())
    settings = ActorSettings(deadline=deadline)
    given = {
        "url": lattice_url,
        "namespace": namespace,
        "creds": creds,
        "trusted_hosts": trusted_hosts or None,
        "state_dir": state_dir,
        "ephemeral_key": ephemeral_key or None,
        "heartbeat": heartbeat,
        "call_timeout": deadline if lattice_url else None,
    }
    lattice = {k: v for k, v in given.items() if v is not None}
    try:
        metrics = None if metrics_at is None else parse_address(metrics_at, "--metrics")
        board = None if dashboard_at is None else parse_address(dashboard_at, "--dashboard")
    except WasccError as exc:
        fail(str(exc))
    options = Options(
        manifest=manifest,
        expand_env=expand_env,
        providers_dir=providers_dir,
        actors_dir=actors_dir,
        trusted_issuers=trusted,
        allow_unsigned=allow_unsigned,
        labels=pairs(labels, "--label"),
        control=control,
        control_is_default=control_is_default,
        grace=grace,
        poll_interval=poll_interval,
        health_interval=health_interval,
        actor_settings=settings,
        lattice=lattice,
        metrics=metrics,
        dashboard=board,
        dashboard_token=os.environ.get("WASCC_DASHBOARD_TOKEN") or None,
        otlp_endpoint=otlp_endpoint,
        isolate_providers=isolate_providers,
        require_signed_providers=require_signed_providers,
    )
    try:
        if manifest is None and providers_dir is None and actors_dir is None:
            built_in = demo()
            options = Options(
                **{**options.__dict__, "trusted_issuers": (*trusted, built_in.account)}
            )
            daemon = Daemon(options, manifest=built_in.manifest)
            click.echo(f"wascc: starting the built-in demo (its keys are in {built_in.keys})")

            def ready() -> None:
                tries = {"echo": "hello?x=1", "kvcounter": "visits"}
                for name, url in built_in.urls.items():
                    click.echo(f"  {name:10s} {url}    try: curl -s {url}{tries[name]}")
                announce(daemon)
                click.echo("  stop it with Ctrl-C")

            sys.exit(daemon.run(on_ready=ready))
        daemon = Daemon(options)
        sys.exit(daemon.run(on_ready=lambda: announce(daemon)))
    except WasccError as exc:
        fail(str(exc))


def announce(daemon: Daemon) -> None:
    """Print where the dashboard and metrics are served, and the dashboard's token."""
    if daemon.dashboard is not None:
        click.echo(f"  dashboard  {daemon.dashboard.url}/")
        click.echo(f"  token      {daemon.dashboard_token}    (the dashboard's actions need it)")
    if daemon.metrics is not None:
        click.echo(f"  metrics    {daemon.metrics.url}/metrics")
    sys.stdout.flush()


#: The ``wascc-host`` console script: the same command on its own.
host_main = up
