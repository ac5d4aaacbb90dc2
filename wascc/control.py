"""The control socket: manage a running host from ``wascc ctl``.

A Unix domain socket (mode 0600: only the host's user may connect).  Each
request is one JSON object on one line, ``{"command": ..., ...}``; each
answer is one line, ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``.

Commands and their arguments:

=================  ===========================================  =========================
command            arguments                                    answer
=================  ===========================================  =========================
inventory                                                       actors, providers,
                                                                bindings, labels
start-actor        path                                         actor (public key)
stop-actor         actor
replace-actor      actor, path
add-provider       path (a provider spec), binding?             capability, binding
remove-provider    capability, binding?
bind               actor, capability, binding?, values?
unbind             actor, capability, binding?                  removed (bool)
call               actor, operation, payload_b64?               reply_b64
=================  ===========================================  =========================
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wascc.errors import WasccError

if TYPE_CHECKING:
    from wascc.host import Host

__all__ = ["ControlError", "ControlServer", "inventory", "request"]

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024 * 1024  # a request carries at most a 64 MiB payload, base64'd


class ControlError(WasccError):
    """The control socket could not be reached, or it refused a request."""


def inventory(host: Host, labels: Mapping[str, str]) -> dict[str, Any]:
    """The host's inventory as JSON-ready data."""
    return {
        "labels": dict(labels),
        "actors": [
            {
                "public_key": a.public_key,
                "name": a.name,
                "signed": a.signed,
                "claims": a.claims.to_json(),
                "instances": a.instances,
                "calls": a.calls,
                "health": None
                if a.health is None
                else {"healthy": a.health.healthy, "message": a.health.message},
            }
            for a in host.actors()
        ],
        "providers": [
            {
                "capability_id": p.capability_id,
                "binding": p.binding,
                "name": p.descriptor.name,
                "version": p.descriptor.version,
                "revision": p.descriptor.revision,
                "description": p.descriptor.long_description,
                "operations": [
                    {"name": o.name, "direction": o.direction.value, "doctext": o.doctext}
                    for o in p.descriptor.supported_operations
                ],
                "actors": list(p.actors),
            }
            for p in host.providers()
        ],
        "bindings": [
            {
                "actor": b.actor,
                "capability": b.capability_id,
                "binding": b.binding,
                "values": dict(b.values),
            }
            for b in host.bindings()
        ],
    }


Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlServer:
    """Serves control requests for one host on a Unix socket (0600)."""

    def __init__(self, path: str | os.PathLike[str], handlers: Mapping[str, Handler]) -> None:
        self.path = Path(path)
        self._handlers = dict(handlers)
        if self.path.exists() or self.path.is_symlink():
            if not self.path.is_socket():
                raise ControlError(
                    f"{self.path} exists and is not a socket; refusing to replace it"
                )
            if _alive(self.path):
                raise ControlError(f"{self.path}: another host is listening there")
            self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._active = 0
        self._idle = threading.Condition()
        server = self

        class _Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for line in self.rfile:
                    with server._idle:
                        server._active += 1
                    try:
                        if len(line) > MAX_LINE:
                            answer = {"ok": False, "error": "request too large"}
                        else:
                            answer = _serve(server._handlers, line)
                        self.wfile.write(json.dumps(answer).encode() + b"\n")
                        self.wfile.flush()
                    finally:
                        with server._idle:
                            server._active -= 1
                            server._idle.notify_all()

        old = os.umask(0o177)  # the socket is born 0600
        try:
            self._server = socketserver.ThreadingUnixStreamServer(str(self.path), _Handler)
        finally:
            os.umask(old)
        self._server.daemon_threads = True
        os.chmod(self.path, 0o600)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="wascc-control", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        log.info("control socket listening on %s", self.path)

    def close(self) -> None:
        """Stop accepting connections; requests already read are still answered."""
        self._server.shutdown()
        self._server.server_close()
        self.path.unlink(missing_ok=True)

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for requests in progress to be answered."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)

    def stop(self) -> None:
        self.close()
        self.wait(5.0)


def _serve(handlers: Mapping[str, Handler], line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return {"ok": False, "error": f"not a JSON request: {exc}"}
    if not isinstance(message, dict) or not isinstance(message.get("command"), str):
        return {"ok": False, "error": 'a request is a JSON object with a "command"'}
    command = message["command"]
    handler = handlers.get(command)
    if handler is None:
        return {
            "ok": False,
            "error": f"unknown command {command!r} (known: {', '.join(sorted(handlers))})",
        }
    try:
        return {"ok": True, **handler(message)}
    except KeyError as exc:
        return {"ok": False, "error": f"{command}: missing argument {exc}"}
    except WasccError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:
        log.exception("control command %s failed", command)
        return {"ok": False, "error": f"{command} failed: {exc}"}


def _alive(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def request(
    path: str | os.PathLike[str], command: str, /, *, timeout: float = 60.0, **args: Any
) -> dict[str, Any]:
    """Send one command to the host at ``path``; the answer (``ok`` says if it worked)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
        except OSError as exc:
            raise ControlError(f"cannot reach a host at {path}: {exc.strerror or exc}") from exc
        s.sendall(json.dumps({"command": command, **args}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(1 << 16)
            if not chunk:
                raise ControlError(f"the host at {path} closed the connection")
            data += chunk
    answer = json.loads(data)
    if not isinstance(answer, dict):
        raise ControlError(f"the host at {path} answered {answer!r}")
    return answer


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode())
