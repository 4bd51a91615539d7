"""The planner stage: turn "sync this" into one job per shard.

A trigger may leave out the backend (every full-mode backend) and the project
(every project with incomplete builds on that backend, read from Datastore, so
a new project needs no settings change).
"""

from __future__ import annotations

import datetime

from google.cloud import datastore
from google.cloud.datastore.query import PropertyFilter

from buildsync import logs, model, notifications
from buildsync.errors import SyncError, as_sync_error
from buildsync.messages import ShardJob, SyncTrigger
from buildsync.publishing import publish_all
from buildsync.runtime import Runtime
from buildsync.settings import BackendSettings, Settings


def shard_jobs(backend: BackendSettings, project: str, planned_at: datetime.datetime) -> list[ShardJob]:
    """One job per shard of `backend`, all with the same cut-off; none in lite mode."""
    if backend.lite_mode:
        return []
    return [ShardJob(backend.target, project, shard, backend.shards, planned_at) for shard in range(backend.shards)]


def projects_with_incomplete_builds(client: datastore.Client, backend: str) -> list[str]:
    """Every project that has an incomplete build on `backend` (a distinct projection query)."""
    query = client.query(kind=model.BUILD_KIND, projection=["project"], distinct_on=["project"])
    query.add_filter(filter=PropertyFilter("incomplete", "=", True))
    query.add_filter(filter=PropertyFilter("backend_target", "=", backend))
    try:
        return [entity["project"] for entity in query.fetch()]
    except Exception as error:  # sorted by the one table in errors.py
        raise as_sync_error(error, f"listing projects with incomplete builds on {backend}") from error


def plan(
    client: datastore.Client, settings: Settings, trigger: SyncTrigger, planned_at: datetime.datetime
) -> list[ShardJob]:
    """The shard jobs for `trigger`.

    Retry behaviour: an unknown backend raises UnknownBackendError (permanent);
    Datastore failures while listing projects raise TransientError.
    """
    if trigger.backend is None:
        backends = settings.full_mode_backends()
    else:
        backends = (settings.backend(trigger.backend),)
    jobs = []
    for backend in backends:
        if backend.lite_mode:
            logs.event("INFO", "backend is in lite mode; nothing to sync", backend=backend.target)
            continue
        if trigger.project is not None:
            projects = [trigger.project]
        else:
            projects = projects_with_incomplete_builds(client, backend.target)
        for project in projects:
            jobs += shard_jobs(backend, project, planned_at)
    return jobs


def handle_trigger(
    runtime: Runtime, trigger: SyncTrigger, planned_at: datetime.datetime | None = None
) -> list[ShardJob]:
    """The planner function: publish one message per shard, then sweep the notification outbox.

    Retry behaviour: bad settings or an unknown backend are permanent;
    Datastore or publish failures raise TransientError, and the redelivered
    trigger plans again (the sync skips builds a duplicate already synced).
    A failed sweep is only logged: the next trigger sweeps again.
    """
    planned_at = planned_at or datetime.datetime.now(datetime.timezone.utc)
    jobs = plan(runtime.datastore, runtime.settings, trigger, planned_at)
    publish_all(runtime.publisher, runtime.shard_topic, [(job.to_json(), job_attributes(job)) for job in jobs])
    logs.event("INFO", "planned shard jobs", jobs=len(jobs), backend=trigger.backend, project=trigger.project)
    if runtime.builds_topic:
        try:
            notifications.sweep(
                runtime.datastore, runtime.publisher, runtime.builds_topic, planned_at, runtime.sweep_min_age
            )
        except SyncError as error:
            logs.event("WARNING", "notification sweep failed; the next trigger retries it", error=str(error))
    return jobs


def job_attributes(job: ShardJob) -> dict[str, str]:
    """Attributes that let an operator filter shard messages without decoding them."""
    return {"backend": job.backend, "project": job.project, "shard": str(job.shard)}
