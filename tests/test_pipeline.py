"""The in-process pipeline and the planner, on the Datastore emulator with a real TaskBackend."""

from __future__ import annotations

import concurrent.futures
import datetime
import threading
from collections.abc import Callable

import pytest
from buildsync.errors import UnknownBackendError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.stages.messages import ShardJob, SyncTrigger
from buildsync.stages.pipeline import run_pipeline
from buildsync.stages.planner import plan
from buildsync.stages.report import SyncReport
from buildsync.stages.sync import Syncer, SyncOptions
from buildsync.store import model
from buildsync.store.transactions import DEFAULT_ATTEMPTS

from tests.builds import BACKEND, get_build, put_build
from tests.harness import LONG_AGO, PLANNED_AT, PROJECT, SETTLE_SECONDS, CapturedLogs, captured_logs
from tools.datastore_faults import CommitFaults
from tools.emulators import datastore_client as emulator_client
from tools.emulators import wait_until

# A run's clock stands this long after the time it was planned at, as a prompt batch's does.
HANDLED_AFTER = datetime.timedelta(seconds=10)


@pytest.fixture
def syncer(datastore_client, pool, sync_options):
    """Makes a Syncer of the given settings whose clock is stopped HANDLED_AFTER `at` (or is `clock`).

    Runs planned at `at` with it read no real clock, so what they find due does
    not depend on how long the suite took to reach the test.
    """

    def make(settings, at: datetime.datetime = PLANNED_AT, clock=None) -> Syncer:
        options = sync_options(clock=clock or (lambda: at + HANDLED_AFTER))
        return Syncer(datastore_client, settings, pool, options=options)

    return make


def run(syncer: Syncer, at: datetime.datetime = PLANNED_AT, **options) -> SyncReport:
    """One pipeline run over the test backend's "proj", planned at `at`."""
    return run_pipeline(syncer, SyncTrigger(BACKEND, "proj"), planned_at=at, **options)


def test_full_pipeline_with_batches_of_one_syncs_six_builds(datastore_client, task_backend, make_settings, syncer):
    settings = make_settings(shards=3)
    for build_id in range(1, 7):
        put_build(datastore_client, build_id, updated=LONG_AGO, shard=build_id % 3, shards=3)
        task_backend.backend.set_task(f"task-{build_id}", pb.FAILURE if build_id % 2 else pb.STARTED, 2)

    report = run(syncer(settings), batch_size=1)

    assert task_backend.backend.calls == [1] * 6
    assert (report.due, report.updated, report.completed, report.failed) == (6, 6, 3, 0)
    assert [get_build(datastore_client, i)[1].status for i in range(1, 7)] == [pb.FAILURE, pb.STARTED] * 3


def test_shards_lowered_then_raised_strand_no_build(datastore_client, task_backend, make_settings, syncer):
    for build_id in range(1, 9):
        put_build(datastore_client, build_id, updated=LONG_AGO, shard=build_id - 1, shards=8)
        task_backend.backend.set_task(f"task-{build_id}", pb.STARTED, 2)

    lowered = run(syncer(make_settings(shards=3)))

    assert (lowered.due, lowered.updated) == (8, 8)
    shards = [model.next_sync_key_of(get_build(datastore_client, i)[0]).split("--")[-2] for i in range(1, 9)]
    assert shards == ["0", "1", "2", "0", "1", "2", "0", "1"]  # each moved to its shard mod 3
    for build_id in range(1, 9):
        task_backend.backend.set_task(f"task-{build_id}", pb.STARTED, 3)
    later = PLANNED_AT + datetime.timedelta(minutes=10)  # after the first run's next sync
    raised = run(syncer(make_settings(shards=8), later), later)
    assert (raised.due, raised.updated) == (8, 8)


def test_second_run_finds_nothing_due(datastore_client, task_backend, make_settings, syncer):
    put_build(datastore_client, 1, updated=LONG_AGO)
    task_backend.backend.set_task("task-1", pb.STARTED, 1)
    settings = make_settings()
    run(syncer(settings))

    a_minute_later = PLANNED_AT + datetime.timedelta(minutes=1)  # the first run's next sync is 5 minutes after it
    report = run(syncer(settings, a_minute_later), a_minute_later)

    assert report.due == 0 and task_backend.backend.calls == [1]


