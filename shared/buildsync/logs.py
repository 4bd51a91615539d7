"""Structured logs: one JSON object per line, in the shape Cloud Logging reads.

Every event is a `severity`, a `message` and named fields, which Cloud Logging
shows as `jsonPayload`. Code logs through `event`, so a field never ends up
formatted into the message text where no one can filter on it.

Lines written while a function handles a request carry that request's trace
(`logging.googleapis.com/trace`, from `traceparent` or `X-Cloud-Trace-Context`)
and functions-framework's execution id (`logging.googleapis.com/labels`).
functions-framework serves a function inside a Flask request context, so the
headers are read from there; the context lives in a contextvar, which a thread
pool carries along through `in_current_context`.

We keep this small formatter rather than google-cloud-logging's
StructuredLogHandler: it needs nothing beyond the standard library, while
importing google-cloud-logging costs every cold start its client stack
(README, "Logs").
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import re
import sys
import traceback
from typing import Any, Callable, Mapping, TextIO, TypeVar

from buildsync import env

LOGGER = logging.getLogger("buildsync")

_SEVERITIES = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}

TRACE_FIELD = "logging.googleapis.com/trace"
SPAN_FIELD = "logging.googleapis.com/spanId"
SAMPLED_FIELD = "logging.googleapis.com/trace_sampled"
LABELS_FIELD = "logging.googleapis.com/labels"
REPORTED_ERROR_TYPE = "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"

# Cloud Logging rejects an entry over 256 KB. A string field is cut at
# MAX_FIELD_CHARS and a list at MAX_LIST_ITEMS; a line still over
# MAX_LINE_BYTES is cut again, harder, and then loses all but _ALWAYS_KEPT.
# JSON is written ASCII-only (escapes for the rest), so its length is bytes.
MAX_FIELD_CHARS = 8_192
MAX_LIST_ITEMS = 1_000
MAX_LINE_BYTES = 64_000
_HARD_FIELD_CHARS = 512
_HARD_LIST_ITEMS = 50
_ALWAYS_KEPT = (
    *("severity", "message", "time", "logger", "truncated", "stage", "message_id"),
    *(TRACE_FIELD, SPAN_FIELD, SAMPLED_FIELD, LABELS_FIELD),
    *("@type", "serviceContext", "context"),
)

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-(?P<flags>[0-9a-f]{2})$")
_CLOUD_TRACE = re.compile(r"^(?P<trace>[0-9a-fA-F]{32})(?:/(?P<span>\d+))?(?:;o=(?P<sampled>[01]))?$")

T = TypeVar("T")


def trace_fields(headers: Mapping[str, str], project: str | None) -> dict[str, Any]:
    """The Cloud Logging trace fields for a request with `headers` (empty without a trace or project)."""
    if not project:
        return {}
    if match := _TRACEPARENT.match(headers.get("traceparent", "").strip().lower()):
        if set(match["trace"]) != {"0"}:
            return {
                TRACE_FIELD: f"projects/{project}/traces/{match['trace']}",
                SPAN_FIELD: match["span"],
                SAMPLED_FIELD: int(match["flags"], 16) & 1 == 1,
            }
    if match := _CLOUD_TRACE.match(headers.get("X-Cloud-Trace-Context", "").strip()):
        fields: dict[str, Any] = {TRACE_FIELD: f"projects/{project}/traces/{match['trace'].lower()}"}
        if match["span"]:
            fields[SPAN_FIELD] = format(int(match["span"]) % 2**64, "016x")
        if match["sampled"]:
            fields[SAMPLED_FIELD] = match["sampled"] == "1"
        return fields
    return {}


def _request_fields() -> dict[str, Any]:
    """Trace and execution id of the request being served, if functions-framework serves one."""
    flask = sys.modules.get("flask")  # never imported here: only a served function has it loaded
    if flask is None or not flask.has_request_context():
        return {}
    headers = flask.request.headers
    fields = trace_fields(headers, env.text(env.PROJECT))
    execution_id = headers.get("Function-Execution-Id")
    if execution_id:
        fields[LABELS_FIELD] = {"execution_id": execution_id}
    return fields


def in_current_context(function: Callable[..., T]) -> Callable[..., T]:
    """`function`, run in a copy of the caller's context, so pool threads log with its trace."""
    context = contextvars.copy_context()
    return lambda *args, **kwargs: context.copy().run(function, *args, **kwargs)


