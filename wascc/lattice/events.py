"""Lattice events: CloudEvents 1.0 JSON on ``P.events`` (CONTRACTS section 5).

``data`` is a string holding the externally tagged BusEvent JSON, as the
original wrote it: ``{"HostStarted": "N..."}``, ``{"ActorStarted": {"actor",
"host"}}``, ``{"ActorBindingCreated": {"host", "actor", "capid",
"instance_name"}}``...  **wascc** adds ``HostHeartbeat`` (every few seconds)
and ``HostLost`` (a peer that stopped heartbeating), and ``HostStarted`` is
published again after a reconnect.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from wascc.errors import LatticeError
from wascc.wire import boundedjson

__all__ = ["SOURCE", "BusEvent", "cloud_event", "read_event"]

SOURCE = "https://wascc.dev/lattice/events"
_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


class BusEvent:
    """Builders of the BusEvent variants (externally tagged)."""

    @staticmethod
    def host_started(host: str) -> dict[str, Any]:
        return {"HostStarted": host}

    @staticmethod
    def host_stopped(host: str) -> dict[str, Any]:
        return {"HostStopped": host}

    @staticmethod
    def host_lost(host: str, reporter: str) -> dict[str, Any]:
        return {"HostLost": {"host": host, "reported_by": reporter}}

    @staticmethod
    def heartbeat(
        host: str, labels: dict[str, str], uptime_ms: int, **counts: int
    ) -> dict[str, Any]:
        return {"HostHeartbeat": {"host": host, "labels": labels, "uptime_ms": uptime_ms, **counts}}

    @staticmethod
    def actor(kind: str, actor: str, host: str) -> dict[str, Any]:
        return {kind: {"actor": actor, "host": host}}

    @staticmethod
    def provider(kind: str, capid: str, binding: str, host: str) -> dict[str, Any]:
        return {kind: {"capid": capid, "instance_name": binding, "host": host}}

    @staticmethod
    def binding(kind: str, actor: str, capid: str, binding: str, host: str) -> dict[str, Any]:
        return {kind: {"host": host, "actor": actor, "capid": capid, "instance_name": binding}}


def cloud_event(event: dict[str, Any]) -> bytes:
    """One BusEvent as a CloudEvent (type ``wasmbus.events.<snake_name>``)."""
    (name,) = event
    body = {
        "specversion": "1.0",
        "type": f"wasmbus.events.{_SNAKE.sub('_', name).lower()}",
        "source": SOURCE,
        "id": str(uuid.uuid4()),
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": json.dumps(event, separators=(",", ":")),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def read_event(raw: bytes) -> tuple[str, dict[str, Any] | str, dict[str, Any]]:
    """(variant name, its body, the whole CloudEvent) of a message on ``P.events``."""
    envelope = boundedjson.loads(
        raw, what="a lattice event", error=LatticeError, max_bytes=1 << 20, max_depth=16
    )
    if not isinstance(envelope, dict) or not isinstance(envelope.get("data"), str):
        raise LatticeError("a lattice event is not a CloudEvent with a string `data`")
    data = boundedjson.loads(
        envelope["data"], what="a lattice event's data", error=LatticeError,
        max_bytes=1 << 20, max_depth=16,
    )  # fmt: skip
    if not isinstance(data, dict) or len(data) != 1:
        raise LatticeError("a lattice event's data is not one externally tagged BusEvent")
    ((name, body),) = data.items()
    return str(name), body, envelope
