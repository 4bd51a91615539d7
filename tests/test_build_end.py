"""Ending a build on the Datastore emulator as Buildbucket does: legacy properties, lease, steps.

The builds are written the way Buildbucket writes them: legacy v1 properties
and an active lease on the Build entity, other writers' properties with their
own index flags, and a BuildSteps child stored plain or zlib-compressed.
"""

from __future__ import annotations

import datetime
import random
import zlib

import pytest
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules import legacy
from buildsync.store import model, outbox
from google.cloud import datastore

from tests.buildbucket_writer import put_steps
from tests.builds import BACKEND, get_build, put_build, snapshot
from tests.harness import LATER, LONG_AGO, PLANNED_AT, captured_logs, recording_client

UTC = datetime.timezone.utc
LEASE_EXPIRES = PLANNED_AT + datetime.timedelta(hours=2)
STEP_STARTED = LONG_AGO + datetime.timedelta(minutes=1)
STEP_ENDED = LONG_AGO + datetime.timedelta(minutes=2)

# A Step field buildsync does not declare (99, varint 7), as a newer Buildbucket might write.
UNKNOWN_STEP_FIELD = b"\x98\x06\x07"

# Properties of other writers, indexed or not, that every save must keep as they are.
OTHER_PROPERTIES = {
    "tags": ["builder:builder", "buildset:commit/abc"],
    "bucket_id": "proj/ci",
    "url": "https://ci.example.com/b1",
    "never_leased": True,
    "retry_of": 7,
}
OTHER_UNINDEXED = {"url"}


def put_leased_build(client: datastore.Client, build_id: int) -> datastore.Entity:
    """A started build as Buildbucket keeps it: v1 properties, an active lease, others' properties."""
    put_build(client, build_id, updated=LONG_AGO)
    entity = client.get(model.build_key(client, build_id))
    entity.update(OTHER_PROPERTIES)
    entity.update(
        {
            "status": legacy.STARTED,
            "result": 0,
            "failure_reason": 0,
            "cancelation_reason": 0,
            "is_leased": True,
            "leasee": b"user:bot@example.com",
            "lease_expiration_date": LEASE_EXPIRES,
            "lease_key": 123456789,
        }
    )
    entity.exclude_from_indexes.update(OTHER_UNINDEXED)
    client.put(entity)
    return client.get(entity.key)


def step(name: str, status: int, *, ended: bool = False, **fields) -> pb.Step:
    message = pb.Step(name=name, status=status, **fields)
    if status != pb.SCHEDULED:
        message.start_time.FromDatetime(STEP_STARTED)
    if ended:
        message.end_time.FromDatetime(STEP_ENDED)
    return message


def get_steps(client: datastore.Client, build_id: int) -> datastore.Entity | None:
    return client.get(client.key(model.BUILD_KIND, build_id, "BuildSteps", 1))


def steps_of(entity: datastore.Entity) -> pb.Build:
    data = entity["steps"]
    return pb.Build.FromString(zlib.decompress(data) if entity["step_container_bytes_zipped"] else data)


def incomplete_steps(summary_bytes: int = 0) -> list[pb.Step]:
    running = step("compile", pb.STARTED, summary_markdown="compiling" + "x" * summary_bytes)
    running.MergeFromString(UNKNOWN_STEP_FIELD)
    return [
        step("checkout", pb.SUCCESS, ended=True, logs=[pb.Log(name="stdout", url="logdog://h/p/+/s")]),
        running,
        step("test", pb.SCHEDULED),
    ]


def at(timestamp) -> datetime.datetime:
    return timestamp.ToDatetime(UTC)


@pytest.mark.parametrize(
    "task_status, details, expected",
    [
        (pb.SUCCESS, None, {"status": 3, "result": 1, "failure_reason": 0, "cancelation_reason": 0}),
        (pb.FAILURE, None, {"status": 3, "result": 2, "failure_reason": 1, "cancelation_reason": 0}),
        (pb.INFRA_FAILURE, None, {"status": 3, "result": 2, "failure_reason": 3, "cancelation_reason": 0}),
        (
            pb.INFRA_FAILURE,
            pb.StatusDetails(timeout=pb.StatusDetails.Timeout()),
            {"status": 3, "result": 3, "failure_reason": 0, "cancelation_reason": 2},
        ),
        (pb.CANCELED, None, {"status": 3, "result": 3, "failure_reason": 0, "cancelation_reason": 1}),
    ],
)
def test_ending_a_build_writes_legacy_properties_and_clears_its_lease(
    datastore_client, task_backend, make_settings, task_status, details, expected, sync
):
    before = put_leased_build(datastore_client, 1)
    task_backend.backend.set_task("task-1", task_status, 2, **({"status_details": details} if details else {}))

    report = sync([1], settings=make_settings(task_success=True).backend(BACKEND))

    entity = datastore_client.get(model.build_key(datastore_client, 1))
    assert report.completed == 1
    assert {name: entity[name] for name in expected} == expected
    assert (entity["is_leased"], entity["leasee"], entity["lease_key"]) == (False, b"", 0)
    assert entity["lease_expiration_date"] == datetime.datetime(1, 1, 1, tzinfo=UTC)
    assert {name: entity[name] for name in OTHER_PROPERTIES} == OTHER_PROPERTIES
    assert entity.exclude_from_indexes == before.exclude_from_indexes


