"""The ``wascc ctl top`` view: one frame of a host's numbers as rich tables.

:func:`frame` turns the control socket's ``top`` answer (a
:meth:`Recorder.snapshot <wascc.observe.recorder.Recorder.snapshot>` plus
labels) into a renderable: a header line, then actors (calls/s, p50, p99,
calls, errors, instances), providers (calls/s, calls, errors, health),
bindings and the most recent errors.  The CLI redraws it each second in a
``rich.live.Live``; ``--once`` prints one frame, and :func:`render_text`
gives the same frame as plain text (for scripts and tests).
"""

from __future__ import annotations

import io
import time
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = ["RECENT_ERRORS_SHOWN", "duration", "frame", "render_text", "uptime"]

#: Recent errors shown under the tables.
RECENT_ERRORS_SHOWN = 8


def duration(seconds: float | None) -> str:
    """A latency for a narrow column: ``-``, ``85us``, ``3.2ms``, ``1.50s``."""
    if seconds is None:
        return "-"
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f}us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f}ms"
    return f"{seconds:.2f}s"


def uptime(seconds: float) -> str:
    """``3d04h``, ``2h05m``, ``4m10s`` or ``12s``."""
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{s:02d}s"
    return f"{s}s"


def _health(healthy: bool | None, message: str = "") -> Text:
    if healthy is None:
        return Text("-")
    if healthy:
        return Text("healthy", style="green")
    return Text(f"UNHEALTHY {message}".strip(), style="bold red")


def _table(title: str, columns: tuple[str, ...], right: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left", no_wrap=True)
    return table


def frame(data: dict[str, Any]) -> RenderableType:
    """One frame of ``wascc ctl top`` from the ``top`` control command's answer."""
    labels = ", ".join(f"{k}={v}" for k, v in sorted(data.get("labels", {}).items()))
    actors_data = data["actors"]
    header = Text.assemble(
        ("wascc top", "bold"),
        f"  up {uptime(data['uptime'])}  ",
        f"{len(actors_data)} actor(s), {len(data['providers'])} provider(s)",
        f"  labels: {labels or '(none)'}",
    )
    numbers = ("calls/s", "p50", "p99", "calls", "errors", "instances")
    actors = _table("actors", ("name", "key", *numbers, "health"), numbers)
    for a in sorted(actors_data, key=lambda a: (-a["rate"], a["name"])):
        errors = Text(str(a["errors"]), style="red" if a["errors"] else "")
        instances = f"{a['busy']}/{a['instances']}"
        actors.add_row(
            a["name"],
            a["key"][:12] + "…",
            f"{a['rate']:.1f}",
            duration(a["p50"]),
            duration(a["p99"]),
            str(a["calls"]),
            errors,
            instances,
            _health(None if a["health"] is None else a["health"]["healthy"]),
        )
    pnumbers = ("calls/s", "calls", "errors", "actors")
    providers = _table("providers", ("capability", "binding", *pnumbers, "health"), pnumbers)
    for p in sorted(data["providers"], key=lambda p: (p["capability"], p["binding"])):
        providers.add_row(
            p["capability"],
            p["binding"],
            f"{p['rate']:.1f}",
            str(p["calls"]),
            Text(str(p["errors"]), style="red" if p["errors"] else ""),
            str(len(p["actors"])),
            _health(p["healthy"], p["health"]),
        )
    bindings = _table("bindings", ("actor", "capability", "binding"), ())
    for b in sorted(data["bindings"], key=lambda b: (b["name"], b["capability"], b["binding"])):
        bindings.add_row(b["name"] or b["actor"][:12] + "…", b["capability"], b["binding"])
    parts: list[RenderableType] = [header, actors, providers, bindings]
    errors = data.get("errors", [])[:RECENT_ERRORS_SHOWN]
    if errors:
        recent = _table("recent errors", ("time", "who", "operation", "kind", "message"), ())
        names = {a["key"]: a["name"] for a in actors_data}
        for e in errors:
            who = names.get(e["who"], e["who"][:24])
            recent.add_row(
                time.strftime("%H:%M:%S", time.localtime(e["time"])),
                who,
                e["operation"],
                e["kind"],
                e["message"].replace(f" ({e['who']})", "")[:100],  # the key is long
            )
        parts.append(recent)
    else:
        parts.append(Text("no recent errors", style="dim"))
    return Group(*parts)


def render_text(data: dict[str, Any], width: int = 160) -> str:
    """One frame as plain text (no colours), ``width`` columns wide."""
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(frame(data))
    return console.export_text()
