"""stages/retry.py: a partly failed batch comes back as its failed builds only, a bounded number of times."""

from __future__ import annotations

import datetime

import pytest
from buildsync.errors import PermanentError, RetriesExhaustedError
from buildsync.rules.build_update import Outcome
from buildsync.stages.messages import SyncBatch
from buildsync.stages.report import SyncReport
from buildsync.stages.retry import MAX_BATCH_ATTEMPTS, retry_of

PLANNED_AT = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
BATCH = SyncBatch("swarming://s", "p", tuple(range(1, 101)), PLANNED_AT)


def report(failed: list[int], transient: bool = True) -> SyncReport:
    result = SyncReport(due=len(BATCH.build_ids), retry=transient and bool(failed))
    result.count(Outcome.UPDATED, len(BATCH.build_ids) - len(failed))
    result.count(Outcome.FAILED, len(failed))
    result.retry_ids = list(failed) if transient else []
    return result


def test_nothing_failed_transiently_needs_no_retry():
    assert retry_of(BATCH, report([])) is None
    assert retry_of(BATCH, report([3, 4], transient=False)) is None


def test_a_partly_failed_batch_comes_back_as_its_failed_builds_only():
    retry = retry_of(BATCH, report([30, 26, 27]))

    assert (retry.build_ids, retry.attempt) == ((26, 27, 30), 2)
    assert (retry.backend, retry.project, retry.planned_at) == (BATCH.backend, BATCH.project, BATCH.planned_at)


def test_a_batch_whose_every_build_failed_is_redelivered_whole():
    assert retry_of(BATCH, report(list(BATCH.build_ids))) is BATCH


def test_a_probe_is_retried_as_an_ordinary_batch():
    probe = SyncBatch("swarming://s", "p", (1, 2), PLANNED_AT, probe=True)

    retry = retry_of(probe, SyncReport(due=2, retry=True, retry_ids=[2]))

    assert (retry.build_ids, retry.probe) == ((2,), False)


def test_the_last_attempt_ends_in_a_named_permanent_error_naming_the_builds():
    last = SyncBatch("swarming://s", "p", (1, 2, 3), PLANNED_AT, attempt=MAX_BATCH_ATTEMPTS)

    with pytest.raises(RetriesExhaustedError, match=f"attempt {MAX_BATCH_ATTEMPTS} of {MAX_BATCH_ATTEMPTS}") as raised:
        retry_of(last, SyncReport(due=3, retry=True, retry_ids=[3]))

    assert isinstance(raised.value, PermanentError) and "build ids 3" in str(raised.value)


def test_a_report_handed_over_no_longer_counts_the_retried_builds():
    partly = report([5, 6])
    partly.errors.append("kept")

    rest = partly.handed_over()

    assert (rest.due, rest.failed, rest.updated, rest.retry, rest.retry_ids) == (98, 0, 98, False, [])
    assert rest.errors == ["kept"] and partly.failed == 2
