"""The in-process pipeline and the planner, on the Datastore emulator with a real TaskBackend."""

from __future__ import annotations

import concurrent.futures
import datetime

import pytest
from buildsync.errors import UnknownBackendError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.stages.messages import ShardJob, SyncTrigger
from buildsync.stages.pipeline import run_pipeline
from buildsync.stages.planner import plan
from buildsync.stages.sync import Syncer, SyncOptions
from buildsync.store import model
from buildsync.store.transactions import DEFAULT_ATTEMPTS

from tests.builds import BACKEND, get_build, put_build
from tests.harness import PROJECT, captured_logs
from tools.datastore_faults import CommitFaults
from tools.emulators import datastore_client as emulator_client

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
LONG_AGO = NOW - datetime.timedelta(hours=1)


def test_full_pipeline_with_batches_of_one_syncs_six_builds(datastore_client, task_backend, make_settings, pool):
    settings = make_settings(shards=3)
    for build_id in range(1, 7):
        put_build(datastore_client, build_id, updated=LONG_AGO, shard=build_id % 3, shards=3)
        task_backend.backend.set_task(f"task-{build_id}", pb.FAILURE if build_id % 2 else pb.STARTED, 2)

    report = run_pipeline(Syncer(datastore_client, settings, pool), SyncTrigger(BACKEND, "proj"), batch_size=1)

    assert task_backend.backend.calls == [1] * 6
    assert (report.due, report.updated, report.completed, report.failed) == (6, 6, 3, 0)
    assert [get_build(datastore_client, i)[1].status for i in range(1, 7)] == [pb.FAILURE, pb.STARTED] * 3


def test_shards_lowered_then_raised_strand_no_build(datastore_client, task_backend, make_settings, pool):
    for build_id in range(1, 9):
        put_build(datastore_client, build_id, updated=LONG_AGO, shard=build_id - 1, shards=8)
        task_backend.backend.set_task(f"task-{build_id}", pb.STARTED, 2)

    lowered = run_pipeline(Syncer(datastore_client, make_settings(shards=3), pool), SyncTrigger(BACKEND, "proj"))

    assert (lowered.due, lowered.updated) == (8, 8)
    shards = [model.next_sync_key_of(get_build(datastore_client, i)[0]).split("--")[-2] for i in range(1, 9)]
    assert shards == ["0", "1", "2", "0", "1", "2", "0", "1"]  # each moved to its shard mod 3
    for build_id in range(1, 9):
        task_backend.backend.set_task(f"task-{build_id}", pb.STARTED, 3)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
        minutes=10
    )  # after the first run's next sync
    raised = run_pipeline(
        Syncer(datastore_client, make_settings(shards=8), pool), SyncTrigger(BACKEND, "proj"), planned_at=later
    )
    assert (raised.due, raised.updated) == (8, 8)


def test_second_run_finds_nothing_due(datastore_client, task_backend, make_settings, pool):
    put_build(datastore_client, 1, updated=LONG_AGO)
    task_backend.backend.set_task("task-1", pb.STARTED, 1)
    settings = make_settings()
    run_pipeline(Syncer(datastore_client, settings, pool), SyncTrigger(BACKEND, "proj"))

    report = run_pipeline(Syncer(datastore_client, settings, pool), SyncTrigger(BACKEND, "proj"))

    assert report.due == 0 and task_backend.backend.calls == [1]


def test_lite_mode_backend_is_planned_to_nothing(datastore_client, make_settings):
    assert plan(datastore_client, make_settings(), SyncTrigger("lite://backend", "proj"), NOW) == []


def test_unknown_backend_is_a_permanent_error_naming_it(datastore_client, make_settings):
    with pytest.raises(UnknownBackendError, match="swarming://nowhere"):
        plan(datastore_client, make_settings(), SyncTrigger("swarming://nowhere", "proj"), NOW)


def test_plan_without_project_covers_every_project_with_incomplete_builds(datastore_client, make_settings):
    put_build(datastore_client, 1, updated=LONG_AGO, project="alpha")
    put_build(datastore_client, 2, updated=LONG_AGO, project="beta--two")
    put_build(datastore_client, 3, updated=LONG_AGO, project="beta--two")
    put_build(datastore_client, 4, updated=LONG_AGO, project="done", status=pb.SUCCESS)
    put_build(datastore_client, 5, updated=LONG_AGO, project="elsewhere", backend="swarming://other")

    jobs = plan(datastore_client, make_settings(shards=2), SyncTrigger(), NOW)

    assert jobs == [ShardJob(BACKEND, project, shard, 2, NOW) for project in ("alpha", "beta--two") for shard in (0, 1)]


@pytest.mark.both_emulators  # pessimistic locking: the runs wait on each other's locks
def test_concurrent_runs_split_the_work_and_fail_nothing(
    datastore_client, task_backend, make_settings, pool, transaction_begin
):
    settings = make_settings(shards=4)
    for build_id in range(1, 201):
        put_build(datastore_client, build_id, updated=LONG_AGO, shard=build_id % 4, shards=4)
        task_backend.backend.set_task(f"task-{build_id}", pb.SUCCESS if build_id % 2 else pb.STARTED, 2)
    syncer = Syncer(datastore_client, settings, pool, options=SyncOptions(transaction_begin=transaction_begin))

    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as executor:
        reports = list(executor.map(lambda _: run_pipeline(syncer, SyncTrigger(BACKEND, "proj")), range(3)))

    assert sum(r.failed for r in reports) == 0
    assert sum(r.updated for r in reports) == 200  # each build updated by exactly one run
    assert sum(r.completed for r in reports) == 100
    final = [get_build(datastore_client, i) for i in range(1, 201)]
    assert all(build.status == status["status"] == entity["status_v2"] for entity, build, _, status in final)


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
