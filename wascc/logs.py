"""Log output for the standalone host: text for people, JSON lines for machines.

Library modules only log (``logging.getLogger(__name__)``); the CLI calls
:func:`configure`.  Actor console lines arrive on the ``wascc.actor``
logger with ``actor`` and ``actor_name`` fields; Python providers add a
``provider`` field; host events (actors started, bound, providers added...)
carry ``actor``, ``capability``, ``binding``, ``operation`` and ``outcome``
(:func:`fields`); the HTTP server's access log ``method``, ``path``,
``status`` and ``duration_us``.  JSON lines show every field as a key.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any

__all__ = ["FIELDS", "JsonFormatter", "TextFormatter", "configure", "fields", "provider_logger"]

#: The structured fields a log line may carry (JSON lines show each as a key).
FIELDS = (
    "actor",
    "actor_name",
    "provider",
    "capability",
    "binding",
    "operation",
    "outcome",
    "duration_us",
    "method",
    "path",
    "status",
)


def fields(
    actor: str | None = None,
    capability: str | None = None,
    binding: str | None = None,
    operation: str | None = None,
    outcome: str | None = None,
) -> dict[str, str]:
    """``extra=`` for a host event: the actor, capability, binding, operation and outcome."""
    given = {
        "actor": actor,
        "capability": capability,
        "binding": binding,
        "operation": operation,
        "outcome": outcome,
    }
    return {k: v for k, v in given.items() if v is not None}


class _ProviderAdapter(logging.LoggerAdapter[logging.Logger]):
    """Adds ``provider`` to every line and keeps the caller's own ``extra`` fields
    (the standard adapter replaces them)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def provider_logger(name: str, capability_id: str) -> logging.LoggerAdapter[logging.Logger]:
    """A provider module's logger: every line carries ``provider=capability_id``."""
    return _ProviderAdapter(logging.getLogger(name), {"provider": capability_id})


class TextFormatter(logging.Formatter):
    """``2026-11-21T10:00:00.123Z INFO wascc.host: message [actor=M...]``"""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{base}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.formatTime(record)} {record.levelname} {record.name}: {record.getMessage()}"
        extras = [f"{k}={getattr(record, k)}" for k in ("provider",) if hasattr(record, k)]
        if extras:
            line += f" [{' '.join(extras)}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(TextFormatter):
    """One JSON object per line: time, level, logger, message, and the wascc fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str = "info", fmt: str = "text") -> None:
    """Send every wascc log line to stderr in ``fmt`` (text or json) at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