def stored_values(client: datastore.Client, key: datastore.Key, names: tuple[str, ...]) -> dict[str, tuple]:
    """Each property as Datastore holds it: (value type, value), read below the client's conversions."""
    response = client._datastore_api.lookup(request={"project_id": client.project, "keys": [key.to_protobuf()]})
    properties = type(response).pb(response).found[0].entity.properties
    found = {}
    for name in names:
        kind = properties[name].WhichOneof("value_type")
        value = getattr(properties[name], kind)
        found[name] = (kind, value.seconds if kind == "timestamp_value" else value)
    return found


@pytest.mark.both_emulators
def test_cleared_lease_rule_stores_what_go_stores(datastore_client, task_backend, sync):
    # model/build.go ClearLease through gae/impl/cloud: an empty blob, and Go's zero time, not the epoch.
    put_leased_build(datastore_client, 1)
    task_backend.backend.set_task("task-1", pb.FAILURE, 2)

    report = sync([1])

    assert report.completed == 1
    names = ("is_leased", "leasee", "lease_expiration_date", "lease_key")
    assert stored_values(datastore_client, model.build_key(datastore_client, 1), names) == {
        "is_leased": ("boolean_value", False),
        "leasee": ("blob_value", b""),
        "lease_expiration_date": ("timestamp_value", -62135596800),
        "lease_key": ("integer_value", 0),
    }
    entity = datastore_client.get(model.build_key(datastore_client, 1))
    assert (entity["leasee"], entity["lease_expiration_date"]) == (b"", datetime.datetime(1, 1, 1, tzinfo=UTC))


@pytest.mark.both_emulators
@pytest.mark.parametrize(
    "stored, expected", [(None, 300_000_000_000), (0, 300_000_000_000), (120_000_000_000, 120_000_000_000)]
)
def test_backend_sync_interval_rule_writes_go_s_default_on_every_save(
    datastore_client, task_backend, sync, stored, expected
):
    # model/build.go Save: a build on a backend with an interval of 0 is saved with 5 minutes in ns.
    put_build(datastore_client, 1, updated=LONG_AGO)
    entity = datastore_client.get(model.build_key(datastore_client, 1))
    if stored is None:
        del entity["backend_sync_interval"]
    else:
        entity["backend_sync_interval"] = stored
    datastore_client.put(entity)
    task_backend.backend.set_task("task-1", pb.STARTED, 1)  # no news: a save of update_time only

    report = sync([1])

    assert report.unchanged == 1
    saved = datastore_client.get(model.build_key(datastore_client, 1))
    assert saved["backend_sync_interval"] == expected
    assert "backend_sync_interval" in saved.exclude_from_indexes


@pytest.mark.both_emulators
@pytest.mark.parametrize(
    "build_status, task_status", [(pb.STARTED, pb.FAILURE), (pb.SCHEDULED, pb.CANCELED)], ids=["started", "scheduled"]
)
def test_missing_build_status_rule_saves_nothing_of_that_build_and_counts_it_failed(
    datastore_client, task_backend, sync, build_status, task_status
):
    # internal/buildstatus/buildstatus.go Do: NotFound for the BuildStatus, and the sync saves nothing.
    for build_id in (1, 2):
        put_build(datastore_client, build_id, updated=LONG_AGO, status=build_status)
        task_backend.backend.set_task(f"task-{build_id}", task_status, 2)
    put_steps(datastore_client, 1, [step("s", pb.STARTED)])
    datastore_client.delete(model.status_key(datastore_client, 1))
    before = snapshot(datastore_client, [1]), get_steps(datastore_client, 1)

    with captured_logs() as captured:
        report = sync([1, 2])

    assert (report.failed, report.updated, report.completed) == (1, 1, 1)
    assert (snapshot(datastore_client, [1]), get_steps(datastore_client, 1)) == before
    assert datastore_client.get(outbox.entry_key(datastore_client, 1)) is None
    [failed] = [e for e in captured.events() if e["message"] == "build failed"]
    assert failed["build_id"] == 1 and "BuildStatus entity is missing" in failed["reason"]
    assert get_build(datastore_client, 2)[0]["incomplete"] is False


