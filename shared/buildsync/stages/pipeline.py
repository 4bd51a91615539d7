"""The whole job in one process: plan, query every shard, sync every batch.

The same three stages the Cloud Functions run, chained by thread pools instead
of Pub/Sub: shard queries run side by side, and each batch they yield is synced
while the queries go on; with a Completer, the builds ended get the same
completion effects as in the functions, and leftovers are swept at the end.
The CLI and the benchmarks use it.
"""

from __future__ import annotations

import concurrent.futures
import datetime

from google.cloud import datastore

from buildsync import logs
from buildsync.ending.completion import Completer
from buildsync.errors import SyncError, TransientError
from buildsync.remote.backend import BackendPool
from buildsync.rules.build_update import Outcome
from buildsync.rules.settings import Settings
from buildsync.stages.messages import MAX_BATCH_SIZE, ShardJob, SyncBatch, SyncTrigger
from buildsync.stages.planner import plan
from buildsync.stages.report import SyncReport
from buildsync.stages.shard import due_batches
from buildsync.stages.sync import Clock, sync_batch, utc_now
from buildsync.store.transactions import TransactionBegin

# Batches read and fetched at once. Their group transactions share one pool of
# DEFAULT_TRANSACTIONS, so the next batch's BuildInfra lookup and FetchTasks
# overlap this batch's transactions, and many small batches (many shards, few
# due builds each) still keep as many transactions in flight as one large one.
# 16 at once is where the floors are fastest; 8 batches, not 4, keep that pool
# full when the batches are small (README "Speed and robustness").
DEFAULT_WORKERS = 8
DEFAULT_TRANSACTIONS = 16


def run_pipeline(
    client: datastore.Client,
    settings: Settings,
    backends: BackendPool,
    trigger: SyncTrigger,
    *,
    planned_at: datetime.datetime | None = None,
    dry_run: bool = False,
    workers: int = DEFAULT_WORKERS,
    transactions: int = DEFAULT_TRANSACTIONS,
    batch_size: int = MAX_BATCH_SIZE,
    clock: Clock = utc_now,
    completer: Completer | None = None,
    transaction_begin: TransactionBegin = TransactionBegin.LAZY,
) -> SyncReport:
    """Runs one full sync of what `trigger` names and reports it.

    Retry behaviour: raises only for bad settings or an unknown backend
    (PermanentError) and when planning fails (TransientError); failures of
    single shards and batches are in the report, with `report.retry` set when
    running again may fix them. Without `completer`, ended builds get no
    outbox entry and no completion effects (the benchmarks).
    """
    planned_at = planned_at or clock()
    jobs = plan(client, settings, trigger, planned_at)
    report = SyncReport()

    def sync_one(batch: SyncBatch) -> SyncReport:
        backend = settings.backend(batch.backend)
        fetcher = backends.get(backend.target, backend.hostname)
        targets = completer.targets if completer is not None else None
        try:
            report = sync_batch(
                client,
                fetcher,
                backend,
                batch,
                dry_run=dry_run,
                targets=targets,
                clock=clock,
                transaction_begin=transaction_begin,
                executor=group_pool,
            )
            if completer is not None:
                completer.complete_after_commit(report.completions)
            return report
        except SyncError as error:
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

    with (
        concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, transactions), thread_name_prefix="group"
        ) as group_pool,
        concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="sync") as sync_pool,
        concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, min(len(jobs), workers)), thread_name_prefix="shard"
        ) as shard_pool,
    ):

        def query_one(job: ShardJob) -> tuple[list[concurrent.futures.Future[SyncReport]], SyncError | None]:
            submitted = []
            try:
                for batch in due_batches(client, job, batch_size):
                    submitted.append(sync_pool.submit(sync_one, batch))
            except SyncError as error:
                # The batches found before the failure are still synced.
                return submitted, error
            return submitted, None

        shard_futures = {shard_pool.submit(query_one, job): job for job in jobs}
        for shard_future in concurrent.futures.as_completed(shard_futures):
            batch_futures, error = shard_future.result()
            if error is not None:
                job = shard_futures[shard_future]
                logs.event(
                    "ERROR",
                    "shard query failed",
                    backend=job.backend,
                    project=job.project,
                    shard=job.shard,
                    error=str(error),
                )
                report.errors.append(str(error))
                report.retry = report.retry or isinstance(error, TransientError)
            for batch_future in batch_futures:
                report.add(batch_future.result())
    if completer is not None and not dry_run:
        try:
            completer.sweep(planned_at)
        except SyncError as error:
            report.errors.append(f"completion sweep: {error}")
            report.retry = report.retry or isinstance(error, TransientError)
    return report
