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
start-actor        path, deadline?, memory_limit?,              actor, name
                   min_instances?, max_instances?
stop-actor         actor                                        actor, name
replace-actor      actor, path                                  actor, name
add-provider       path (a provider spec), binding?             capability, binding
remove-provider    capability, binding?
bind               actor, capability, binding?, values?         actor, name
unbind             actor, capability, binding?                  actor, name, removed
call               actor, operation, payload_b64?               reply_b64
top                                                             labels, uptime, actors,
                                                                providers, bindings, errors
=================  ===========================================  =========================

``actor`` is a public key or the unique name of a running actor; answers
name the key it resolved to.  :func:`handlers` serves these commands for
one host; :func:`request` is the client (``wascc ctl`` and ``wascc dev``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import json
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wascc.actor import ActorSettings
from wascc.errors import ControlError, NotFound, WasccError
from wascc.host import Host
from wascc.standalone.manifest import CapabilitySpec
from wascc.wire.capability import normalize_binding

if TYPE_CHECKING:
    from wascc.observe import Recorder
    from wascc.standalone.reconciler import Reconciler

__all__ = [
    "COMMANDS",
    "ControlServer",
    "default_path",
    "handle_line",
    "handlers",
    "inventory",
    "request",
]

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024 * 1024  # a request carries at most a 64 MiB payload, base64'd


def inventory(host: Host, labels: Mapping[str, str]) -> dict[str, Any]:
    """The host's inventory as JSON-ready data."""
    return {
        "labels": dict(labels),
        "actors": [
            {
                "public_key": a.public_key,
                "name": a.name,
                "kind": a.kind,
                "signed": a.signed,
                "claims": a.claims.to_json(),
                "instances": a.instances,
                "calls": a.calls,
                "errors": a.errors,
                "settings": dataclasses.asdict(a.settings),
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
                **{k: v for k, v in p.descriptor.to_json().items() if k != "id"},
                "actors": list(p.actors),
                "state": p.state,
                "pid": p.pid,
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

#: The per-actor settings ``start-actor`` may give (the fields of ActorSettings).
ACTOR_SETTINGS = tuple(f.name for f in dataclasses.fields(ActorSettings))


def handlers(
    host: Host,
    reconciler: Reconciler,
    labels: Callable[[], Mapping[str, str]],
    recorder: Recorder | None = None,
) -> dict[str, Handler]:
    """The commands above, served for ``host``; providers added go through ``reconciler``.

    ``top`` answers the ``recorder``'s snapshot (rates, latencies, recent
    errors); without one it is refused.
    """

    def named(key: str) -> dict[str, Any]:
        try:
            name = host.actor(key).name
        except NotFound:  # an actor running elsewhere in the host's lattice
            name = ""
        return {"actor": key, "name": name}

    def start_actor(m: dict[str, Any]) -> dict[str, Any]:
        settings = {k: m[k] for k in ACTOR_SETTINGS if m.get(k) is not None}
        return named(host.add_actor(Path(m["path"]), **settings))

    def stop_actor(m: dict[str, Any]) -> dict[str, Any]:
        key = host.resolve_actor(m["actor"])
        answer = named(key)
        host.remove_actor(key)
        return answer

    def replace_actor(m: dict[str, Any]) -> dict[str, Any]:
        key = host.resolve_actor(m["actor"])
        return named(host.replace_actor(key, Path(m["path"])))

    def add_provider(m: dict[str, Any]) -> dict[str, Any]:
        spec = CapabilitySpec(m["path"], normalize_binding(m.get("binding")))
        capability, binding = reconciler.add_provider(spec)
        reconciler.reconcile_bindings()
        return {"capability": capability, "binding": binding}

    def remove_provider(m: dict[str, Any]) -> dict[str, Any]:
        host.remove_provider(m["capability"], m.get("binding") or "default")
        return {}

    def bind(m: dict[str, Any]) -> dict[str, Any]:
        values = m.get("values") or {}
        key = host.resolve_actor(m["actor"])
        host.set_binding(
            key,
            m["capability"],
            m.get("binding") or "default",
            {str(k): str(v) for k, v in values.items()},
        )
        return named(key)

    def unbind(m: dict[str, Any]) -> dict[str, Any]:
        key = host.resolve_actor(m["actor"])
        removed = host.remove_binding(key, m["capability"], m.get("binding") or "default")
        return {**named(key), "removed": removed}

    def call(m: dict[str, Any]) -> dict[str, Any]:
        payload = unb64(m.get("payload_b64") or "")
        key = host.resolve_actor(m["actor"])
        return {"reply_b64": b64(host.call_actor(key, m["operation"], payload))}

    def top(m: dict[str, Any]) -> dict[str, Any]:
        if recorder is None:
            raise ControlError("this host records no call statistics (no observer attached)")
        return {"labels": dict(labels()), **recorder.snapshot()}

    return {
        "inventory": lambda m: inventory(host, labels()),
        "top": top,
        "start-actor": start_actor,
        "stop-actor": stop_actor,
        "replace-actor": replace_actor,
        "add-provider": add_provider,
        "remove-provider": remove_provider,
        "bind": bind,
        "unbind": unbind,
        "call": call,
    }


#: The arguments of each command: name -> (JSON type, required).  A request whose
#: arguments do not fit is answered with an error before its handler runs.
COMMANDS: dict[str, dict[str, tuple[type, bool]]] = {
    "inventory": {},
    "start-actor": {
        "path": (str, True),
        "deadline": (float, False),
        "memory_limit": (int, False),
        "min_instances": (int, False),
        "max_instances": (int, False),
    },
    "stop-actor": {"actor": (str, True)},
    "replace-actor": {"actor": (str, True), "path": (str, True)},
    "add-provider": {"path": (str, True), "binding": (str, False)},
    "remove-provider": {"capability": (str, True), "binding": (str, False)},
    "bind": {
        "actor": (str, True),
        "capability": (str, True),
        "binding": (str, False),
        "values": (dict, False),
    },
    "unbind": {"actor": (str, True), "capability": (str, True), "binding": (str, False)},
    "call": {"actor": (str, True), "operation": (str, True), "payload_b64": (str, False)},
    "top": {},
}

DEFAULT_WORKERS = 8  # connections served at once; the others wait in the listen backlog
DEFAULT_IDLE_TIMEOUT = 60.0  # seconds a connection may stay silent before it is closed
_RECV_SIZE = 1 << 16
_JSON_NAMES: dict[type, str] = {
    str: "a string",
    dict: "an object",
    float: "a number",
    int: "an integer",
}


class ControlServer:
    """Serves control requests for one host on a Unix socket (0600).

    A fixed pool of ``workers`` threads each accepts and serves one connection
    at a time; further clients wait in the kernel's listen backlog
    (``SOMAXCONN``) instead of being refused, and no client can make the
    server start threads.  Reads are bounded: a line longer than ``max_line``
    is answered with an error as soon as the limit is passed, then the
    connection is closed.  A connection silent for ``idle_timeout`` seconds
    is closed, so idle clients cannot hold every worker.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        handlers: Mapping[str, Handler],
        *,
        workers: int = DEFAULT_WORKERS,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_line: int = MAX_LINE,
    ) -> None:
        self.path = Path(path)
        self._handlers = dict(handlers)
        self._max_line = max_line
        self._idle_timeout = idle_timeout
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
        self._closing = False
        self._wake_r, self._wake_w = socket.socketpair()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Bound under a temporary name and renamed into place once it listens: a
        # client that sees the path can connect (no window between bind and listen).
        staging = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        old = os.umask(0o177)  # the socket is born 0600
        try:
            staging.unlink(missing_ok=True)
            sock.bind(str(staging))
            os.chmod(staging, 0o600)
            sock.listen(socket.SOMAXCONN)
            os.rename(staging, self.path)
        except OSError as exc:
            sock.close()
            staging.unlink(missing_ok=True)
            raise ControlError(f"cannot listen on {self.path}: {exc.strerror or exc}") from exc
        finally:
            os.umask(old)
        sock.setblocking(False)
        self._sock = sock
        self._threads = [
            threading.Thread(target=self._work, name=f"wascc-control-{i}", daemon=True)
            for i in range(max(1, workers))
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        log.info("control socket listening on %s", self.path)

    def close(self) -> None:
        """Stop accepting connections; requests already read are still answered."""
        if self._closing:
            return
        self._closing = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")  # never read: every worker sees it
        self.path.unlink(missing_ok=True)
        me = threading.current_thread()
        for thread in self._threads:
            if thread is not me and thread.ident is not None:
                thread.join(1.0)
        self._sock.close()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for requests in progress to be answered."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)

    def stop(self) -> None:
        self.close()
        self.wait(5.0)

    # -- the workers --

    def _work(self) -> None:
        """Accept one connection at a time and serve it to the end."""
        while not self._closing:
            if self._closing or _wait_readable(self._sock, self._wake_r, None) != 0:
                return
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                continue  # another worker took it
            except OSError as exc:
                if self._closing:
                    return
                log.error("control socket %s cannot accept: %s", self.path, exc)
                time.sleep(0.1)  # out of descriptors: let some close
                continue
            try:
                self._serve_connection(conn)
            except OSError as exc:
                log.debug("control connection ended: %s", exc)
            except Exception:
                log.exception("control connection failed")
            finally:
                conn.close()

    def _serve_connection(self, conn: socket.socket) -> None:
        """Answer each line in order until the client leaves, idles or oversteps."""
        conn.setblocking(False)
        buffer = bytearray()
        scanned = 0  # bytes of ``buffer`` known to hold no newline
        deadline = time.monotonic() + self._idle_timeout
        while not self._closing:
            newline = buffer.find(b"\n", scanned)
            if newline >= 0:
                line = bytes(buffer[:newline])
                del buffer[: newline + 1]
                scanned = 0
                self._answer(conn, line)
                deadline = time.monotonic() + self._idle_timeout
                continue
            scanned = len(buffer)
            if scanned > self._max_line:
                log.warning(
                    "control socket %s: refused a request line over %d bytes",
                    self.path,
                    self._max_line,
                )
                self._reply(
                    conn, _refusal(f"request too large: a line is at most {self._max_line} bytes")
                )
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.debug(
                    "control socket %s: closed a connection idle for %gs",
                    self.path,
                    self._idle_timeout,
                )
                return
            ready = _wait_readable(conn, self._wake_r, remaining)
            if ready == 1:
                return
            if ready < 0:
                continue
            try:
                chunk = conn.recv(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                continue
            if not chunk:
                return
            buffer += chunk

    def _answer(self, conn: socket.socket, line: bytes) -> None:
        with self._idle:
            self._active += 1
        try:
            self._reply(conn, handle_line(self._handlers, line))
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def _reply(self, conn: socket.socket, answer: bytes) -> None:
        conn.settimeout(self._idle_timeout)  # a client that does not read is cut off
        try:
            conn.sendall(answer)
        finally:
            conn.setblocking(False)


def _wait_readable(sock: socket.socket, wake: socket.socket, timeout: float | None) -> int:
    """0 when ``sock`` is readable, 1 when ``wake`` is (we are closing), -1 on timeout.

    poll(), not select(): a busy host has descriptors past select's limit of 1024.
    """
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    poller.register(wake, select.POLLIN)
    events = poller.poll(None if timeout is None else max(0, int(timeout * 1000) + 1))
    if any(fd == wake.fileno() for fd, _ in events):
        return 1
    return 0 if events else -1


def _refusal(error: str) -> bytes:
    return json.dumps({"ok": False, "error": error}).encode() + b"\n"


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fits(value: object, kind: type) -> bool:
    """JSON's view of a type: any number is a float; true/false are not numbers."""
    if kind in (int, float) and isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


def _check(command: str, message: dict[str, Any]) -> str | None:
    """What is wrong with a request's arguments, or None."""
    spec = COMMANDS.get(command)
    if spec is None:
        return None
    for name, (kind, required) in spec.items():
        value = message.get(name)
        if value is None:
            if required:
                return f"{command}: missing argument {name!r}"
            continue
        if not _fits(value, kind):
            return f"{command}: {name!r} must be {_JSON_NAMES[kind]}, not {_short(value)}"
    values = message.get("values")
    if isinstance(values, dict):
        for key, value in values.items():
            if not isinstance(value, str | int | float | bool):
                return (
                    f"{command}: binding value {_short(key)} must be a string, not {_short(value)}"
                )
    return None


def handle_line(handlers: Mapping[str, Handler], line: bytes) -> bytes:
    """Parse and dispatch one request line; the answer line (always one, never raises)."""
    answer = _serve(handlers, line)
    try:
        return json.dumps(answer).encode() + b"\n"
    except (TypeError, ValueError) as exc:
        log.error("control answer could not be encoded: %s", exc)
        return _refusal(f"the answer could not be encoded: {exc}")


def _serve(handlers: Mapping[str, Handler], line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except RecursionError:
        return {"ok": False, "error": "not a JSON request: nested too deeply"}
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError; an int over 4300 digits
        return {"ok": False, "error": f"not a JSON request: {_short(str(exc), 200)}"}
    if not isinstance(message, dict) or not isinstance(message.get("command"), str):
        return {"ok": False, "error": 'a request is a JSON object with a "command" string'}
    command = message["command"]
    handler = handlers.get(command)
    if handler is None:
        return {
            "ok": False,
            "error": f"unknown command {_short(command)} (known: {', '.join(sorted(handlers))})",
        }
    problem = _check(command, message)
    if problem is not None:
        return {"ok": False, "error": problem}
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
        sent_error: OSError | None = None
        try:
            s.sendall(json.dumps({"command": command, **args}).encode() + b"\n")
        except OSError as exc:  # the host may have refused the request and said why
            sent_error = exc
        parts: list[bytes] = []
        try:
            while not parts or not parts[-1].endswith(b"\n"):
                chunk = s.recv(1 << 16)
                if not chunk:
                    reason = f": {sent_error.strerror or sent_error}" if sent_error else ""
                    raise ControlError(f"the host at {path} closed the connection{reason}")
                parts.append(chunk)
        except OSError as exc:
            raise ControlError(f"no answer from the host at {path}: {exc.strerror or exc}") from exc
        data = b"".join(parts)
    try:
        answer = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ControlError(
            f"the host at {path} answered something that is not JSON: {exc}"
        ) from None
    if not isinstance(answer, dict):
        raise ControlError(f"the host at {path} answered {answer!r}")
    return answer


def default_path() -> Path:
    """Where ``wascc up`` serves its control socket and ``wascc ctl`` looks for it:
    ``$XDG_RUNTIME_DIR/wascc.sock``, else ``~/.wascc/wascc.sock``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime else Path.home() / ".wascc"
    return base / "wascc.sock"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    """Decode a base64 payload; anything that is not base64 is a ``ControlError``."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ControlError(f"the payload is not base64: {exc}") from None
