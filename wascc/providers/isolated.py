"""Native providers in a child process of their own: a crash costs only that provider.

:func:`load_isolated_provider` starts a child program with one end of a
socketpair: ``wascc-provider-child`` (C, built from
``native/host/wascc_provider_child.c``) or ``python -m wascc.providers._child``
(which loads with the same loader as in-process); either ``dlopen``s the
library and speaks the same C ABI to it (the provider cannot tell), and the two speak the
frames of :mod:`wascc.providers._ipc` in both directions: the host's calls
go down, the provider's dispatches to actors come up, and each reply is
matched to its call by id.

Every call has a deadline.  When the child dies (a segfault, an abort, a
kill, a resource limit) or misses a deadline (the host then kills it), every
call in flight fails at once with :class:`~wascc.errors.ProviderCrashed`,
and the provider is restarted after a back-off (``backoff`` seconds,
doubling up to ``backoff_max``), every binding it had is sent again with
its ``BindActor``, and it is reported running again.  ``max_crashes``
crashes within ``crash_window`` seconds and it is given up: it stays
registered, its state says "given up", and its calls fail with that reason.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from wascc._providers import child_program
from wascc.errors import (
    CodecError,
    NativeLoadError,
    ProviderCallError,
    ProviderCrashed,
    ProviderError,
)
from wascc.providers._ipc import (
    CALL,
    DISPATCH,
    DISPATCH_REPLY,
    READY,
    REPLY,
    STOP,
    Frame,
    FrameError,
    encode,
    read_frame,
)
from wascc.providers.base import Dispatcher, ForwardingProvider
from wascc.wire.codec import (
    OP_BIND_ACTOR,
    OP_HEALTH_REQUEST,
    OP_REMOVE_ACTOR,
    SYSTEM_ACTOR,
    CapabilityConfiguration,
    HealthResponse,
)

__all__ = [
    "GIVEN_UP",
    "ISOLATION_KEYS",
    "RESTARTING",
    "RUNNING",
    "STOPPED",
    "IsolatedProvider",
    "IsolationSettings",
    "Limits",
    "load_isolated_provider",
    "parse_isolation",
]

log = logging.getLogger(__name__)

RUNNING = "running"
RESTARTING = "restarting"
GIVEN_UP = "given up"
STOPPED = "stopped"

#: Threads answering the provider's dispatches to actors at once.
MAX_DISPATCH_THREADS = 256
#: Idle reader threads kept per child: with two, one can serve a dispatch while
#: the other reads on, and no thread is started per dispatch.
SPARE_READERS = 2


@dataclass(frozen=True)
class Limits:
    """Resource limits of an isolated provider's process (0: the host's own)."""

    #: RLIMIT_AS in bytes: the child's whole address space, Python and thread
    #: stacks (8 MiB each) included, so leave room above what the provider needs.
    address_space: int = 0
    #: RLIMIT_CPU in seconds of CPU time over the child's life (then it is killed
    #: and restarted like any crash).
    cpu_seconds: int = 0
    #: RLIMIT_NOFILE: descriptors the child may hold open.
    open_files: int = 0

    def argv(self) -> list[str]:
        return [
            f"--address-space={self.address_space}",
            f"--cpu-seconds={self.cpu_seconds}",
            f"--open-files={self.open_files}",
        ]


@dataclass(frozen=True)
class IsolationSettings:
    """How an isolated provider is run, watched and restarted."""

    #: Seconds one call may take before the child is killed and restarted.
    deadline: float = 30.0
    #: Seconds the child has to load the library and say it is ready.
    start_timeout: float = 30.0
    #: First restart delay in seconds; doubles with each crash in the window.
    backoff: float = 1.0
    #: The longest restart delay in seconds.
    backoff_max: float = 30.0
    #: Crashes within ``crash_window`` seconds after which the provider is given up.
    max_crashes: int = 5
    crash_window: float = 300.0
    #: Seconds a stopping provider has to finish its calls before it is killed.
    stop_timeout: float = 10.0
    limits: Limits = field(default_factory=Limits)
    #: The child program: ``c`` (``wascc-provider-child``, built from
    #: native/host/wascc_provider_child.c: no Python in the call path), ``python``
    #: (``python -m wascc.providers._child``), or ``auto``: c when it was built.
    child: str = "auto"

    def child_argv(self) -> list[str]:
        """The command that starts a child (before its own arguments)."""
        if self.child not in ("auto", "c", "python"):
            raise ProviderError(f"child must be auto, c or python, not {self.child!r}")
        program = child_program() if self.child != "python" else None
        if program is not None:
            return [str(program)]
        if self.child == "c":
            raise ProviderError(
                "the C child of isolated providers (wascc-provider-child) is not installed; "
                "reinstall wascc to build native/, or use child = python"
            )
        return [sys.executable, "-m", "wascc.providers._child"]


class _Slot:
    """One call waiting for its reply (or for the news that it will get none)."""

    __slots__ = ("done", "error", "frame")

    def __init__(self) -> None:
        self.done = False
        self.frame: Frame | None = None
        self.error: str | None = None


class _SocketReader:
    """Unbuffered exact reads: what poll() says is readable is all there is to read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def read(self, n: int) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.sock.recv_into(view[got:])
            if k == 0:
                break
            got += k
        return bytes(view[:got])


