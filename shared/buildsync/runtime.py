"""What a deployed function needs, built once per process from the environment.

Cloud Functions reuse a process for many events, so the clients, the settings
and the backend channels are created on the first event and kept.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import os

from google.cloud import datastore, pubsub_v1

from buildsync import resultdb
from buildsync.backend import DEFAULT_DEADLINE_SECONDS, BackendPool
from buildsync.backend_options import BACKEND_OPTIONS_ENV, parse_backend_options
from buildsync.completion import Completer, Targets
from buildsync.errors import SettingsError
from buildsync.outbox import SWEEP_MIN_AGE
from buildsync.proto import notification_pb2 as npb
from buildsync.publishing import topic_path
from buildsync.settings import Settings, load_settings
from buildsync.transactions import TransactionBegin, transaction_begin_from_env

DEFAULT_SHARD_TOPIC = "buildsync-shard"
DEFAULT_SYNC_TOPIC = "buildsync-sync"


@dataclasses.dataclass(frozen=True)
class Runtime:
    datastore: datastore.Client
    publisher: pubsub_v1.PublisherClient
    settings: Settings
    backends: BackendPool
    shard_topic: str
    sync_topic: str
    # What ending a build does after the commit: notifications, ResultDB, metrics.
    completer: Completer
    # How old an outbox entry must be before the planner's sweep redoes it.
    sweep_min_age: datetime.timedelta = SWEEP_MIN_AGE
    # How the sync's transactions begin (BUILDSYNC_TRANSACTION_BEGIN).
    transaction_begin: TransactionBegin = TransactionBegin.LAZY


def runtime_from_env(env: dict[str, str] | os._Environ = os.environ) -> Runtime:
    """Reads GOOGLE_CLOUD_PROJECT, BUILDSYNC_SETTINGS, the BUILDSYNC_*_TOPIC variables and the durations."""
    project = env.get("GOOGLE_CLOUD_PROJECT")
    if not project:
        raise SettingsError("GOOGLE_CLOUD_PROJECT is not set")
    client = datastore.Client(project=project)
    publisher = pubsub_v1.PublisherClient()
    deadline = _seconds(env, "BUILDSYNC_FETCH_DEADLINE_SECONDS", DEFAULT_DEADLINE_SECONDS)
    sweep_min_age = _seconds(env, "BUILDSYNC_SWEEP_MIN_AGE_SECONDS", SWEEP_MIN_AGE.total_seconds())
    return Runtime(
        datastore=client,
        publisher=publisher,
        settings=load_settings(env.get("BUILDSYNC_SETTINGS")),
        backends=BackendPool(deadline_seconds=deadline, options=parse_backend_options(env.get(BACKEND_OPTIONS_ENV))),
        shard_topic=topic_path(project, env.get("BUILDSYNC_SHARD_TOPIC") or DEFAULT_SHARD_TOPIC),
        sync_topic=topic_path(project, env.get("BUILDSYNC_SYNC_TOPIC") or DEFAULT_SYNC_TOPIC),
        completer=Completer(client, completion_targets(env, project), resultdb.prpc_finalizer(), publisher),
        sweep_min_age=datetime.timedelta(seconds=sweep_min_age),
        transaction_begin=transaction_begin_from_env(env),
    )


def completion_targets(env: dict[str, str] | os._Environ, project: str | None) -> Targets:
    """BUILDSYNC_BUILDS_TOPIC (unset: no builds topic) and BUILDSYNC_BUILDS_TOPIC_COMPRESSION (ZLIB or ZSTD).

    The functions and the CLI both read them here, so both end builds alike.
    """
    builds_topic = env.get("BUILDSYNC_BUILDS_TOPIC")
    if builds_topic and not project and not builds_topic.startswith("projects/"):
        raise SettingsError(f"BUILDSYNC_BUILDS_TOPIC={builds_topic!r} needs GOOGLE_CLOUD_PROJECT or a full path")
    name = (env.get("BUILDSYNC_BUILDS_TOPIC_COMPRESSION") or "ZLIB").upper()
    if name not in npb.Compression.keys():
        raise SettingsError(
            f"BUILDSYNC_BUILDS_TOPIC_COMPRESSION={name!r}: expected one of {', '.join(npb.Compression.keys())}"
        )
    return Targets(
        builds_topic=topic_path(project or "", builds_topic) if builds_topic else None,
        builds_compression=npb.Compression.Value(name),
    )


def _seconds(env: dict[str, str] | os._Environ, name: str, default: float) -> float:
    text = env.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise SettingsError(f"{name}={text!r}: expected a number of seconds, 0 or more")
    return value


@functools.cache
def current_runtime() -> Runtime:
    """The process's Runtime, made on first use (so a cold start imports fast)."""
    return runtime_from_env()
