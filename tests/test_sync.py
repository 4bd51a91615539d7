"""The sync stage on the Datastore emulator with a real TaskBackend server, over pRPC and over gRPC."""

from __future__ import annotations

import datetime

import grpc
import pytest
from buildsync.ending.completion import Targets
from buildsync.errors import BackendResponseError, TransientError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules import sync_time
from buildsync.stages.messages import SyncBatch
from buildsync.stages.sync import sync_batch
from buildsync.store import model
from buildsync.store.outbox import Effect
from google.api_core import exceptions as api_exceptions
from google.cloud import datastore

from tests.builds import get_build, put_build, snapshot
from tests.harness import BACKEND, LATER, LONG_AGO, PLANNED_AT, captured_logs, outbox_due, recording_client
from tools.emulators import datastore_client as emulator_client

# Every test that syncs does it over pRPC and over gRPC.
pytestmark = pytest.mark.both_transports


def test_nothing_to_update_leaves_builds_untouched(datastore_client, task_backend, sync):
    put_build(datastore_client, 1, updated=PLANNED_AT)  # updated since planning
    put_build(datastore_client, 2, updated=LONG_AGO, status=pb.SUCCESS)
    put_build(datastore_client, 3, updated=LONG_AGO, task_id="")
    for build_id in (1, 2):
        task_backend.backend.set_task(f"task-{build_id}", pb.SUCCESS, 9)
    before = snapshot(datastore_client, [1, 2, 3])

    report = sync([1, 2, 3])

    assert snapshot(datastore_client, [1, 2, 3]) == before
    assert (report.skipped, report.updated, report.completed) == (3, 0, 0)


def test_running_tasks_with_newer_update_id_update_infra_not_status(datastore_client, task_backend, sync):
    put_build(datastore_client, 1, updated=LONG_AGO)
    task_backend.backend.set_task("task-1", pb.STARTED, 2, link="https://task/1")

    report = sync([1], targets=Targets())

    entity, build, infra, status = get_build(datastore_client, 1)
    assert report.updated == 1 and report.completed == 0
    assert build.status == pb.STARTED and status["status"] == pb.STARTED
    assert (infra.backend.task.update_id, infra.backend.task.status, infra.backend.task.link) == (
        2,
        pb.STARTED,
        "https://task/1",
    )
    assert build.update_time.ToDatetime(datetime.timezone.utc) == LATER
    assert sync_time.parse_time(entity["next_backend_sync_time"]) == sync_time.next_sync_unix(
        LATER, sync_time.DEFAULT_SYNC_INTERVAL
    )


@pytest.mark.parametrize(
    "task_status, task_success, build_status",
    [
        (pb.SUCCESS, True, pb.SUCCESS),
        (pb.SUCCESS, False, pb.INFRA_FAILURE),
        (pb.FAILURE, False, pb.FAILURE),
        (pb.CANCELED, False, pb.CANCELED),
    ],
)
def test_ended_tasks_end_their_builds(
    datastore_client, task_backend, make_settings, task_status, task_success, build_status, sync
):
    put_build(datastore_client, 1, updated=LONG_AGO)
    task_backend.backend.set_task("task-1", task_status, 2)
    settings = make_settings(task_success=task_success).backend(BACKEND)

    report = sync([1], settings=settings, targets=Targets())

    entity, build, infra, status = get_build(datastore_client, 1)
    assert (build.status, entity["status_v2"], status["status"]) == (build_status, build_status, build_status)
    assert entity["incomplete"] is False
    assert build.end_time.ToDatetime(datetime.timezone.utc) == LATER
    assert entity["status_changed_time"] == LATER
    assert status["build_address"] == "proj/ci/builder/b1"
    assert report.completed == 1
    assert [(c.build_id, c.effects, c.created) for c in report.completions] == [
        (1, {Effect.METRICS, Effect.PROJECT_TOPICS}, LATER)
    ]
    assert outbox_due(datastore_client, LATER + datetime.timedelta(minutes=2)) == report.completions


