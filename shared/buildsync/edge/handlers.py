"""The three Cloud Functions' work: compose a Runtime with a stage, publish, decide retry.

The stages (planner.py, shard.py, sync.py) only compute; this module gives
them the clients and topics of the Runtime, publishes what they produce, and
turns a partly failed batch into a retry. functions/*/main.py call these
through events.handle, which alone decides acknowledge or retry.
"""

from __future__ import annotations

import datetime

from buildsync import logs, metrics
from buildsync.edge.runtime import Runtime
from buildsync.errors import SyncError, TransientError
from buildsync.remote.publishing import publish_all
from buildsync.rules.build_update import Outcome
from buildsync.stages import admission
from buildsync.stages.messages import ShardJob, SyncBatch, SyncTrigger
from buildsync.stages.planner import job_attributes, plan, summarize
from buildsync.stages.report import SyncReport
from buildsync.stages.retry import log_retry, retry_of
from buildsync.stages.shard import due_batches, sync_lag_seconds
from buildsync.stages.sync import Clock, Syncer, SyncOptions, utc_now


def handle_trigger(
    runtime: Runtime, trigger: SyncTrigger, planned_at: datetime.datetime | None = None
) -> list[ShardJob]:
    """The planner function: publish one message per shard, then redo completion effects left over.

    Retry behaviour: bad settings or an unknown backend are permanent;
    Datastore or publish failures raise TransientError, and the redelivered
    trigger plans again (the sync skips builds a duplicate already synced).
    A failed sweep is only logged: the next trigger sweeps again.
    """
    planned_at = planned_at or datetime.datetime.now(datetime.timezone.utc)
    jobs = plan(runtime.datastore, runtime.settings, trigger, planned_at)
    publish_all(runtime.publisher, runtime.shard_topic, [(job.to_json(), job_attributes(job)) for job in jobs])
    message, fields = summarize(runtime.settings, trigger, jobs)
    logs.event("INFO", message, **fields)
    try:
        runtime.completer.sweep(planned_at, runtime.sweep_min_age)
    except SyncError as error:
        logs.event("WARNING", "completion sweep failed; the next trigger retries it", error=str(error))
    return jobs


def handle_job(runtime: Runtime, job: ShardJob, clock: Clock = utc_now) -> int:
    """The shard function: publish the shard's due builds in batches; returns how many builds.

    Also reports the shard's sync lag. Retry behaviour: an unknown backend, a
    job the settings do not admit (admission.py) or one superseded by newer
    plans is permanent; Datastore or publish failures raise TransientError,
    and the redelivered job queries again (the sync skips builds a duplicate
    batch already synced).
    """
    now = clock()
    admission.check_job(job, runtime.settings.backend(job.backend), now, runtime.max_event_age)
    metrics.sync_lag(job.backend, job.project, job.shard, sync_lag_seconds(runtime.datastore, job, now))
    batches = list(due_batches(runtime.datastore, job))
    messages = [(batch.to_json(), batch_attributes(batch)) for batch in batches]
    publish_all(runtime.publisher, runtime.sync_topic, messages)
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


def handle_batch(runtime: Runtime, batch: SyncBatch, clock: Clock = utc_now) -> SyncReport:
    """The sync function: sync one batch, then do the completion effects of the builds it ended.

    Retry behaviour: an unknown backend or a broken FetchTasks response is
    permanent; an unreachable backend or Datastore raises TransientError, and
    so does a batch all of whose builds failed transiently. A batch of which
    only some transactions failed transiently is acknowledged, and their builds
    are published again as a smaller batch (retry.py); on its last attempt it
    ends in RetriesExhaustedError (permanent) instead. A batch of a backend
    whose breaker is open is acknowledged unhandled (isolation.py).
    Completion effects that fail stay in the outbox for the planner's sweep
    and do not fail the batch.
    """
    admission.check_batch(batch, clock(), runtime.max_event_age)
    options = SyncOptions(clock=clock, transaction_begin=runtime.transaction_begin, dscache=runtime.dscache)
    syncer = Syncer(runtime.datastore, runtime.settings, runtime.backends, runtime.completer, options)
    report = syncer.sync_and_complete(batch)
    if report is None:
        return SyncReport()
    logs.event("INFO", "synced batch", backend=batch.backend, project=batch.project, **report.counts())
    synced = {outcome.value: report.outcomes[outcome] for outcome in Outcome}
    metrics.builds_synced(batch.backend, batch.project, synced)
    retry = retry_of(batch, report)
    if retry is batch:
        raise TransientError(f"{report.failed} of {report.due} builds failed to sync; retrying the batch")
    if retry is not None:
        publish_all(runtime.publisher, runtime.sync_topic, [(retry.to_json(), batch_attributes(retry))])
        log_retry(batch, retry)
    return report


def batch_attributes(batch: SyncBatch) -> dict[str, str]:
    """The attributes of a sync message: its backend picks its subscription (deploy/main.tf, sync_backends)."""
    return {"backend": batch.backend, "project": batch.project}
