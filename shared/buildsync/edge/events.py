"""The edge between Pub/Sub and the core: unwrap an event, run a stage, map its errors.

This is the only place that decides what a function answers:
- success, or a PermanentError: return normally, so Pub/Sub drops the message
  (a permanent error is first logged at ERROR, with the message id);
- a TransientError or an unexpected exception: raise, so the function answers
  500 and Pub/Sub redelivers (with backoff, then to the dead-letter topic).
"""

from __future__ import annotations

import base64
import binascii
import datetime
from typing import Any, Callable

from cloudevents.http import CloudEvent

from buildsync import logs, metrics
from buildsync.edge.runtime import current_runtime
from buildsync.errors import MessageError, PermanentError, SupersededError, TransientError


def message_data(event: CloudEvent) -> bytes:
    """The decoded `data` of the Pub/Sub message inside `event`."""
    message = event.data.get("message") if isinstance(event.data, dict) else None
    if not isinstance(message, dict) or not isinstance(message.get("data", ""), str):
        raise MessageError("event carries no Pub/Sub message")
    try:
        return base64.b64decode(message.get("data", ""), validate=True)
    except (binascii.Error, ValueError) as error:
        raise MessageError(f"Pub/Sub message data is not base64: {error}") from error


def event_age(event: CloudEvent, now: datetime.datetime) -> datetime.timedelta | None:
    try:
        published = datetime.datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return now - published if published.tzinfo else None


def _deployed_max_age() -> datetime.timedelta:
    return current_runtime().max_event_age


def handle(
    event: CloudEvent,
    stage: str,
    work: Callable[[bytes], Any],
    max_age: Callable[[], datetime.timedelta] = _deployed_max_age,
) -> None:
    """Runs `work` on the message data of `event` and maps its outcome (see module doc).

    An event published more than `max_age()` ago (the process's Runtime says
    how long) is dropped without work.
    """
    fields = {"stage": stage, "message_id": event.get("id")}
    age = event_age(event, datetime.datetime.now(datetime.timezone.utc))
    try:
        if age is not None and age > max_age():
            metrics.message_dropped(stage, "published too long ago", age.total_seconds(), message_id=event.get("id"))
            return
        work(message_data(event))
    except SupersededError as error:
        age_seconds = error.age.total_seconds()
        metrics.message_dropped(stage, error.reason, age_seconds, detail=str(error), message_id=event.get("id"))
    except PermanentError as error:
        metrics.permanent_error(stage, error, message_id=event.get("id"))
    except TransientError as error:
        logs.event("WARNING", f"{stage}: {error}", error_type=type(error).__name__, retry=True, **fields)
        raise
    except Exception:
        # A bug, not a verdict on the message: retry, and let dead letters bound it.
        logs.LOGGER.exception(f"{stage}: unexpected error", extra={"fields": {"retry": True, **fields}})
        raise
