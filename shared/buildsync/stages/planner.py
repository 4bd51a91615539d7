"""The planner stage: turn "sync this" into one job per shard.

A trigger may leave out the backend (every full-mode backend) and the project
(every project with incomplete builds on that backend, read from Datastore, so
a new project needs no settings change).
"""

from __future__ import annotations

import datetime
from typing import Any

from google.cloud import datastore
from google.cloud.datastore.query import PropertyFilter

from buildsync import logs, metrics
from buildsync.errors import UnknownBackendError, as_sync_error
from buildsync.rules.settings import BackendSettings, Settings
from buildsync.stages import isolation, status
from buildsync.stages.messages import ShardJob, SyncTrigger, name_problem
from buildsync.store import model


def shard_jobs(backend: BackendSettings, project: str, planned_at: datetime.datetime) -> list[ShardJob]:
    """One job per shard of `backend` (a full-mode one), all with the same cut-off."""
    return [ShardJob(backend.target, project, shard, backend.shards, planned_at) for shard in range(backend.shards)]


def projects_with_incomplete_builds(client: datastore.Client, backend: str) -> list[str]:
    """Every project that has an incomplete build on `backend` (a distinct projection query).

    A stored project no shard job can name (not a string, over Pub/Sub's
    attribute limit, not a header value: messages.name_problem) is left out
    with one ERROR line, so that it fails neither the plan nor the sweep
    after it; its builds are never synced, as Buildbucket could not load them.
    """
    query = client.query(kind=model.BUILD_KIND, projection=["project"], distinct_on=["project"])
    query.add_filter(filter=PropertyFilter(model.INCOMPLETE, "=", True))
    query.add_filter(filter=PropertyFilter(model.BACKEND_TARGET, "=", backend))
    try:
        projects = [entity["project"] for entity in query.fetch()]
    except Exception as error:  # sorted by the one table in errors.py
        raise as_sync_error(error, f"listing projects with incomplete builds on {backend}") from error
    named = []
    for project in projects:
        problem = name_problem("project", project)
        if problem:
            logs.event("ERROR", "incomplete builds whose project no shard job can name", backend=backend, error=problem)
        else:
            named.append(project)
    return named


def unknown_backends(client: datastore.Client, settings: Settings) -> dict[str, list[str]]:
    """Backends that have incomplete builds but are not in the settings, with those builds' projects.

    Buildbucket's cron finds every (project, backend) with incomplete builds
    and its sync fails for a backend its settings lack, so such builds are
    never synced (docs/rules.md "Builds on a backend missing from the settings").
    """
    found: dict[str, list[str]] = {}
    for backend, project in status.pairs_with_incomplete_builds(client):
        if backend and not settings.knows(backend):
            found.setdefault(backend, []).append(project)
    return found


def resolve_backends(settings: Settings, trigger: SyncTrigger) -> tuple[BackendSettings, ...]:
    """The backends `trigger` names: every full-mode one, or the one it names (lite mode included).

    Raises UnknownBackendError (permanent) naming the known backends and what to write instead.
    """
    if trigger.backend is None:
        return settings.full_mode_backends()
    try:
        return (settings.backend(trigger.backend),)
    except UnknownBackendError:
        known = ", ".join(f'"{b.target}"' for b in settings.backends) or "none"
        raise UnknownBackendError(
            f"trigger names backend {trigger.backend!r}, which is not in the settings (known: {known}); "
            'write one of those as "backend", or leave "backend" out to sync every full-mode backend'
        ) from None


def lite_mode_targets(settings: Settings, trigger: SyncTrigger) -> set[str]:
    """The backends `trigger` names that are not synced: those Settings.full_mode_backends leaves out.

    Settings owns the lite-mode rule; the planner only reports what it left out.
    """
    named = {backend.target for backend in resolve_backends(settings, trigger)}
    return named - {backend.target for backend in settings.full_mode_backends(trigger.backend)}


def summarize(settings: Settings, trigger: SyncTrigger, jobs: list[ShardJob]) -> tuple[str, dict[str, Any]]:
    """What a plan resolved, as a log message and its fields: each backend, its projects, their shard jobs.

    Pure, so that the planner's log line says exactly what the trigger came to.
    """
    per_backend: dict[str, dict[str, int]] = {}
    for job in jobs:
        projects = per_backend.setdefault(job.backend, {})
        projects[job.project] = projects.get(job.project, 0) + 1
    parts, resolved = [], []
    lite = lite_mode_targets(settings, trigger)
    for backend in resolve_backends(settings, trigger):
        projects = per_backend.get(backend.target, {})
        if backend.target in lite:
            state = "lite mode, not synced"
        elif projects:
            state = ", ".join(f"{project} ({_jobs(count)})" for project, count in sorted(projects.items()))
        else:
            state = "no project has incomplete builds"
        parts.append(f"{backend.target}: {state}")
        resolved.append({"backend": backend.target, "lite_mode": backend.target in lite, "projects": projects})
    what = "; ".join(parts) or "no full-mode backend in the settings"
    fields = {"jobs": len(jobs), "backend": trigger.backend, "project": trigger.project, "resolved": resolved}
    return f"planned {_jobs(len(jobs))}: {what}", fields


def _jobs(count: int) -> str:
    return f"{count} shard job" + ("" if count == 1 else "s")


def plan(
    client: datastore.Client, settings: Settings, trigger: SyncTrigger, planned_at: datetime.datetime
) -> list[ShardJob]:
    """The shard jobs for `trigger`: of a backend whose breaker is open, only one probe job (isolation.py).

    A whole run (a trigger naming neither backend nor project) also writes
    one ERROR line, the `unknown_backend` metric, per backend that has
    incomplete builds and is missing from the settings.

    Retry behaviour: an unknown backend raises UnknownBackendError (permanent);
    Datastore failures while listing projects raise TransientError.
    """
    if trigger.backend is None and trigger.project is None:
        for backend, projects in sorted(unknown_backends(client, settings).items()):
            metrics.unknown_backend(backend, projects)
    for target in sorted(lite_mode_targets(settings, trigger)):
        logs.event("INFO", "backend is in lite mode; nothing to sync", backend=target)
    jobs: dict[str, list[ShardJob]] = {}
    for backend in settings.full_mode_backends(trigger.backend):
        if trigger.project is not None:
            projects = [trigger.project]
        else:
            projects = projects_with_incomplete_builds(client, backend.target)
        jobs[backend.target] = [job for project in projects for job in shard_jobs(backend, project, planned_at)]
    return isolation.hold_back(client, jobs, planned_at)


def job_attributes(job: ShardJob) -> dict[str, str]:
    """Attributes that let an operator filter shard messages without decoding them."""
    return {"backend": job.backend, "project": job.project, "shard": str(job.shard)}
