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

from buildsync import env
from buildsync.edge import environment
from buildsync.ending import resultdb
from buildsync.ending.completion import Completer
from buildsync.remote.backend import BackendPool
from buildsync.rules.settings import Settings, load_settings
from buildsync.store.dscache import Cache
from buildsync.store.outbox import SWEEP_MIN_AGE
from buildsync.store.transactions import TransactionBegin


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
    # Events and messages older than this are dropped (BUILDSYNC_MAX_EVENT_AGE_SECONDS).
    max_event_age: datetime.timedelta = env.DEFAULT_MAX_EVENT_AGE
    # Buildbucket's Redis cache, kept true by the sync's writes (BUILDSYNC_DSCACHE_REDIS).
    dscache: Cache | None = None


def runtime_from_env(environ: env.Environ = os.environ) -> Runtime:
    """Reads the variables env.py names; a bad one is a SettingsError naming it."""
    project = env.required(env.PROJECT, environ)
    client = datastore.Client(project=project)
    publisher = pubsub_v1.PublisherClient()
    settings = load_settings(env.required(env.SETTINGS, environ))
    shard_topic, sync_topic = environment.stage_topics(project, environ)
    return Runtime(
        datastore=client,
        publisher=publisher,
        settings=settings,
        backends=BackendPool(
            deadline_seconds=environment.fetch_deadline_seconds(environ), options=environment.backend_options(environ)
        ),
        shard_topic=shard_topic,
        sync_topic=sync_topic,
        completer=Completer(
            client,
            environment.completion_targets(environ, project),
            resultdb.prpc_finalizer(settings.resultdb_hostname),
            publisher,
        ),
        sweep_min_age=environment.sweep_min_age(environ),
        transaction_begin=environment.transaction_begin(environ),
        max_event_age=env.max_event_age(environ),
        dscache=environment.dscache(environ),
    )


@functools.cache
def current_runtime() -> Runtime:
    """The process's Runtime, made on first use (so a cold start imports fast)."""
    return runtime_from_env()
