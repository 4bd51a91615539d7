"""What the environment configures, built from env.py's variables for the functions and the CLI alike.

env.py names every variable and reads it with the one policy; this module turns
those values into the objects their owners define (a deadline, the completion
targets, each backend's transport, how transactions begin). It sits at the edge
because it imports those owners; nothing below the edge reads the environment.
"""

from __future__ import annotations

import datetime
import os

from buildsync.ending.completion import Targets
from buildsync.env import (
    BACKEND_OPTIONS,
    BUILDS_TOPIC,
    BUILDS_TOPIC_COMPRESSION,
    FETCH_DEADLINE,
    PROJECT,
    SWEEP_MIN_AGE_SECONDS,
    Environ,
    seconds,
    text,
)
from buildsync.errors import SettingsError
from buildsync.proto import notification_pb2 as npb
from buildsync.remote.backend import DEFAULT_DEADLINE_SECONDS
from buildsync.remote.backend_options import DeploymentOptions, parse_backend_options
from buildsync.remote.publishing import topic_path
from buildsync.store.outbox import SWEEP_MIN_AGE
from buildsync.store.transactions import TransactionBegin, transaction_begin_from_env


def fetch_deadline_seconds(environ: Environ = os.environ) -> float:
    """The deadline of each FetchTasks call, for the functions and the CLI alike."""
    return seconds(FETCH_DEADLINE, DEFAULT_DEADLINE_SECONDS, environ, allow_zero=False)


def sweep_min_age(environ: Environ = os.environ) -> datetime.timedelta:
    """How long an outbox entry waits before the planner's sweep redoes it (outbox.py owns the default)."""
    return datetime.timedelta(seconds=seconds(SWEEP_MIN_AGE_SECONDS, SWEEP_MIN_AGE.total_seconds(), environ))


def completion_targets(environ: Environ = os.environ, project: str | None = None) -> Targets:
    """Where ended builds are announced: BUILDSYNC_BUILDS_TOPIC (unset: nowhere) and its compression (ZLIB or ZSTD).

    The functions and the CLI both read them here, so both end builds alike.
    """
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
    return parse_backend_options(text(BACKEND_OPTIONS, environ), BACKEND_OPTIONS)


def transaction_begin(environ: Environ = os.environ) -> TransactionBegin:
    """BUILDSYNC_TRANSACTION_BEGIN: how transactions begin (transactions.py owns the choices)."""
    return transaction_begin_from_env(environ)