def test_lite_mode_backend_is_planned_to_nothing(datastore_client, make_settings):
    assert plan(datastore_client, make_settings(), SyncTrigger("lite://backend", "proj"), PLANNED_AT) == []


def test_unknown_backend_is_a_permanent_error_naming_it(datastore_client, make_settings):
    with pytest.raises(UnknownBackendError, match="swarming://nowhere"):
        plan(datastore_client, make_settings(), SyncTrigger("swarming://nowhere", "proj"), PLANNED_AT)


def test_plan_without_project_covers_every_project_with_incomplete_builds(datastore_client, make_settings):
    put_build(datastore_client, 1, updated=LONG_AGO, project="alpha")
    put_build(datastore_client, 2, updated=LONG_AGO, project="beta--two")
    put_build(datastore_client, 3, updated=LONG_AGO, project="beta--two")
    put_build(datastore_client, 4, updated=LONG_AGO, project="done", status=pb.SUCCESS)
    put_build(datastore_client, 5, updated=LONG_AGO, project="elsewhere", backend="swarming://other")

    jobs = plan(datastore_client, make_settings(shards=2), SyncTrigger(), PLANNED_AT)

    projects = ("alpha", "beta--two")
    assert jobs == [ShardJob(BACKEND, project, shard, 2, PLANNED_AT) for project in projects for shard in (0, 1)]


# --- runs that race over the same builds ---------------------------------------------------------------------

# 200 due builds in 4 shards: a batch of 50 a shard, two group transactions of 25 each.
RACED = range(1, 201)
GROUPS = len(RACED) // 25


def put_raced_builds(client, task_backend) -> None:
    """The raced builds, due; every odd one's task has succeeded (it ends), every even one's is running."""
    for build_id in RACED:
        put_build(client, build_id, updated=LONG_AGO, shard=build_id % 4, shards=4)
        task_backend.backend.set_task(f"task-{build_id}", pb.SUCCESS if build_id % 2 else pb.STARTED, 2)


def check_each_build_synced_once_or_failed_for_contention(
    client, reports: list[SyncReport], captured: CapturedLogs
) -> set[int]:
    """What runs that raced over RACED promise; returns the builds no run synced (each counted failed by one).

    A build is updated by one run only; a run that lost a group transaction to
    another's (Aborted, or on the Firestore emulator a lock waited for longer
    than its 2 s, five attempts running) counts the group's builds failed, as
    transient, so that its batch comes back; nothing else fails.
    """
    synced = {i for i in RACED if get_build(client, i)[2].backend.task.update_id == 2}
    failed = {build_id for report in reports for build_id in report.retry_ids}
    lost = [e["error"] for e in captured.events() if e["message"] == "transaction for a group of builds failed"]
    assert sum(report.updated for report in reports) == len(synced)  # no build updated by two runs
    assert [report.failed for report in reports] == [len(report.retry_ids) for report in reports]
    assert all(": 409 " in error for error in lost), lost  # Aborted: contention, and only that
    assert set(RACED) - synced <= failed  # a build no run synced was counted failed, not dropped
    return set(RACED) - synced


def check_redelivery_syncs_the_rest(run_again: Callable[[], SyncReport], client, reports: list[SyncReport]) -> None:
    """The failed batches come back (`run_again`): they sync exactly the builds left, and every build ended once."""
    left = {i for i in RACED if get_build(client, i)[2].backend.task.update_id != 2}
    again = run_again()
    assert (again.updated, again.failed) == (len(left), 0)
    assert sum(report.completed for report in [*reports, again]) == len(RACED) // 2
    final = [get_build(client, i) for i in RACED]
    assert {infra.backend.task.update_id for _, _, infra, _ in final} == {2}
    assert all(build.status == status["status"] == entity["status_v2"] for entity, build, _, status in final)


