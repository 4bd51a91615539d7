"""The shard stage: find one shard's due builds with a keys-only query.

The sync-time key range selects the shard and the cut-off; the equality filters
keep other projects and backends out even when their keys interleave.

A build keeps the shard it was created in, so when a backend's `shards` is
lowered, builds remain in shards no job queries. Each job therefore also
reads its share of the key ranges between the shards in use (`stray_query`),
so that those builds are synced too; the sync moves each into a shard in use
(rules/sync_time.py `settled`), and the strays are gone once each was synced.
"""

from __future__ import annotations

import datetime
import itertools
from typing import Callable, Iterator

from google.cloud import datastore
from google.cloud.datastore.query import PropertyFilter

from buildsync import logs
from buildsync.errors import as_sync_error
from buildsync.rules import sync_time
from buildsync.rules.breaker import PROBE_BATCH_SIZE
from buildsync.stages.messages import MAX_BATCH_SIZE, ShardJob, SyncBatch
from buildsync.store import model


def due_builds_query(client: datastore.Client, job: ShardJob) -> datastore.Query:
    lower, upper = sync_time.shard_range(job.backend, job.project, job.shard, job.planned_at)
    query = client.query(kind=model.BUILD_KIND)
    query.add_filter(filter=PropertyFilter(model.INCOMPLETE, "=", True))
    query.add_filter(filter=PropertyFilter(model.BACKEND_TARGET, "=", job.backend))
    query.add_filter(filter=PropertyFilter("project", "=", job.project))
    query.add_filter(filter=PropertyFilter(model.NEXT_SYNC_TIME, ">", lower))
    query.add_filter(filter=PropertyFilter(model.NEXT_SYNC_TIME, "<", upper))
    query.keys_only()
    return query


def stray_query(client: datastore.Client, job: ShardJob, lower: str, upper: str | None) -> datastore.Query:
    """The builds of the job's backend and project whose key lies in [lower, upper), with their sync time.

    A projection, so that the due ones can be told apart without reading the builds; the shard query's
    composite index serves it.
    """
    query = client.query(kind=model.BUILD_KIND, projection=[model.NEXT_SYNC_TIME])
    query.add_filter(filter=PropertyFilter(model.INCOMPLETE, "=", True))
    query.add_filter(filter=PropertyFilter(model.BACKEND_TARGET, "=", job.backend))
    query.add_filter(filter=PropertyFilter("project", "=", job.project))
    query.add_filter(filter=PropertyFilter(model.NEXT_SYNC_TIME, ">=", lower))
    if upper is not None:
        query.add_filter(filter=PropertyFilter(model.NEXT_SYNC_TIME, "<", upper))
    return query


def oldest_due_query(client: datastore.Client, job: ShardJob) -> datastore.Query:
    """The shard query, projected on its sync time: the first result is the longest-waiting due build.

    The composite index of the shard query serves it (the inequality property is the one projected and sorted on).
    """
    query = due_builds_query(client, job)
    query.projection = [model.NEXT_SYNC_TIME]
    query.order = [model.NEXT_SYNC_TIME]
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
        due_at = sync_time.parse_time(oldest[0][model.NEXT_SYNC_TIME])
    except sync_time.SyncTimeKeyError as error:  # the sync reports that build itself
        logs.event("WARNING", "sync lag unknown: the oldest due build's key does not parse", error=str(error))
        return 0.0
    return max(0.0, now.timestamp() - due_at)


def due_batches(client: datastore.Client, job: ShardJob, batch_size: int = MAX_BATCH_SIZE) -> Iterator[SyncBatch]:
    """Yields the due builds of `job` in batches of at most `batch_size` ids: its shard, then its strays.

    The shard is read a page of `batch_size` keys at a time with a cursor, one
    page a batch, as upstream's RunBatchQuery does (docs/rules.md "Which builds
    are due"): left to itself the server may answer a whole shard at once,
    which the client refuses over 4 MiB (about 20,000 keys). A probe job
    yields its first batch only, of at most PROBE_BATCH_SIZE builds
    (docs/isolation.md). Retry behaviour: Datastore failures raise
    TransientError. Batches already yielded stay valid; a rerun of the shard
    yields the builds still due.
    """
    if job.probe:
        yield from itertools.islice(_due_batches(client, job, min(batch_size, PROBE_BATCH_SIZE)), 1)
    else:
        yield from _due_batches(client, job, batch_size)


def _due_batches(client: datastore.Client, job: ShardJob, batch_size: int) -> Iterator[SyncBatch]:
    yield from _batches(due_builds_query(client, job), job, batch_size)
    due_before = job.planned_at.timestamp()
    for lower, upper in sync_time.stray_ranges_of(job.backend, job.project, job.shard, job.shards):
        stray = stray_query(client, job, lower, upper)
        yield from _batches(stray, job, batch_size, lambda entity: _due_stray(entity, job.backend, due_before))


def _batches(
    query: datastore.Query,
    job: ShardJob,
    batch_size: int,
    keep: Callable[[datastore.Entity], bool] = lambda entity: True,
) -> Iterator[SyncBatch]:
    """The ids of the query's results that `keep` keeps, a page of `batch_size` results at a time."""
    cursor = None
    while True:
        try:
            page = query.fetch(limit=batch_size, start_cursor=cursor)
            results = list(page)
        except Exception as error:  # sorted by the one table in errors.py
            raise as_sync_error(error, f"querying shard {job.shard} of {job.backend}/{job.project}") from error
        ids = tuple(entity.key.id for entity in results if keep(entity) and _has_build_id(entity.key))
        if ids:
            yield SyncBatch(job.backend, job.project, ids, job.planned_at, probe=job.probe)
        cursor = page.next_page_token
        # No cursor: the server knows there is no more (a full last page may say so, or not).
        if len(results) < batch_size or cursor is None:
            return


def _has_build_id(key: datastore.Key) -> bool:
    """Whether a due Build's key is a build id; one named by a string (no writer of Buildbucket's) is left out
    with one ERROR line, so that it is no batch's and its neighbours still sync."""
    if key.id is not None:
        return True
    logs.event("ERROR", "due Build entity has no numeric id; it is never synced", key=repr(key.flat_path)[:200])
    return False


def _due_stray(entity: datastore.Entity, backend: str, due_before: float) -> bool:
    """Whether a stray build is due, as the shard query's upper bound would say; a key that does not
    parse is never due (`buildsync status` lists it)."""
    try:
        return sync_time.parse_key(entity[model.NEXT_SYNC_TIME], backend).unix_seconds < due_before
    except sync_time.SyncTimeKeyError:
        return False
