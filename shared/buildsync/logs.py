"""Structured logs: one JSON object per line, in the shape Cloud Logging reads.

Every event is a `severity`, a `message` and named fields, which Cloud Logging
shows as `jsonPayload`. Code logs through `event`, so a field never ends up
formatted into the message text where no one can filter on it.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any, TextIO

LOGGER = logging.getLogger("buildsync")

_SEVERITIES = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}


class JsonLineFormatter(logging.Formatter):
    """Formats a record as one JSON line with Cloud Logging's field names."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITIES.get(record.levelno, "DEFAULT"),
            "message": record.getMessage(),
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(),
            "logger": record.name,
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(stream: TextIO = sys.stdout, level: int = logging.INFO) -> None:
    """Sends buildsync's events to `stream` as JSON lines; safe to call twice."""
    LOGGER.setLevel(level)
    LOGGER.propagate = True
    for handler in list(LOGGER.handlers):
        if isinstance(handler.formatter, JsonLineFormatter):
            LOGGER.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    LOGGER.addHandler(handler)
    # Our handler writes the line; the root logger would write it a second time.
    LOGGER.propagate = False


def event(severity: str, message: str, **fields: Any) -> None:
    """Logs one event; `fields` become searchable jsonPayload fields."""
    LOGGER.log(logging.getLevelName(severity), message, extra={"fields": fields})
