"""Python capability providers used by the tests (real providers, not mocks)."""

from __future__ import annotations

import threading
from typing import Any

from wascc import CapabilityProvider
from wascc.wire.codec import (
    CapabilityConfiguration,
    CapabilityDescriptor,
    Direction,
    HealthResponse,
    OperationDescriptor,
)

TESTING = "wascc:testing"


class RecordingProvider(CapabilityProvider):
    """Echo, Fail, Garbage and Dispatch operations; records the lifecycle it sees."""

    capability_id = TESTING

    def __init__(self, capability_id: str = TESTING) -> None:
        super().__init__()
        self.cap = capability_id
        self.binds: list[CapabilityConfiguration] = []
        self.removes: list[CapabilityConfiguration] = []
        self.calls: list[tuple[str, str, bytes]] = []
        self.stopped = threading.Event()
        self.health_answer: Any = HealthResponse(healthy=True, message="fine")
        self.lock = threading.Lock()

    def descriptor(self) -> CapabilityDescriptor:
        return CapabilityDescriptor(
            id=self.cap,
            name="recording test provider",
            version="1.0",
            revision=3,
            long_description="used by the wascc test suite",
            supported_operations=(
                OperationDescriptor("Echo", Direction.TO_PROVIDER, "returns the payload"),
                OperationDescriptor("Fail", Direction.TO_PROVIDER, "raises"),
            ),
        )

    def handle(self, actor: str, operation: str, msg: bytes) -> bytes:
        with self.lock:
            self.calls.append((actor, operation, msg))
        if operation == "Echo":
            return msg
        if operation == "Fail":
            raise RuntimeError(f"provider refused: {msg.decode()}")
        if operation == "Dispatch":
            # msg = target actor key + ":" + operation + ":" + payload
            target, op, payload = msg.split(b":", 2)
            assert self.dispatcher is not None
            return self.dispatcher.dispatch(target.decode(), op.decode(), payload)
        raise ValueError(f"unknown operation {operation}")

    def bind_actor(self, config: CapabilityConfiguration) -> None:
        self.binds.append(config)

    def remove_actor(self, config: CapabilityConfiguration) -> None:
        self.removes.append(config)

    def health(self) -> HealthResponse:
        answer = self.health_answer
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            return answer()  # type: ignore[no-any-return]
        return answer  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.stopped.set()
