"""The systemd notify protocol: tell the service manager READY, RELOADING, STOPPING.

A datagram of ``KEY=VALUE`` lines to the socket named by ``$NOTIFY_SOCKET``
(``@`` means the abstract namespace); see sd_notify(3).  Written here rather
than taken from a package: it is one datagram, and the packages that wrap it
are unmaintained or pull in libsystemd.
"""

from __future__ import annotations

import logging
import os
import socket
import time

__all__ = ["notify"]

log = logging.getLogger(__name__)


def notify(*states: str) -> bool:
    """Send ``states`` (e.g. "READY=1") when run under systemd; False otherwise."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    message = "\n".join(states)
    if "RELOADING=1" in states:  # Type=notify-reload wants the time of the reload
        message += f"\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(address)
            s.sendall(message.encode())
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", address, exc)
        return False
    return True
