"""The process environment: every variable buildsync reads, read here alone.

The functions (through runtime.py) and the CLI read the same variables with
the same policy: an unset or empty variable means its default, and any other
value that is not what the variable holds is a SettingsError naming the
variable and the value, never silently replaced by the default.
"""

from __future__ import annotations

import datetime
import os
from typing import Mapping

from buildsync.errors import SettingsError

Environ = Mapping[str, str]

PROJECT = "GOOGLE_CLOUD_PROJECT"
SETTINGS = "BUILDSYNC_SETTINGS"
SHARD_TOPIC = "BUILDSYNC_SHARD_TOPIC"
SYNC_TOPIC = "BUILDSYNC_SYNC_TOPIC"
BUILDS_TOPIC = "BUILDSYNC_BUILDS_TOPIC"
BUILDS_TOPIC_COMPRESSION = "BUILDSYNC_BUILDS_TOPIC_COMPRESSION"
FETCH_DEADLINE = "BUILDSYNC_FETCH_DEADLINE_SECONDS"
SWEEP_MIN_AGE_SECONDS = "BUILDSYNC_SWEEP_MIN_AGE_SECONDS"
MAX_EVENT_AGE = "BUILDSYNC_MAX_EVENT_AGE_SECONDS"
BACKEND_OPTIONS = "BUILDSYNC_BACKEND_OPTIONS"
TRANSACTION_BEGIN = "BUILDSYNC_TRANSACTION_BEGIN"
# Who does an ended build's follow-up work (README "Choosing the completion mode").
COMPLETION = "BUILDSYNC_COMPLETION"
BUILDBUCKET_QUEUES = "BUILDSYNC_BUILDBUCKET_QUEUES"
BUILDBUCKET_PUSH = "BUILDSYNC_BUILDBUCKET_PUSH"
BUILDBUCKET_PUSH_AS = "BUILDSYNC_BUILDBUCKET_PUSH_AS"
CLOUD_TASKS_ENDPOINT = "BUILDSYNC_CLOUD_TASKS_ENDPOINT"
# Buildbucket's Redis, whose dscache entries a BuildStatus write must invalidate.
DSCACHE_REDIS = "BUILDSYNC_DSCACHE_REDIS"
# Set by Cloud Functions (Cloud Run): the function's name and revision, for Error Reporting.
SERVICE = "K_SERVICE"
REVISION = "K_REVISION"

DEFAULT_SHARD_TOPIC = "buildsync-shard"
DEFAULT_SYNC_TOPIC = "buildsync-sync"

# An event older than this is dropped: the scheduler has since planned newer
# runs that cover the same builds (docs/platform.md "Cloud Functions": the event-age check).
# A few minutes, so that a backlog cannot multiply work; deploy/ keeps it
# above the retry budget (max_event_age_seconds).
DEFAULT_MAX_EVENT_AGE = datetime.timedelta(minutes=10)


def text(name: str, environ: Environ = os.environ) -> str | None:
    """The value of `name`, or None when it is unset or empty."""
    return environ.get(name) or None


def required(name: str, environ: Environ = os.environ) -> str:
    value = text(name, environ)
    if value is None:
        raise SettingsError(f"{name} is not set")
    return value


def seconds(name: str, default: float, environ: Environ = os.environ, *, allow_zero: bool = True) -> float:
    """A number of seconds: 0 or more (more than 0 unless `allow_zero`), or `default` when unset."""
    value = text(name, environ)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not (number >= 0 if allow_zero else number > 0):  # also rejects nan
        least = "0 or more" if allow_zero else "more than 0"
        raise SettingsError(f"{name}={value!r}: expected a number of seconds, {least}")
    return number


def max_event_age(environ: Environ = os.environ) -> datetime.timedelta:
    default = DEFAULT_MAX_EVENT_AGE.total_seconds()
    return datetime.timedelta(seconds=seconds(MAX_EVENT_AGE, default, environ, allow_zero=False))