class _Child:
    """One incarnation of the child process and its end of the socketpair.

    Replies are read leader/follower: a caller waiting for its reply takes the
    reader's role when nobody holds it and reads frames itself (its own reply
    then costs no thread switch); one background thread reads when no caller
    waits (the provider's own dispatches).  ``cv`` guards the role, the pending
    calls and their slots; every frame read wakes the waiters.
    """

    def __init__(self, proc: subprocess.Popen[bytes], sock: socket.socket):
        self.proc = proc
        self.sock = sock
        self.reader = _SocketReader(sock)
        self.poller = select.poll()  # used only by the thread holding the reader's role
        self.poller.register(sock, select.POLLIN)
        self.cv = threading.Condition(threading.Lock())
        self._write = threading.Lock()
        self._pending: dict[int, _Slot] = {}
        self._next = 0
        self.reading = False  # a thread holds the reader's role
        self.waiting = 0  # callers waiting for a reply
        self.eof = False  # the stream ended or broke: nothing more will be read
        self.readers = 0  # background reader threads, and how many of them are idle
        self.idle_readers = 0
        self.dead: str | None = None  # why, once it is dead
        self.kill_reason: str | None = None

    def begin(self) -> tuple[int, _Slot]:
        slot = _Slot()
        with self.cv:
            if self.dead is not None:
                raise ProviderCrashed(self.dead)
            self._next += 1
            self._pending[self._next] = slot
            return self._next, slot

    def forget(self, ident: int) -> None:
        with self.cv:
            self._pending.pop(ident, None)

    def send(self, frame: bytes) -> None:
        with self._write:
            self.sock.sendall(frame)

    def resolve(self, frame: Frame) -> None:
        """A reply arrived (under ``cv``); a reply to a call that gave up is dropped."""
        slot = self._pending.pop(frame.id, None)
        if slot is not None:
            slot.frame = frame
            slot.done = True

    def fail_all(self, why: str) -> None:
        with self.cv:
            self.dead = why
            self.eof = True
            for slot in self._pending.values():
                slot.error = why
                slot.done = True
            self._pending.clear()
            self.cv.notify_all()

    def kill(self, why: str | None) -> None:
        """Kill the process (``why`` becomes the crash's reason unless one is known)."""
        if self.kill_reason is None and why is not None:
            self.kill_reason = why
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        # wake every poll() even if the child's end outlives it (a grandchild holds it)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


def _exit_text(code: int | None) -> str:
    if code is None:
        return "its process stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"its process was killed by {name}"
    return f"its process exited with status {code}"


