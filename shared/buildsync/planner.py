"""The planner stage: turn "sync this" into one job per shard.

A trigger may leave out the backend (every full-mode backend) and the project
(every project with incomplete builds on that backend, read from Datastore, so
a new project needs no settings change).
"""

from __future__ import annotations

import datetime

from google.cloud import datastore
from google.cloud.datastore.query import PropertyFilter

from buildsync import logs, model
from buildsync.errors import as_sync_error
from buildsync.messages import ShardJob, SyncTrigger
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


def job_attributes(job: ShardJob) -> dict[str, str]:
    """Attributes that let an operator filter shard messages without decoding them."""
    return {"backend": job.backend, "project": job.project, "shard": str(job.shard)}
