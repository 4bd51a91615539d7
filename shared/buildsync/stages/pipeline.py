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

from buildsync import logs
from buildsync.errors import SyncError, TransientError
from buildsync.rules.build_update import Outcome
from buildsync.stages.messages import MAX_BATCH_SIZE, ShardJob, SyncBatch, SyncTrigger
from buildsync.stages.planner import plan
from buildsync.stages.report import SyncReport
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

    Retry behaviour: raises only for bad settings or an unknown backend
    (PermanentError) and when planning fails (TransientError); failures of
    single shards and batches are in the report, with `report.retry` set when
    running again may fix them. Without a completer, ended builds get no
    outbox entry and no completion effects (the benchmarks).
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

        def query_one(job: ShardJob) -> tuple[list[concurrent.futures.Future[SyncReport]], SyncError | None]:
            submitted = []
            try:
                for batch in due_batches(syncer.client, job, batch_size):
                    submitted.append(sync_pool.submit(_sync_one, batch_syncer, batch))
            except SyncError as error:
                # The batches found before the failure are still synced.
                return submitted, error
            return submitted, None

        shard_futures = {shard_pool.submit(query_one, job): job for job in jobs}
        for shard_future in concurrent.futures.as_completed(shard_futures):
            batch_futures, error = shard_future.result()
            if error is not None:
                _shard_failed(report, shard_futures[shard_future], error)
            for batch_future in batch_futures:
                report.add(batch_future.result())
    if syncer.completer is not None and not syncer.options.dry_run:
        try:
            syncer.completer.sweep(planned_at)
        except SyncError as error:
            report.errors.append(f"completion sweep: {error}")
            report.retry = report.retry or isinstance(error, TransientError)
    return report


def _sync_one(syncer: Syncer, batch: SyncBatch) -> SyncReport:
    """One batch; its failure is its own report, never the run's."""
    try:
        report = syncer.sync_and_complete(batch)
    except SyncError as error:
        return _failed_batch(batch, error)
    return report if report is not None else SyncReport()


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
    failed = SyncReport(due=len(batch.build_ids), errors=[str(error)], retry=isinstance(error, TransientError))
    failed.count(Outcome.FAILED, len(batch.build_ids))
    return failed