def test_mix_of_ok_error_stale_and_unchanged(datastore_client, task_backend, sync):
    for build_id in range(1, 5):
        put_build(datastore_client, build_id, updated=LONG_AGO, task_update_id=5)
    task_backend.backend.set_task("task-1", pb.SUCCESS, 6)  # ok
    task_backend.backend.task_errors["task-2"] = (grpc.StatusCode.INTERNAL.value[0], "boom")  # per-task error
    task_backend.backend.set_task("task-3", pb.STARTED, 4)  # stale
    task_backend.backend.set_task("task-4", pb.STARTED, 5)  # unchanged
    before = {i: get_build(datastore_client, i) for i in (2, 3, 4)}

    report = sync([1, 2, 3, 4])

    assert report.counts() | {"fetched": 4} == {
        "due": 4,
        "fetched": 4,
        "updated": 1,
        "unchanged": 1,
        "stale": 1,
        "invalid": 1,
        "skipped": 0,
        "completed": 1,
        "failed": 0,
    }
    assert get_build(datastore_client, 1)[1].status == pb.INFRA_FAILURE
    for build_id in (2, 3):
        assert get_build(datastore_client, build_id)[0] == before[build_id][0]
    unchanged = get_build(datastore_client, 4)
    assert sync_time.parse_time(unchanged[0]["next_backend_sync_time"]) > sync_time.parse_time(
        before[4][0]["next_backend_sync_time"]
    )
    assert unchanged[2] == before[4][2]  # BuildInfra not rewritten


def test_fetch_tasks_failing_as_a_whole_changes_nothing(datastore_client, task_backend, sync):
    put_build(datastore_client, 1, updated=LONG_AGO)
    task_backend.backend.set_task("task-1", pb.SUCCESS, 2)
    task_backend.backend.fail_with = grpc.StatusCode.UNAVAILABLE
    before = snapshot(datastore_client, [1])

    with pytest.raises(TransientError, match="UNAVAILABLE: FetchTasks on"):
        sync([1])

    assert snapshot(datastore_client, [1]) == before


def test_wrong_number_of_responses_rejects_the_batch(datastore_client, task_backend, sync):
    put_build(datastore_client, 1, updated=LONG_AGO)
    put_build(datastore_client, 2, updated=LONG_AGO)
    for build_id in (1, 2):
        task_backend.backend.set_task(f"task-{build_id}", pb.SUCCESS, 2)
    task_backend.backend.response_hook = lambda request, response: pb.FetchTasksResponse(
        responses=response.responses[:1]
    )
    before = snapshot(datastore_client, [1, 2])

    with pytest.raises(BackendResponseError, match="swarming://test-swarm.*1 responses for 2 task ids"):
        sync([1, 2])

    assert snapshot(datastore_client, [1, 2]) == before


def test_a_task_with_a_bad_status_blocks_no_other_build(datastore_client, task_backend, sync):
    put_build(datastore_client, 1, updated=LONG_AGO)
    put_build(datastore_client, 2, updated=LONG_AGO)
    task_backend.backend.set_task("task-1", pb.ENDED_MASK, 2)
    task_backend.backend.set_task("task-2", pb.FAILURE, 2)

    report = sync([1, 2])

    assert (report.invalid, report.updated) == (1, 1)
    assert get_build(datastore_client, 1)[1].status == pb.STARTED
    assert get_build(datastore_client, 2)[1].status == pb.FAILURE


def test_an_undecodable_build_fails_alone(datastore_client, task_backend, sync):
    put_build(datastore_client, 1, updated=LONG_AGO)
    put_build(datastore_client, 2, updated=LONG_AGO)
    broken = datastore_client.get(model.build_key(datastore_client, 1))
    broken["proto"] = b"\xff\xff not a proto"
    datastore_client.put(broken)
    for build_id in (1, 2):
        task_backend.backend.set_task(f"task-{build_id}", pb.FAILURE, 2)

    report = sync([1, 2])

    assert (report.failed, report.completed) == (1, 1)
    assert datastore_client.get(model.build_key(datastore_client, 1))["proto"] == b"\xff\xff not a proto"
    assert get_build(datastore_client, 2)[1].status == pb.FAILURE


def test_a_build_missing_its_proto_property_fails_alone(datastore_client, task_backend, sync):
    put_build(datastore_client, 1, updated=LONG_AGO)
    put_build(datastore_client, 2, updated=LONG_AGO)
    broken = datastore_client.get(model.build_key(datastore_client, 1))
    del broken["proto"]
    datastore_client.put(broken)
    for build_id in (1, 2):
        task_backend.backend.set_task(f"task-{build_id}", pb.FAILURE, 2)

    report = sync([1, 2])

    assert (report.failed, report.completed) == (1, 1)
    assert get_build(datastore_client, 2)[1].status == pb.FAILURE