class IsolatedProvider(ForwardingProvider):
    """A native provider running in a child process, restarted when it dies."""

    native: ClassVar[bool] = True

    restarts_itself: ClassVar[bool] = True

    def __init__(self, path: Path, settings: IsolationSettings | None = None) -> None:
        super().__init__()
        self.path = path
        self.settings = settings or IsolationSettings()
        self.label = f"isolated provider {path.name}"
        self.restarts = 0
        self.last_crash = ""
        self._state = RESTARTING
        self._lock = threading.Lock()
        self._crashes: deque[float] = deque()
        self._bindings: dict[str, bytes] = {}  # actor -> its last BindActor payload
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(
            MAX_DISPATCH_THREADS, thread_name_prefix=f"wascc-dispatch {path.name}"
        )
        self._child: _Child | None = self._spawn()
        self._state = RUNNING

    # ---- state -------------------------------------------------------------

    @property
    def state(self) -> str:
        """running, restarting, given up or stopped."""
        return self._state

    @property
    def pid(self) -> int | None:
        """The child's process id while one runs."""
        child = self._child
        return None if child is None else child.proc.pid

    def _unavailable(self) -> str:
        if self._state == GIVEN_UP:
            return (
                f"{self.label} was given up after {len(self._crashes)} crashes within "
                f"{self.settings.crash_window:g}s (last: {self.last_crash})"
            )
        if self._state == STOPPED:
            return f"{self.label} has been stopped"
        return f"{self.label} is restarting after a crash ({self.last_crash})"

    # ---- the child ---------------------------------------------------------

    def _spawn(self) -> _Child:
        """Start a child, wait for READY; a ProviderError says why it did not come up."""
        program = self.settings.child_argv()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = [
            *program,
            f"--fd={theirs.fileno()}",
            f"--library={self.path}",
            *self.settings.limits.argv(),
        ]
        try:
            proc = subprocess.Popen(argv, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        except OSError as exc:
            ours.close()
            raise ProviderError(f"{self.label}: cannot start its process: {exc}") from exc
        finally:
            theirs.close()
        child = _Child(proc, ours)
        ours.settimeout(self.settings.start_timeout)
        try:
            ready = read_frame(child.reader)
        except (OSError, FrameError) as exc:
            child.kill("did not start")
            proc.wait()
            raise ProviderError(
                f"{self.label} did not say it was ready within "
                f"{self.settings.start_timeout:g}s: {exc}"
            ) from exc
        if ready is None or ready.kind != READY:
            child.kill("did not start")
            code = proc.wait()
            raise ProviderError(f"{self.label} failed to start: {_exit_text(code)}")
        if not ready.ok:
            proc.wait()
            ours.close()
            why = ready.payload.decode("utf-8", "replace")
            if ready.op.isdigit() and int(ready.op) in NativeLoadError.REASONS:
                raise NativeLoadError(why, int(ready.op))
            raise ProviderError(f"{self.label} failed to start: {why}")
        ours.settimeout(None)
        with child.cv:
            child.readers = child.idle_readers = SPARE_READERS
        for _ in range(SPARE_READERS):
            self._start_reader(child)
        threading.Thread(
            target=self._monitor, args=(child,), name=f"wascc-monitor {self.path.name}", daemon=True
        ).start()
        return child

    def _pump(self, child: _Child, timeout: float, inline: bool) -> Frame | None:
        """One turn as the reader: wait up to ``timeout`` for a frame, read it, handle it.

        Called without ``cv`` by the thread that holds the reader's role.  A
        dispatch is returned to be served by this thread when ``inline``, else
        handed to the pool (a caller must get back to its own call).
        """
        try:
            if not child.poller.poll(max(timeout, 0.0) * 1000):
                return None
            frame = read_frame(child.reader)
            if frame is None:
                raise EOFError
            if frame.kind == REPLY:
                with child.cv:
                    child.resolve(frame)
            elif frame.kind == DISPATCH:
                if inline:
                    return frame
                self._pool.submit(self._dispatch, child, frame)
            else:
                raise FrameError(f"a child may not send frames of kind {frame.kind}")
        except FrameError as exc:
            child.eof = True
            child.kill(f"it broke the protocol ({exc}); killed")
        except (OSError, ValueError, EOFError):
            child.eof = True  # it died or is being killed: the monitor says why
            child.kill(None)
        return None

    def _take_turn(self, child: _Child, timeout: float, inline: bool = False) -> Frame | None:
        """With ``cv`` held and the role free: read one frame, then hand the role back."""
        child.reading = True
        child.cv.release()
        try:
            return self._pump(child, timeout, inline)
        finally:
            child.cv.acquire()
            child.reading = False
            child.cv.notify_all()

    def _background(self, child: _Child) -> None:
        """Read while no caller waits: the provider's own dispatches, late replies, the end.

        These threads poll without holding the reader's role, so a caller that
        arrives meanwhile takes the role and reads its own reply.  The one that
        reads a dispatch serves it itself (no thread switch) once another is
        idle to read on: one is started when the last idle one takes a dispatch,
        and one finding ``SPARE_READERS`` idle after its dispatch ends.
        """
        poller = select.poll()
        poller.register(child.sock, select.POLLIN)
        while not child.eof:
            with child.cv:
                while child.waiting and not child.eof:
                    child.cv.wait()
            try:
                ready = poller.poll(500)
            except OSError:
                ready = []
            if not ready:
                continue
            spawn = False
            with child.cv:
                if child.eof:
                    break
                if child.reading or child.waiting:
                    continue  # a caller holds or will take the role and reads it
                frame = self._take_turn(child, 0.0, inline=True)
                if frame is not None:
                    child.idle_readers -= 1
                    if child.idle_readers == 0 and child.readers < MAX_DISPATCH_THREADS:
                        child.readers += 1
                        child.idle_readers += 1
                        spawn = True
            if frame is None:
                continue
            if spawn:
                self._start_reader(child)
            self._dispatch(child, frame)
            with child.cv:
                if child.idle_readers >= SPARE_READERS:
                    child.readers -= 1
                    return
                child.idle_readers += 1

    def _start_reader(self, child: _Child) -> None:
        threading.Thread(
            target=self._background,
            args=(child,),
            name=f"wascc-reader {self.path.name}",
            daemon=True,
        ).start()

    def _monitor(self, child: _Child) -> None:
        """Wait for the child's process to end, then count the crash and restart."""
        code = child.proc.wait()
        reason = child.kill_reason or _exit_text(code)
        child.eof = True
        with contextlib.suppress(OSError):
            child.sock.shutdown(socket.SHUT_RDWR)
        self._died(child, reason)
        with child.cv:
            while child.reading:  # let the last reader finish before the socket goes
                child.cv.wait(1.0)
        child.sock.close()

    def _dispatch(self, child: _Child, frame: Frame) -> None:
        dispatcher: Dispatcher | None = self.dispatcher
        try:
            if dispatcher is None:
                raise ProviderError(f"{self.label} has no dispatcher yet")
            data, ok = dispatcher.dispatch(frame.actor, frame.op, frame.payload), True
        except Exception as exc:
            data, ok = str(exc).encode(), False
        try:
            try:
                child.send(encode(DISPATCH_REPLY, frame.id, ok, "", "", data))
            except FrameError as exc:  # an answer too large to send: say so instead
                child.send(encode(DISPATCH_REPLY, frame.id, False, "", "", str(exc).encode()))
        except OSError:
            pass  # the child died; its caller died with it

    # ---- crashes and restarts ----------------------------------------------

    def _died(self, child: _Child, reason: str) -> None:
        child.fail_all(f"{self.label} crashed: {reason}; the call was not answered")
        with self._lock:
            if self._child is not child:
                return
            self._child = None
            if self._state == STOPPED:
                return
            delay = self._crashed(reason)
        if delay is not None:
            self._schedule(delay)

    def _crashed(self, reason: str) -> float | None:
        """Count a crash (under the lock): the restart delay, or None when given up."""
        now = time.monotonic()
        self._crashes.append(now)
        while self._crashes and now - self._crashes[0] > self.settings.crash_window:
            self._crashes.popleft()
        self.last_crash = reason
        recent = len(self._crashes)
        if recent >= self.settings.max_crashes:
            self._state = GIVEN_UP
            log.error(
                "%s crashed (%s): %d crashes within %gs, giving it up",
                self.label,
                reason,
                recent,
                self.settings.crash_window,
            )
            return None
        self._state = RESTARTING
        delay: float = min(self.settings.backoff * 2.0 ** (recent - 1), self.settings.backoff_max)
        log.error("%s crashed (%s); restarting it in %gs", self.label, reason, delay)
        return delay

    def _schedule(self, delay: float) -> None:
        threading.Thread(
            target=self._restart, args=(delay,), name=f"wascc-restart {self.path.name}", daemon=True
        ).start()

    def _restart(self, delay: float) -> None:
        if self._stopping.wait(delay):
            return
        try:
            child = self._spawn()
        except ProviderError as exc:
            with self._lock:
                if self._state == STOPPED:
                    return
                again = self._crashed(f"restart failed: {exc}")
            if again is not None:
                self._schedule(again)
            return
        with self._lock:
            if self._state == STOPPED:
                child.kill("the provider was stopped")
                return
            self._child = child
            bindings = list(self._bindings.items())
        rebound = 0
        for actor, payload in bindings:
            try:
                self._call(child, SYSTEM_ACTOR, OP_BIND_ACTOR, payload)
                rebound += 1
            except ProviderCrashed:
                return  # it died again; the reader has counted it and scheduled the next try
            except ProviderCallError as exc:
                log.error("%s refused to re-bind %s after its restart: %s", self.label, actor, exc)
        with self._lock:
            if self._child is not child or self._state != RESTARTING:
                return
            self._state = RUNNING
            self.restarts += 1
        log.warning(
            "%s is running again (restart %d, pid %d); %d binding(s) re-sent",
            self.label,
            self.restarts,
            child.proc.pid,
            rebound,
        )

    # ---- calls -------------------------------------------------------------

    def _call(self, child: _Child, actor: str, operation: str, payload: bytes) -> bytes:
        ident, slot = child.begin()
        deadline = self.settings.deadline
        ends = time.monotonic() + deadline
        try:
            child.send(encode(CALL, ident, True, actor, operation, payload))
        except FrameError as exc:
            child.forget(ident)
            raise ProviderCallError(f"{self.label}: {exc}") from exc
        except OSError:
            pass  # the child is dying: the monitor fails this call with the reason
        with child.cv:
            child.waiting += 1
            try:
                while not slot.done:
                    left = ends - time.monotonic()
                    if left <= 0:
                        break
                    if child.reading or child.eof:
                        child.cv.wait(left)
                    else:
                        self._take_turn(child, left)
            finally:
                child.waiting -= 1
                if not slot.done:
                    child._pending.pop(ident, None)
                child.cv.notify_all()
        if not slot.done:
            why = f"it missed the {deadline:g}s deadline of {operation}; killed"
            child.kill(why)
            self._died(child, why)  # now, not when the monitor notices: no call waits on it
            raise ProviderCrashed(f"{self.label} {why}; the call was not answered")
        if slot.error is not None:
            raise ProviderCrashed(slot.error)
        reply = slot.frame
        assert reply is not None
        if not reply.ok:
            raise ProviderCallError(reply.payload.decode("utf-8", "replace") or "failed")
        return reply.payload

    def handle_call(self, actor: str, operation: str, msg: bytes) -> bytes:
        child = self._child
        if self._state != RUNNING or child is None:
            if operation == OP_HEALTH_REQUEST and actor == SYSTEM_ACTOR:
                return HealthResponse(healthy=False, message=self._unavailable()).encode()
            raise ProviderCrashed(self._unavailable())
        reply = self._call(child, actor, operation, msg)
        if actor == SYSTEM_ACTOR and operation in (OP_BIND_ACTOR, OP_REMOVE_ACTOR):
            try:
                module = CapabilityConfiguration.decode(msg).module
            except CodecError:
                return reply
            with self._lock:
                if operation == OP_BIND_ACTOR:
                    self._bindings[module] = msg
                else:
                    self._bindings.pop(module, None)
        return reply

    def stop(self) -> None:
        """Ask the child to stop its provider and exit; kill it if it does not."""
        with self._lock:
            if self._state == STOPPED:
                return
            self._state = STOPPED
            child = self._child
        self._stopping.set()
        if child is not None:
            timeout = self.settings.stop_timeout
            try:
                child.send(encode(STOP, 0, True, "", "", str(timeout).encode()))
                child.proc.wait(timeout + 1)
            except (OSError, subprocess.TimeoutExpired):
                child.kill("did not stop in time")
                log.error("%s did not stop within %gs; killed", self.label, timeout)
            child.fail_all(f"{self.label} was stopped; the call was not answered")
        self._pool.shutdown(wait=False)

    def __repr__(self) -> str:
        return f"IsolatedProvider({self.path})"


def load_isolated_provider(
    path: str | os.PathLike[str], settings: IsolationSettings | None = None
) -> IsolatedProvider:
    """Start a native provider library in a child process; ready for ``Host.add_provider``."""
    file = Path(path)
    if not file.is_file():
        raise ProviderError(f"native provider {file} does not exist or is not a file")
    try:
        provider = IsolatedProvider(file.resolve(), settings)
    except NativeLoadError as exc:
        limits = (settings or IsolationSettings()).limits
        if exc.reason == "not loadable" and limits.address_space:
            kind = (
                f"could not be loaded under its address-space limit of {limits.address_space} bytes"
            )
        else:
            kind = "is not a shared object" if exc.reason == "not loadable" else "was refused"
        raise ProviderError(f"native provider {file} {kind}: {exc}") from exc
    try:
        provider.descriptor()
    except (ProviderCallError, ProviderCrashed, CodecError) as exc:
        provider.stop()
        raise ProviderError(f"native provider {file} did not describe itself: {exc}") from exc
    return provider


#: The keys a manifest capability entry or a provider sidecar may give about isolation.
ISOLATION_KEYS = frozenset(
    {
        "isolate",
        "deadline",
        "start_timeout",
        "restart_backoff",
        "restart_backoff_max",
        "max_crashes",
        "crash_window",
        "limits",
        "child",
    }
)
LIMIT_KEYS = ("address_space", "cpu_seconds", "open_files")
_SECONDS = {
    "deadline": "deadline",
    "start_timeout": "start_timeout",
    "restart_backoff": "backoff",
    "restart_backoff_max": "backoff_max",
    "crash_window": "crash_window",
}


def _number(value: object, key: str, *, whole: bool, least: float) -> float:
    kinds: tuple[type, ...] = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ValueError(f"{key} must be {'a whole' if whole else 'a'} number, not {value!r}")
    number = float(value)  # type: ignore[arg-type]
    if not least <= number < 1e18:
        raise ValueError(f"{key} must be at least {least:g}, not {value!r}")
    return number


def parse_isolation(entry: Mapping[str, object]) -> tuple[bool | None, IsolationSettings | None]:
    """``isolate`` (None: not said) and the settings a manifest entry or sidecar gives.

    Only the keys of :data:`ISOLATION_KEYS` are read; a bad value is a
    ValueError naming its key.  Settings without ``isolate = true`` are refused
    (they would silently do nothing for an in-process provider) unless
    ``isolate`` is left out, when they apply if the host isolates every provider.
    """
    isolate = entry.get("isolate")
    if isolate is not None and not isinstance(isolate, bool):
        raise ValueError(f"isolate must be true or false, not {isolate!r}")
    given: dict[str, Any] = {}
    for key, name in _SECONDS.items():
        if entry.get(key) is not None:
            given[name] = _number(entry[key], key, whole=False, least=0.001)
    if entry.get("child") is not None:
        if entry["child"] not in ("auto", "c", "python"):
            raise ValueError(f"child must be auto, c or python, not {entry['child']!r}")
        given["child"] = entry["child"]
    if entry.get("max_crashes") is not None:
        crashes = _number(entry["max_crashes"], "max_crashes", whole=True, least=1)
        given["max_crashes"] = int(crashes)
    limits = entry.get("limits")
    if limits is not None:
        if not isinstance(limits, Mapping):
            raise ValueError(f"limits must be a table of {', '.join(LIMIT_KEYS)}")
        unknown = sorted(str(k) for k in limits if k not in LIMIT_KEYS)
        if unknown:
            raise ValueError(f"limits: unknown key {unknown[0]!r} (known: {', '.join(LIMIT_KEYS)})")
        given["limits"] = Limits(
            **{
                k: int(_number(v, f"limits.{k}", whole=True, least=1))
                for k, v in limits.items()
                if v is not None
            }
        )
    if isolate is False and given:
        raise ValueError(
            f"{', '.join(sorted(given))} apply to isolated providers only, and isolate is false"
        )
    if not given:
        return isolate, None
    return isolate, IsolationSettings(**given)