def bounded(value: Any, max_chars: int = MAX_FIELD_CHARS, max_items: int = MAX_LIST_ITEMS) -> Any:
    """`value` with long strings and lists cut, saying how much was cut."""
    if isinstance(value, str):
        if len(value) <= max_chars:
            return value
        return f"{value[:max_chars]}… [{len(value) - max_chars} more characters]"
    if isinstance(value, Mapping):
        return {str(key): bounded(item, max_chars, max_items) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        kept = [bounded(item, max_chars, max_items) for item in items[:max_items]]
        if len(items) > max_items:
            kept.append(f"… [{len(items) - max_items} more items]")
        return kept
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return bounded(str(value), max_chars, max_items)


class JsonLineFormatter(logging.Formatter):
    """Formats a record as one JSON line with Cloud Logging's field names, well under its size limit."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITIES.get(record.levelno, "DEFAULT"),
            "message": record.getMessage(),
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(),
            "logger": record.name,
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            text = self.formatException(record.exc_info)
            # A traceback's end says most: keep that when it is cut.
            entry["exception"] = text if len(text) <= MAX_FIELD_CHARS else "… " + text[2 - MAX_FIELD_CHARS :]
        entry.update(_request_fields())
        line = json.dumps(bounded(entry))
        if len(line) > MAX_LINE_BYTES:
            entry["truncated"] = True
            line = json.dumps(bounded(entry, _HARD_FIELD_CHARS, _HARD_LIST_ITEMS))
        if len(line) > MAX_LINE_BYTES:  # very many fields: keep what says what happened
            kept = {name: entry[name] for name in _ALWAYS_KEPT if name in entry}
            kept["dropped_fields"] = sorted(set(entry) - set(kept))
            line = json.dumps(bounded(kept, _HARD_FIELD_CHARS, _HARD_LIST_ITEMS))
        return line


class _LineHandler(logging.Handler):
    """Writes each line with one write call to `stream`, or to whatever sys.stdout is at that moment.

    functions-framework swaps sys.stdout per request (to add the execution id
    when LOG_EXECUTION_ID is set), so the stream is looked up for every line
    rather than kept from import time.
    """

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__()
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stdout if self.stream is None else self.stream
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def configure(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Sends buildsync's events as JSON lines to `stream` (default: the current stdout); safe to call twice."""
    LOGGER.setLevel(level)
    for handler in list(LOGGER.handlers):
        if isinstance(handler.formatter, JsonLineFormatter):
            LOGGER.removeHandler(handler)
    handler = _LineHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    LOGGER.addHandler(handler)
    # Our handler writes the line; the root logger would write it a second time.
    LOGGER.propagate = False


def event(severity: str, message: str, **fields: Any) -> None:
    """Logs one event; `fields` become searchable jsonPayload fields."""
    LOGGER.log(logging.getLevelName(severity), message, extra={"fields": fields})


def reported_error(message: str, error: BaseException, **fields: Any) -> None:
    """Logs an ERROR that Error Reporting picks up (its ReportedErrorEvent @type), located where `error` was raised."""
    frames = traceback.extract_tb(error.__traceback__) if error.__traceback__ else []
    where = frames[-1] if frames else None
    event(
        "ERROR",
        message,
        **{"@type": REPORTED_ERROR_TYPE},
        serviceContext={
            "service": env.text(env.SERVICE) or "buildsync",
            "version": env.text(env.REVISION) or "local",
        },
        context={
            "reportLocation": {
                "filePath": where.filename if where else "unknown",
                "lineNumber": where.lineno if where else 0,
                "functionName": where.name if where else "unknown",
            }
        },
        **fields,
    )
