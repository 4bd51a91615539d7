"""Redo only what failed: the smaller batch that retries the builds of a batch's failed groups.

docs/isolation.md "Decision: redo only what failed". A batch in which some
group transactions failed transiently and others did not is acknowledged, and
the failed builds come back as a new batch of their own, so the work redone is
the work that failed. A batch that failed as a whole comes back whole, with
Pub/Sub's backoff. The decision is pure: the callers publish or run what it
returns, and say so with log_retry.
"""

from __future__ import annotations

import dataclasses

from buildsync import logs
from buildsync.errors import RetriesExhaustedError
from buildsync.stages.messages import SyncBatch
from buildsync.stages.report import SyncReport

# A batch and the smaller batches that redo its failures are tried this many
# times in all (its `attempt`); Pub/Sub's max_delivery_attempts bounds each one's
# redeliveries on top. The next plan finds what is left due anyway.
MAX_BATCH_ATTEMPTS = 5


def retry_of(batch: SyncBatch, report: SyncReport) -> SyncBatch | None:
    """What redoes the transient failures of `batch`, synced as `report` says.

    None when nothing failed transiently; `batch` itself when all its builds
    failed (redelivered whole, as it is all failed); else a new batch of
    the failed builds only, with the next attempt number. A probe's retry is
    no probe: the probe has proven the backend.

    Raises RetriesExhaustedError (permanent) when that new batch would pass
    MAX_BATCH_ATTEMPTS.
    """
    if not report.retry:
        return None
    failed = tuple(sorted(set(report.retry_ids)))
    if not failed or set(failed) >= set(batch.build_ids):
        return batch
    if batch.attempt >= MAX_BATCH_ATTEMPTS:
        raise RetriesExhaustedError(
            f"{len(failed)} of {len(batch.build_ids)} builds of {batch.backend}/{batch.project} still failed on "
            f"attempt {batch.attempt} of {MAX_BATCH_ATTEMPTS}; not retried again, the next plan finds them due "
            f"(build ids {', '.join(map(str, failed[:10]))}{', …' if len(failed) > 10 else ''})"
        )
    return dataclasses.replace(batch, build_ids=failed, attempt=batch.attempt + 1, probe=False)


def log_retry(batch: SyncBatch, retry: SyncBatch) -> None:
    """One WARNING line: the failed part of `batch` is redone as `retry`."""
    logs.event(
        "WARNING",
        "retrying the builds that failed as a smaller batch",
        backend=batch.backend,
        project=batch.project,
        builds=len(retry.build_ids),
        of=len(batch.build_ids),
        attempt=retry.attempt,
    )