@pytest.mark.both_emulators
def test_missing_build_status_rule_does_not_stop_a_save_without_a_status_change(datastore_client, task_backend, sync):
    put_build(datastore_client, 1, updated=LONG_AGO)
    datastore_client.delete(model.status_key(datastore_client, 1))
    task_backend.backend.set_task("task-1", pb.STARTED, 2)

    report = sync([1])

    assert (report.failed, report.updated) == (0, 1)
    assert get_build(datastore_client, 1)[2].backend.task.update_id == 2


def test_a_build_that_keeps_running_keeps_its_lease_and_says_started(datastore_client, task_backend, sync):
    before = put_leased_build(datastore_client, 1)
    task_backend.backend.set_task("task-1", pb.STARTED, 2)

    sync([1])

    entity = datastore_client.get(model.build_key(datastore_client, 1))
    assert (entity["status"], entity["result"]) == (legacy.STARTED, 0)
    lease = ("is_leased", "leasee", "lease_expiration_date", "lease_key", "never_leased")
    assert {name: entity[name] for name in lease} == {name: before[name] for name in lease}
    assert entity.exclude_from_indexes == before.exclude_from_indexes


def test_legacy_properties_a_build_lacked_are_added_as_go_s_zero_values_indexed(datastore_client, task_backend, sync):
    # model/legacy.go: every field of LegacyProperties is saved, zero or not, indexed.
    put_build(datastore_client, 1, updated=LONG_AGO)
    lacking = datastore_client.get(model.build_key(datastore_client, 1))
    for name in ("status", "result", "failure_reason", "cancelation_reason", "never_leased", "is_leased"):
        del lacking[name]
    datastore_client.put(lacking)
    task_backend.backend.set_task("task-1", pb.FAILURE, 2)

    sync([1])

    entity = datastore_client.get(model.build_key(datastore_client, 1))
    assert (entity["status"], entity["result"], entity["failure_reason"]) == (3, 2, 1)
    assert (entity["cancelation_reason"], entity["never_leased"], entity["is_leased"]) == (0, False, False)
    legacy_names = {"status", "result", "failure_reason", "cancelation_reason", "never_leased"}
    assert not entity.exclude_from_indexes & legacy_names


@pytest.mark.parametrize("zipped", [False, True], ids=["plain", "zlib"])
def test_ending_a_build_cancels_its_incomplete_steps_in_the_stored_format(datastore_client, task_backend, zipped, sync):
    put_leased_build(datastore_client, 1)
    # Over a million bytes Buildbucket compresses the steps; under it, it stores them plain.
    stored = incomplete_steps(summary_bytes=1_100_000 if zipped else 0)
    put_steps(datastore_client, 1, stored, zipped=zipped)
    task_backend.backend.set_task("task-1", pb.FAILURE, 2)

    sync([1])

    entity = get_steps(datastore_client, 1)
    assert entity["step_container_bytes_zipped"] is zipped
    assert entity.exclude_from_indexes == {"steps", "step_container_bytes_zipped"}
    checkout, compile_step, test_step = steps_of(entity).steps
    assert checkout == stored[0]
    assert (compile_step.status, at(compile_step.end_time), at(compile_step.start_time)) == (
        pb.CANCELED,
        LATER,
        STEP_STARTED,
    )
    assert compile_step.summary_markdown == stored[1].summary_markdown
    assert UNKNOWN_STEP_FIELD in compile_step.SerializeToString()
    assert (test_step.status, at(test_step.end_time), test_step.HasField("start_time")) == (pb.CANCELED, LATER, False)


def test_steps_of_a_build_that_keeps_running_are_left_alone(datastore_client, task_backend, sync):
    put_leased_build(datastore_client, 1)
    put_steps(datastore_client, 1, incomplete_steps(), zipped=False)
    before = get_steps(datastore_client, 1)
    task_backend.backend.set_task("task-1", pb.STARTED, 2)

    sync([1])

    assert get_steps(datastore_client, 1) == before


