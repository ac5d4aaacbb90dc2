"""One NATS connection on an asyncio loop of its own, reached from host threads.

nats-py is asyncio; the host's threads are not.  :class:`Bus` runs one event
loop in a daemon thread; host threads hand it coroutines through
:meth:`Bus.run` (and wait) or :meth:`Bus.spawn` (and do not).  Messages that
arrive are answered from a thread pool (:meth:`Bus.serve`), never on the
loop, so a slow actor cannot stall the connection.  nats-py reconnects
forever with backoff and replays every subscription; ``on_reconnect`` lets the
owner re-announce itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.kv import KeyValue

from wascc.errors import LatticeError

__all__ = ["Bus"]

log = logging.getLogger(__name__)
T = TypeVar("T")

Handler = Callable[[bytes], bytes | None]


class Bus:
    """A lattice member's NATS connection, its loop thread and its workers."""

    def __init__(self, name: str, *, workers: int = 32) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix=name)
        self.nc: Client | None = None
        self.kv: KeyValue | None = None
        self.connected = threading.Event()
        self.on_reconnect: Callable[[], Awaitable[None]] | None = None
        self.closing = False

    # ---- loop plumbing ------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait up to ``timeout`` seconds (a host thread only)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Start ``coro`` on the loop without waiting; its failure is logged."""

        def done(future: concurrent.futures.Future[Any]) -> None:
            exc = future.exception() if not future.cancelled() else None
            if exc is not None:
                log.warning("lattice: %s", exc)

        asyncio.run_coroutine_threadsafe(coro, self.loop).add_done_callback(done)

    def submit(self, work: Callable[[], None]) -> None:
        """Run blocking ``work`` on a worker thread (never on the loop)."""
        self._pool.submit(work)

    # ---- connection ---------------------------------------------------------------

    def connect(self, url: str, *, creds: Path | None, timeout: float, client_name: str) -> None:
        """Connect (or raise LatticeError); afterwards reconnect forever."""

        async def disconnected() -> None:
            self.connected.clear()
            if self.closing:
                return
            log.warning("lattice: disconnected from NATS; local calls go on, reconnecting")

        async def reconnected() -> None:
            self.connected.set()
            log.info("lattice: reconnected to NATS")
            if self.on_reconnect is not None:
                await self.on_reconnect()

        async def error(exc: Exception) -> None:
            log.debug("lattice: NATS: %s", exc)

        async def go() -> Client:
            return await nats.connect(
                servers=[u.strip() for u in url.split(",")],
                name=client_name,
                user_credentials=str(creds) if creds else None,
                connect_timeout=timeout,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
                error_cb=error,
            )

        try:
            self.nc = self.run(go(), timeout * 2 + 1)
        except Exception as exc:
            raise LatticeError(f"cannot join the lattice at {url}: {_describe(exc)}") from exc
        self.connected.set()

    def open_bucket(self, bucket: str, timeout: float) -> KeyValue:
        """The JetStream key-value bucket, made if missing (JetStream must be on)."""

        async def go() -> KeyValue:
            assert self.nc is not None
            js = self.nc.jetstream(timeout=timeout)
            try:
                return await js.key_value(bucket)
            except Exception:
                return await js.create_key_value(bucket=bucket, history=1)

        try:
            self.kv = self.run(go(), timeout * 3)
        except Exception as exc:
            raise LatticeError(
                f"cannot open the lattice's JetStream bucket {bucket}: {_describe(exc)} "
                "(is JetStream enabled on the NATS server? nats-server -js)"
            ) from exc
        return self.kv

    async def subscribe(self, subject: str, handler: Handler, *, queue: str = "") -> Subscription:
        """Serve ``subject``: each message's data goes to ``handler`` on a worker;
        its return value (when not None and the message has a reply subject) is the reply."""
        assert self.nc is not None
        loop = self.loop
        pool = self._pool

        async def on_message(msg: Msg) -> None:
            reply = await loop.run_in_executor(pool, handler, msg.data)
            if reply is not None and msg.reply:
                try:
                    await msg.respond(reply)
                except Exception as exc:
                    log.warning("lattice: could not answer on %s: %s", msg.reply, exc)

        sub = await self.nc.subscribe(subject, queue=queue, cb=on_message)
        await self.nc.flush()
        return sub

    def close(self, timeout: float = 3.0) -> None:
        """Drain the connection, stop the workers and the loop."""
        self.closing = True

        async def go() -> None:
            if self.nc is not None and not self.nc.is_closed:
                try:
                    await asyncio.wait_for(self.nc.drain(), timeout)
                except Exception:
                    await self.nc.close()

        if self.loop.is_running():
            try:
                self.run(go(), timeout + 1)
            except Exception as exc:
                log.debug("lattice: closing: %s", exc)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, nats.errors.NoServersError):
        return "no NATS server answered"
    if isinstance(exc, TimeoutError | concurrent.futures.TimeoutError | nats.errors.TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
