"""The dashboard: one static page and the small JSON API it reads.

``wascc up --dashboard 127.0.0.1:PORT`` serves, on one
:class:`~wascc.observe.server.ObserveServer`:

===================  ======  ==================================================
path                 method  answer
===================  ======  ==================================================
``/``                GET     the page (``static/dashboard.html``: plain JS and
                             SVG, nothing fetched from elsewhere)
``/api/state``       GET     host (labels, uptime, version), actors (claims,
                             instances, calls, calls/s, p50/p99, sparklines),
                             providers (health), bindings, recent errors, the
                             log tail
``/api/action``      POST    one action: ``{"command": "stop-actor", ...}``
                             with the control socket's arguments
                             (start-actor, stop-actor, replace-actor, bind,
                             unbind); answers like the control socket
``/metrics``         GET     the Prometheus metrics
===================  ======  ==================================================

Reading is open to whoever can reach the port (loopback by default).  An
action changes the host, so it must carry the token printed at start in the
``X-Wascc-Token`` header (a header, never a cookie: a browser does not add
it to a cross-site request on its own), be ``Content-Type:
application/json`` (an HTML form cannot send that without a CORS
preflight, which this server never grants), name this server in ``Host``
(against DNS rebinding) and, when the browser sends ``Origin``, come from
this very origin.  A refusal is 401 (no or wrong token) or 403.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from importlib.resources import files
from typing import Any

from wascc.host import Host
from wascc.observe.logtail import LogTail
from wascc.observe.metrics import metrics_route, registry
from wascc.observe.recorder import Recorder
from wascc.observe.server import Request, Response, Route

__all__ = ["ACTIONS", "TOKEN_HEADER", "Dashboard", "new_token"]

#: Control commands the page may run.
ACTIONS = frozenset({"start-actor", "stop-actor", "replace-actor", "bind", "unbind"})
TOKEN_HEADER = "x-wascc-token"

#: ``act(request line) -> answer line``: the control socket's dispatcher.
Act = Callable[[bytes], bytes]


def new_token() -> str:
    """A fresh action token (URL-safe, 192 bits)."""
    return secrets.token_urlsafe(24)


def _json(status: int, data: Any) -> Response:
    return Response(status, json.dumps(data).encode())


class Dashboard:
    """The routes of the dashboard for one host."""

    def __init__(
        self,
        host: Host,
        recorder: Recorder,
        *,
        labels: Callable[[], Mapping[str, str]],
        act: Act,
        token: str,
        logs: LogTail | None = None,
        version: str = "",
    ) -> None:
        self.host = host
        self.recorder = recorder
        self.labels = labels
        self.act = act
        self.token = token
        self.logs = logs
        self.version = version
        self.allowed_hosts: frozenset[str] = frozenset()
        self._page = files("wascc.observe").joinpath("static/dashboard.html").read_bytes()

    def serve_at(self, host: str, port: int) -> None:
        """Accept ``Host: host:port`` (and the loopback names when bound there)."""
        names = {host, f"[{host}]"}
        if host in ("127.0.0.1", "::1", "localhost"):
            names |= {"127.0.0.1", "localhost", "[::1]"}
        self.allowed_hosts = frozenset(f"{n}:{port}" for n in names)

    def routes(self) -> dict[str, Route]:
        return {
            "/": self.page,
            "/api/state": self.state,
            "/api/action": self.action,
            "/metrics": metrics_route(registry(self.host, self.recorder)),
        }

    # ---- routes ----------------------------------------------------------------

    def page(self, request: Request) -> Response:
        if request.method != "GET":
            return _json(405, {"error": "GET only"})
        return Response(
            200,
            self._page,
            "text/html; charset=utf-8",
            {
                "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
                "style-src 'unsafe-inline'; img-src data:; connect-src 'self'; "
                "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
                "Referrer-Policy": "no-referrer",
            },
        )

    def state(self, request: Request) -> Response:
        if request.method != "GET":
            return _json(405, {"error": "GET only"})
        snap = self.recorder.snapshot()
        infos = {a.public_key: a for a in self.host.actors()}
        for actor in snap["actors"]:
            info = infos.get(actor["key"])
            if info is not None:
                actor["claims"] = info.claims.to_json()
                actor["signed"] = info.signed
                actor["module_hash"] = info.module_hash
        return _json(
            200,
            {
                "host": {
                    "labels": dict(self.labels()),
                    "uptime": snap["uptime"],
                    "started": snap["started"],
                    "version": self.version,
                },
                "actors": snap["actors"],
                "providers": snap["providers"],
                "bindings": snap["bindings"],
                "errors": snap["errors"],
                "logs": [] if self.logs is None else self.logs.records(100),
            },
        )

    def action(self, request: Request) -> Response:
        refused = self.refusal(request)
        if refused is not None:
            return refused
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            return _json(400, {"ok": False, "error": "the body is not JSON"})
        if not isinstance(body, dict) or body.get("command") not in ACTIONS:
            return _json(
                400,
                {"ok": False, "error": f"command must be one of {', '.join(sorted(ACTIONS))}"},
            )
        answer = json.loads(self.act(json.dumps(body).encode()))
        return _json(200 if answer.get("ok") else 422, answer)

    def refusal(self, request: Request) -> Response | None:
        """Why an action request is refused (None when it may run)."""
        if request.method != "POST":
            return _json(405, {"ok": False, "error": "actions are POST requests"})
        given = request.headers.get(TOKEN_HEADER, "")
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            return _json(
                401, {"ok": False, "error": "a valid X-Wascc-Token header is required for actions"}
            )
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return _json(403, {"ok": False, "error": "actions must be application/json"})
        host = request.headers.get("host", "")
        if self.allowed_hosts and host not in self.allowed_hosts:
            return _json(403, {"ok": False, "error": f"unexpected Host header {host!r}"})
        origin = request.headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            return _json(403, {"ok": False, "error": f"cross-origin request from {origin!r}"})
        return None