def test_a_build_without_steps_ends_with_an_empty_steps_entity_as_go_saves_it(datastore_client, task_backend, sync):
    # tasks/build_status.go: the BuildSteps read as missing is saved anyway; a nil Bytes is an empty blob.
    put_leased_build(datastore_client, 1)
    task_backend.backend.set_task("task-1", pb.SUCCESS, 2)

    report = sync([1])

    assert report.completed == 1
    entity = get_steps(datastore_client, 1)
    assert dict(entity) == {"steps": b"", "step_container_bytes_zipped": False}
    assert entity.exclude_from_indexes == {"steps", "step_container_bytes_zipped"}


def test_undecodable_steps_are_logged_and_kept_and_the_build_still_ends(datastore_client, task_backend, sync):
    put_leased_build(datastore_client, 1)
    put_steps(datastore_client, 1, incomplete_steps(), zipped=False)
    broken = get_steps(datastore_client, 1)
    broken["step_container_bytes_zipped"] = True  # plain bytes marked as zlib
    datastore_client.put(broken)
    put_build(datastore_client, 2, updated=LONG_AGO)
    put_steps(datastore_client, 2, incomplete_steps(), zipped=False)
    for build_id in (1, 2):
        task_backend.backend.set_task(f"task-{build_id}", pb.FAILURE, 2)
    with captured_logs() as captured:
        report = sync([1, 2])

    assert report.completed == 2
    assert datastore_client.get(model.build_key(datastore_client, 1))["status_v2"] == pb.FAILURE
    assert get_steps(datastore_client, 1) == broken
    assert {s.status for s in steps_of(get_steps(datastore_client, 2)).steps} == {pb.SUCCESS, pb.CANCELED}
    errors = [event for event in captured.events() if "BuildSteps" in event["message"]]
    assert len(errors) == 1 and errors[0]["severity"] == "ERROR" and errors[0]["build_id"] == 1
    assert "do not inflate" in errors[0]["error"]


def test_steps_are_read_only_for_builds_that_end_in_the_lookup_of_their_status(
    datastore_emulator, datastore_client, task_backend, sync
):
    for build_id in (1, 2, 3):
        put_leased_build(datastore_client, build_id)
        put_steps(datastore_client, build_id, incomplete_steps(), zipped=False)
    task_backend.backend.set_task("task-1", pb.SUCCESS, 2)  # ends
    task_backend.backend.set_task("task-2", pb.STARTED, 2)  # newer task, still running
    task_backend.backend.set_task("task-3", pb.STARTED, 1)  # unchanged
    client = recording_client(datastore_emulator)

    report = sync([1, 2, 3], client=client)

    assert (report.completed, report.updated, report.unchanged) == (1, 2, 1)
    steps_lookups = [lookup for lookup in client.lookups if ("BuildSteps", 1) in lookup]
    assert steps_lookups == [[("BuildStatus", 1), ("BuildSteps", 1)]]
    assert sum(kind == "BuildSteps" for lookup in client.lookups for kind, _ in lookup) == 1


def test_steps_that_had_all_ended_are_not_written_again(datastore_emulator, datastore_client, task_backend, sync):
    put_leased_build(datastore_client, 1)
    put_steps(datastore_client, 1, [step("checkout", pb.SUCCESS, ended=True)], zipped=False)
    task_backend.backend.set_task("task-1", pb.SUCCESS, 2)
    client = recording_client(datastore_emulator)

    report = sync([1], client=client)

    assert report.completed == 1
    assert sorted(client.writes) == [("Build", 1), ("BuildInfra", 1), ("BuildStatus", 1)]


def test_a_group_whose_writes_exceed_one_commit_is_split_and_every_build_ends(
    datastore_emulator, datastore_client, task_backend, sync
):
    # Production takes 10 MiB per commit; the emulator's client takes 4 MiB per
    # answer, so here three builds that each rewrite ~900 KB of steps share a
    # 2 MiB budget.
    budget = 2 * 1024 * 1024
    build_ids = [1, 2, 3]
    for build_id in build_ids:
        put_build(datastore_client, build_id, updated=LONG_AGO)
        noise = random.Random(build_id).randbytes(450_000).hex()  # incompressible: its size is real
        put_steps(datastore_client, build_id, [step("big", pb.STARTED, summary_markdown=noise)], zipped=False)
        task_backend.backend.set_task(f"task-{build_id}", pb.FAILURE, 2)
    client = recording_client(datastore_emulator)

    report = sync(build_ids, client=client, commit_budget=budget)

    assert (report.completed, report.failed) == (3, 0)
    for build_id in build_ids:
        assert steps_of(get_steps(datastore_client, build_id)).steps[0].status == pb.CANCELED
    assert len(client.commits) == 2 and all(size <= budget for size in client.commits), client.commits
