"""Asking a lattice, without being a host: inventory queries, the bindings bucket, events.

Inventory follows the protocol: an empty request on ``P.inventory.{kind}``,
every host answers, and the caller collects answers until its window closes
(``inventory_window``, separate from the RPC timeout, unlike the original's
one ``LATTICE_RPC_TIMEOUT_MILLIS``).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats.errors
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NoKeysError

from wascc.errors import LatticeError
from wascc.lattice.bus import Bus
from wascc.lattice.config import Subjects
from wascc.lattice.events import read_event

__all__ = ["INVENTORY_KINDS", "LatticeClient"]

INVENTORY_KINDS = ("hosts", "actors", "bindings", "capabilities")


class LatticeClient:
    """A connection for tools (``wascc lattice``); use it as a context manager."""

    def __init__(
        self,
        url: str,
        namespace: str = "",
        *,
        creds: Path | None = None,
        inventory_window: float = 0.5,
        timeout: float = 5.0,
    ) -> None:
        self.subjects = Subjects(namespace.lower())
        self.window = inventory_window
        self.timeout = timeout
        self.bus = Bus("wascc-lattice-client", workers=2)
        try:
            self.bus.connect(url, creds=creds, timeout=timeout, client_name="wascc lattice")
        except BaseException:
            self.bus.close()
            raise

    def __enter__(self) -> LatticeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.bus.close()

    def inventory(self, kind: str) -> list[Any]:
        """Every host's answer to ``P.inventory.{kind}`` within the window (JSON values)."""
        if kind not in INVENTORY_KINDS:
            raise LatticeError(f"unknown inventory {kind!r} (one of {', '.join(INVENTORY_KINDS)})")
        answers = []
        for raw in self._collect(self.subjects.inventory(kind), b""):
            try:
                answers.append(json.loads(raw))
            except ValueError:
                continue
        return answers

    def _collect(self, subject: str, body: bytes) -> list[bytes]:
        """Publish ``body`` and collect every reply until the window closes."""

        async def ask() -> list[bytes]:
            nc = self.bus.nc
            assert nc is not None
            inbox = nc.new_inbox()
            got: list[bytes] = []
            sub = await nc.subscribe(inbox)
            await nc.publish(subject, body, reply=inbox)
            loop = asyncio.get_running_loop()
            end = loop.time() + self.window
            while (left := end - loop.time()) > 0:
                try:
                    msg = await sub.next_msg(timeout=left)
                except Exception:
                    break
                got.append(msg.data)
            await sub.unsubscribe()
            return got

        return self.bus.run(ask(), self.window + self.timeout)

    def control(self, host: str, what: str, body: dict[str, Any]) -> dict[str, Any]:
        """One command to one host (``actor.launch``, ``provider.terminate``...); its answer.

        A refusal (``{"error": ...}``), no such host or no answer is a LatticeError.
        """
        subject = self.subjects.control(host, what)

        async def ask() -> bytes:
            nc = self.bus.nc
            assert nc is not None
            msg = await nc.request(subject, json.dumps(body).encode(), timeout=self.timeout)
            return bytes(msg.data)

        try:
            answer = json.loads(self.bus.run(ask(), self.timeout + 1))
        except nats.errors.NoRespondersError as exc:
            raise LatticeError(f"no host {host} answers in the lattice") from exc
        except Exception as exc:
            raise LatticeError(f"{what} on host {host}: {exc or type(exc).__name__}") from exc
        if not isinstance(answer, dict):
            raise LatticeError(f"{what} on host {host}: the answer is not a JSON object")
        if "error" in answer:
            raise LatticeError(f"{what} on host {host} refused: {answer['error']}")
        return answer

    def auction(
        self,
        constraints: dict[str, str],
        *,
        actor: str = "",
        provider: str = "",
        binding: str = "default",
    ) -> list[str]:
        """The hosts that bid (labels match, not running it already), in answer order."""
        if provider:
            subject = f"{self.subjects.prefix}.control.provauction.request"
            body = {"provider_ref": provider, "binding_name": binding, "constraints": constraints}
        else:
            subject = f"{self.subjects.prefix}.control.auction.request"
            body = {"actor_id": actor, "constraints": constraints}
        hosts = []
        for raw in self._collect(subject, json.dumps(body).encode()):
            try:
                bid = json.loads(raw)
            except ValueError:
                continue
            if isinstance(bid, dict) and isinstance(bid.get("host_id"), str):
                hosts.append(bid["host_id"])
        return hosts

    def recorded_bindings(self) -> list[dict[str, Any]]:
        """The lattice's bindings as its JetStream bucket holds them (also those of no host now)."""

        async def read() -> list[dict[str, Any]]:
            nc = self.bus.nc
            assert nc is not None
            try:
                kv = await nc.jetstream(timeout=self.timeout).key_value(self.subjects.bucket)
                keys = await kv.keys()
            except (BucketNotFoundError, NoKeysError):
                return []
            found = []
            for key in keys:
                if key.startswith("binding."):
                    try:
                        entry = await kv.get(key)
                    except KeyNotFoundError:
                        continue
                    if entry.value:
                        found.append(json.loads(entry.value))
            return found

        try:
            return self.bus.run(read(), self.timeout * 2)
        except Exception as exc:
            raise LatticeError(f"cannot read the lattice's bindings: {exc}") from exc

    def follow(
        self,
        on_event: Callable[[str, Any, dict[str, Any]], None],
        stop: threading.Event,
        timeout: float | None = None,
    ) -> None:
        """Call ``on_event(name, body, cloud_event)`` for each event until ``stop`` is set
        (or ``timeout`` seconds pass)."""

        def handle(data: bytes) -> None:
            try:
                name, body, envelope = read_event(data)
            except LatticeError:
                return
            on_event(name, body, envelope)

        async def sub() -> Any:
            return await self.bus.subscribe(self.subjects.events, handle)

        subscription = self.bus.run(sub(), self.timeout)
        try:
            stop.wait(timeout)
        finally:
            self.bus.run(subscription.unsubscribe(), self.timeout)
