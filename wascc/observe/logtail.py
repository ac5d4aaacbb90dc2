"""The last log records of the host, kept in memory for the dashboard.

A :class:`LogTail` is a ``logging.Handler`` holding the newest
:data:`TAIL` records as small dicts (time, level, logger, message and the
host-event fields of :mod:`wascc.logs`).  The daemon attaches it to the
``wascc`` logger; nothing is written anywhere else by it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

__all__ = ["TAIL", "LogTail"]

#: Records kept.
TAIL = 200
_FIELDS = ("actor", "capability", "binding", "operation", "outcome")


class LogTail(logging.Handler):
    """Keeps the newest log records; :meth:`records` copies them out (oldest first)."""

    def __init__(self, size: int = TAIL, level: int = logging.INFO) -> None:
        super().__init__(level)
        self._records: deque[dict[str, Any]] = deque(maxlen=size)
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry: dict[str, Any] = {
                "time": record.created,
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
            }
        except Exception:  # a record whose arguments do not format
            self.handleError(record)
            return
        for name in _FIELDS:
            found = getattr(record, name, None)
            if found is not None:
                entry[name] = str(found)
        with self._guard:
            self._records.append(entry)

    def records(self, limit: int = TAIL) -> list[dict[str, Any]]:
        with self._guard:
            return list(self._records)[-limit:]

    def attach(self, logger: str = "wascc") -> LogTail:
        """Start keeping ``logger``'s records (and its children's); returns self."""
        logging.getLogger(logger).addHandler(self)
        return self

    def detach(self, logger: str = "wascc") -> None:
        logging.getLogger(logger).removeHandler(self)
