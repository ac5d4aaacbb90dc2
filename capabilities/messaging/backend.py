"""What every messaging backend offers the provider, and the in-process one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from .broker import Broker, Sink

__all__ = ["Backend", "BackendStatus", "LocalBackend"]


@dataclass(frozen=True, slots=True)
class BackendStatus:
    """A connection's state for health checks and ``stats()``."""

    connected: bool
    detail: str
    disconnects: int = 0
    reconnects: int = 0
    publish_refused: int = 0  # publishes refused while disconnected (buffer full)
    transport_dropped: int = 0  # messages the client library dropped (slow consumer)


class Backend(ABC):
    """One connection to a broker, used by one binding (or shared: the in-process broker).

    ``subscribe`` hands each message to ``sink`` from the backend's own thread;
    ``sink`` never blocks.  ``publish`` and ``request`` are called from actor
    threads and raise ``ProviderCallError`` with a message naming the subject.
    """

    name: str = ""

    @abstractmethod
    def subscribe(self, subject: str, queue_group: str, sink: Sink) -> object:
        """Start delivering ``subject`` to ``sink``; a handle for :meth:`unsubscribe`."""

    @abstractmethod
    def unsubscribe(self, handle: object) -> None:
        """Stop one subscription."""

    @abstractmethod
    def publish(self, subject: str, reply_to: str, body: bytes) -> None:
        """Send one message (the binding's QoS and retain apply over MQTT)."""

    @abstractmethod
    def request(self, subject: str, body: bytes, timeout: float) -> bytes:
        """Send with a reply subject and wait ``timeout`` seconds for the first reply's body."""

    @abstractmethod
    def status(self) -> BackendStatus:
        """Connected or not, and the counters of what the connection lost."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection (idempotent)."""


class LocalBackend(Backend):
    """The embedded broker, shared by every binding without a ``URL``."""

    name = "in-process"

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def subscribe(self, subject: str, queue_group: str, sink: Sink) -> object:
        return self.broker.subscribe(subject, sink, queue_group)

    def unsubscribe(self, handle: object) -> None:
        assert isinstance(handle, int)
        self.broker.unsubscribe(handle)

    def publish(self, subject: str, reply_to: str, body: bytes) -> None:
        self.broker.publish(subject, body, reply_to)

    def request(self, subject: str, body: bytes, timeout: float) -> bytes:
        return self.broker.request(subject, body, timeout)

    def status(self) -> BackendStatus:
        return BackendStatus(True, f"in-process broker, {self.broker.subscriptions} subscriptions")

    def close(self) -> None:
        """The broker outlives bindings; nothing to release."""
