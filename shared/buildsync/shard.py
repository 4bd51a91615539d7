"""The shard stage: find one shard's due builds with a keys-only query.

The sync-time key range selects the shard and the cut-off; the equality filters
keep other projects and backends out even when their keys interleave.
"""

from __future__ import annotations

from typing import Iterator

from google.cloud import datastore
from google.cloud.datastore.query import PropertyFilter

from buildsync import logs, model, sync_time
from buildsync.errors import as_sync_error
from buildsync.messages import MAX_BATCH_SIZE, ShardJob, SyncBatch
from buildsync.publishing import publish_all
from buildsync.runtime import Runtime


def due_builds_query(client: datastore.Client, job: ShardJob) -> datastore.Query:
    lower, upper = sync_time.shard_range(job.backend, job.project, job.shard, job.planned_at)
    query = client.query(kind=model.BUILD_KIND)
    query.add_filter(filter=PropertyFilter("incomplete", "=", True))
    query.add_filter(filter=PropertyFilter("backend_target", "=", job.backend))
    query.add_filter(filter=PropertyFilter("project", "=", job.project))
    query.add_filter(filter=PropertyFilter("next_backend_sync_time", ">", lower))
    query.add_filter(filter=PropertyFilter("next_backend_sync_time", "<", upper))
    query.keys_only()
    return query


def due_batches(client: datastore.Client, job: ShardJob, batch_size: int = MAX_BATCH_SIZE) -> Iterator[SyncBatch]:
    """Yields the due builds of `job` in batches of at most `batch_size` ids.

    Retry behaviour: Datastore failures raise TransientError. Batches already
    yielded stay valid; a rerun of the shard yields the builds still due.
    """
    ids: list[int] = []
    try:
        for entity in due_builds_query(client, job).fetch():
            ids.append(entity.key.id)
            if len(ids) == batch_size:
                yield SyncBatch(job.backend, job.project, tuple(ids), job.planned_at)
                ids = []
    except Exception as error:  # sorted by the one table in errors.py
        raise as_sync_error(error, f"querying shard {job.shard} of {job.backend}/{job.project}") from error
    if ids:
        yield SyncBatch(job.backend, job.project, tuple(ids), job.planned_at)


def handle_job(runtime: Runtime, job: ShardJob) -> int:
    """The shard function: publish the shard's due builds in batches; returns how many builds.

    Retry behaviour: an unknown backend is permanent; Datastore or publish
    failures raise TransientError, and the redelivered job queries again (the
    sync skips builds a duplicate batch already synced).
    """
    runtime.settings.backend(job.backend)
    batches = list(due_batches(runtime.datastore, job))
    attributes = {"backend": job.backend, "project": job.project}
    publish_all(runtime.publisher, runtime.sync_topic, [(batch.to_json(), attributes) for batch in batches])
    due = sum(len(batch.build_ids) for batch in batches)
    logs.event(
        "INFO",
        "published due builds",
        backend=job.backend,
        project=job.project,
        shard=job.shard,
        builds=due,
        batches=len(batches),
    )
    return due
