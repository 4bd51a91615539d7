"""The process environment: every variable buildsync reads, read here alone.

The functions (through runtime.py) and the CLI read the same variables with
the same policy: an unset or empty variable means its default, and any other
value that is not what the variable holds is a SettingsError naming the
variable and the value, never silently replaced by the default.
"""

from __future__ import annotations

import datetime
import os
from typing import TYPE_CHECKING, Mapping

from buildsync.errors import SettingsError

if TYPE_CHECKING:
    from buildsync.backend_options import DeploymentOptions
    from buildsync.completion import Targets
    from buildsync.transactions import TransactionBegin

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


def fetch_deadline_seconds(environ: Environ = os.environ) -> float:
    """The deadline of each FetchTasks call, for the functions and the CLI alike."""
    # Defaults stay with the module whose rule they are; imported here, when
    # read, so that env.py imports nothing and anything may import it.
    from buildsync.backend import DEFAULT_DEADLINE_SECONDS

    return seconds(FETCH_DEADLINE, DEFAULT_DEADLINE_SECONDS, environ, allow_zero=False)


def sweep_min_age(environ: Environ = os.environ) -> datetime.timedelta:
    from buildsync.outbox import SWEEP_MIN_AGE

    return datetime.timedelta(seconds=seconds(SWEEP_MIN_AGE_SECONDS, SWEEP_MIN_AGE.total_seconds(), environ))


def max_event_age(environ: Environ = os.environ) -> datetime.timedelta:
    default = DEFAULT_MAX_EVENT_AGE.total_seconds()
    return datetime.timedelta(seconds=seconds(MAX_EVENT_AGE, default, environ, allow_zero=False))


def completion_targets(environ: Environ = os.environ, project: str | None = None) -> Targets:
    """Where ended builds are announced: BUILDSYNC_BUILDS_TOPIC (unset: nowhere) and its compression (ZLIB or ZSTD).

    The functions and the CLI both read them here, so both end builds alike.
    """
    from buildsync.completion import Targets
    from buildsync.proto import notification_pb2 as npb
    from buildsync.publishing import topic_path

    builds_topic = text(BUILDS_TOPIC, environ)
    if builds_topic and not project and not builds_topic.startswith("projects/"):
        raise SettingsError(f"{BUILDS_TOPIC}={builds_topic!r} needs {PROJECT} or a full path")
    name = (text(BUILDS_TOPIC_COMPRESSION, environ) or "ZLIB").upper()
    if name not in npb.Compression.keys():
        raise SettingsError(f"{BUILDS_TOPIC_COMPRESSION}={name!r}: expected one of {', '.join(npb.Compression.keys())}")
    return Targets(
        builds_topic=topic_path(project or "", builds_topic) if builds_topic else None,
        builds_compression=npb.Compression.Value(name),
    )


def backend_options(environ: Environ = os.environ) -> DeploymentOptions:
    """BUILDSYNC_BACKEND_OPTIONS: each backend's transport and identity (backend_options.py owns the format)."""
    from buildsync.backend_options import parse_backend_options

    return parse_backend_options(text(BACKEND_OPTIONS, environ), BACKEND_OPTIONS)


def transaction_begin(environ: Environ = os.environ) -> TransactionBegin:
    """BUILDSYNC_TRANSACTION_BEGIN: how transactions begin (transactions.py owns the choices)."""
    from buildsync.transactions import transaction_begin_from_env

    return transaction_begin_from_env(environ)
