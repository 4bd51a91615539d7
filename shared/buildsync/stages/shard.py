"""The shard stage: find one shard's due builds with a keys-only query.

The sync-time key range selects the shard and the cut-off; the equality filters
keep other projects and backends out even when their keys interleave.
"""

from __future__ import annotations

import datetime
from typing import Iterator

from google.cloud import datastore
from google.cloud.datastore.query import PropertyFilter

from buildsync import logs
from buildsync.errors import as_sync_error
from buildsync.rules import sync_time
from buildsync.stages.messages import MAX_BATCH_SIZE, ShardJob, SyncBatch
from buildsync.store import model


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


def oldest_due_query(client: datastore.Client, job: ShardJob) -> datastore.Query:
    """The shard query, projected on its sync time: the first result is the longest-waiting due build.

    The composite index of the shard query serves it (the inequality property is the one projected and sorted on).
    """
    query = due_builds_query(client, job)
    query.projection = ["next_backend_sync_time"]
    query.order = ["next_backend_sync_time"]
    return query


def sync_lag_seconds(client: datastore.Client, job: ShardJob, now: datetime.datetime) -> float:
    """How long the shard's oldest due build has waited past its sync time; 0 when none is due.

    One projection query of one entity. Retry behaviour: Datastore failures raise TransientError.
    """
    try:
        oldest = list(oldest_due_query(client, job).fetch(limit=1))
    except Exception as error:  # sorted by the one table in errors.py
        where = f"shard {job.shard} of {job.backend}/{job.project}"
        raise as_sync_error(error, f"reading the sync lag of {where}") from error
    if not oldest:
        return 0.0
    try:
        due_at = sync_time.parse_time(oldest[0]["next_backend_sync_time"])
    except sync_time.SyncTimeKeyError as error:  # the sync reports that build itself
        logs.event("WARNING", "sync lag unknown: the oldest due build's key does not parse", error=str(error))
        return 0.0
    return max(0.0, now.timestamp() - due_at)


def due_batches(client: datastore.Client, job: ShardJob, batch_size: int = MAX_BATCH_SIZE) -> Iterator[SyncBatch]:
    """Yields the due builds of `job` in batches of at most `batch_size` ids, one query page each.

    Paged with a cursor every `batch_size` keys, as upstream's RunBatchQuery
    does (docs/rules.md "Which builds are due"): left to itself the server may
    answer a whole shard at once, which the client refuses over 4 MiB (about
    20,000 keys). Retry behaviour: Datastore failures raise TransientError.
    Batches already yielded stay valid; a rerun of the shard yields the
    builds still due.
    """
    query = due_builds_query(client, job)
    cursor = None
    while True:
        try:
            page = query.fetch(limit=batch_size, start_cursor=cursor)
            ids = tuple(entity.key.id for entity in page)
        except Exception as error:  # sorted by the one table in errors.py
            raise as_sync_error(error, f"querying shard {job.shard} of {job.backend}/{job.project}") from error
        if ids:
            yield SyncBatch(job.backend, job.project, ids, job.planned_at)
        cursor = page.next_page_token
        # No cursor: the server knows there is no more (a full last page may say so, or not).
        if len(ids) < batch_size or cursor is None:
            return