@pytest.mark.both_emulators  # pessimistic locking: the runs wait on each other's locks
def test_concurrent_runs_sync_each_build_once_and_lose_none(datastore_client, task_backend, make_settings, syncer):
    put_raced_builds(datastore_client, task_backend)
    racer = syncer(make_settings(shards=4))

    with captured_logs() as captured, concurrent.futures.ThreadPoolExecutor(max_workers=3) as executor:
        reports = list(executor.map(lambda _: run(racer), range(3)))

    check_each_build_synced_once_or_failed_for_contention(datastore_client, reports, captured)
    check_redelivery_syncs_the_rest(lambda: run(racer), datastore_client, reports)


@pytest.mark.both_emulators
def test_a_run_that_holds_its_transactions_open_costs_the_others_only_retries_and_loses_no_build(
    datastore_client, datastore_kind, task_backend, make_settings, syncer
):
    """The first run's transactions stop once they have read their builds (the clock is read there) until two
    more runs over the same builds are done: what a slow transaction does to the others, made certain.

    On the Firestore emulator a read locks, and a transaction waits at most 2 s for a lock: the others
    lose every group after five attempts, as transient failures, and the holder syncs every build. On the
    legacy emulator, which locks optimistically, the others sync and the holder's commits abort.
    """
    put_raced_builds(datastore_client, task_backend)
    settings = make_settings(shards=4)
    held, others_done = [], threading.Event()

    def holding_clock() -> datetime.datetime:
        if datastore_client.current_transaction is not None:  # inside a group transaction, its builds read
            held.append(True)
            others_done.wait(SETTLE_SECONDS)
        return PLANNED_AT + HANDLED_AFTER

    holder = syncer(settings, clock=holding_clock)
    with captured_logs() as captured, concurrent.futures.ThreadPoolExecutor(max_workers=3) as executor:
        holding = executor.submit(run, holder)
        wait_until(lambda: len(held) >= GROUPS, SETTLE_SECONDS, "every group of the first run to hold its builds")
        reports = list(executor.map(lambda _: run(syncer(settings)), range(2)))
        others_done.set()
        reports.append(holding.result())

    others = reports[:2]
    # (updated, failed) of the two other runs: every group lost to the locks, or every build synced first.
    expected = {"firestore": (0, 2 * len(RACED)), "datastore": (len(RACED), 0)}[datastore_kind]
    assert (sum(r.updated for r in others), sum(r.failed for r in others)) == expected
    left = check_each_build_synced_once_or_failed_for_contention(datastore_client, reports, captured)
    assert left == set()  # what one run lost, another synced
    check_redelivery_syncs_the_rest(lambda: run(syncer(settings)), datastore_client, reports)


@pytest.mark.both_emulators
def test_a_group_whose_transaction_fails_transiently_is_redone_as_a_smaller_batch(
    datastore_emulator, datastore_client, task_backend, make_settings, pool, transaction_begin
):
    for build_id in range(1, 51):  # one batch, two transactions of 25
        put_build(datastore_client, build_id, updated=LONG_AGO)
        task_backend.backend.set_task(f"task-{build_id}", pb.FAILURE, 2)
    options = SyncOptions(transaction_begin=transaction_begin)

    # Every attempt of the first group's transaction loses to contention; the retry's commits go through.
    with CommitFaults(datastore_emulator.host, doomed={3}, failures=DEFAULT_ATTEMPTS) as faults:
        syncer = Syncer(emulator_client(faults.host, PROJECT), make_settings(), pool, options=options)
        with captured_logs() as captured:
            report = run_pipeline(syncer, SyncTrigger(BACKEND, "proj"))

    assert faults.aborted == DEFAULT_ATTEMPTS
    assert task_backend.backend.calls == [50, 25]  # the retry asked for the failed group's tasks only
    retried = [e for e in captured.events() if e["message"] == "retrying the builds that failed as a smaller batch"]
    assert [(e["builds"], e["of"], e["attempt"]) for e in retried] == [(25, 50, 2)]
    assert (report.due, report.updated, report.completed, report.failed, report.retry) == (50, 50, 50, 0, False)
    assert {get_build(datastore_client, i)[1].status for i in range(1, 51)} == {pb.FAILURE}
