"""Health checks: the host asks every provider, on an interval, if it is well.

A provider that answers unhealthy, fails, answers garbage, or does not
answer within the timeout is removed by the host (its bindings dropped, the
event logged at ERROR).  Each check runs in a daemon thread of its own, so a
provider that hangs costs one abandoned thread, never the monitor.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from wascc.wire.codec import OP_HEALTH_REQUEST, SYSTEM_ACTOR, HealthRequest, HealthResponse

__all__ = ["HealthMonitor", "HealthReport", "check"]

log = logging.getLogger(__name__)

_REQUEST = HealthRequest(placeholder=True).encode()


@dataclass(frozen=True)
class HealthReport:
    healthy: bool
    message: str


def check(call: Callable[[str, str, bytes], bytes], timeout: float, what: str) -> HealthReport:
    """Send ``HealthRequest`` through ``call`` and judge the answer within ``timeout``."""
    box: list[HealthReport] = []

    def run() -> None:
        try:
            reply = call(SYSTEM_ACTOR, OP_HEALTH_REQUEST, _REQUEST)
            response = HealthResponse.decode(reply)
            box.append(HealthReport(response.healthy, response.message))
        except Exception as exc:
            box.append(HealthReport(False, f"health check failed: {exc}"))

    worker = threading.Thread(target=run, name=f"wascc-health {what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if not box:
        return HealthReport(False, f"no answer to HealthRequest within {timeout:g}s")
    return box[0]


class HealthMonitor:
    """A thread that runs ``sweep`` every ``interval`` seconds until stopped."""

    def __init__(self, sweep: Callable[[], object], interval: float) -> None:
        self.interval = interval
        self._sweep = sweep
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None and self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="wascc-health", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._sweep()
            except Exception:
                log.exception("health sweep failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None