def test_a_bug_in_the_rules_is_raised_not_counted_as_a_failed_build(datastore_client, task_backend, monkeypatch, sync):
    put_build(datastore_client, 1, updated=LONG_AGO)
    task_backend.backend.set_task("task-1", pb.FAILURE, 2)
    before = snapshot(datastore_client, [1])

    def buggy_rule(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr("buildsync.stages.sync.decide_update", buggy_rule)

    with pytest.raises(KeyError, match="a bug"):
        sync([1])
    assert snapshot(datastore_client, [1]) == before


class FailingPutClient(datastore.Client):
    """The real client, except that writing any entity of `doomed` build ids fails with `error`."""

    doomed: set[int] = set()
    error: Exception = api_exceptions.ServiceUnavailable("injected commit failure")

    def put_multi(self, entities, *args, **kwargs):
        if any(model.build_id_of(e.key) in self.doomed for e in entities):
            raise self.error
        return super().put_multi(entities, *args, **kwargs)


def put_builds_whose_tasks_failed(client, task_backend, build_ids):
    for build_id in build_ids:
        put_build(client, build_id, updated=LONG_AGO)
        task_backend.backend.set_task(f"task-{build_id}", pb.FAILURE, 2)


def test_a_failed_transaction_neither_stops_nor_hides_other_groups(
    datastore_emulator, datastore_client, task_backend, sync
):
    build_ids = list(range(1, 51))  # two transactions of 25
    put_builds_whose_tasks_failed(datastore_client, task_backend, build_ids)
    client = emulator_client(datastore_emulator.host, datastore_client.project, FailingPutClient)
    client.doomed = {3}
    with captured_logs() as captured:
        report = sync(build_ids, client=client)

    assert (report.failed, report.updated, report.completed, report.retry) == (25, 25, 25, True)
    assert [get_build(datastore_client, i)[1].status for i in (1, 25, 26, 50)] == [
        pb.STARTED,
        pb.STARTED,
        pb.FAILURE,
        pb.FAILURE,
    ]
    failures = [e for e in captured.events() if "group of builds failed" in e["message"]]
    assert len(failures) == 1
    assert failures[0]["severity"] == "ERROR" and failures[0]["build_ids"] == list(range(1, 26))
    assert "injected commit failure" in failures[0]["error"]


def test_dry_run_reports_and_writes_nothing(datastore_client, task_backend, sync):
    put_build(datastore_client, 1, updated=LONG_AGO)
    task_backend.backend.set_task("task-1", pb.SUCCESS, 2)
    before = snapshot(datastore_client, [1])

    report = sync([1], dry_run=True)

    assert (report.updated, report.completed) == (1, 1)
    assert snapshot(datastore_client, [1]) == before


def test_redelivered_batch_is_skipped(datastore_client, task_backend, sync):
    put_build(datastore_client, 1, updated=LONG_AGO)
    task_backend.backend.set_task("task-1", pb.STARTED, 2)
    sync([1])
    after_first = snapshot(datastore_client, [1])
    task_backend.backend.set_task("task-1", pb.SUCCESS, 3)

    report = sync([1], targets=Targets())

    assert report.skipped == 1
    assert snapshot(datastore_client, [1]) == after_first


def test_sync_keeps_properties_and_proto_fields_it_does_not_declare(datastore_client, task_backend, sync):
    put_build(datastore_client, 1, updated=LONG_AGO)
    entity = datastore_client.get(model.build_key(datastore_client, 1))
    # Field 999 (varint 7) and field 40 (string) are not declared by our protos.
    unknown = b"\xb8\x3e\x07" + b"\xc2\x02\x05hello"
    entity["proto"] = entity["proto"] + unknown
    entity.update({"tags": ["a:b", "c:d"], "experiments": ["+luci.x"], "bucket_id": "proj/ci", "note": "x" * 2000})
    entity.exclude_from_indexes.add("note")
    infra = datastore_client.get(model.infra_key(datastore_client, 1))
    infra_proto = model.read_infra(infra)
    infra_proto.backend.task.summary_html = "<b>hi</b>"
    infra["infra"] = infra_proto.SerializeToString() + b"\x9a\x06\x03abc"  # field 99 (string): not declared
    infra["extra"] = 42
    datastore_client.put_multi([entity, infra])
    task_backend.backend.set_task("task-1", pb.FAILURE, 2)

    sync([1])

    entity, build, infra_after, status = get_build(datastore_client, 1)
    assert build.status == pb.FAILURE
    assert unknown in build.SerializeToString()
    assert {k: entity[k] for k in ("tags", "experiments", "bucket_id", "note")} == {
        "tags": ["a:b", "c:d"],
        "experiments": ["+luci.x"],
        "bucket_id": "proj/ci",
        "note": "x" * 2000,
    }
    assert {"note", "proto", "backend_sync_interval"} <= set(entity.exclude_from_indexes)
    stored_infra = datastore_client.get(model.infra_key(datastore_client, 1))
    assert stored_infra["extra"] == 42
    assert b"\x9a\x06\x03abc" in stored_infra["infra"]
    assert infra_after.backend.task.summary_html == "<b>hi</b>"
    assert status["build_address"] == "proj/ci/builder/b1"


@pytest.mark.parametrize("ended_output_status", [pb.ENDED_MASK, 100])
def test_output_status_ended_mask_rule_ends_the_build_with_the_output_status_as_upstream(
    datastore_client, task_backend, ended_output_status, sync
):
    # ENDED_MASK, or any value with its bit, is ended: copied like FAILURE (buildstatus.go buildEndStatus).
    put_build(datastore_client, 1, updated=LONG_AGO)
    put_build(datastore_client, 2, updated=LONG_AGO)
    odd = datastore_client.get(model.build_key(datastore_client, 1))
    proto = model.read_build(odd)
    proto.output.status = ended_output_status
    proto.output.status_details.resource_exhaustion.SetInParent()
    odd["proto"] = proto.SerializeToString()
    datastore_client.put(odd)
    for build_id in (1, 2):
        task_backend.backend.set_task(f"task-{build_id}", pb.FAILURE, 2)

    report = sync([1, 2])

    assert (report.failed, report.completed) == (0, 2)
    entity, build, _, status = get_build(datastore_client, 1)
    assert (build.status, build.HasField("end_time"), build.status_details.HasField("resource_exhaustion")) == (
        ended_output_status,
        True,
        True,
    )
    assert (entity["status_v2"], entity["incomplete"], status["status"]) == (
        ended_output_status,
        False,
        ended_output_status,
    )
    assert (entity["status"], entity["result"]) == (2, 0)  # no legacy status for it: left as it was (STARTED)
    assert get_build(datastore_client, 2)[1].status == pb.FAILURE


def test_a_repeated_build_id_is_synced_once(datastore_client, task_backend, sync):
    put_build(datastore_client, 1, updated=LONG_AGO)
    task_backend.backend.set_task("task-1", pb.FAILURE, 2)

    report = sync([1, 1])

    assert (report.due, report.updated, report.failed) == (1, 1, 0)
    assert get_build(datastore_client, 1)[1].status == pb.FAILURE


def test_every_group_locks_its_builds_in_ascending_key_order(datastore_emulator, datastore_client, task_backend, sync):
    # Pessimistic locking (Firestore) deadlocks two transactions that take the
    # same locks in different orders; one order for every group rules that out.
    build_ids = [30, 4, 27, 1, 12, *range(69, 39, -1)]  # 35 builds, two groups, out of order
    for build_id in build_ids:
        put_build(datastore_client, build_id, updated=LONG_AGO)
        task_backend.backend.set_task(f"task-{build_id}", pb.FAILURE, 2)
    client = recording_client(datastore_emulator)

    report = sync(build_ids, client=client)

    assert report.updated == len(build_ids)
    lookups = client.transaction_lookups
    assert lookups and all(keys == sorted(keys) for keys in lookups)
    groups = {frozenset(build_id for build_id, _ in keys) for keys in lookups if keys[0][1] == model.BUILD_KIND}
    assert sorted(map(sorted, groups)) == [sorted(build_ids)[:25], sorted(build_ids)[25:]]


@pytest.mark.parametrize(
    "handled_after, fetched_ids",
    [
        (datetime.timedelta(seconds=10), [2]),  # prompt: both fetched, the transaction skips build 1
        (datetime.timedelta(minutes=5), [1]),  # late (a drained backlog): build 1 is left out before FetchTasks
    ],
)
def test_a_late_batch_fetches_only_the_builds_still_due(
    datastore_client, task_backend, handled_after, fetched_ids, sync
):
    put_build(datastore_client, 1, updated=PLANNED_AT)  # synced by a newer copy since this batch was planned
    put_build(datastore_client, 2, updated=LONG_AGO)
    for build_id in (1, 2):
        task_backend.backend.set_task(f"task-{build_id}", pb.STARTED, 2)

    report = sync([1, 2], clock=lambda: PLANNED_AT + handled_after)

    assert task_backend.backend.calls == fetched_ids
    assert (report.updated, report.skipped) == (1, 1)


def test_a_task_too_big_to_store_still_ends_its_build_trimmed_and_its_group_commits(
    datastore_client, task_backend, sync
):
    build_ids = list(range(1, 26))  # one transaction
    put_builds_whose_tasks_failed(datastore_client, task_backend, build_ids)
    task_backend.backend.set_task("task-7", pb.FAILURE, 2, summary_markdown="x" * 2_000_000)

    report = sync(build_ids)

    assert (report.invalid, report.updated, report.completed, report.failed) == (0, 25, 25, 0)
    _, build, infra, _ = get_build(datastore_client, 7)
    assert build.status == pb.FAILURE and infra.backend.task.update_id == 2
    assert infra.backend.task.summary_markdown == "", "dropped: the entity could not hold it"
    assert {get_build(datastore_client, i)[1].status for i in build_ids} == {pb.FAILURE}


def test_a_group_whose_commit_fails_permanently_is_retried_one_build_at_a_time(
    datastore_emulator, datastore_client, task_backend, sync
):
    build_ids = list(range(1, 26))
    put_builds_whose_tasks_failed(datastore_client, task_backend, build_ids)
    client = emulator_client(datastore_emulator.host, datastore_client.project, FailingPutClient)
    client.doomed, client.error = {7}, api_exceptions.InvalidArgument("entity is too big")  # permanent

    with captured_logs() as captured:
        report = sync(build_ids, client=client)

    assert (report.failed, report.updated, report.completed, report.retry) == (1, 24, 24, False)
    assert get_build(datastore_client, 7)[1].status == pb.STARTED
    assert {get_build(datastore_client, i)[1].status for i in build_ids if i != 7} == {pb.FAILURE}
    failures = [e for e in captured.events() if "group of builds failed" in e["message"]]
    assert [e["build_ids"] for e in failures] == [build_ids, [7]]


def test_a_build_whose_merged_task_would_outgrow_its_entity_keeps_syncing_and_ends(
    datastore_client, task_backend, fetcher, backend, sync_options
):
    """30 valid updates of ~45 KB of new details keys each: merged, 1.35 MB; the entity takes 1 MiB."""
    put_build(datastore_client, 1, updated=LONG_AGO)
    outcomes = []
    with captured_logs() as captured:
        for update_id in range(2, 32):
            status = pb.SUCCESS if update_id == 31 else pb.STARTED
            task = task_backend.backend.set_task("task-1", status, update_id)
            task.details.update({f"k{update_id}-{i}": "v" * 1000 for i in range(45)})
            moment = PLANNED_AT + datetime.timedelta(minutes=10 * update_id)
            batch = SyncBatch(BACKEND, "proj", (1,), moment)
            options = sync_options(clock=lambda moment=moment: moment + datetime.timedelta(seconds=10))
            report = sync_batch(datastore_client, fetcher, backend, batch, options)
            outcomes.append((report.updated, report.failed))
    assert outcomes == [(1, 0)] * 30
    trimmed = [e for e in captured.events() if e["message"] == "task trimmed to fit its BuildInfra"]
    assert trimmed and all("the newest task is kept whole" in e["reason"] for e in trimmed)
    entity, build, infra, _ = get_build(datastore_client, 1)
    assert build.status == pb.INFRA_FAILURE and entity["incomplete"] is False  # ended (task-success is off)
    assert infra.ByteSize() < 1_000_000 and infra.backend.task.update_id == 31
    assert "k31-0" in infra.backend.task.details and "k2-0" not in infra.backend.task.details
