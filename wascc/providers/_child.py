"""The child process of an isolated native provider (``python -m wascc.providers._child``).

Started by :class:`wascc.providers.isolated.IsolatedProvider` with one end of
a socketpair.  It applies the operator's resource limits, ``dlopen``s the
provider with :class:`~wascc.engine.library.NativeLibrary` (the same loader
as in-process, so the provider cannot tell the difference), hands it a
dispatcher that forwards every dispatch to the host, says READY, and then
serves the host's calls leader/follower (:class:`_Workers`) until the host
says STOP or goes away (end of stream: the child exits at once, so a dead
host never leaves an orphaned provider behind).

``native/host/wascc_provider_child.c`` is the same program in C, used when it
was built (:attr:`IsolationSettings.child <wascc.providers.isolated.IsolationSettings>`);
this one is the fallback and the reference.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import sys
import threading
from typing import BinaryIO

from wascc.engine.library import NativeLibrary
from wascc.errors import NativeLoadError
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

#: Threads serving the host's calls at once; more calls wait for one (the host's
#: deadline still runs for them).
MAX_CALL_THREADS = 256


class _Pending:
    __slots__ = ("event", "frame")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.frame: Frame | None = None


class _Channel:
    """The child's end of the socketpair: writes under a lock, dispatches wait for replies."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._write = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self._next = 0

    def send(self, kind: int, ident: int, ok: bool, actor: str, op: str, payload: bytes) -> None:
        frame = encode(kind, ident, ok, actor, op, payload)
        with self._write:
            self.sock.sendall(frame)

    def dispatch(self, actor: str, operation: str, payload: bytes) -> bytes:
        """The provider's dispatcher: ask the host, wait for its answer."""
        slot = _Pending()
        with self._lock:
            self._next += 1
            ident = self._next
            self._pending[ident] = slot
        try:
            self.send(DISPATCH, ident, True, actor, operation, payload)
            slot.event.wait()
        finally:
            with self._lock:
                self._pending.pop(ident, None)
        reply = slot.frame
        assert reply is not None
        if not reply.ok:
            raise RuntimeError(reply.payload.decode("utf-8", "replace"))
        return reply.payload

    def answered(self, frame: Frame) -> None:
        with self._lock:
            slot = self._pending.get(frame.id)
        if slot is not None:
            slot.frame = frame
            slot.event.set()


def apply_limits(address_space: int, cpu_seconds: int, open_files: int) -> None:
    """The operator's limits (0: unchanged), set before the provider is loaded."""
    if address_space:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    if cpu_seconds:
        # SIGXCPU at the soft limit, SIGKILL a second later: either ends the child
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    if open_files:
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))


class _Workers:
    """Leader/follower threads: whoever holds the read lock reads the next frame, hands
    the lock on, then serves that frame itself, so a call never waits for a thread switch.

    One thread is always left waiting for the lock (a new one is started when the
    last idle thread takes a frame), so a call blocked in the provider - or waiting
    for its dispatch's reply - never stops the next frame from being read.
    """

    def __init__(self, channel: _Channel, library: NativeLibrary, reader: BinaryIO) -> None:
        self.channel = channel
        self.library = library
        self.reader = reader
        self._read = threading.Lock()
        self._count = threading.Lock()
        self.idle = 0
        self.threads = 0

    def start(self) -> None:
        with self._count:
            if self.threads >= MAX_CALL_THREADS:
                return  # every thread busy: frames wait for one (the host's deadline runs)
            self.threads += 1
            self.idle += 1
        threading.Thread(target=self._run, name="wascc-isolated-call", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._read:
                try:
                    frame = read_frame(self.reader)
                except (OSError, FrameError):
                    frame = None
            if frame is None:
                os._exit(0)  # the host is gone: never outlive it
            if frame.kind == DISPATCH_REPLY:
                self.channel.answered(frame)
                continue
            if frame.kind == STOP:
                self.library.stop(float(frame.payload or b"10"))
                self.channel.sock.close()
                os._exit(0)
            if frame.kind != CALL:
                continue
            with self._count:
                self.idle -= 1
                last = self.idle == 0
            if last:
                self.start()
            self._serve(frame)
            with self._count:
                self.idle += 1

    def _serve(self, frame: Frame) -> None:
        try:
            ok, data = self.library.call(frame.actor, frame.op, frame.payload)
        except BaseException as exc:  # the call's own failure, never the child's
            ok, data = False, f"{type(exc).__name__}: {exc}".encode()
        try:
            try:
                self.channel.send(REPLY, frame.id, ok, "", "", data)
            except FrameError as exc:  # a reply too large to send: say so instead
                self.channel.send(REPLY, frame.id, False, "", "", str(exc).encode())
        except OSError:
            pass  # the host is gone; the reader sees the end of the stream and exits


def serve(channel: _Channel, library: NativeLibrary, reader: BinaryIO) -> None:
    """Answer the host's calls until STOP or the end of the stream (never returns)."""
    workers = _Workers(channel, library, reader)
    workers.start()
    threading.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wascc-isolated-provider")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--library", required=True)
    parser.add_argument("--address-space", type=int, default=0)
    parser.add_argument("--cpu-seconds", type=int, default=0)
    parser.add_argument("--open-files", type=int, default=0)
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.fd)
    reader = sock.makefile("rb")
    channel = _Channel(sock)
    try:
        apply_limits(args.address_space, args.cpu_seconds, args.open_files)
    except (ValueError, OSError) as exc:
        channel.send(READY, 0, False, "", "0", f"cannot set the resource limits: {exc}".encode())
        return 3
    try:
        library = NativeLibrary(args.library)
    except NativeLoadError as exc:
        code = next((c for c, r in NativeLoadError.REASONS.items() if r == exc.reason), 0)
        channel.send(READY, 0, False, "", str(code), str(exc).encode())
        return 3
    status = library.configure(channel.dispatch)
    if status != 0:
        channel.send(READY, 0, False, "", "0", f"configure_dispatch returned {status}".encode())
        return 3
    channel.send(READY, 0, True, "", "", str(os.getpid()).encode())
    serve(channel, library, reader)
    return 0


if __name__ == "__main__":
    sys.exit(main())
