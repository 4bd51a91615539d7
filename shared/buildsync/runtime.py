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

from buildsync.backend import DEFAULT_DEADLINE_SECONDS, BackendPool
from buildsync.errors import SettingsError
from buildsync.notifications import SWEEP_MIN_AGE
from buildsync.publishing import topic_path
from buildsync.settings import Settings, load_settings

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
    # None when no one wants build-completion notifications.
    builds_topic: str | None
    # How old an outbox entry must be before the planner's sweep sends it.
    sweep_min_age: datetime.timedelta = SWEEP_MIN_AGE


def runtime_from_env(env: dict[str, str] | os._Environ = os.environ) -> Runtime:
    """Reads GOOGLE_CLOUD_PROJECT, BUILDSYNC_SETTINGS and the BUILDSYNC_*_TOPIC variables."""
    project = env.get("GOOGLE_CLOUD_PROJECT")
    if not project:
        raise SettingsError("GOOGLE_CLOUD_PROJECT is not set")
    builds_topic = env.get("BUILDSYNC_BUILDS_TOPIC")
    deadline = _seconds(env, "BUILDSYNC_FETCH_DEADLINE_SECONDS", DEFAULT_DEADLINE_SECONDS)
    sweep_min_age = _seconds(env, "BUILDSYNC_SWEEP_MIN_AGE_SECONDS", SWEEP_MIN_AGE.total_seconds())
    return Runtime(
        datastore=datastore.Client(project=project),
        publisher=pubsub_v1.PublisherClient(),
        settings=load_settings(env.get("BUILDSYNC_SETTINGS")),
        backends=BackendPool(deadline_seconds=deadline),
        shard_topic=topic_path(project, env.get("BUILDSYNC_SHARD_TOPIC") or DEFAULT_SHARD_TOPIC),
        sync_topic=topic_path(project, env.get("BUILDSYNC_SYNC_TOPIC") or DEFAULT_SYNC_TOPIC),
        builds_topic=topic_path(project, builds_topic) if builds_topic else None,
        sweep_min_age=datetime.timedelta(seconds=sweep_min_age),
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
