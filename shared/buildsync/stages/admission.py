"""Which shard jobs and sync batches a stage takes on: the limits a message must meet before any work.

The planner plans every minute, so a job or batch planned longer ago than the
cut-off (BUILDSYNC_MAX_EVENT_AGE_SECONDS) is covered by the plans since:
doing it would fetch the same builds once more for each minute a backlog
lasted. It is dropped (SupersededError), not done. A plan time in the future
is a bad message, since the shard's key range would take builds that are not
due yet; and a shard job must split its project into as many shards as the
settings say, or its key range misses or repeats builds.
"""

from __future__ import annotations

import datetime

from buildsync.errors import MessageError, SupersededError
from buildsync.rules.settings import BackendSettings
from buildsync.stages.messages import ShardJob, SyncBatch

# Clocks of the planner's and a stage's instances may differ by this much.
MAX_CLOCK_SKEW = datetime.timedelta(seconds=60)


def check_plan_time(
    kind: str, planned_at: datetime.datetime, now: datetime.datetime, cut_off: datetime.timedelta
) -> None:
    """Raises MessageError for a plan in the future, SupersededError for one older than `cut_off`."""
    age = now - planned_at
    if -age > MAX_CLOCK_SKEW:
        raise MessageError(
            f"{kind} message planned_at {planned_at.isoformat()} is in the future (now {now.isoformat()})"
        )
    if age > cut_off:
        raise SupersededError(
            f"{kind} message planned {age.total_seconds():.0f} s ago, over the {cut_off.total_seconds():.0f} s cut-off;"
            " newer plans cover its builds",
            age,
        )


def check_job(job: ShardJob, backend: BackendSettings, now: datetime.datetime, cut_off: datetime.timedelta) -> None:
    """The limits of a shard job (see module doc)."""
    check_plan_time("shard", job.planned_at, now, cut_off)
    if job.shards != backend.shards:
        raise MessageError(
            f"shard message for {job.backend} splits into {job.shards} shards; the settings say {backend.shards}"
        )


def check_batch(batch: SyncBatch, now: datetime.datetime, cut_off: datetime.timedelta) -> None:
    """The limits of a sync batch (see module doc)."""
    check_plan_time("sync", batch.planned_at, now, cut_off)
