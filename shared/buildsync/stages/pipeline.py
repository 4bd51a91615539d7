"""The whole job in one process: plan, query every shard, sync every batch.

The same three stages the Cloud Functions run, chained by thread pools instead
of Pub/Sub: shard queries run side by side, and each batch they yield is synced
while the queries go on; with a Completer, the builds ended get the same
completion effects as in the functions, and leftovers are swept at the end.
The CLI and the benchmarks use it.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
from collections.abc import Callable
from concurrent.futures import Future

from google.cloud import datastore

from buildsync import logs
from buildsync.ending.completion import Completer
from buildsync.errors import BreakerOpenError, RetriesExhaustedError, SyncError, TransientError
from buildsync.rules.build_update import Outcome
from buildsync.stages.fair_share import FairShare
from buildsync.stages.messages import MAX_BATCH_SIZE, ShardJob, SyncBatch, SyncTrigger
from buildsync.stages.planner import plan
from buildsync.stages.report import SyncReport
from buildsync.stages.retry import log_retry, retry_of
from buildsync.stages.shard import due_batches
from buildsync.stages.sync import Syncer

# Batches read and fetched at once. Their group transactions share one pool of
# DEFAULT_TRANSACTIONS, so the next batch's BuildInfra lookup and FetchTasks
# overlap this batch's transactions, and many small batches (many shards, few
# due builds each) still keep as many transactions in flight as one large one.
# 16 at once is where the floors are fastest; 8 batches, not 4, keep that pool
# full when the batches are small (README "Speed and robustness").
DEFAULT_WORKERS = 8
DEFAULT_TRANSACTIONS = 16

# With more than one backend in a run, one backend runs at most this share of
# the batch workers at once while the shard queries go on, so that a hung one
# leaves the rest to the others until the first of its calls gives up and
# opens its breaker (docs/isolation.md).
BACKEND_SHARE = 0.5


def run_pipeline(
    syncer: Syncer,
    trigger: SyncTrigger,
    *,
    planned_at: datetime.datetime | None = None,
    workers: int = DEFAULT_WORKERS,
    transactions: int = DEFAULT_TRANSACTIONS,
    batch_size: int = MAX_BATCH_SIZE,
) -> SyncReport:
    """Runs one full sync of what `trigger` names and reports it.

    `syncer` syncs and completes each batch; its options' executor is replaced
    by one pool of `transactions` shared by all batches.

    Batches of one backend hold at most BACKEND_SHARE of the `workers` while
    the shard queries go on (fair_share.py). The failed builds of a batch
    whose groups partly failed are synced again as a smaller batch, up to
    retry.MAX_BATCH_ATTEMPTS.

    Retry behaviour: raises only for bad settings or an unknown backend
    (PermanentError) and when planning fails (TransientError); failures of
    single shards and batches are in the report, with `report.retry` set when
    running again may fix them (a backend held back by its breaker included).
    Without a completer, ended builds get no outbox entry and no completion
    effects (the benchmarks).
    """
    planned_at = planned_at or syncer.options.clock()
    jobs = plan(syncer.client, syncer.settings, trigger, planned_at)
    report = SyncReport()
    with (
        concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, transactions), thread_name_prefix="group"
        ) as group_pool,
        concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="sync") as sync_pool,
        concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, min(len(jobs), workers)), thread_name_prefix="shard"
        ) as shard_pool,
    ):
        batch_syncer = dataclasses.replace(syncer, options=dataclasses.replace(syncer.options, executor=group_pool))
        several = len({job.backend for job in jobs}) > 1
        fair = FairShare(sync_pool, workers, int(workers * BACKEND_SHARE) if several else workers)

        def submit(batch: SyncBatch) -> concurrent.futures.Future[SyncReport]:
            return fair.submit(batch.backend, _sync_paced, batch_syncer, batch, fair)

        shard_futures = {shard_pool.submit(_query_shard, syncer.client, job, batch_size, submit): job for job in jobs}
        batch_futures = []
        for shard_future in concurrent.futures.as_completed(shard_futures):
            submitted, error = shard_future.result()
            if error is not None:
                _shard_failed(report, shard_futures[shard_future], error)
            batch_futures += submitted
        fair.close()
        for batch_future in batch_futures:
            report.add(batch_future.result())
    if syncer.completer is not None and not syncer.options.dry_run:
        _sweep(syncer.completer, planned_at, report)
    return report


def _query_shard(
    client: datastore.Client, job: ShardJob, batch_size: int, submit: Callable[[SyncBatch], Future[SyncReport]]
) -> tuple[list[Future[SyncReport]], SyncError | None]:
    """Submits each due batch of `job` as the query yields it; a failed query keeps what it found before."""
    submitted = []
    try:
        for batch in due_batches(client, job, batch_size):
            submitted.append(submit(batch))
    except SyncError as error:
        return submitted, error
    return submitted, None


def _sweep(completer: Completer, planned_at: datetime.datetime, report: SyncReport) -> None:
    """Redoes the completion effects left in the outbox; a failure is the run's, in its report."""
    try:
        completer.sweep(planned_at)
    except SyncError as error:
        report.errors.append(f"completion sweep: {error}")
        report.retry = report.retry or isinstance(error, TransientError)


def _sync_paced(syncer: Syncer, batch: SyncBatch, fair: FairShare) -> SyncReport:
    """_sync_one; a backend whose batch failed then runs one batch at a time until one succeeds (fair_share.py)."""
    report = _sync_one(syncer, batch)
    (fair.narrow if report.errors else fair.widen)(batch.backend)
    return report


def _sync_one(syncer: Syncer, batch: SyncBatch) -> SyncReport:
    """One batch and the smaller batches that redo its failed groups; its failure is its own report, not the run's."""
    done = SyncReport()
    while True:
        try:
            report = syncer.sync_and_complete(batch)
        except SyncError as error:
            done.add(_failed_batch(batch, error))
            return done
        if report is None:
            return done
        try:
            retry = retry_of(batch, report)
        except RetriesExhaustedError as error:
            logs.event("ERROR", "batch retries exhausted", backend=batch.backend, error=str(error))
            report.errors.append(str(error))
            retry = None
        if retry is None or retry is batch:
            done.add(report)
            return done
        done.add(report.handed_over())
        log_retry(batch, retry)
        batch = retry


def _shard_failed(report: SyncReport, job: ShardJob, error: SyncError) -> None:
    logs.event(
        "ERROR", "shard query failed", backend=job.backend, project=job.project, shard=job.shard, error=str(error)
    )
    report.errors.append(str(error))
    report.retry = report.retry or isinstance(error, TransientError)


def _failed_batch(batch: SyncBatch, error: SyncError) -> SyncReport:
    """A batch that failed whole: every build counted failed, and a retry if it may clear."""
    logs.event(
        "ERROR",
        "batch failed",
        backend=batch.backend,
        project=batch.project,
        builds=len(batch.build_ids),
        error=str(error),
    )
    # Held back by its backend's breaker: a later run may find the backend answering.
    retry = isinstance(error, (TransientError, BreakerOpenError))
    failed = SyncReport(due=len(batch.build_ids), errors=[str(error)], retry=retry)
    failed.count(Outcome.FAILED, len(batch.build_ids))
    return failed
